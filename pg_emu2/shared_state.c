/* shared_state.c: the control block in the main shared memory (slots, worker identity, counters),
 * and starting the worker: registered at server start when the library is in
 * shared_preload_libraries, otherwise registered by the first backend that needs it. Without
 * preloading the block is carved from the shared memory's spare space on first use, as
 * contrib/pg_prewarm's autoprewarm does; it is small (one slot per PGPROC). */
#include "emu2_pg.h"

#include "access/twophase.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#define EMU2_SHMEM_NAME "emu2 control"
/* A dynamic worker that has not shown up after this long is registered again. */
#define EMU2_LAUNCH_GRACE_MS 10000

bool emu2_preloaded = false;
static Emu2Shared *shared = NULL;

static int total_procs(void)
{
    return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

Size emu2_shared_size(void)
{
    return add_size(offsetof(Emu2Shared, slots), mul_size(sizeof(Emu2Slot), (Size)total_procs()));
}

void emu2_shared_request_space(void)
{
    RequestAddinShmemSpace(emu2_shared_size());
}

void emu2_shared_forget(void)
{
    shared = NULL;
}

Emu2Shared *emu2_shared(void)
{
    bool found;
    if (shared)
        return shared;
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    Emu2Shared *sh = ShmemInitStruct(EMU2_SHMEM_NAME, emu2_shared_size(), &found);
    if (!found) {
        memset(sh, 0, emu2_shared_size());
        SpinLockInit(&sh->mutex);
        sh->n_slots = total_procs();
        sh->next_req_id = 1;
        sh->static_worker = emu2_preloaded;
    }
    LWLockRelease(AddinShmemInitLock);
    shared = sh;
    return sh;
}

static void fill_worker(BackgroundWorker *w, bool dynamic)
{
    memset(w, 0, sizeof *w);
    /* a connection to no database: shows in pg_stat_activity, pg_terminate_backend() works */
    w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w->bgw_start_time = BgWorkerStart_RecoveryFinished;
    /* exit(1) after SIGTERM or a failure: started again after a second (never on exit(0)) */
    w->bgw_restart_time = 1;
    snprintf(w->bgw_library_name, BGW_MAXLEN, "emu2");
    snprintf(w->bgw_function_name, BGW_MAXLEN, "emu2_worker_main");
    snprintf(w->bgw_name, BGW_MAXLEN, "emu2 model worker");
    snprintf(w->bgw_type, BGW_MAXLEN, "emu2 model worker");
    w->bgw_main_arg = BoolGetDatum(dynamic);
    w->bgw_notify_pid = 0;
}

void emu2_register_static_worker(void)
{
    BackgroundWorker w;
    fill_worker(&w, false);
    RegisterBackgroundWorker(&w);
}

void emu2_ensure_worker(Emu2Shared *sh)
{
    TimestampTz now = GetCurrentTimestamp();
    bool launch = false;
    SpinLockAcquire(&sh->mutex);
    if (sh->worker_pid == 0 && !sh->static_worker &&
        (sh->launch_at == 0 || TimestampDifferenceExceeds(sh->launch_at, now, EMU2_LAUNCH_GRACE_MS))) {
        sh->launch_at = now;
        launch = true;
    }
    SpinLockRelease(&sh->mutex);
    if (!launch)
        return;
    BackgroundWorker w;
    BackgroundWorkerHandle *handle;
    fill_worker(&w, true);
    if (!RegisterDynamicBackgroundWorker(&w, &handle)) {
        SpinLockAcquire(&sh->mutex);
        sh->launch_at = 0;
        SpinLockRelease(&sh->mutex);
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
                        errmsg("could not start the emu2 worker: no free background worker slot"),
                        errhint("Raise max_worker_processes, or add emu2 to shared_preload_libraries.")));
    }
}
