/* status.c: emu2_status() (the emu2_status view) and emu2_reload(). */
#include "emu2_pg.h"

#include "access/htup_details.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

PG_FUNCTION_INFO_V1(emu2_sql_status);
PG_FUNCTION_INFO_V1(emu2_sql_reload);

#define RELOAD_WAIT_MS (10 * 60 * 1000)

static const char *model_state_name(int s)
{
    switch (s) {
    case EMU2_MODEL_LOADING:
        return "loading";
    case EMU2_MODEL_READY:
        return "ready";
    case EMU2_MODEL_FAILED:
        return "failed";
    default:
        return "not configured";
    }
}

#define N_STATUS_COLS 20

Datum emu2_sql_status(PG_FUNCTION_ARGS)
{
    TupleDesc desc;
    if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
        elog(ERROR, "emu2_status: return type must be a row type");
    desc = BlessTupleDesc(desc);
    if (desc->natts != N_STATUS_COLS)
        elog(ERROR, "emu2_status: expected %d columns, the SQL declares %d", N_STATUS_COLS, desc->natts);

    Emu2Shared *sh = emu2_shared();
    Emu2Shared copy; /* the head only; slots are counted under the lock */
    int queued = 0, in_flight = 0;
    SpinLockAcquire(&sh->mutex);
    memcpy(&copy, sh, offsetof(Emu2Shared, slots));
    for (int i = 0; i < sh->n_slots; i++) {
        queued += sh->slots[i].state == EMU2_SLOT_QUEUED;
        in_flight += sh->slots[i].state == EMU2_SLOT_TAKEN;
    }
    SpinLockRelease(&sh->mutex);

    bool see_path = superuser() || has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_SETTINGS);
    int max_seen = 0;
    uint64 weighted = 0;
    for (int k = 1; k <= EMU2_PG_MAX_BATCH; k++)
        if (copy.batch_hist[k]) {
            max_seen = k;
            weighted += copy.batch_hist[k] * (uint64)k;
        }
    Datum hist[EMU2_PG_MAX_BATCH];
    for (int k = 1; k <= EMU2_PG_MAX_BATCH; k++)
        hist[k - 1] = Int64GetDatum((int64)copy.batch_hist[k]);

    Datum v[N_STATUS_COLS];
    bool nulls[N_STATUS_COLS];
    memset(nulls, 0, sizeof nulls);
    int c = 0;
    v[c] = Int32GetDatum(copy.worker_pid);
    nulls[c++] = copy.worker_pid == 0;
    v[c++] = CStringGetTextDatum(model_state_name(copy.model_state));
    v[c] = CStringGetTextDatum(copy.model_path);
    nulls[c++] = !see_path || !copy.model_path[0];
    v[c] = CStringGetTextDatum(copy.device);
    nulls[c++] = !copy.device[0];
    v[c] = CStringGetTextDatum(copy.quant);
    nulls[c++] = !copy.quant[0];
    v[c] = TimestampTzGetDatum(copy.loaded_at);
    nulls[c++] = copy.model_state != EMU2_MODEL_READY;
    v[c] = Float8GetDatum(copy.load_seconds);
    nulls[c++] = copy.model_state != EMU2_MODEL_READY;
    v[c] = CStringGetTextDatum(copy.load_error);
    nulls[c++] = !copy.load_error[0];
    v[c++] = Int32GetDatum(queued);
    v[c++] = Int32GetDatum(in_flight);
    v[c++] = Int64GetDatum((int64)copy.requests_served);
    v[c++] = Int64GetDatum((int64)copy.requests_failed);
    v[c++] = Int64GetDatum((int64)copy.requests_cancelled);
    v[c++] = Int64GetDatum((int64)copy.batches);
    v[c] = Float8GetDatum(copy.batches ? (double)weighted / (double)copy.batches : 0.0);
    nulls[c++] = copy.batches == 0;
    v[c++] = Int32GetDatum(max_seen);
    /* batch_sizes[k] = number of batches of k requests, k = 1..max seen */
    v[c] = PointerGetDatum(construct_array(hist, Max(max_seen, 1), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
    nulls[c++] = max_seen == 0;
    v[c++] = Int64GetDatum((int64)copy.tokens);
    v[c] = Float8GetDatum(copy.busy_seconds > 0 ? (double)copy.tokens / copy.busy_seconds : 0.0);
    nulls[c++] = copy.busy_seconds <= 0;
    v[c] = TimestampTzGetDatum(copy.worker_started_at);
    nulls[c++] = copy.worker_pid == 0;
    Assert(c == N_STATUS_COLS);
    PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, v, nulls)));
}

/* emu2_reload(): the worker loads the model again (after the files changed, or a failed load) and
 * this waits for it. Returns the model state; a failed load is an error with the reason. */
Datum emu2_sql_reload(PG_FUNCTION_ARGS)
{
    (void)fcinfo;
    Emu2Shared *sh = emu2_shared();
    emu2_ensure_worker(sh);
    uint32 ticket;
    Latch *latch;
    SpinLockAcquire(&sh->mutex);
    ticket = ++sh->reload_requested;
    latch = sh->worker_latch;
    SpinLockRelease(&sh->mutex);
    if (latch)
        SetLatch(latch);
    TimestampTz start = GetCurrentTimestamp();
    for (;;) {
        uint32 done;
        int state;
        char error[EMU2_PG_ERROR_MAX];
        pid_t pid;
        SpinLockAcquire(&sh->mutex);
        done = sh->reload_done;
        state = sh->model_state;
        pid = sh->worker_pid;
        strlcpy(error, sh->load_error, sizeof error);
        SpinLockRelease(&sh->mutex);
        if ((int32)(done - ticket) >= 0) {
            if (state == EMU2_MODEL_FAILED)
                ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR), errmsg("emu2: %s", error)));
            PG_RETURN_TEXT_P(cstring_to_text(model_state_name(state)));
        }
        if (pid == 0)
            emu2_ensure_worker(sh);
        if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(), RELOAD_WAIT_MS))
            ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED), errmsg("emu2_reload: the worker did not reload in time")));
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}
