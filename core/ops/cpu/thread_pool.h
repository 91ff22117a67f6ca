/* thread_pool.h: a fixed set of worker threads that run numbered tasks; the caller takes part.
 * Owned by one CPU backend (no global state); one run at a time (the backend is single-caller). */
#ifndef EMU2_OPS_CPU_THREAD_POOL_H
#define EMU2_OPS_CPU_THREAD_POOL_H

#include <stddef.h>

#include "emu2.h"

typedef struct cpu_pool cpu_pool;

/* fn(ctx, task, thread) for every task in [0, n_tasks); thread in [0, threads) is unique among the
 * threads running at the same time, so it can index per-thread scratch memory. */
typedef void (*cpu_pool_fn)(void *ctx, size_t task, int thread);

/* threads >= 1 (the caller counts as one, so threads-1 workers are started). */
emu2_status cpu_pool_create(int threads, cpu_pool **out, emu2_error *err);
/* Runs every task and returns when all have finished. */
void cpu_pool_run(cpu_pool *pool, size_t n_tasks, cpu_pool_fn fn, void *ctx);
int cpu_pool_threads(const cpu_pool *pool);
/* Stops and joins the workers. NULL is fine. */
void cpu_pool_destroy(cpu_pool *pool);

#endif
