/* worker_continuous.c: continuous batching of text requests through the engine's emu2_batcher.
 *
 * The worker adds the requests it took, then loops: admit queued requests that ask for the same
 * search into the free places (up to emu2.max_batch decoding at once), run one decoder step, answer
 * every request that ended. A request that arrives while others decode joins at the next step
 * instead of waiting for the whole batch, and each answer leaves as soon as its own search ends.
 * The loop ends when nothing is decoding; it stops admitting when the oldest queued request asks for
 * another search (so that one is served next) or a reload is pending. In emu2_status, a "batch" is
 * one decoder step and its size the requests that step advanced. */
#include "emu2_pg.h"

#include <string.h>

#include "emu2.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "utils/timestamp.h"

#include "worker_internal.h"

typedef struct Places {
    Emu2Item items[EMU2_PG_MAX_BATCH]; /* tag = index */
    bool used[EMU2_PG_MAX_BATCH];
    int cap;
} Places;

/* The requests of the running decode: the batcher's hooks point here, and the batcher outlives a
 * round (WorkerModel.batcher), so this lives as long as the worker process. */
static Places places;

static int place_cancelled(void *user, size_t tag)
{
    Places *p = user;
    return emu2_worker_stop || pg_atomic_read_u32(&p->items[tag].hdr->cancelled) != 0;
}

static void publish(Emu2Shared *sh, const Outcome *o, int step_size, double busy)
{
    SpinLockAcquire(&sh->mutex);
    sh->requests_served += o->ok;
    sh->requests_failed += o->failed;
    sh->requests_cancelled += o->cancelled;
    sh->tokens += o->tokens;
    sh->busy_seconds += busy;
    if (step_size > 0) {
        sh->batches++;
        sh->batch_hist[Min(step_size, EMU2_PG_MAX_BATCH)]++;
        sh->last_batch_size = (uint32)step_size;
    }
    SpinLockRelease(&sh->mutex);
}

/* Keeps the answer of the request in place `tag` and counts it. */
static void answer(Places *p, size_t tag, emu2_result *r, Outcome *o)
{
    Emu2Item *it = &p->items[tag];
    if (pg_atomic_read_u32(&it->hdr->cancelled)) {
        o->cancelled++;
    } else if (r->status == EMU2_OK) {
        const char *t = r->text ? r->text : "";
        emu2_worker_reply(it, EMU2_OK, (int)r->n_tokens, r->stopped, t, strlen(t));
        o->ok++;
        o->tokens += r->n_tokens;
    } else {
        const char *m = r->message[0] ? r->message : emu2_status_name(r->status);
        emu2_worker_reply(it, r->status, 0, r->stopped, m, strlen(m));
        o->failed++;
    }
}

/* Sends the kept answers and frees the places of the requests that ended. */
static void release(Places *p, const bool *ended)
{
    for (int i = 0; i < p->cap; i++)
        if (ended[i]) {
            emu2_worker_send_reply(&p->items[i]);
            emu2_worker_detach(&p->items[i]);
            p->used[i] = false;
        }
}

/* Puts the attached item in a free place and adds it to the decode (a request that fails alone is
 * answered through emu2_batcher_take). */
static void admit(emu2_batcher *b, Places *p, const Emu2Item *it)
{
    int k = 0;
    while (p->used[k])
        k++;
    p->items[k] = *it;
    p->used[k] = true;
    emu2_request rq = {p->items[k].prompt, p->items[k].images, p->items[k].n_images};
    (void)emu2_batcher_add(b, &rq, (size_t)k);
}

static bool reload_pending(Emu2Shared *sh)
{
    SpinLockAcquire(&sh->mutex);
    bool r = sh->reload_requested != sh->reload_done;
    SpinLockRelease(&sh->mutex);
    return r || ConfigReloadPending;
}

/* Takes and attaches matching queued requests into the free places. */
static void admit_queued(Emu2Shared *sh, emu2_batcher *b, Places *p, const Emu2Slot *like, Outcome *o)
{
    int running = (int)emu2_batcher_running(b), free_places = 0;
    for (int i = 0; i < p->cap; i++)
        free_places += !p->used[i];
    int room = Min(p->cap - running, free_places);
    if (room <= 0 || reload_pending(sh) || emu2_worker_count_queued(sh) == 0)
        return;
    Emu2Item fresh[EMU2_PG_MAX_BATCH];
    int n = emu2_worker_take(sh, fresh, room, like);
    for (int i = 0; i < n; i++) {
        if (emu2_worker_attach(&fresh[i])) {
            admit(b, p, &fresh[i]);
        } else {
            emu2_worker_detach(&fresh[i]);
            o->cancelled++;
        }
    }
}

void emu2_worker_drop_batcher(WorkerModel *wm)
{
    emu2_batcher_free(wm->batcher);
    wm->batcher = NULL;
}

/* The kept batcher when it fits these parameters, else a new one (NULL: the model's last error says why). */
static emu2_batcher *batcher_for(WorkerModel *wm, const Emu2Params *params, int cap)
{
    if (wm->batcher && wm->batcher_cap == cap && memcmp(&wm->batcher_params, params, sizeof *params) == 0)
        return wm->batcher;
    emu2_worker_drop_batcher(wm);
    emu2_gen_options opts;
    emu2_worker_options(params, &opts);
    emu2_batch_hooks hooks;
    emu2_batch_hooks_init(&hooks);
    hooks.cancelled = place_cancelled;
    hooks.user = &places;
    if (emu2_batcher_create(wm->model, &opts, (size_t)cap, 0, &hooks, &wm->batcher) != EMU2_OK)
        return NULL;
    wm->batcher_params = *params;
    wm->batcher_cap = cap;
    return wm->batcher;
}

void emu2_worker_serve_continuous(Emu2Shared *sh, WorkerModel *wm, Emu2Item *items, int n, const Emu2Params *params,
                                  int cancelled)
{
    Places *p = &places;
    memset(p, 0, sizeof *p);
    p->cap = Min(emu2_guc_max_batch, EMU2_PG_MAX_BATCH);
    Outcome o = {0, 0, cancelled, 0};
    emu2_batcher *b = batcher_for(wm, params, p->cap);
    if (!b) {
        const char *m = emu2_model_last_error(wm->model);
        for (int i = 0; i < n; i++) {
            emu2_worker_reply(&items[i], EMU2_ERR_INTERNAL, 0, 0, m, strlen(m));
            o.failed++;
        }
        publish(sh, &o, 0, 0.0);
        for (int i = 0; i < n; i++) {
            emu2_worker_send_reply(&items[i]);
            emu2_worker_detach(&items[i]);
        }
        return;
    }
    Emu2Slot like;
    memset(&like, 0, sizeof like);
    like.kind = EMU2_KIND_TEXT;
    like.params = *params;
    for (int i = 0; i < n; i++)
        admit(b, p, &items[i]);
    bool ended[EMU2_PG_MAX_BATCH];
    while (!emu2_worker_stop) {
        admit_queued(sh, b, p, &like, &o);
        int step_size = (int)emu2_batcher_running(b);
        TimestampTz t0 = GetCurrentTimestamp();
        if (step_size > 0)
            (void)emu2_batcher_step(b); /* a failed step finishes every request with its error */
        double busy = step_size > 0 ? emu2_worker_seconds_since(t0) : 0.0;
        if (emu2_worker_stop)
            break;
        memset(ended, 0, sizeof ended);
        size_t tag;
        emu2_result r;
        while (emu2_batcher_take(b, &tag, &r)) {
            answer(p, tag, &r, &o);
            emu2_results_clear(&r, 1);
            ended[tag] = true;
        }
        publish(sh, &o, step_size, busy);
        memset(&o, 0, sizeof o);
        release(p, ended);
        if (step_size == 0 && emu2_batcher_running(b) == 0)
            break;
    }
    /* on stop: no answers; the segments detach as the worker exits and the backends see it. The
     * batcher is empty again (kept for the next round) unless the worker stops. */
    if (emu2_worker_stop)
        emu2_worker_drop_batcher(wm);
}
