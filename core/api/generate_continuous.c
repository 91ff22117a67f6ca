/* generate_continuous.c: emu2_batcher, continuous batching (emu2.h).
 *
 * emu2_batcher_add only prepares a request (template, tokens, decoded images). At the next step the
 * requests added since are started, those with the same prompt length together: one vision-tower
 * call and one unpadded prefill in the prefill session (`pre`), so each row is what a request alone
 * computes; its search (core/generate/search_item.h) picks the first tokens, and its row is copied
 * num_beams times into the running session (`run`, decoder_join.h). Each step then feeds every
 * running request's tokens in one decoder pass and hands each request the logits of its own rows.
 * Requests own consecutive rows in the order they joined; a beam reorder, a request that ended or
 * was cancelled only change the parents that the next step gathers (`settle`, one gather per step at
 * most, which also drops the front columns no row uses any more). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/generate_internal.h"
#include "api/model_internal.h"
#include "common/checked.h"
#include "common/error.h"
#include "generate/search_item.h"
#include "generate/text_stream.h"
#include "model/decoder_join.h"
#include "model/decoder_stepper.h"
#include "model/pipeline.h"

#define MAX_REQUESTS 1024
/* Masked columns at the front of all rows worth one gather of the cache to drop. */
#define COMPACT_AT 32

typedef struct slot {
    size_t tag;
    struct emu2_batcher *b;
    emu2_item_search *search;
    emu2_text_stream ts;
    size_t base;    /* its first row in `run` now */
    int32_t *tokens; /* [beams] fed at the next step */
    int32_t *src;    /* [beams] parent rows (relative to base) the next step continues */
} slot;

typedef struct pending {
    size_t tag;
    int32_t *ids; /* its prompt, templated and tokenized */
    size_t n_ids;
    float *pixels; /* its images, preprocessed */
    size_t n_images;
} pending;

typedef struct finished {
    size_t tag;
    emu2_result result;
} finished;

struct emu2_batcher {
    emu2_model *m;
    emu2_gen_options opts;
    emu2_batch_hooks hooks;
    emu2_search_ids ids;
    size_t max_requests, max_positions, beams;
    emu2_decoder_session *run, *pre;
    slot **slots; /* running, in row order */
    size_t n_slots;
    int32_t *tokens, *src; /* [max_requests * beams] */
    float *logits;         /* [max_requests * beams * vocab] */
    pending *pend; /* [max_requests] added, prefilled at the next step */
    size_t n_pend;
    size_t *group; /* [max_requests] scratch: pending requests of one prompt length */
    finished *done;
    size_t n_done, done_head, done_cap;
};

static void pending_free(pending *q)
{
    free(q->ids);
    free(q->pixels);
    memset(q, 0, sizeof *q);
}

/* ---------------------------------------------------------------- finished requests */

static emu2_status push_done(emu2_batcher *b, size_t tag, const emu2_result *r)
{
    if (b->done_head > 0 && b->done_head == b->n_done) /* all taken: start over */
        b->done_head = b->n_done = 0;
    if (b->n_done == b->done_cap) {
        size_t cap = b->done_cap ? 2 * b->done_cap : 16;
        finished *p = realloc(b->done, cap * sizeof *p);
        if (!p)
            return EMU2_ERR_NOMEM;
        b->done = p;
        b->done_cap = cap;
    }
    b->done[b->n_done].tag = tag;
    b->done[b->n_done].result = *r;
    b->n_done++;
    return EMU2_OK;
}

static void finish_failed(emu2_batcher *b, size_t tag, const emu2_error *e)
{
    emu2_result r;
    memset(&r, 0, sizeof r);
    emu2_api_result_fail(&r, e);
    (void)push_done(b, tag, &r); /* out of memory for the queue: the answer is lost, the caller times out */
}

static void finish_cancelled(emu2_batcher *b, size_t tag)
{
    emu2_result r;
    memset(&r, 0, sizeof r);
    r.status = EMU2_ERR_CANCELLED;
    r.stopped = 1;
    snprintf(r.message, sizeof r.message, "cancelled");
    (void)push_done(b, tag, &r);
}

/* ---------------------------------------------------------------- slots */

static void slot_free(slot *s)
{
    if (!s)
        return;
    emu2_item_search_free(s->search);
    emu2_text_stream_free(&s->ts);
    free(s->tokens);
    free(s->src);
    free(s);
}

static int slot_piece(void *user, int32_t id, const char *piece)
{
    slot *s = user;
    return s->b->hooks.on_token(s->b->hooks.user, s->tag, id, piece);
}

/* emu2_search_token_fn of a slot's search: its text stream; a "stop" ends this request only. */
static emu2_status slot_token(void *user, size_t item, int32_t id, int *stop, emu2_error *err)
{
    slot *s = user;
    emu2_status st = emu2_text_stream_token(&s->ts, item, id, stop, err);
    if (*stop)
        *stop = EMU2_SEARCH_STOP_ITEM;
    return st;
}

/* The slot's search is over: its result goes to the finished queue, the slot is freed. */
static void slot_finish(emu2_batcher *b, slot *s, int cancelled)
{
    if (cancelled) {
        finish_cancelled(b, s->tag);
        slot_free(s);
        return;
    }
    emu2_result r;
    memset(&r, 0, sizeof r);
    emu2_error e;
    emu2_error_clear(&e);
    emu2_search_result res = {0};
    emu2_status st = emu2_item_search_finish(s->search, &res, &e);
    if (st == EMU2_OK) {
        const emu2_search_item *si = &res.items[0];
        if (b->hooks.on_token && !si->stopped)
            st = emu2_text_stream_finish(&s->ts, &e);
        if (st == EMU2_OK)
            st = emu2_tokenizer_decode(b->m->tok, si->ids, si->n_ids, 1, &r.text, &e);
        r.status = st;
        r.n_tokens = si->n_ids;
        r.stopped = si->stopped;
    }
    if (st != EMU2_OK) {
        emu2_free(r.text);
        memset(&r, 0, sizeof r);
        emu2_api_result_fail(&r, &e);
    }
    emu2_search_result_free(&res);
    if (push_done(b, s->tag, &r) != EMU2_OK)
        emu2_free(r.text);
    slot_free(s);
}

/* Drops slot i from the running list (its rows stay in `run` until the next settle). */
static void slot_remove(emu2_batcher *b, size_t i, int cancelled)
{
    slot *s = b->slots[i];
    memmove(b->slots + i, b->slots + i + 1, (b->n_slots - i - 1) * sizeof *b->slots);
    b->n_slots--;
    slot_finish(b, s, cancelled);
}

/* Rebuilds `run` so that slot k owns rows [k*beams, (k+1)*beams), row j continuing the parent
 * src[j] that its search chose; drops the rows of slots that left; compacts unused columns. */
static emu2_status settle(emu2_batcher *b, emu2_error *err)
{
    size_t n = 0;
    int moved = emu2_decoder_rows(b->run) != b->n_slots * b->beams;
    for (size_t k = 0; k < b->n_slots; k++) {
        slot *s = b->slots[k];
        for (size_t j = 0; j < b->beams; j++, n++) {
            b->src[n] = (int32_t)(s->base + (size_t)s->src[j]);
            moved |= b->src[n] != (int32_t)n;
        }
    }
    emu2_status st = EMU2_OK;
    if (n == 0)
        emu2_decoder_clear(b->run);
    else if (moved)
        st = emu2_decoder_gather(b->run, n, b->src, err);
    for (size_t k = 0; k < b->n_slots && st == EMU2_OK; k++) {
        slot *s = b->slots[k];
        s->base = k * b->beams;
        for (size_t j = 0; j < b->beams; j++)
            s->src[j] = (int32_t)j;
    }
    if (st == EMU2_OK && n > 0 &&
        (emu2_decoder_room(b->run) == 0 || emu2_decoder_unused_front(b->run) >= COMPACT_AT))
        st = emu2_decoder_compact(b->run, err);
    return st;
}

/* A failure of the running decode: every running request ends with it. */
static emu2_status fail_all(emu2_batcher *b, const emu2_error *e)
{
    while (b->n_slots > 0) {
        slot *s = b->slots[--b->n_slots];
        finish_failed(b, s->tag, e);
        slot_free(s);
    }
    emu2_decoder_clear(b->run);
    return emu2_model_fail(b->m, e);
}

/* ---------------------------------------------------------------- API */

void emu2_batcher_free(emu2_batcher *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n_slots; i++)
        slot_free(b->slots[i]);
    for (size_t i = 0; b->pend && i < b->n_pend; i++)
        pending_free(&b->pend[i]);
    for (size_t i = b->done_head; i < b->n_done; i++)
        emu2_free(b->done[i].result.text);
    emu2_decoder_session_free(b->run);
    emu2_decoder_session_free(b->pre);
    free(b->slots);
    free(b->tokens);
    free(b->src);
    free(b->logits);
    free(b->pend);
    free(b->group);
    free(b->done);
    free(b);
}

static emu2_status batcher_init(emu2_batcher *b, emu2_error *err)
{
    const emu2_model *m = b->m;
    size_t rows, positions = b->max_positions, logits_n;
    if (!emu2_mul_size(b->max_requests, b->beams, &rows) || rows > INT32_MAX ||
        !emu2_mul_size(rows, (size_t)m->cfg.vocab_size, &logits_n))
        return emu2_fail(err, EMU2_ERR_LIMIT, "%zu requests x %zu beams is too large", b->max_requests, b->beams);
    /* one position of slack: a step never has to wait for a compaction to make room */
    emu2_decoder_limits run_lim = {rows, positions + 1, 0}, pre_lim = {b->max_requests, positions, 0};
    b->slots = calloc(b->max_requests, sizeof *b->slots);
    b->pend = calloc(b->max_requests, sizeof *b->pend);
    b->group = calloc(b->max_requests, sizeof *b->group);
    b->tokens = calloc(rows, sizeof *b->tokens);
    b->src = calloc(rows, sizeof *b->src);
    b->logits = calloc(logits_n, sizeof *b->logits);
    if (!b->slots || !b->pend || !b->group || !b->tokens || !b->src || !b->logits)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for a batcher of %zu requests", b->max_requests);
    emu2_status st = emu2_decoder_session_create(m->be, &m->w->decoder, &m->cfg, &run_lim, &b->run, err);
    if (st == EMU2_OK)
        st = emu2_decoder_session_create(m->be, &m->w->decoder, &m->cfg, &pre_lim, &b->pre, err);
    return st;
}

emu2_status emu2_batcher_create(emu2_model *m, const emu2_gen_options *opts, size_t max_requests,
                                size_t max_positions, const emu2_batch_hooks *hooks, emu2_batcher **out)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    emu2_error e;
    emu2_error_clear(&e);
    if (!out)
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT, "emu2_batcher_create: NULL argument"});
    *out = NULL;
    emu2_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_NOMEM, "out of memory for a batcher"});
    b->m = m;
    emu2_batch_hooks_init(&b->hooks);
    emu2_status st = EMU2_OK;
    if (hooks) {
        if (hooks->struct_size < offsetof(emu2_batch_hooks, user) + sizeof(void *) ||
            hooks->struct_size > sizeof b->hooks)
            st = emu2_fail(&e, EMU2_ERR_INVALID_ARGUMENT,
                           "emu2_batch_hooks.struct_size is %zu: call emu2_batch_hooks_init first", hooks->struct_size);
        else
            memcpy(&b->hooks, hooks, hooks->struct_size);
    }
    if (st == EMU2_OK)
        st = emu2_read_gen_options(opts, &b->opts, &e);
    b->ids = (emu2_search_ids){m->cfg.bos_token_id, m->cfg.eos_token_id, m->cfg.pad_token_id};
    if (st == EMU2_OK)
        st = emu2_search_check(&b->opts, b->ids, m->cfg.vocab_size, &e);
    if (st == EMU2_OK && !m->w)
        st = emu2_fail(&e, EMU2_ERR_INVALID_ARGUMENT, "the model was loaded without weights (EMU2_LOAD_NO_WEIGHTS)");
    if (st == EMU2_OK && (max_requests < 1 || max_requests > MAX_REQUESTS))
        st = emu2_fail(&e, EMU2_ERR_INVALID_ARGUMENT, "max_requests %zu is out of range 1..%d", max_requests,
                       MAX_REQUESTS);
    size_t context = m->cfg.max_position_embeddings > 0 ? (size_t)m->cfg.max_position_embeddings : 4096;
    b->max_positions = max_positions ? max_positions : context;
    if (st == EMU2_OK && (b->max_positions > INT32_MAX - 1 || b->max_positions <= (size_t)b->opts.max_new_tokens))
        st = emu2_fail(&e, EMU2_ERR_INVALID_ARGUMENT, "max_positions %zu leaves no room for a prompt of %d new tokens",
                       b->max_positions, b->opts.max_new_tokens);
    b->max_requests = max_requests;
    b->beams = (size_t)b->opts.num_beams;
    if (st == EMU2_OK)
        st = batcher_init(b, &e);
    if (st != EMU2_OK) {
        emu2_batcher_free(b);
        return emu2_model_fail(m, &e);
    }
    *out = b;
    m->last_error[0] = '\0';
    return EMU2_OK;
}

size_t emu2_batcher_running(const emu2_batcher *b)
{
    return b ? b->n_slots + b->n_pend : 0;
}

int emu2_batcher_take(emu2_batcher *b, size_t *tag, emu2_result *result)
{
    if (!b || b->done_head == b->n_done || !tag || !result)
        return 0;
    *tag = b->done[b->done_head].tag;
    *result = b->done[b->done_head].result;
    b->done_head++;
    return 1;
}

/* Vision tower + prefill of k prepared prompts of the same length T in `pre` (no padding, so each
 * row is what it is alone); logits: [k, vocab]. */
static emu2_status prefill_group(emu2_batcher *b, const size_t *group, size_t k, size_t T, float *logits,
                                 emu2_error *err)
{
    emu2_model *m = b->m;
    const size_t per = 3 * (size_t)m->cfg.vision.image_size * (size_t)m->cfg.vision.image_size;
    size_t n_img = 0;
    for (size_t r = 0; r < k; r++)
        n_img += b->pend[group[r]].n_images;
    int32_t *ids = malloc(k * T * sizeof *ids);
    float *px = n_img ? malloc(n_img * per * sizeof *px) : NULL;
    float *embeds = ids && (px || !n_img) ? m->be->ops->alloc(m->be, k * T * (size_t)m->cfg.hidden_size, err) : NULL;
    emu2_status st = embeds ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for %zu prompts", k);
    for (size_t r = 0, img = 0; st == EMU2_OK && r < k; r++) {
        const pending *q = &b->pend[group[r]];
        memcpy(ids + r * T, q->ids, T * sizeof *ids);
        if (q->n_images)
            memcpy(px + img * per, q->pixels, q->n_images * per * sizeof *px);
        img += q->n_images;
    }
    emu2_prompt_batch p = {.ids = ids, .rows = k, .T = T, .image_token_id = m->image_token_id, .pixels = px,
                           .n_images = n_img};
    if (st == EMU2_OK)
        st = emu2_prompt_embeds(m->be, m->w, &m->cfg, &p, embeds, err);
    if (st == EMU2_OK)
        st = emu2_decoder_prefill(b->pre, k, T, embeds, NULL, logits, NULL, err);
    if (embeds)
        m->be->ops->free(m->be, embeds);
    free(ids);
    free(px);
    return st;
}

/* Row `row` of the prefill session becomes a running request: first choice, join. Failures are the
 * request's, except when the running decode failed too (*decode_failed: every running request has
 * ended). */
static emu2_status start_request(emu2_batcher *b, size_t tag, size_t row, const float *logits, int *decode_failed,
                                 emu2_error *err)
{
    slot *s = calloc(1, sizeof *s);
    if (!s)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for a request");
    s->tag = tag;
    s->b = b;
    emu2_text_stream_init(&s->ts, emu2_api_decode_for_stream, b->m->tok, b->hooks.on_token ? slot_piece : NULL, s);
    emu2_search_hooks sh = {slot_token, s, NULL, NULL};
    s->tokens = calloc(b->beams, sizeof *s->tokens);
    s->src = calloc(b->beams, sizeof *s->src);
    emu2_status st = s->tokens && s->src ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for a request");
    if (st == EMU2_OK)
        st = emu2_item_search_create(&b->opts, b->ids, b->m->cfg.vocab_size, &sh, &s->search, err);
    int live = 0;
    if (st == EMU2_OK)
        st = emu2_item_search_next(s->search, logits, s->tokens, s->src, &live, err);
    if (st == EMU2_OK && !live) { /* done at its first token (EOS, max_new_tokens 1, a stop) */
        slot_finish(b, s, 0);
        return EMU2_OK;
    }
    /* the pending parents of the others are applied before the new rows are appended */
    if (st == EMU2_OK && (st = settle(b, err)) != EMU2_OK) {
        slot_free(s);
        *decode_failed = 1;
        return st;
    }
    if (st == EMU2_OK)
        st = emu2_decoder_join(b->run, b->pre, row, b->beams, err);
    if (st != EMU2_OK) {
        slot_free(s);
        return st;
    }
    for (size_t j = 0; j < b->beams; j++)
        s->src[j] = (int32_t)j; /* the join made the copies */
    s->base = b->n_slots * b->beams;
    b->slots[b->n_slots++] = s;
    return EMU2_OK;
}

/* Prefills the added requests, those of one prompt length together, and makes them join. A failed
 * prefill fails its group; a failed settle fails the running decode (the error is returned). */
static emu2_status flush_pending(emu2_batcher *b, emu2_error *err)
{
    const size_t V = (size_t)b->m->cfg.vocab_size;
    while (b->n_pend > 0) {
        size_t T = b->pend[0].n_ids, k = 0, kept = 0;
        for (size_t i = 0; i < b->n_pend; i++)
            if (b->pend[i].n_ids == T)
                b->group[k++] = i;
        emu2_error e;
        emu2_error_clear(&e);
        int decode_failed = 0;
        emu2_status st = prefill_group(b, b->group, k, T, b->logits, &e);
        for (size_t r = 0; r < k; r++) {
            emu2_status one = st;
            if (one == EMU2_OK && !decode_failed)
                one = start_request(b, b->pend[b->group[r]].tag, r, b->logits + r * V, &decode_failed, &e);
            if (one != EMU2_OK || decode_failed)
                finish_failed(b, b->pend[b->group[r]].tag, &e);
            if (one != EMU2_OK)
                emu2_error_clear(&e);
        }
        for (size_t i = 0; i < b->n_pend; i++) {
            if (b->pend[i].n_ids == T)
                pending_free(&b->pend[i]);
            else
                b->pend[kept++] = b->pend[i];
        }
        b->n_pend = kept;
        if (decode_failed) {
            *err = e;
            return err->status != EMU2_OK ? err->status : EMU2_ERR_INTERNAL;
        }
    }
    return EMU2_OK;
}

emu2_status emu2_batcher_add(emu2_batcher *b, const emu2_request *rq, size_t tag)
{
    if (!b)
        return EMU2_ERR_INVALID_ARGUMENT;
    if (!rq)
        return emu2_model_fail(b->m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT, "emu2_batcher_add: NULL request"});
    if (b->n_slots + b->n_pend == b->max_requests)
        return emu2_model_fail(b->m, &(emu2_error){EMU2_ERR_LIMIT, "the batcher is full"});
    emu2_error e;
    emu2_error_clear(&e);
    pending *q = &b->pend[b->n_pend];
    q->tag = tag;
    q->n_images = rq->n_images;
    emu2_status st = emu2_api_prepare_request(b->m, rq, &q->ids, &q->n_ids, &q->pixels, &e);
    if (st == EMU2_OK && q->n_ids + (size_t)b->opts.max_new_tokens > b->max_positions)
        st = emu2_fail(&e, EMU2_ERR_LIMIT,
                       "the prompt (%zu tokens) + max_new_tokens (%d) exceed the batcher's %zu positions", q->n_ids,
                       b->opts.max_new_tokens, b->max_positions);
    if (st != EMU2_OK) {
        finish_failed(b, tag, &e);
        pending_free(q);
    } else {
        b->n_pend++; /* prefilled and joined at the next step, with the others added by then */
    }
    b->m->last_error[0] = '\0';
    return EMU2_OK;
}

emu2_status emu2_batcher_step(emu2_batcher *b)
{
    if (!b)
        return EMU2_ERR_INVALID_ARGUMENT;
    emu2_error e;
    emu2_error_clear(&e);
    for (size_t k = b->n_slots; k-- > 0;)
        if (b->hooks.cancelled && b->hooks.cancelled(b->hooks.user, b->slots[k]->tag))
            slot_remove(b, k, 1);
    size_t kept = 0;
    for (size_t i = 0; i < b->n_pend; i++) {
        if (b->hooks.cancelled && b->hooks.cancelled(b->hooks.user, b->pend[i].tag)) {
            finish_cancelled(b, b->pend[i].tag);
            pending_free(&b->pend[i]);
        } else {
            b->pend[kept++] = b->pend[i];
        }
    }
    b->n_pend = kept;
    emu2_status st = flush_pending(b, &e);
    if (st != EMU2_OK)
        return fail_all(b, &e);
    st = settle(b, &e);
    if (st != EMU2_OK)
        return fail_all(b, &e);
    if (b->n_slots == 0)
        return EMU2_OK;
    for (size_t k = 0; k < b->n_slots; k++)
        memcpy(b->tokens + k * b->beams, b->slots[k]->tokens, b->beams * sizeof *b->tokens);
    st = emu2_decoder_step_resident(b->run, b->tokens, &e); /* logits stay on the backend (top-k) */
    if (st != EMU2_OK)
        return fail_all(b, &e);
    const size_t V = (size_t)b->m->cfg.vocab_size;
    for (size_t k = 0; k < b->n_slots;) {
        slot *s = b->slots[k];
        int live = 0;
        st = emu2_decoder_item_next(b->run, s->base, s->search, b->logits + s->base * V, s->tokens, s->src, &live,
                                    &e);
        if (st != EMU2_OK) { /* this request's search failed (a callback, NaN logits): it alone */
            memmove(b->slots + k, b->slots + k + 1, (b->n_slots - k - 1) * sizeof *b->slots);
            b->n_slots--;
            finish_failed(b, s->tag, &e);
            slot_free(s);
            emu2_error_clear(&e);
            continue;
        }
        if (!live) {
            slot_remove(b, k, 0);
            continue;
        }
        k++;
    }
    return EMU2_OK;
}
