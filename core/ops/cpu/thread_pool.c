/* thread_pool.c: see thread_pool.h. Workers sleep on a condition variable between runs (no
 * spinning: the machine may be shared) and take tasks from an atomic counter. */
#include "ops/cpu/thread_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

struct cpu_pool {
    int threads;
    pthread_t *workers; /* threads - 1 of them */
    int started;        /* how many workers exist (for cleanup after a failed create) */
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    unsigned long generation; /* bumped once per run */
    int stopping;
    int busy_workers; /* workers still inside the current run */
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

static void *worker_main(void *p)
{
    struct worker_arg *arg = p;
    cpu_pool *pool = arg->pool;
    int thread = arg->index;
    free(arg);
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (pool->generation == seen && !pool->stopping)
            pthread_cond_wait(&pool->start_cv, &pool->mu);
        if (pool->stopping)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->mu);
        run_tasks(pool, thread);
        pthread_mutex_lock(&pool->mu);
        if (--pool->busy_workers == 0)
            pthread_cond_signal(&pool->done_cv);
    }
    pthread_mutex_unlock(&pool->mu);
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
    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    pool->busy_workers = pool->started;
    pool->generation++;
    pthread_cond_broadcast(&pool->start_cv);
    pthread_mutex_unlock(&pool->mu);

    run_tasks(pool, 0);

    pthread_mutex_lock(&pool->mu);
    while (pool->busy_workers > 0)
        pthread_cond_wait(&pool->done_cv, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
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
    pool->stopping = 1;
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
