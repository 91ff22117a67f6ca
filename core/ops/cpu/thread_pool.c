/* thread_pool.c: see thread_pool.h. Workers take tasks from an atomic counter. Between runs they
 * spin briefly on the run counter (a decode step issues dozens of small ops back to back, and a
 * futex wake-up per op costs about as much as the op), then sleep on a condition variable (the
 * machine may be shared: no long spinning). The caller waits for the last worker the same way. */
#include "ops/cpu/thread_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* Polls before sleeping. Each poll yields the core: on a shared machine the thread we wait for may
 * be the one that needs it (a bare pause loop made an oversubscribed 2-thread pool 2-3x slower). */
#define SPIN_POLLS 100

static inline void cpu_relax(void)
{
    sched_yield();
}

struct cpu_pool {
    int threads;
    pthread_t *workers; /* threads - 1 of them */
    int started;        /* how many workers exist (for cleanup after a failed create) */
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    atomic_ulong generation;   /* bumped once per run (publishes fn, ctx, n_tasks) */
    atomic_int stopping;
    atomic_int busy_workers;   /* workers still inside the current run */
    atomic_int sleepers;       /* workers asleep (or about to be) on start_cv */
    atomic_int caller_asleep;  /* the caller waits on done_cv */
    /* the current run */
    cpu_pool_fn fn;
    void *ctx;
    size_t n_tasks;
    atomic_size_t next_task;
};

struct worker_arg {
    cpu_pool *pool;
    int index;
};

static void run_tasks(cpu_pool *pool, int thread)
{
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (t >= pool->n_tasks)
            break;
        pool->fn(pool->ctx, t, thread);
    }
}

/* Waits for a run newer than `seen` (spin, then sleep); returns its generation, or `seen` when stopping. */
static unsigned long wait_for_run(cpu_pool *pool, unsigned long seen)
{
    for (int polls = 0; polls < SPIN_POLLS; polls++) {
        unsigned long g = atomic_load(&pool->generation);
        if (g != seen || atomic_load(&pool->stopping))
            return atomic_load(&pool->stopping) ? seen : g;
        cpu_relax();
    }
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add(&pool->sleepers, 1); /* seen by cpu_pool_run after its generation bump, or we see the bump */
    while (atomic_load(&pool->generation) == seen && !atomic_load(&pool->stopping))
        pthread_cond_wait(&pool->start_cv, &pool->mu);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->mu);
    return atomic_load(&pool->stopping) ? seen : atomic_load(&pool->generation);
}

static void *worker_main(void *p)
{
    struct worker_arg *arg = p;
    cpu_pool *pool = arg->pool;
    int thread = arg->index;
    free(arg);
    unsigned long seen = 0;
    for (;;) {
        unsigned long g = wait_for_run(pool, seen);
        if (g == seen)
            break; /* stopping */
        seen = g;
        run_tasks(pool, thread);
        if (atomic_fetch_sub(&pool->busy_workers, 1) == 1 && atomic_load(&pool->caller_asleep)) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done_cv);
            pthread_mutex_unlock(&pool->mu);
        }
    }
    return NULL;
}

emu2_status cpu_pool_create(int threads, cpu_pool **out, emu2_error *err)
{
    *out = NULL;
    if (threads < 1 || threads > 4096)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "thread pool: %d threads is out of range 1..4096", threads);
    cpu_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return emu2_fail(err, EMU2_ERR_NOMEM, "thread pool: out of memory");
    pool->threads = threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->start_cv, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    atomic_init(&pool->next_task, 0);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->stopping, 0);
    atomic_init(&pool->busy_workers, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->caller_asleep, 0);
    if (threads > 1) {
        pool->workers = calloc((size_t)threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            cpu_pool_destroy(pool);
            return emu2_fail(err, EMU2_ERR_NOMEM, "thread pool: out of memory");
        }
    }
    for (int i = 1; i < threads; i++) {
        struct worker_arg *arg = malloc(sizeof *arg);
        int rc = arg ? 0 : -1;
        if (arg) {
            arg->pool = pool;
            arg->index = i;
            rc = pthread_create(&pool->workers[i - 1], NULL, worker_main, arg);
            if (rc != 0)
                free(arg);
        }
        if (rc != 0) {
            cpu_pool_destroy(pool);
            return emu2_fail(err, EMU2_ERR_NOMEM, "thread pool: could not start worker thread %d of %d: %s", i,
                             threads - 1, rc > 0 ? strerror(rc) : "out of memory");
        }
        pool->started++;
    }
    *out = pool;
    return EMU2_OK;
}

void cpu_pool_run(cpu_pool *pool, size_t n_tasks, cpu_pool_fn fn, void *ctx)
{
    if (n_tasks == 0)
        return;
    if (pool->threads == 1 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    atomic_store(&pool->next_task, 0);
    atomic_store(&pool->busy_workers, pool->started);
    atomic_fetch_add(&pool->generation, 1); /* publishes the run (seq_cst) */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->start_cv);
        pthread_mutex_unlock(&pool->mu);
    }

    run_tasks(pool, 0);

    for (int polls = 0; atomic_load(&pool->busy_workers) > 0; polls++) {
        if (polls < SPIN_POLLS) {
            cpu_relax();
            continue;
        }
        pthread_mutex_lock(&pool->mu);
        atomic_store(&pool->caller_asleep, 1); /* the last worker sees it, or we see its decrement */
        while (atomic_load(&pool->busy_workers) > 0)
            pthread_cond_wait(&pool->done_cv, &pool->mu);
        atomic_store(&pool->caller_asleep, 0);
        pthread_mutex_unlock(&pool->mu);
        break;
    }
}

int cpu_pool_threads(const cpu_pool *pool)
{
    return pool->threads;
}

void cpu_pool_destroy(cpu_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stopping, 1);
    pthread_cond_broadcast(&pool->start_cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->started; i++)
        pthread_join(pool->workers[i], NULL);
    free(pool->workers);
    pthread_cond_destroy(&pool->start_cv);
    pthread_cond_destroy(&pool->done_cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}
