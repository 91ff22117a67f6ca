/* generate.h: the token search of text generation (greedy, sampling, beam search), written to pick
 * exactly the tokens transformers 4.31 `generate(inputs_embeds=...)` picks for Emu2's LLaMA.
 *
 * The search knows nothing about networks: it drives a decoder through emu2_lm_stepper (one step =
 * one new token per row -> fp32 logits; beam search also permutes rows). The caller prefills the
 * prompt and hands the logits at the last prompt position, ONE row per batch item (beam search
 * widens each item to num_beams rows itself, through reorder()).
 *
 * HF 4.31 rules this reproduces (EMU2-SPEC §4.6):
 *   - with inputs_embeds, HF starts every sequence with a BOS it never feeds to the model; that BOS
 *     counts in every length: cur_len = 1 + generated tokens. So min_length=1 bans nothing,
 *     max_new_tokens tokens at most are produced, a beam hypothesis of n tokens (EOS excluded) has
 *     length L = 1 + n, and its score is sum_logprobs / L^length_penalty (computed in double).
 *   - the repetition penalty looks only at that sequence ([BOS] + generated), never at the prompt;
 *     greedy/sampling apply it to raw logits, beam search to log-probabilities.
 *   - EOS is banned (logit -inf) while cur_len < min_length.
 *   - beam search: beams 1.. start at -1e9; top-2*num_beams candidates over (beam x vocab); an EOS
 *     ranked < num_beams stores a hypothesis, others continue; early_stopping=False test
 *     "worst kept score >= best candidate sum / cur_len^lp" (cur_len = length after this step);
 *     at max length every live beam becomes a hypothesis; the best score wins (ties: the later).
 *   - sampling: processors (repetition, min length), then temperature, top-k, top-p (HF order and
 *     comparisons); the random draw is ours (emu2 RNG seeded with opts->seed), so ids differ from
 *     torch.multinomial but the distribution is the same.
 *   - do_sample with num_beams > 1 is HF's beam_sample (what the Emu2 wrapper runs when only
 *     do_sample is set, its default being 5 beams): beams all start at 0, the warpers act on
 *     log-probs + beam score (so temperature compounds into the running scores, as in HF), and
 *     2*num_beams candidates are drawn without replacement over (beam x vocab). */
#ifndef EMU2_GENERATE_GENERATE_H
#define EMU2_GENERATE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

/* The decoder as the search sees it. Rows are independent sequences sharing one prompt prefix per
 * batch item. The stepper starts with `batch` rows (what the caller prefilled). */
typedef struct emu2_lm_stepper {
    void *user;
    int32_t vocab;
    /* One decoder step: tokens[i] is fed at the next position of row i, for i < n_rows; writes
     * logits [n_rows, vocab] (fp32, row-major). Rows whose sequence has finished are fed pad_id
     * (as HF does); their logits are ignored. */
    emu2_status (*step)(void *user, const int32_t *tokens, size_t n_rows, float *logits, emu2_error *err);
    /* Beam search only. After this call there are n_rows rows and row i continues from what row
     * src[i] was before the call (KV cache rows copied/permuted; src[i] < the previous row count).
     * The first call widens `batch` rows to batch*num_beams (src[i] = i / num_beams); later calls
     * keep n_rows. Never called with the identity permutation. */
    emu2_status (*reorder)(void *user, const int32_t *src, size_t n_rows, emu2_error *err);
    /* Optional (NULL: not provided; then the search always uses step). step() that hands over only
     * the k best logits of each row (values/ids [n_rows, k]), ranked as ops.h's top_k op ranks them:
     * best first, ties to the lower id, NaN and +inf before everything; with log_softmax set, the
     * values are log_softmax(row) computed as emu2_log_softmax does, and a row holding NaN/+inf
     * or only -inf gives NaN values. k <= topk_max. The search calls it only when the candidates
     * give exactly what the full row would (search_topk.h); last_logits then hands over the full
     * logits [n_rows, vocab] of that same step for the rows the candidates cannot decide. */
    emu2_status (*step_topk)(void *user, const int32_t *tokens, size_t n_rows, size_t k, int log_softmax,
                             float *values, int32_t *ids, emu2_error *err);
    emu2_status (*last_logits)(void *user, float *logits, emu2_error *err);
    size_t topk_max;
} emu2_lm_stepper;

/* Streaming: called once per generated token (EOS excluded), in generation order, for batch item
 * `item`. Greedy/sampling call it as soon as the token is chosen (items in order within a step);
 * beam search calls it for the tokens of the winning hypothesis once the search is over (HF cannot
 * stream beams either). Set *stop = 1 to end the search cleanly: the result then holds the tokens
 * delivered so far (result.stopped = 1, status EMU2_OK). Returning a status other than EMU2_OK
 * aborts: emu2_search frees everything and returns that status with the message in err. */
typedef emu2_status (*emu2_search_token_fn)(void *user, size_t item, int32_t id, int *stop, emu2_error *err);
/* *stop = EMU2_SEARCH_STOP_ITEM ends only that item (its result: what was delivered, item.stopped = 1);
 * the other items go on. */
#define EMU2_SEARCH_STOP_ITEM 2

/* Polled once per item per step before the step's tokens are chosen (items still searching only):
 * non-zero drops the item at once (its result: no ids, item.stopped = 1); the others go on. */
typedef int (*emu2_search_cancel_fn)(void *user, size_t item);

typedef struct emu2_search_hooks {
    emu2_search_token_fn on_token;
    void *on_token_user;
    emu2_search_cancel_fn cancelled;
    void *cancelled_user;
} emu2_search_hooks;

typedef struct emu2_search_ids {
    int32_t bos, eos, pad;
} emu2_search_ids;

typedef struct emu2_search_item {
    int32_t *ids;         /* generated ids, EOS excluded (release: emu2_search_result_free) */
    size_t n_ids;
    int ended_by_eos;     /* 1: the model produced EOS; 0: max_new_tokens reached (or stopped) */
    double sequence_score; /* beam search: HF `sequences_scores` (sum_logprobs / L^lp); else 0 */
    int stopped;          /* this item alone was stopped (EMU2_SEARCH_STOP_ITEM) or cancelled */
    int cancelled;        /* dropped by the cancel poll (then n_ids = 0) */
} emu2_search_item;

typedef struct emu2_search_result {
    size_t batch;
    emu2_search_item *items; /* [batch] */
    int stopped;             /* the token callback asked to stop */
    size_t decoder_steps;    /* decoder steps (stepper->step or ->step_topk) */
    size_t topk_steps;       /* of which through step_topk (only k candidates per row downloaded) */
    size_t topk_fallbacks;   /* of those, steps that also needed last_logits (a tie at the cut, a bad row) */
} emu2_search_result;

/* Runs the search. opts: emu2_gen_options from emu2.h (its on_token field is ignored here: the API
 * layer adapts it into on_token below, since pieces need the tokenizer). Options are checked:
 * max_new_tokens >= 1, num_beams >= 1, 0 <= min_length <= max_new_tokens + 1 (HF's lengths, BOS
 * included), length_penalty finite, repetition_penalty > 0, with
 * do_sample: temperature > 0, top_k >= 0, 0 <= top_p <= 1. On success *out owns its items; on
 * failure *out is empty. */
emu2_status emu2_search(const emu2_lm_stepper *lm, const float *prefill_logits, size_t batch,
                        const emu2_gen_options *opts, emu2_search_ids ids, emu2_search_token_fn on_token,
                        void *on_token_user, emu2_search_result *out, emu2_error *err);

/* emu2_search with the per-item hooks (hooks may be NULL). */
emu2_status emu2_search_hooked(const emu2_lm_stepper *lm, const float *prefill_logits, size_t batch,
                               const emu2_gen_options *opts, emu2_search_ids ids, const emu2_search_hooks *hooks,
                               emu2_search_result *out, emu2_error *err);

void emu2_search_result_free(emu2_search_result *result);

#endif
