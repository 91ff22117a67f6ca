/* client.c: a backend's side of a request. It builds the request segment, queues it in its slot,
 * wakes the worker and waits on its latch (CHECK_FOR_INTERRUPTS, so cancel and statement_timeout
 * end the wait at once). Whenever the backend stops waiting (answer, error, cancel) the segment's
 * detach callback marks the request cancelled, so the worker drops it between decoder steps, and
 * frees the slot. */
#include "emu2_pg.h"

#include "emu2.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#define POLL_MS 50

/* Runs on every detach of the backend's segment (answer, error, cancel), before it is unmapped. */
static void on_request_detach(dsm_segment *seg, Datum arg)
{
    Emu2RequestHeader *h = (Emu2RequestHeader *)DatumGetPointer(arg);
    Emu2Shared *sh = emu2_shared(); /* already attached: no locking */
    (void)seg;
    pg_atomic_write_u32(&h->cancelled, 1);
    Emu2Slot *s = &sh->slots[h->slot_no];
    SpinLockAcquire(&sh->mutex);
    if (s->req_id == h->req_id)
        s->state = EMU2_SLOT_FREE;
    SpinLockRelease(&sh->mutex);
}

static int sqlstate_of(int status)
{
    switch (status) {
    case EMU2_ERR_INVALID_ARGUMENT:
    case EMU2_ERR_MISMATCH:
        return ERRCODE_INVALID_PARAMETER_VALUE;
    case EMU2_ERR_FORMAT:
        return ERRCODE_INVALID_BINARY_REPRESENTATION;
    case EMU2_ERR_UNSUPPORTED:
        return ERRCODE_FEATURE_NOT_SUPPORTED;
    case EMU2_ERR_LIMIT:
        return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
    case EMU2_ERR_NOMEM:
        return ERRCODE_OUT_OF_MEMORY;
    case EMU2_ERR_CANCELLED:
        return ERRCODE_QUERY_CANCELED;
    case EMU2_ERR_IO:
        return ERRCODE_IO_ERROR;
    case EMU2_PG_STATUS_NOT_CONFIGURED:
        return ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
    case EMU2_PG_STATUS_LOAD_FAILED:
        return ERRCODE_SYSTEM_ERROR;
    default:
        return ERRCODE_INTERNAL_ERROR;
    }
}

static void raise_reply_error(int status, const char *msg, Size len)
{
    char *m = pnstrdup(msg, len);
    if (status == EMU2_PG_STATUS_NOT_CONFIGURED)
        ereport(ERROR, (errcode(sqlstate_of(status)), errmsg("emu2: %s", m),
                        errhint("Set emu2.model_path (ALTER SYSTEM SET emu2.model_path = '/path/to/model'; "
                                "SELECT pg_reload_conf();).")));
    if (status == EMU2_PG_STATUS_LOAD_FAILED)
        ereport(ERROR, (errcode(sqlstate_of(status)), errmsg("emu2: %s", m),
                        errhint("Fix emu2.model_path / emu2.device, then SELECT emu2_reload().")));
    ereport(ERROR, (errcode(sqlstate_of(status)), errmsg("emu2: %s", m)));
}

static void worker_lost(void)
{
    ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR),
                    errmsg("emu2: the model worker stopped while serving this request"),
                    errhint("The worker restarts by itself; run the statement again.")));
}

static Size images_blob_size(const Emu2Image *images, int n)
{
    Size total = mul_size(sizeof(uint64), (Size)n);
    for (int i = 0; i < n; i++)
        total = add_size(total, images[i].size);
    return Max(total, sizeof(uint64));
}

bytea *emu2_pg_call(Emu2RequestKind kind, const char *prompt, const Emu2Image *images, int n_images,
                    const Emu2Params *params)
{
    Emu2Shared *sh = emu2_shared();
    emu2_ensure_worker(sh);

    Size prompt_len = strlen(prompt) + 1, blob_len = images_blob_size(images, n_images);
    shm_toc_estimator e;
    shm_toc_initialize_estimator(&e);
    shm_toc_estimate_chunk(&e, sizeof(Emu2RequestHeader));
    shm_toc_estimate_chunk(&e, prompt_len);
    shm_toc_estimate_chunk(&e, blob_len);
    shm_toc_estimate_chunk(&e, EMU2_MQ_SIZE);
    shm_toc_estimate_keys(&e, 4);
    Size seg_size = shm_toc_estimate(&e);

    dsm_segment *seg = dsm_create(seg_size, 0);
    shm_toc *toc = shm_toc_create(EMU2_TOC_MAGIC, dsm_segment_address(seg), seg_size);

    Emu2RequestHeader *hdr = shm_toc_allocate(toc, sizeof *hdr);
    memset(hdr, 0, sizeof *hdr);
    pg_atomic_init_u32(&hdr->cancelled, 0);
    hdr->kind = kind;
    hdr->n_images = (uint32)n_images;
    hdr->params = *params;
    shm_toc_insert(toc, EMU2_KEY_HEADER, hdr);

    char *p = shm_toc_allocate(toc, prompt_len);
    memcpy(p, prompt, prompt_len);
    shm_toc_insert(toc, EMU2_KEY_PROMPT, p);

    char *blob = shm_toc_allocate(toc, blob_len);
    Size off = sizeof(uint64) * (Size)n_images;
    for (int i = 0; i < n_images; i++) {
        uint64 sz = images[i].size;
        memcpy(blob + i * sizeof(uint64), &sz, sizeof sz);
        memcpy(blob + off, images[i].data, images[i].size);
        off += images[i].size;
    }
    shm_toc_insert(toc, EMU2_KEY_IMAGES, blob);

    shm_mq *mq = shm_mq_create(shm_toc_allocate(toc, EMU2_MQ_SIZE), EMU2_MQ_SIZE);
    shm_toc_insert(toc, EMU2_KEY_MQ, mq);
    shm_mq_set_receiver(mq, MyProc);
    shm_mq_handle *mqh = shm_mq_attach(mq, seg, NULL);

    /* queue it */
    int slot_no = MyProc->pgprocno;
    if (slot_no < 0 || slot_no >= sh->n_slots)
        elog(ERROR, "emu2: process slot %d out of range", slot_no);
    Emu2Slot *slot = &sh->slots[slot_no];
    Latch *worker_latch;
    SpinLockAcquire(&sh->mutex);
    hdr->req_id = sh->next_req_id++;
    hdr->slot_no = slot_no;
    slot->req_id = hdr->req_id;
    slot->kind = kind;
    slot->handle = dsm_segment_handle(seg);
    slot->params = *params;
    slot->queued_at = GetCurrentTimestamp();
    slot->worker_gen = 0;
    slot->state = EMU2_SLOT_QUEUED;
    worker_latch = sh->worker_latch;
    SpinLockRelease(&sh->mutex);
    on_dsm_detach(seg, on_request_detach, PointerGetDatum(hdr));
    if (worker_latch)
        SetLatch(worker_latch);

    /* wait */
    TimestampTz start = GetCurrentTimestamp();
    Size len = 0;
    void *data = NULL;
    for (;;) {
        shm_mq_result r = shm_mq_receive(mqh, &len, &data, true);
        if (r == SHM_MQ_SUCCESS)
            break;
        if (r == SHM_MQ_DETACHED)
            worker_lost();
        uint32 state, gen, cur_gen;
        pid_t pid;
        SpinLockAcquire(&sh->mutex);
        state = slot->state;
        gen = slot->worker_gen;
        cur_gen = sh->worker_gen;
        pid = sh->worker_pid;
        SpinLockRelease(&sh->mutex);
        if (state == EMU2_SLOT_TAKEN && (gen != cur_gen || pid == 0))
            worker_lost();
        if (state == EMU2_SLOT_QUEUED && pid == 0)
            emu2_ensure_worker(sh);
        if (emu2_guc_request_timeout > 0 &&
            TimestampDifferenceExceeds(start, GetCurrentTimestamp(), emu2_guc_request_timeout))
            ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
                            errmsg("emu2: no answer within emu2.request_timeout (%d ms)", emu2_guc_request_timeout)));
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, POLL_MS, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    if (len < sizeof(Emu2Reply))
        elog(ERROR, "emu2: short reply from the worker (%zu bytes)", len);
    Emu2Reply rep;
    memcpy(&rep, data, sizeof rep);
    const char *payload = (const char *)data + sizeof rep;
    Size plen = len - sizeof rep;
    if (rep.status != EMU2_OK)
        raise_reply_error(rep.status, payload, plen); /* the segment is detached by error cleanup */
    bytea *out = palloc(VARHDRSZ + plen);
    SET_VARSIZE(out, VARHDRSZ + plen);
    memcpy(VARDATA(out), payload, plen);
    dsm_detach(seg);
    return out;
}
