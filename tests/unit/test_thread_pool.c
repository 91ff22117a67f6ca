/* test_thread_pool.c: the CPU thread pool's hand-over between runs: thousands of back-to-back runs
 * (workers still polling for the next run) and runs after pauses (workers asleep on the condition
 * variable) each run every task exactly once, on valid thread indices, and a run returns only when
 * all its tasks have finished. */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "check.h"
#include "ops/cpu/thread_pool.h"

#define MAX_TASKS 64

struct run_ctx {
    atomic_int hits[MAX_TASKS];
    atomic_int done;
    atomic_int bad_thread;
    int threads;
};

static void task_fn(void *p, size_t task, int thread)
{
    struct run_ctx *c = p;
    if (thread < 0 || thread >= c->threads)
        atomic_store(&c->bad_thread, 1);
    if (task % 7 == 3) { /* some tasks take a while: the caller must wait for them */
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    atomic_fetch_add(&c->hits[task], 1);
    atomic_fetch_add(&c->done, 1);
}

/* n_runs runs of 1..MAX_TASKS tasks; every pause_every-th run comes after a pause long enough for
 * the workers to stop polling and sleep. */
static int stress(int threads, int n_runs, int pause_every)
{
    cpu_pool *pool = NULL;
    if (cpu_pool_create(threads, &pool, NULL) != EMU2_OK)
        return 0;
    int ok = 1;
    struct run_ctx *c = calloc(1, sizeof *c);
    for (int r = 0; r < n_runs && ok; r++) {
        size_t n = 1 + (size_t)(r * 13) % MAX_TASKS;
        for (size_t i = 0; i < MAX_TASKS; i++)
            atomic_store(&c->hits[i], 0);
        atomic_store(&c->done, 0);
        c->threads = threads;
        if (pause_every && r % pause_every == 0) {
            struct timespec ts = {0, 3 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        cpu_pool_run(pool, n, task_fn, c);
        ok = atomic_load(&c->done) == (int)n && !atomic_load(&c->bad_thread);
        for (size_t i = 0; i < MAX_TASKS && ok; i++)
            ok = atomic_load(&c->hits[i]) == (i < n ? 1 : 0);
        if (!ok)
            printf("    threads %d run %d (%zu tasks): %d done, bad thread %d\n", threads, r, n,
                   atomic_load(&c->done), atomic_load(&c->bad_thread));
    }
    free(c);
    cpu_pool_destroy(pool);
    return ok;
}

TEST(back_to_back_runs_run_every_task_once)
{
    for (int threads = 2; threads <= 4; threads++)
        CHECK(stress(threads, 2000, 0));
}

TEST(runs_after_pauses_wake_sleeping_workers)
{
    for (int threads = 2; threads <= 3; threads++)
        CHECK(stress(threads, 300, 2));
}

TEST(one_thread_runs_inline)
{
    CHECK(stress(1, 200, 50));
}

TEST(destroy_right_after_create_and_after_runs)
{
    cpu_pool *pool = NULL;
    CHECK(cpu_pool_create(4, &pool, NULL) == EMU2_OK);
    cpu_pool_destroy(pool); /* workers may not even have started waiting */
    pool = NULL;
    CHECK(cpu_pool_create(3, &pool, NULL) == EMU2_OK);
    struct run_ctx *c = calloc(1, sizeof *c);
    c->threads = 3;
    cpu_pool_run(pool, 10, task_fn, c);
    CHECK(atomic_load(&c->done) == 10);
    cpu_pool_destroy(pool); /* workers polling for the next run */
    free(c);
    cpu_pool_destroy(NULL);
}

int main(void)
{
    RUN(back_to_back_runs_run_every_task_once);
    RUN(runs_after_pauses_wake_sleeping_workers);
    RUN(one_thread_runs_inline);
    RUN(destroy_right_after_create_and_after_runs);
    return check_finish();
}
