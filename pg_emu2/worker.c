/* worker.c: the resident model worker. It alone loads the model (emu2_model_load) and keeps it;
 * it follows emu2.model_path / device / quant / threads on SIGHUP, reloads on emu2_reload(), and
 * serves queued requests in batches (worker_batch.c). SIGTERM ends it with exit status 1, so the
 * postmaster starts it again a second later; requests it was serving see their reply queue detach
 * and fail at once. */
#include "emu2_pg.h"

#include <signal.h>
#include <string.h>

#include "emu2.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "worker_internal.h"

volatile sig_atomic_t emu2_worker_stop = false;

static void handle_sigterm(SIGNAL_ARGS)
{
    int save_errno = errno;
    emu2_worker_stop = true;
    SetLatch(MyLatch);
    errno = save_errno;
}

/* Loading may take long with a real model: stop when asked to. */
static int load_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)user;
    (void)stage;
    (void)done;
    (void)total;
    return emu2_worker_stop ? 1 : 0;
}

static void publish_model_state(Emu2Shared *sh, const WorkerModel *wm, int state, const char *error)
{
    SpinLockAcquire(&sh->mutex);
    sh->model_state = state;
    strlcpy(sh->model_path, wm->path, sizeof sh->model_path);
    strlcpy(sh->device, wm->device_used[0] ? wm->device_used : wm->device, sizeof sh->device);
    strlcpy(sh->quant, emu2_pg_quant_name(wm->quant), sizeof sh->quant);
    strlcpy(sh->load_error, error ? error : "", sizeof sh->load_error);
    if (state == EMU2_MODEL_READY) {
        sh->loaded_at = GetCurrentTimestamp();
        sh->load_seconds = wm->load_seconds;
    }
    SpinLockRelease(&sh->mutex);
}

/* Makes the loaded model match the settings; force = load again even when they did not change. */
static void model_sync(Emu2Shared *sh, WorkerModel *wm, bool force)
{
    const char *path = emu2_guc_model_path ? emu2_guc_model_path : "";
    const char *device = emu2_guc_device ? emu2_guc_device : "auto";
    bool same = !strcmp(path, wm->path) && !strcmp(device, wm->device) && emu2_guc_quant == wm->quant &&
                emu2_guc_precision == wm->precision &&
                emu2_guc_threads == wm->threads;
    if (same && !force && wm->tried)
        return;
    emu2_worker_drop_batcher(wm);
    if (wm->model) {
        emu2_model_free(wm->model);
        wm->model = NULL;
    }
    strlcpy(wm->path, path, sizeof wm->path);
    strlcpy(wm->device, device, sizeof wm->device);
    wm->device_used[0] = '\0';
    wm->quant = emu2_guc_quant;
    wm->precision = emu2_guc_precision;
    wm->threads = emu2_guc_threads;
    wm->tried = true;
    wm->error[0] = '\0';
    if (!path[0]) {
        publish_model_state(sh, wm, EMU2_MODEL_NOT_CONFIGURED, NULL);
        return;
    }
    publish_model_state(sh, wm, EMU2_MODEL_LOADING, NULL);

    emu2_load_options lo;
    emu2_load_options_init(&lo);
    lo.threads = wm->threads;
    lo.device = wm->device;
    lo.quant = emu2_pg_quant_name(wm->quant);
    lo.precision = emu2_pg_precision_name(wm->precision);
    lo.progress = load_progress;
    emu2_error err;
    memset(&err, 0, sizeof err);
    /* the engine's thread pool starts here: its threads inherit a mask that keeps PostgreSQL's
     * signal handlers on this (the main) thread only */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    TimestampTz t0 = GetCurrentTimestamp();
    emu2_status st = emu2_model_load(path, &lo, &wm->model, &err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    wm->load_seconds = emu2_worker_seconds_since(t0);
    if (st != EMU2_OK) {
        wm->model = NULL;
        snprintf(wm->error, sizeof wm->error, "could not load the model at \"%s\": %s", path,
                 err.message[0] ? err.message : emu2_status_name(st));
        ereport(LOG, (errmsg("emu2 worker: %s", wm->error)));
        publish_model_state(sh, wm, EMU2_MODEL_FAILED, wm->error);
        return;
    }
    emu2_model_info info;
    if (emu2_model_get_info(wm->model, &info) == EMU2_OK && info.device)
        strlcpy(wm->device_used, info.device, sizeof wm->device_used);
    ereport(LOG, (errmsg("emu2 worker: loaded \"%s\" on %s in %.2f s", path,
                         wm->device_used[0] ? wm->device_used : wm->device, wm->load_seconds)));
    publish_model_state(sh, wm, EMU2_MODEL_READY, NULL);
}

static void worker_cleanup(int code, Datum arg)
{
    Emu2Shared *sh = (Emu2Shared *)DatumGetPointer(arg);
    (void)code;
    SpinLockAcquire(&sh->mutex);
    if (sh->worker_pid == MyProcPid) {
        sh->worker_pid = 0;
        sh->worker_latch = NULL;
        /* a restart follows: backends give it EMU2_LAUNCH_GRACE_MS before registering another */
        sh->launch_at = GetCurrentTimestamp();
    }
    SpinLockRelease(&sh->mutex);
}

void emu2_worker_main(Datum arg)
{
    (void)arg;
    pqsignal(SIGTERM, handle_sigterm);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnection(NULL, NULL, 0); /* no database, as the logical replication launcher */

    Emu2Shared *sh = emu2_shared();
    SpinLockAcquire(&sh->mutex);
    pid_t other = sh->worker_pid;
    if (other != 0 && other != MyProcPid && kill(other, 0) == 0) {
        SpinLockRelease(&sh->mutex);
        ereport(LOG, (errmsg("emu2 worker: another worker (pid %d) runs already; exiting", (int)other)));
        proc_exit(0); /* exit status 0: not restarted */
    }
    sh->worker_pid = MyProcPid;
    sh->worker_latch = MyLatch;
    sh->worker_gen++;
    sh->worker_started_at = GetCurrentTimestamp();
    sh->launch_at = 0;
    SpinLockRelease(&sh->mutex);
    before_shmem_exit(worker_cleanup, PointerGetDatum(sh));
    pgstat_report_appname("emu2 model worker");

    WorkerModel wm;
    memset(&wm, 0, sizeof wm);
    SpinLockAcquire(&sh->mutex);
    uint32 pending = sh->reload_requested; /* this first load serves those reloads too */
    SpinLockRelease(&sh->mutex);
    model_sync(sh, &wm, false);
    SpinLockAcquire(&sh->mutex);
    sh->reload_done = pending;
    SpinLockRelease(&sh->mutex);

    while (!emu2_worker_stop) {
        ResetLatch(MyLatch);
        if (ConfigReloadPending) {
            ConfigReloadPending = false;
            ProcessConfigFile(PGC_SIGHUP);
            model_sync(sh, &wm, false);
        }
        SpinLockAcquire(&sh->mutex);
        uint32 want = sh->reload_requested;
        bool reload = want != sh->reload_done;
        SpinLockRelease(&sh->mutex);
        if (reload) {
            model_sync(sh, &wm, true);
            SpinLockAcquire(&sh->mutex);
            sh->reload_done = want;
            SpinLockRelease(&sh->mutex);
        }
        if (emu2_worker_serve_once(sh, &wm) > 0)
            continue;
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
    }
    emu2_worker_drop_batcher(&wm);
    if (wm.model)
        emu2_model_free(wm.model);
    proc_exit(1);
}
