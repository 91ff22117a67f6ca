/* search_greedy.c: greedy search and multinomial sampling (num_beams = 1), as HF 4.31's
 * greedy_search / sample: processors (repetition on raw logits, min length) then, when sampling,
 * temperature, top-k, top-p and a draw. A row stops at EOS; later steps feed it pad_id. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "generate/logits.h"
#include "generate/search_internal.h"
#include "generate/search_topk.h"

typedef struct greedy_state {
    float *logits;          /* [batch, vocab] of the last step */
    float *work;            /* [vocab] one row being processed */
    float *topk_scratch;    /* [vocab] */
    emu2_scored_id *sorted; /* [vocab] top-p */
    unsigned char *mark;    /* [vocab] repetition penalty */
    int32_t *chosen;        /* [batch] */
    int32_t **seq;          /* [batch] growable: BOS + generated ids (EOS never stored) */
    size_t *seq_len, *seq_cap;
    unsigned char *running; /* [batch] 1 until EOS */
    /* step_topk (search_topk.h): the k candidates per row of the last step when k > 0 */
    size_t k, k_max;
    float *cand_v;          /* [batch, k_max] */
    int32_t *cand_i;        /* [batch, k_max] */
    int full_ready;         /* logits holds the last step's full rows too (fetched once per step) */
    size_t fallbacks;       /* steps that needed them */
    emu2_topk_scratch tk;   /* [tk_cap] each */
    size_t tk_cap;
} greedy_state;

static void state_free(greedy_state *s, size_t batch)
{
    if (s->seq)
        for (size_t b = 0; b < batch; b++)
            free(s->seq[b]);
    free(s->seq);
    free(s->seq_len);
    free(s->seq_cap);
    free(s->logits);
    free(s->work);
    free(s->topk_scratch);
    free(s->sorted);
    free(s->mark);
    free(s->chosen);
    free(s->running);
    free(s->cand_v);
    free(s->cand_i);
    free(s->tk.row);
    free(s->tk.topk);
    free(s->tk.ids);
    free(s->tk.sorted);
}

static emu2_status topk_scratch_reserve(greedy_state *s, size_t k, emu2_error *err);

static emu2_status state_init(greedy_state *s, const emu2_search_ctx *c, size_t batch, emu2_error *err)
{
    size_t vocab = (size_t)c->lm->vocab, rows_vocab;
    memset(s, 0, sizeof *s);
    if (!emu2_mul_size(batch, vocab, &rows_vocab))
        return emu2_fail(err, EMU2_ERR_LIMIT, "generation: batch %zu x vocab %zu is too large", batch, vocab);
    if (!(s->logits = emu2_search_alloc(rows_vocab, sizeof(float), "logits", err)) ||
        !(s->work = emu2_search_alloc(vocab, sizeof(float), "logits row", err)) ||
        !(s->topk_scratch = emu2_search_alloc(vocab, sizeof(float), "top-k scratch", err)) ||
        !(s->sorted = emu2_search_alloc(vocab, sizeof(emu2_scored_id), "top-p scratch", err)) ||
        !(s->chosen = emu2_search_alloc(batch, sizeof(int32_t), "tokens", err)))
        return err ? err->status : EMU2_ERR_NOMEM;
    s->mark = calloc(vocab, 1);
    s->seq = calloc(batch, sizeof *s->seq);
    s->seq_len = calloc(batch, sizeof *s->seq_len);
    s->seq_cap = calloc(batch, sizeof *s->seq_cap);
    s->running = calloc(batch, 1);
    if (!s->mark || !s->seq || !s->seq_len || !s->seq_cap || !s->running)
        return emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for %zu sequences", batch);
    for (size_t b = 0; b < batch; b++) {
        emu2_status st = emu2_ids_push(&s->seq[b], &s->seq_len[b], &s->seq_cap[b], c->ids.bos, err);
        if (st != EMU2_OK)
            return st;
        s->running[b] = 1;
    }
    s->k_max = emu2_topk_greedy_k(c->lm, c->opts, 0); /* the min-length ban only lowers it */
    if (s->k_max &&
        (!(s->cand_v = emu2_search_alloc(batch, s->k_max * sizeof(float), "top-k candidates", err)) ||
         !(s->cand_i = emu2_search_alloc(batch, s->k_max * sizeof(int32_t), "top-k candidates", err))))
        return err ? err->status : EMU2_ERR_NOMEM;
    return topk_scratch_reserve(s, s->k_max, err);
}

/* Makes the sampling scratch of the top-k path hold k entries. */
static emu2_status topk_scratch_reserve(greedy_state *s, size_t k, emu2_error *err)
{
    if (k <= s->tk_cap)
        return EMU2_OK;
    free(s->tk.row);
    free(s->tk.topk);
    free(s->tk.ids);
    free(s->tk.sorted);
    memset(&s->tk, 0, sizeof s->tk);
    s->tk_cap = 0;
    if (!(s->tk.row = emu2_search_alloc(k, sizeof(float), "top-k scratch", err)) ||
        !(s->tk.topk = emu2_search_alloc(k, sizeof(float), "top-k scratch", err)) ||
        !(s->tk.ids = emu2_search_alloc(k, sizeof(int32_t), "top-k scratch", err)) ||
        !(s->tk.sorted = emu2_search_alloc(k, sizeof(emu2_scored_id), "top-k scratch", err)))
        return err ? err->status : EMU2_ERR_NOMEM;
    s->tk_cap = k;
    return EMU2_OK;
}

/* Picks the next id of row b from s->logits (HF: processors, then warpers when sampling). */
static emu2_status choose(const emu2_search_ctx *c, greedy_state *s, size_t b, size_t step, emu2_rng *rng,
                          emu2_error *err)
{
    const emu2_gen_options *o = c->opts;
    int32_t vocab = c->lm->vocab;
    if (s->k) { /* the last step handed over candidates only */
        if (emu2_topk_greedy_choose(o, s->cand_v + b * s->k, s->cand_i + b * s->k, s->k, rng, &s->tk, &s->chosen[b]))
            return EMU2_OK;
        emu2_status st = emu2_topk_full_rows(c->lm, s->logits, &s->full_ready, &s->fallbacks, err);
        if (st != EMU2_OK)
            return st;
    }
    const float *row = s->logits + b * (size_t)vocab;
    emu2_status st = emu2_logits_check(row, vocab, b, step, err);
    if (st != EMU2_OK)
        return st;
    memcpy(s->work, row, (size_t)vocab * sizeof *row);
    emu2_logits_scratch scratch = {s->topk_scratch, s->sorted, s->mark};
    /* seq_len = 1 (BOS) + generated = HF cur_len */
    emu2_logits_process(s->work, vocab, o, s->seq[b], s->seq_len[b], c->ids.eos, &scratch);
    if (!o->do_sample) {
        s->chosen[b] = emu2_argmax(s->work, vocab);
        return EMU2_OK;
    }
    emu2_logits_warp(s->work, vocab, o, 1, &scratch);
    s->chosen[b] = emu2_sample(s->work, vocab, rng);
    return EMU2_OK;
}

/* One decoder step: candidates only (step_topk) when they decide every running row's next choice
 * exactly as the full rows would (search_topk.h), else the full logits. */
static emu2_status greedy_step(const emu2_search_ctx *c, greedy_state *s, size_t batch, emu2_search_result *out,
                               emu2_error *err)
{
    int min_length_applies = 0; /* EOS banned at the next choice: seq_len = HF cur_len then */
    for (size_t b = 0; b < batch; b++)
        min_length_applies |= s->running[b] && s->seq_len[b] < (size_t)c->opts->min_length;
    s->k = s->k_max ? emu2_topk_greedy_k(c->lm, c->opts, min_length_applies) : 0;
    s->full_ready = 0;
    out->decoder_steps++;
    if (!s->k)
        return c->lm->step(c->lm->user, s->chosen, batch, s->logits, err);
    out->topk_steps++;
    return c->lm->step_topk(c->lm->user, s->chosen, batch, s->k, 0, s->cand_v, s->cand_i, err);
}

/* Moves the generated ids (after the BOS) into the result. */
static void export_items(greedy_state *s, size_t batch, emu2_search_result *out)
{
    for (size_t b = 0; b < batch; b++) {
        emu2_search_item *it = &out->items[b];
        it->n_ids = s->seq_len[b] - 1;
        memmove(s->seq[b], s->seq[b] + 1, it->n_ids * sizeof(int32_t));
        it->ids = s->seq[b];
        s->seq[b] = NULL;
    }
}

emu2_status emu2_search_greedy(const emu2_search_ctx *c, const float *prefill_logits, size_t batch,
                               emu2_search_result *out, emu2_error *err)
{
    const emu2_gen_options *o = c->opts;
    size_t vocab = (size_t)c->lm->vocab;
    greedy_state s;
    emu2_status st = state_init(&s, c, batch, err);
    if (st == EMU2_OK && !(out->items = calloc(batch, sizeof *out->items)))
        st = emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for %zu results", batch);
    if (st != EMU2_OK) {
        state_free(&s, batch);
        return st;
    }
    out->batch = batch;
    memcpy(s.logits, prefill_logits, batch * vocab * sizeof(float));
    emu2_rng rng;
    emu2_rng_seed(&rng, o->seed);
    size_t running = batch;
    for (size_t step = 0;; step++) {
        for (size_t b = 0; b < batch && st == EMU2_OK; b++) {
            s.chosen[b] = c->ids.pad;
            if (s.running[b] && emu2_search_item_cancelled(c, b)) {
                s.running[b] = 0;
                s.seq_len[b] = 1; /* a dropped item keeps nothing */
                out->items[b].stopped = out->items[b].cancelled = 1;
                running--;
            }
        }
        if (running == 0)
            break;
        for (size_t b = 0; b < batch && st == EMU2_OK; b++)
            if (s.running[b])
                st = choose(c, &s, b, step, &rng, err);
        for (size_t b = 0; b < batch && st == EMU2_OK && !out->stopped; b++) {
            if (!s.running[b])
                continue;
            int32_t id = s.chosen[b];
            if (id == c->ids.eos) {
                s.running[b] = 0;
                out->items[b].ended_by_eos = 1;
                running--;
                continue;
            }
            st = emu2_ids_push(&s.seq[b], &s.seq_len[b], &s.seq_cap[b], id, err);
            int stop = 0;
            if (st == EMU2_OK)
                st = emu2_search_emit(c, b, id, &stop, err);
            if (stop == EMU2_SEARCH_STOP_ITEM) {
                s.running[b] = 0;
                out->items[b].stopped = 1;
                running--;
            } else if (stop) {
                out->stopped = 1;
            }
        }
        if (st != EMU2_OK || out->stopped || running == 0 || step + 1 >= (size_t)o->max_new_tokens)
            break;
        st = greedy_step(c, &s, batch, out, err);
    }
    out->topk_fallbacks = s.fallbacks;
    if (st == EMU2_OK)
        export_items(&s, batch, out);
    state_free(&s, batch);
    return st;
}

/* ---------------------------------------------------------------- one request at a time */

struct emu2_greedy_item {
    greedy_state s;
    emu2_rng rng;
    size_t step, topk_steps;
    emu2_search_item result; /* ended_by_eos, stopped */
};

emu2_status emu2_greedy_item_create(const emu2_search_ctx *c, emu2_greedy_item **out, emu2_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for a search");
    emu2_status st = state_init(&(*out)->s, c, 1, err);
    if (st != EMU2_OK) {
        emu2_greedy_item_free(*out);
        *out = NULL;
        return st;
    }
    emu2_rng_seed(&(*out)->rng, c->opts->seed);
    return EMU2_OK;
}

static emu2_status item_chosen(const emu2_search_ctx *c, emu2_greedy_item *g, int32_t *token, int *live,
                               emu2_error *err);

/* The body of emu2_search_greedy's loop for one item (batch 1): same choice, same streaming. */
emu2_status emu2_greedy_item_next(const emu2_search_ctx *c, emu2_greedy_item *g, const float *logits, int32_t *token,
                                  int *live, emu2_error *err)
{
    greedy_state *s = &g->s;
    *live = 0;
    memcpy(s->logits, logits, (size_t)c->lm->vocab * sizeof(float));
    emu2_status st = choose(c, s, 0, g->step, &g->rng, err);
    return st != EMU2_OK ? st : item_chosen(c, g, token, live, err);
}

size_t emu2_greedy_item_topk(const emu2_search_ctx *c, const emu2_greedy_item *g, size_t topk_max)
{
    return emu2_topk_greedy_k_for(c->opts, topk_max, c->lm->vocab, g->s.seq_len[0] < (size_t)c->opts->min_length);
}

emu2_status emu2_greedy_item_next_topk(const emu2_search_ctx *c, emu2_greedy_item *g, const float *values,
                                       const int32_t *ids, size_t k, int32_t *token, int *live, int *decided,
                                       emu2_error *err)
{
    greedy_state *s = &g->s;
    *live = *decided = 0;
    emu2_status st = topk_scratch_reserve(s, k, err);
    if (st != EMU2_OK || !emu2_topk_greedy_choose(c->opts, values, ids, k, &g->rng, &s->tk, &s->chosen[0]))
        return st; /* undecided: the random stream is untouched, the full row decides */
    *decided = 1;
    g->topk_steps++;
    return item_chosen(c, g, token, live, err);
}

/* The rest of a step once s->chosen[0] is known: EOS, the sequence, streaming, the length limit. */
static emu2_status item_chosen(const emu2_search_ctx *c, emu2_greedy_item *g, int32_t *token, int *live,
                               emu2_error *err)
{
    greedy_state *s = &g->s;
    emu2_status st;
    int32_t id = *token = s->chosen[0];
    if (id == c->ids.eos) {
        g->result.ended_by_eos = 1;
        return EMU2_OK;
    }
    int stop = 0;
    st = emu2_ids_push(&s->seq[0], &s->seq_len[0], &s->seq_cap[0], id, err);
    if (st == EMU2_OK)
        st = emu2_search_emit(c, 0, id, &stop, err);
    if (st != EMU2_OK)
        return st;
    if (stop) {
        g->result.stopped = 1;
        return EMU2_OK;
    }
    *live = ++g->step < (size_t)c->opts->max_new_tokens;
    return EMU2_OK;
}

emu2_status emu2_greedy_item_finish(emu2_greedy_item *g, emu2_search_result *out, emu2_error *err)
{
    (void)err;
    out->items[0].ended_by_eos = g->result.ended_by_eos;
    out->items[0].stopped = g->result.stopped;
    out->topk_steps = g->topk_steps;
    export_items(&g->s, 1, out);
    return EMU2_OK;
}

void emu2_greedy_item_free(emu2_greedy_item *g)
{
    if (!g)
        return;
    state_free(&g->s, 1);
    free(g);
}
