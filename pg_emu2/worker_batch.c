/* worker_batch.c: one round of the worker: take queued requests that ask for the same search (up to
 * emu2.max_batch) and answer each through its shm_mq. With emu2.continuous_batching on, text
 * requests go to continuous batching (worker_continuous.c: later requests join the running decode);
 * else (the default), as for images, they run as one static batch (emu2_generate_batch), waiting up
 * to emu2.batch_wait for the batch to fill when other sessions are active. Requests whose backend
 * stopped waiting are dropped between decoder steps (the cancelled hook). */
#include "emu2_pg.h"

#include <string.h>

#include "emu2.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "storage/shm_toc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "worker_internal.h"

int emu2_worker_count_queued(Emu2Shared *sh)
{
    int n = 0;
    SpinLockAcquire(&sh->mutex);
    for (int i = 0; i < sh->n_slots; i++)
        n += sh->slots[i].state == EMU2_SLOT_QUEUED;
    SpinLockRelease(&sh->mutex);
    return n;
}

int emu2_worker_take(Emu2Shared *sh, Emu2Item *items, int max, const Emu2Slot *like)
{
    int n = 0, first = -1;
    SpinLockAcquire(&sh->mutex);
    for (int i = 0; i < sh->n_slots; i++)
        if (sh->slots[i].state == EMU2_SLOT_QUEUED && (first < 0 || sh->slots[i].req_id < sh->slots[first].req_id))
            first = i;
    if (first >= 0 && like &&
        (sh->slots[first].kind != like->kind || memcmp(&sh->slots[first].params, &like->params, sizeof like->params)))
        first = -1; /* the oldest waits for another search: let the running one drain */
    if (first >= 0) {
        Emu2Slot *f = &sh->slots[first];
        if (f->kind != EMU2_KIND_TEXT)
            max = 1; /* images are made one at a time */
        for (int k = -1; k < sh->n_slots && n < max; k++) {
            int i = k < 0 ? first : k;
            Emu2Slot *s = &sh->slots[i];
            if (s->state != EMU2_SLOT_QUEUED || (k >= 0 && i == first))
                continue;
            if (s->kind != f->kind || memcmp(&s->params, &f->params, sizeof s->params) != 0)
                continue;
            s->state = EMU2_SLOT_TAKEN;
            s->worker_gen = sh->worker_gen;
            memset(&items[n], 0, sizeof items[n]);
            items[n].req_id = s->req_id;
            items[n].handle = s->handle;
            items[n].kind = s->kind;
            n++;
        }
    }
    SpinLockRelease(&sh->mutex);
    return n;
}

bool emu2_worker_attach(Emu2Item *it)
{
    it->seg = dsm_attach(it->handle);
    if (!it->seg)
        return false;
    shm_toc *toc = shm_toc_attach(EMU2_TOC_MAGIC, dsm_segment_address(it->seg));
    if (toc)
        it->hdr = shm_toc_lookup(toc, EMU2_KEY_HEADER, true);
    if (!toc || !it->hdr || it->hdr->req_id != it->req_id || pg_atomic_read_u32(&it->hdr->cancelled))
        return false;
    it->prompt = shm_toc_lookup(toc, EMU2_KEY_PROMPT, false);
    const char *blob = shm_toc_lookup(toc, EMU2_KEY_IMAGES, false);
    shm_mq *mq = shm_toc_lookup(toc, EMU2_KEY_MQ, false);
    it->n_images = it->hdr->n_images;
    if (it->n_images > 0) {
        it->images = palloc(sizeof(emu2_image_bytes) * it->n_images);
        Size off = sizeof(uint64) * it->n_images, map = dsm_segment_map_length(it->seg);
        for (uint32 i = 0; i < it->n_images; i++) {
            uint64 sz;
            memcpy(&sz, blob + i * sizeof(uint64), sizeof sz);
            if ((Size)(blob - (const char *)dsm_segment_address(it->seg)) + off + sz > map)
                return false; /* a malformed request: cannot come from our backends */
            it->images[i].data = blob + off;
            it->images[i].size = (size_t)sz;
            off += sz;
        }
    }
    shm_mq_set_sender(mq, MyProc);
    it->mqh = shm_mq_attach(mq, it->seg, NULL);
    return true;
}

void emu2_worker_detach(Emu2Item *it)
{
    if (it->seg)
        dsm_detach(it->seg);
    if (it->images)
        pfree(it->images);
    it->seg = NULL;
    it->images = NULL;
}

void emu2_worker_reply(Emu2Item *it, int status, int n_tokens, int stopped, const void *payload, Size len)
{
    it->has_reply = true;
    it->reply.status = status;
    it->reply.n_tokens = n_tokens;
    it->reply.stopped = stopped;
    it->payload = palloc(Max(len, 1));
    memcpy(it->payload, payload, len);
    it->payload_len = len;
}

void emu2_worker_send_reply(Emu2Item *it)
{
    if (!it->mqh || !it->has_reply)
        return;
    shm_mq_iovec iov[2] = {{(const char *)&it->reply, sizeof it->reply}, {it->payload, it->payload_len}};
    (void)shm_mq_sendv(it->mqh, iov, 2, false, true); /* a backend that left gives DETACHED: fine */
    pfree(it->payload);
    it->payload = NULL;
    it->has_reply = false;
}

static int hook_cancelled(void *user, size_t item)
{
    Emu2Item *items = user;
    return emu2_worker_stop || pg_atomic_read_u32(&items[item].hdr->cancelled) != 0;
}

void emu2_worker_options(const Emu2Params *p, emu2_gen_options *o)
{
    emu2_gen_options_init(o);
    o->max_new_tokens = p->max_new_tokens;
    o->num_beams = p->num_beams;
    o->length_penalty = p->length_penalty;
    o->min_length = p->min_length;
    o->do_sample = p->do_sample;
    o->temperature = p->temperature;
    o->top_p = p->top_p;
    o->top_k = p->top_k;
    o->repetition_penalty = p->repetition_penalty;
    o->seed = p->seed;
}

static void run_text(WorkerModel *wm, Emu2Item *items, int n, const Emu2Params *params, Outcome *out)
{
    emu2_request *reqs = palloc0(sizeof(emu2_request) * n);
    emu2_result *res = palloc0(sizeof(emu2_result) * n);
    for (int i = 0; i < n; i++) {
        reqs[i].prompt = items[i].prompt;
        reqs[i].images = items[i].images;
        reqs[i].n_images = items[i].n_images;
    }
    emu2_gen_options o;
    emu2_worker_options(params, &o);
    emu2_batch_hooks hooks;
    emu2_batch_hooks_init(&hooks);
    hooks.cancelled = hook_cancelled;
    hooks.user = items;
    emu2_status st = emu2_generate_batch(wm->model, reqs, (size_t)n, &o, &hooks, res);
    for (int i = 0; i < n && !emu2_worker_stop; i++) {
        emu2_result *r = &res[i];
        if (pg_atomic_read_u32(&items[i].hdr->cancelled)) {
            out->cancelled++;
            continue;
        }
        if (r->status == EMU2_OK) {
            const char *t = r->text ? r->text : "";
            emu2_worker_reply(&items[i], EMU2_OK, (int)r->n_tokens, r->stopped, t, strlen(t));
            out->ok++;
            out->tokens += r->n_tokens;
        } else {
            const char *m = r->message[0] ? r->message : st != EMU2_OK ? emu2_model_last_error(wm->model) : "";
            if (!m[0])
                m = emu2_status_name(r->status);
            emu2_worker_reply(&items[i], r->status, 0, r->stopped, m, strlen(m));
            out->failed++;
        }
    }
    emu2_results_clear(res, (size_t)n);
    pfree(res);
    pfree(reqs);
}

static int image_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    Emu2Item *it = user;
    (void)stage;
    (void)done;
    (void)total;
    return emu2_worker_stop || pg_atomic_read_u32(&it->hdr->cancelled) != 0;
}

static void run_image(WorkerModel *wm, Emu2Item *it, const Emu2Params *p, Outcome *out)
{
    emu2_image_options o;
    emu2_image_options_init(&o);
    o.width = p->img_width;
    o.height = p->img_height;
    if (p->img_steps > 0)
        o.steps = p->img_steps;
    if (p->img_guidance >= 0)
        o.guidance = p->img_guidance;
    o.seed = p->seed;
    o.progress = image_progress;
    o.progress_user = it;
    void *png = NULL;
    size_t png_size = 0;
    emu2_status st = emu2_generate_image(wm->model, it->prompt, it->images, it->n_images, &o, &png, &png_size);
    if (pg_atomic_read_u32(&it->hdr->cancelled)) {
        out->cancelled++;
    } else if (st == EMU2_OK) {
        emu2_worker_reply(it, EMU2_OK, 0, 0, png, png_size);
        out->ok++;
    } else {
        const char *m = emu2_model_last_error(wm->model);
        if (!m || !m[0])
            m = emu2_status_name(st);
        emu2_worker_reply(it, st, 0, 0, m, strlen(m));
        out->failed++;
    }
    emu2_free(png);
}

double emu2_worker_seconds_since(TimestampTz t0)
{
    long s;
    int us;
    TimestampDifference(t0, GetCurrentTimestamp(), &s, &us);
    return s + us / 1e6;
}

/* Waits up to emu2.batch_wait for the batch to fill, when more than one session is using the worker. */
static void gather(Emu2Shared *sh)
{
    int queued = emu2_worker_count_queued(sh);
    uint32 last;
    SpinLockAcquire(&sh->mutex);
    last = sh->last_batch_size;
    SpinLockRelease(&sh->mutex);
    if (queued == 0 || queued >= emu2_guc_max_batch || emu2_guc_batch_wait_ms <= 0 || (queued < 2 && last < 2))
        return;
    TimestampTz t0 = GetCurrentTimestamp();
    for (;;) {
        long left = emu2_guc_batch_wait_ms - (long)(emu2_worker_seconds_since(t0) * 1000.0);
        if (left <= 0 || emu2_worker_stop || emu2_worker_count_queued(sh) >= emu2_guc_max_batch)
            return;
        (void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, left, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

int emu2_worker_serve_once(Emu2Shared *sh, WorkerModel *wm)
{
    Emu2Item items[EMU2_PG_MAX_BATCH];
    if (!emu2_guc_continuous)
        gather(sh); /* continuous batching needs no wait: later requests join the running decode */
    int taken = emu2_worker_take(sh, items, Min(emu2_guc_max_batch, EMU2_PG_MAX_BATCH), NULL);
    if (taken == 0)
        return 0;
    Emu2Params params;
    bool have_params = false;
    memset(&params, 0, sizeof params);
    int n = 0;
    Outcome out = {0, 0, 0, 0};
    /* keep the live ones at the front */
    for (int i = 0; i < taken; i++) {
        if (emu2_worker_attach(&items[i])) {
            if (!have_params) {
                params = items[i].hdr->params;
                have_params = true;
            }
            items[n++] = items[i];
        } else {
            emu2_worker_detach(&items[i]);
            out.cancelled++;
        }
    }
    TimestampTz t0 = GetCurrentTimestamp();
    if (n > 0 && !wm->model) {
        bool configured = wm->path[0] != '\0';
        const char *m = configured ? wm->error : "no model configured (emu2.model_path is empty)";
        for (int i = 0; i < n; i++)
            emu2_worker_reply(&items[i], configured ? EMU2_PG_STATUS_LOAD_FAILED : EMU2_PG_STATUS_NOT_CONFIGURED, 0, 0, m,
                  strlen(m));
        out.failed += n;
    } else if (n > 0 && items[0].kind == EMU2_KIND_IMAGE) {
        run_image(wm, &items[0], &params, &out);
    } else if (n > 0 && emu2_guc_continuous) {
        /* answers and counts everything itself, as each request ends */
        emu2_worker_serve_continuous(sh, wm, items, n, &params, out.cancelled);
        return taken;
    } else if (n > 0) {
        run_text(wm, items, n, &params, &out);
    }
    double busy = emu2_worker_seconds_since(t0);
    if (emu2_worker_stop)
        return taken; /* no answers: the segments detach as the worker exits, backends see it */

    SpinLockAcquire(&sh->mutex);
    sh->requests_served += out.ok;
    sh->requests_failed += out.failed;
    sh->requests_cancelled += out.cancelled;
    if (n > 0 && wm->model) {
        sh->batches++;
        sh->batch_hist[Min(n, EMU2_PG_MAX_BATCH)]++;
        sh->tokens += out.tokens;
        sh->busy_seconds += busy;
        sh->last_batch_size = (uint32)n;
    }
    SpinLockRelease(&sh->mutex);
    for (int i = 0; i < n; i++) {
        emu2_worker_send_reply(&items[i]);
        emu2_worker_detach(&items[i]);
    }
    return taken;
}
