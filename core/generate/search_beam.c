/* search_beam.c: beam search as HF 4.31's beam_search + BeamSearchScorer (early_stopping=False),
 * for generate(inputs_embeds=...): every length counts the BOS HF prepends (generate.h).
 * With do_sample it is HF's beam_sample: all beams start at 0, the warpers (temperature, top-k and
 * top-p keeping at least 2) act on processed log-probs + beam score, 2*num_beams candidates are
 * drawn without replacement from the softmax over (beam x vocab), and the warped scores become the
 * running beam scores. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "generate/beam_candidates.h"
#include "generate/beam_hyps.h"
#include "generate/logits.h"
#include "generate/search_internal.h"
#include "generate/search_topk.h"

typedef struct beam_state {
    size_t batch, nb, rows, vocab;
    float *logits, *cand;                   /* [rows, vocab] */
    float *beam_scores, *next_scores;       /* [rows] running sums of processed log-probs (fp32) */
    int32_t *next_tokens, *src, *src_first; /* [rows] */
    int32_t *seq, *seq_tmp;                 /* [rows, cap]: BOS + generated, all rows of length len */
    size_t cap, len;
    emu2_beam_candidate *top;               /* [2 * nb] */
    double *weights;                        /* [nb * vocab] beam_sample draw */
    float *topk_scratch;                    /* [vocab] */
    emu2_scored_id *sorted;                 /* [vocab] */
    emu2_rng rng;
    unsigned char *mark;                    /* [vocab] */
    unsigned char *done, *was_done;         /* [batch] */
    emu2_beam_hyps *hyps;                   /* [batch] */
    /* step_topk (search_topk.h): the k log-prob candidates per row of the last step when k > 0 */
    size_t k, k_max;
    float *cand_v;                          /* [rows, k_max] */
    int32_t *cand_i;                        /* [rows, k_max] */
    const float *k_values;                  /* the candidates item_candidates reads: cand_v, or a */
    const int32_t *k_ids;                   /* caller's (emu2_beam_item_next_topk) */
    emu2_beam_candidate *list;              /* [list_cap] */
    size_t list_cap;
    int full_ready;                         /* logits holds the last step's full rows (fetched once) */
    size_t fallbacks;                       /* steps that needed them */
} beam_state;

static void state_free(beam_state *s)
{
    if (s->hyps)
        for (size_t i = 0; i < s->batch; i++)
            emu2_beam_hyps_free(&s->hyps[i]);
    free(s->hyps);
    free(s->logits);
    free(s->cand);
    free(s->beam_scores);
    free(s->next_scores);
    free(s->next_tokens);
    free(s->src);
    free(s->src_first);
    free(s->seq);
    free(s->seq_tmp);
    free(s->top);
    free(s->weights);
    free(s->topk_scratch);
    free(s->sorted);
    free(s->mark);
    free(s->done);
    free(s->was_done);
    free(s->cand_v);
    free(s->cand_i);
    free(s->list);
}

/* Makes room for one more column in every row (capacity doubles, at most 1 + max_new_tokens). */
static emu2_status grow_seq(beam_state *s, size_t max_len, emu2_error *err)
{
    if (s->len < s->cap)
        return EMU2_OK;
    size_t cap = s->cap * 2 < max_len ? s->cap * 2 : max_len, count;
    if (!emu2_mul_size(s->rows, cap, &count))
        return emu2_fail(err, EMU2_ERR_LIMIT, "generation: %zu beams x %zu tokens is too large", s->rows, cap);
    int32_t *seq = emu2_search_alloc(count, sizeof(int32_t), "beam sequences", err);
    int32_t *tmp = seq ? emu2_search_alloc(count, sizeof(int32_t), "beam sequences", err) : NULL;
    if (!tmp) {
        free(seq);
        return err ? err->status : EMU2_ERR_NOMEM;
    }
    for (size_t r = 0; r < s->rows; r++)
        memcpy(seq + r * cap, s->seq + r * s->cap, s->len * sizeof(int32_t));
    free(s->seq);
    free(s->seq_tmp);
    s->seq = seq;
    s->seq_tmp = tmp;
    s->cap = cap;
    return EMU2_OK;
}

static emu2_status list_reserve(beam_state *s, size_t k, emu2_error *err);

static emu2_status state_init(beam_state *s, const emu2_search_ctx *c, size_t batch, emu2_error *err)
{
    memset(s, 0, sizeof *s);
    s->batch = batch;
    s->nb = (size_t)c->opts->num_beams;
    s->rows = batch * s->nb; /* checked by emu2_search */
    s->vocab = (size_t)c->lm->vocab;
    size_t rows_vocab;
    if (!emu2_mul_size(s->rows, s->vocab, &rows_vocab))
        return emu2_fail(err, EMU2_ERR_LIMIT, "generation: %zu beams x vocab %zu is too large", s->rows, s->vocab);
    if (!(s->logits = emu2_search_alloc(rows_vocab, sizeof(float), "logits", err)) ||
        !(s->cand = emu2_search_alloc(rows_vocab, sizeof(float), "beam candidates", err)) ||
        !(s->beam_scores = emu2_search_alloc(s->rows, sizeof(float), "beam scores", err)) ||
        !(s->next_scores = emu2_search_alloc(s->rows, sizeof(float), "beam scores", err)) ||
        !(s->next_tokens = emu2_search_alloc(s->rows, sizeof(int32_t), "beam tokens", err)) ||
        !(s->src = emu2_search_alloc(s->rows, sizeof(int32_t), "beam order", err)) ||
        !(s->src_first = emu2_search_alloc(s->rows, sizeof(int32_t), "beam order", err)) ||
        !(s->top = emu2_search_alloc(2 * s->nb, sizeof(emu2_beam_candidate), "beam candidates", err)))
        return err ? err->status : EMU2_ERR_NOMEM;
    if (c->opts->do_sample &&
        (!(s->weights = emu2_search_alloc(s->nb * s->vocab, sizeof(double), "beam sampling weights", err)) ||
         !(s->topk_scratch = emu2_search_alloc(s->vocab, sizeof(float), "top-k scratch", err)) ||
         !(s->sorted = emu2_search_alloc(s->vocab, sizeof(emu2_scored_id), "top-p scratch", err))))
        return err ? err->status : EMU2_ERR_NOMEM;
    emu2_rng_seed(&s->rng, c->opts->seed);
    s->mark = calloc(s->vocab, 1);
    s->done = calloc(batch, 1);
    s->was_done = calloc(batch, 1);
    s->hyps = calloc(batch, sizeof *s->hyps);
    if (!s->mark || !s->done || !s->was_done || !s->hyps)
        return emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for %zu beam states", batch);
    for (size_t i = 0; i < batch; i++) {
        emu2_status st = emu2_beam_hyps_init(&s->hyps[i], s->nb, (double)c->opts->length_penalty, err);
        if (st != EMU2_OK)
            return st;
    }
    size_t max_len = (size_t)c->opts->max_new_tokens + 1;
    s->cap = max_len < 16 ? max_len : 16;
    if (!(s->seq = emu2_search_alloc(s->rows, s->cap * sizeof(int32_t), "beam sequences", err)) ||
        !(s->seq_tmp = emu2_search_alloc(s->rows, s->cap * sizeof(int32_t), "beam sequences", err)))
        return err ? err->status : EMU2_ERR_NOMEM;
    for (size_t r = 0; r < s->rows; r++) {
        s->seq[r * s->cap] = c->ids.bos;
        /* HF beam_search: only beam 0 is live at the start, the others sit at -1e9 (beam_sample
         * starts them all at 0 and lets the draw tell the copies apart) */
        s->beam_scores[r] = r % s->nb == 0 || c->opts->do_sample ? 0.0f : -1e9f;
    }
    s->len = 1;
    s->k_max = emu2_topk_beam_k(c->lm, c->opts, 0); /* the min-length ban only turns it off */
    if (s->k_max &&
        (!(s->cand_v = emu2_search_alloc(s->rows, s->k_max * sizeof(float), "top-k candidates", err)) ||
         !(s->cand_i = emu2_search_alloc(s->rows, s->k_max * sizeof(int32_t), "top-k candidates", err))))
        return err ? err->status : EMU2_ERR_NOMEM;
    s->k_values = s->cand_v;
    s->k_ids = s->cand_i;
    return s->k_max ? list_reserve(s, s->k_max, err) : EMU2_OK;
}

/* Makes the candidate list hold nb * (k - 1) entries. */
static emu2_status list_reserve(beam_state *s, size_t k, emu2_error *err)
{
    size_t need = s->nb * (k - 1);
    if (need <= s->list_cap)
        return EMU2_OK;
    free(s->list);
    s->list_cap = 0;
    if (!(s->list = emu2_search_alloc(need, sizeof(emu2_beam_candidate), "top-k candidates", err)))
        return err ? err->status : EMU2_ERR_NOMEM;
    s->list_cap = need;
    return EMU2_OK;
}

/* cand row r := logprobs processed (repetition, min length) + running beam score. */
static emu2_status score_row(const emu2_search_ctx *c, beam_state *s, size_t r, size_t step, emu2_error *err)
{
    const emu2_gen_options *o = c->opts;
    int32_t vocab = c->lm->vocab;
    const float *in = s->logits + r * s->vocab;
    float *row = s->cand + r * s->vocab;
    emu2_status st = emu2_logits_check(in, vocab, r, step, err);
    if (st != EMU2_OK)
        return st;
    memcpy(row, in, s->vocab * sizeof *row);
    emu2_log_softmax(row, vocab);
    emu2_logits_scratch scratch = {s->topk_scratch, s->sorted, s->mark};
    /* processors act on log-probs here (greedy: on raw logits) */
    emu2_logits_process(row, vocab, o, s->seq + r * s->cap, s->len, c->ids.eos, &scratch);
    float add = s->beam_scores[r];
    for (size_t v = 0; v < s->vocab; v++)
        row[v] = row[v] + add;
    if (o->do_sample) /* beam_sample warps the sums; min_tokens_to_keep is 2 with beams */
        emu2_logits_warp(row, vocab, o, 2, &scratch);
    return EMU2_OK;
}

/* The item's 2*nb candidates into s->top, best first: from the step's candidates when they
 * decide (search_topk.h), else from its processed full rows (score_row). Returns their count. */
static emu2_status item_candidates(const emu2_search_ctx *c, beam_state *s, size_t item, size_t step, size_t *n,
                                   emu2_error *err)
{
    size_t total = s->nb * s->vocab, k = 2 * s->nb;
    if (s->k) {
        size_t r0 = item * s->nb;
        *n = emu2_topk_beam_top(s->k_values + r0 * s->k, s->k_ids + r0 * s->k, s->k, s->nb, s->beam_scores + r0,
                                s->vocab, s->list, s->top);
        if (*n)
            return EMU2_OK;
        emu2_status st = emu2_topk_full_rows(c->lm, s->logits, &s->full_ready, &s->fallbacks, err);
        if (st != EMU2_OK)
            return st;
    }
    for (size_t j = 0; j < s->nb; j++) {
        emu2_status st = score_row(c, s, item * s->nb + j, step, err);
        if (st != EMU2_OK)
            return st;
    }
    const float *scores = s->cand + item * total;
    *n = c->opts->do_sample ? emu2_beam_draw(scores, total, k, s->weights, &s->rng, s->top)
                            : emu2_beam_top(scores, total, k, s->top);
    return EMU2_OK;
}

/* BeamSearchScorer.process for one live item: EOS candidates ranked < nb become hypotheses, the
 * first nb others continue. */
static emu2_status process_item(const emu2_search_ctx *c, beam_state *s, size_t item, size_t step, emu2_error *err)
{
    size_t chosen = 0, n = 0;
    emu2_status st0 = item_candidates(c, s, item, step, &n, err);
    if (st0 != EMU2_OK)
        return st0;
    for (size_t rank = 0; rank < n && chosen < s->nb; rank++) {
        size_t beam = s->top[rank].flat / s->vocab, r = item * s->nb + beam;
        int32_t token = (int32_t)(s->top[rank].flat % s->vocab);
        if (token == c->ids.eos) {
            if (rank >= s->nb)
                continue;
            emu2_status st = emu2_beam_hyps_add(&s->hyps[item], s->seq + r * s->cap + 1, s->len - 1,
                                                s->top[rank].score, 1, err);
            if (st != EMU2_OK)
                return st;
            continue;
        }
        size_t slot = item * s->nb + chosen++;
        s->next_scores[slot] = s->top[rank].score;
        s->next_tokens[slot] = token;
        s->src[slot] = (int32_t)r;
    }
    if (chosen < s->nb)
        return emu2_fail(err, EMU2_ERR_INTERNAL, "beam search: only %zu of %zu beams could continue", chosen, s->nb);
    /* cur_len for the test is the length after this step */
    if (emu2_beam_hyps_is_done(&s->hyps[item], s->top[0].score, s->len + 1))
        s->done[item] = 1;
    return EMU2_OK;
}

/* Rows follow src (a beam continues from its parent), then every row gets its next token. */
static void advance_rows(beam_state *s)
{
    for (size_t r = 0; r < s->rows; r++)
        memcpy(s->seq_tmp + r * s->cap, s->seq + (size_t)s->src[r] * s->cap, s->len * sizeof(int32_t));
    int32_t *t = s->seq;
    s->seq = s->seq_tmp;
    s->seq_tmp = t;
    for (size_t r = 0; r < s->rows; r++) {
        s->seq[r * s->cap + s->len] = s->next_tokens[r];
        s->beam_scores[r] = s->next_scores[r];
    }
    s->len++;
}

static emu2_status reorder_model(const emu2_search_ctx *c, beam_state *s, int first, emu2_error *err)
{
    if (first) { /* the stepper still holds one prefilled row per item */
        for (size_t r = 0; r < s->rows; r++)
            s->src_first[r] = (int32_t)((size_t)s->src[r] / s->nb);
        return c->lm->reorder(c->lm->user, s->src_first, s->rows, err);
    }
    for (size_t r = 0; r < s->rows; r++)
        if (s->src[r] != (int32_t)r)
            return c->lm->reorder(c->lm->user, s->src, s->rows, err);
    return EMU2_OK;
}

/* finalize(): live items add every beam; each item's best hypothesis goes to the result. */
static emu2_status finalize(beam_state *s, emu2_search_result *out, emu2_error *err)
{
    for (size_t item = 0; item < s->batch; item++) {
        if (s->done[item])
            continue;
        for (size_t j = 0; j < s->nb; j++) {
            size_t r = item * s->nb + j;
            emu2_status st =
                emu2_beam_hyps_add(&s->hyps[item], s->seq + r * s->cap + 1, s->len - 1, s->beam_scores[r], 0, err);
            if (st != EMU2_OK)
                return st;
        }
    }
    for (size_t item = 0; item < s->batch; item++) {
        if (out->items[item].cancelled)
            continue; /* dropped: no ids */
        const emu2_beam_hyp *best = emu2_beam_hyps_best(&s->hyps[item]);
        if (!best)
            return emu2_fail(err, EMU2_ERR_INTERNAL, "beam search: no hypothesis for item %zu", item);
        emu2_search_item *it = &out->items[item];
        if (!(it->ids = emu2_search_alloc(best->n_tokens, sizeof(int32_t), "result", err)))
            return err ? err->status : EMU2_ERR_NOMEM;
        if (best->n_tokens)
            memcpy(it->ids, best->tokens, best->n_tokens * sizeof(int32_t));
        it->n_ids = best->n_tokens;
        it->ended_by_eos = best->ended_by_eos;
        it->sequence_score = (float)best->score; /* HF stores it in an fp32 tensor */
    }
    return EMU2_OK;
}

/* Beams cannot stream while searching: the winners are delivered at the end. A stop truncates the
 * result to what was delivered. */
static emu2_status deliver(const emu2_search_ctx *c, emu2_search_result *out, emu2_error *err)
{
    for (size_t item = 0; item < out->batch; item++) {
        emu2_search_item *it = &out->items[item];
        if (out->stopped) { /* nothing of this item was delivered */
            it->n_ids = 0;
            it->ended_by_eos = 0;
            continue;
        }
        for (size_t k = 0; k < it->n_ids; k++) {
            int stop = 0;
            emu2_status st = emu2_search_emit(c, item, it->ids[k], &stop, err);
            if (st != EMU2_OK)
                return st;
            if (stop) {
                if (stop == EMU2_SEARCH_STOP_ITEM)
                    it->stopped = 1;
                else
                    out->stopped = 1;
                if (k + 1 < it->n_ids) {
                    it->n_ids = k + 1;
                    it->ended_by_eos = 0;
                }
                break;
            }
        }
    }
    return EMU2_OK;
}

/* One search step over the logits in s->logits: every live item picks its next tokens
 * (s->next_tokens) and their parent rows (s->src); the sequences move on. */
static emu2_status beam_choose(const emu2_search_ctx *c, beam_state *s, size_t step, emu2_error *err)
{
    emu2_status st = EMU2_OK;
    memcpy(s->was_done, s->done, s->batch);
    for (size_t item = 0; item < s->batch && st == EMU2_OK; item++) {
        if (s->was_done[item]) { /* HF pads a finished item: its rows no longer matter */
            for (size_t j = 0; j < s->nb; j++) {
                size_t r = item * s->nb + j;
                s->next_scores[r] = 0.0f;
                s->next_tokens[r] = c->ids.pad;
                s->src[r] = (int32_t)r;
            }
            continue;
        }
        st = process_item(c, s, item, step, err);
    }
    if (st == EMU2_OK)
        st = grow_seq(s, (size_t)c->opts->max_new_tokens + 1, err);
    if (st == EMU2_OK)
        advance_rows(s);
    return st;
}

/* Whether another decoder step is needed after beam_choose. */
static int beam_live(const emu2_search_ctx *c, const beam_state *s)
{
    size_t live = 0;
    for (size_t item = 0; item < s->batch; item++)
        live += !s->done[item];
    return live > 0 && s->len < (size_t)c->opts->max_new_tokens + 1;
}

/* One decoder step: log-prob candidates only (step_topk) when they decide every live item's
 * next candidates exactly as the full rows would (search_topk.h), else the full logits. */
static emu2_status beam_step(const emu2_search_ctx *c, beam_state *s, emu2_search_result *out, emu2_error *err)
{
    /* the next beam_choose processes with seq_len = s->len */
    s->k = s->k_max ? emu2_topk_beam_k(c->lm, c->opts, s->len < (size_t)c->opts->min_length) : 0;
    s->full_ready = 0;
    out->decoder_steps++;
    if (!s->k)
        return c->lm->step(c->lm->user, s->next_tokens, s->rows, s->logits, err);
    out->topk_steps++;
    return c->lm->step_topk(c->lm->user, s->next_tokens, s->rows, s->k, 1, s->cand_v, s->cand_i, err);
}

emu2_status emu2_search_beam(const emu2_search_ctx *c, const float *prefill_logits, size_t batch,
                             emu2_search_result *out, emu2_error *err)
{
    beam_state s;
    emu2_status st = state_init(&s, c, batch, err);
    if (st == EMU2_OK && !(out->items = calloc(batch, sizeof *out->items)))
        st = emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for %zu results", batch);
    if (st != EMU2_OK) {
        state_free(&s);
        return st;
    }
    out->batch = batch;
    for (size_t r = 0; r < s.rows; r++)
        memcpy(s.logits + r * s.vocab, prefill_logits + (r / s.nb) * s.vocab, s.vocab * sizeof(float));
    int widened = 0;
    for (size_t step = 0; st == EMU2_OK; step++) {
        for (size_t item = 0; item < batch; item++)
            if (!s.done[item] && emu2_search_item_cancelled(c, item))
                s.done[item] = 1, out->items[item].stopped = out->items[item].cancelled = 1;
        st = beam_choose(c, &s, step, err);
        if (st != EMU2_OK || !beam_live(c, &s))
            break;
        st = reorder_model(c, &s, !widened, err);
        widened = 1;
        if (st == EMU2_OK)
            st = beam_step(c, &s, out, err);
    }
    out->topk_fallbacks = s.fallbacks;
    if (st == EMU2_OK)
        st = finalize(&s, out, err);
    if (st == EMU2_OK)
        st = deliver(c, out, err);
    state_free(&s);
    return st;
}

/* ---------------------------------------------------------------- one request at a time */

struct emu2_beam_item {
    beam_state s;
    size_t step, topk_steps;
};

emu2_status emu2_beam_item_create(const emu2_search_ctx *c, emu2_beam_item **out, emu2_error *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for a beam search");
    emu2_status st = state_init(&(*out)->s, c, 1, err);
    if (st != EMU2_OK) {
        emu2_beam_item_free(*out);
        *out = NULL;
    }
    return st;
}

emu2_status emu2_beam_item_next(const emu2_search_ctx *c, emu2_beam_item *b, const float *logits, int32_t *tokens,
                                int32_t *src, int *live, emu2_error *err)
{
    beam_state *s = &b->s;
    /* the first step sees the prefill: one row for all beams */
    for (size_t r = 0; r < s->rows; r++)
        memcpy(s->logits + r * s->vocab, logits + (b->step == 0 ? 0 : r) * s->vocab, s->vocab * sizeof(float));
    emu2_status st = beam_choose(c, s, b->step, err);
    if (st != EMU2_OK)
        return st;
    *live = beam_live(c, s);
    for (size_t r = 0; r < s->rows; r++) {
        tokens[r] = s->next_tokens[r];
        src[r] = b->step == 0 ? 0 : s->src[r];
    }
    b->step++;
    return EMU2_OK;
}

size_t emu2_beam_item_topk(const emu2_search_ctx *c, const emu2_beam_item *b, size_t topk_max)
{
    if (b->step == 0) /* the first call sees the prefill row */
        return 0;
    return emu2_topk_beam_k_for(c->opts, topk_max, c->lm->vocab, b->s.len < (size_t)c->opts->min_length);
}

emu2_status emu2_beam_item_next_topk(const emu2_search_ctx *c, emu2_beam_item *b, const float *values,
                                     const int32_t *ids, size_t k, int32_t *tokens, int32_t *src, int *live,
                                     int *decided, emu2_error *err)
{
    beam_state *s = &b->s;
    *live = *decided = 0;
    if (b->step == 0 || s->done[0])
        return EMU2_OK;
    emu2_status st = list_reserve(s, k, err);
    if (st != EMU2_OK || !emu2_topk_beam_top(values, ids, k, s->nb, s->beam_scores, s->vocab, s->list, s->top))
        return st; /* undecided: the full rows decide */
    s->k = k;
    s->k_values = values;
    s->k_ids = ids;
    st = beam_choose(c, s, b->step, err);
    s->k = 0;
    s->k_values = s->cand_v;
    s->k_ids = s->cand_i;
    if (st != EMU2_OK)
        return st;
    *decided = 1;
    b->topk_steps++;
    *live = beam_live(c, s);
    for (size_t r = 0; r < s->rows; r++) {
        tokens[r] = s->next_tokens[r];
        src[r] = s->src[r];
    }
    b->step++;
    return EMU2_OK;
}

emu2_status emu2_beam_item_finish(const emu2_search_ctx *c, emu2_beam_item *b, emu2_search_result *out,
                                  emu2_error *err)
{
    out->topk_steps = b->topk_steps;
    emu2_status st = finalize(&b->s, out, err);
    return st == EMU2_OK ? deliver(c, out, err) : st;
}

void emu2_beam_item_free(emu2_beam_item *b)
{
    if (!b)
        return;
    state_free(&b->s);
    free(b);
}
