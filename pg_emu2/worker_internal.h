/* worker_internal.h: what worker.c and worker_batch.c share (the worker process only). */
#ifndef EMU2_PG_WORKER_INTERNAL_H
#define EMU2_PG_WORKER_INTERNAL_H

#include <signal.h>

#include "emu2.h"
#include "storage/shm_mq.h"

typedef struct WorkerModel {
    emu2_model *model;        /* NULL: not configured or failed (error says why) */
    bool tried;               /* the settings below were tried */
    char path[MAXPGPATH];
    char device[64];          /* as asked */
    char device_used[128];     /* as the engine reports */
    int quant;
    int precision;
    int threads;
    double load_seconds;
    char error[EMU2_PG_ERROR_MAX];
    /* continuous batching: kept between rounds while the parameters and emu2.max_batch stay the same
     * (its KV cache is not allocated and faulted in again for every request) */
    emu2_batcher *batcher;
    Emu2Params batcher_params;
    int batcher_cap;
} WorkerModel;

extern volatile sig_atomic_t emu2_worker_stop;

/* One request the worker took (worker_batch.c). */
typedef struct Emu2Item {
    uint64 req_id;
    dsm_handle handle;
    uint32 kind;
    dsm_segment *seg;
    Emu2RequestHeader *hdr;
    shm_mq_handle *mqh;
    const char *prompt;
    emu2_image_bytes *images;
    uint32 n_images;
    /* the answer, sent after the counters are published (so emu2_status() already counts it) */
    bool has_reply;
    Emu2Reply reply;
    char *payload;
    Size payload_len;
} Emu2Item;

typedef struct Outcome {
    int ok, failed, cancelled;
    uint64 tokens;
} Outcome;

/* Queued requests now. */
extern int emu2_worker_count_queued(Emu2Shared *sh);
/* Takes the oldest queued request and up to max - 1 others with its kind and parameters; with
 * `like`, only when the oldest has like's kind and parameters (else none). */
extern int emu2_worker_take(Emu2Shared *sh, Emu2Item *items, int max, const Emu2Slot *like);
/* Maps the request's segment; false when the backend has gone (segment gone or reused) or gave up. */
extern bool emu2_worker_attach(Emu2Item *it);
extern void emu2_worker_detach(Emu2Item *it);
/* Keeps the answer (sent by emu2_worker_send_reply, after the counters are published). */
extern void emu2_worker_reply(Emu2Item *it, int status, int n_tokens, int stopped, const void *payload, Size len);
extern void emu2_worker_send_reply(Emu2Item *it);
extern void emu2_worker_options(const Emu2Params *p, emu2_gen_options *o);
extern double emu2_worker_seconds_since(TimestampTz t0);
/* Continuous batching (worker_continuous.c): serves the attached text requests items[n] (same
 * parameters) and every matching request queued while they decode, until the decode drains;
 * answers each as it ends and publishes the counters (cancelled: requests already dropped). */
/* Frees the kept batcher (before the model is freed). */
extern void emu2_worker_drop_batcher(WorkerModel *wm);
extern void emu2_worker_serve_continuous(Emu2Shared *sh, WorkerModel *wm, Emu2Item *items, int n, const Emu2Params *params,
                                         int cancelled);

/* Takes one batch of queued requests, runs it and answers; returns how many requests it took. */
extern int emu2_worker_serve_once(Emu2Shared *sh, WorkerModel *wm);

#endif
