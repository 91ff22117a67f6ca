/* search_item.h: the token search of ONE request, driven a step at a time by its caller, for
 * continuous batching (requests join and leave a running decode). The choices are exactly those of
 * emu2_search for a batch of one (same code: search_beam.c / search_greedy.c); sampling draws from
 * the request's own generator seeded with opts->seed, as a batch of one does.
 *
 *   emu2_item_search_create(opts, ids, vocab, hooks, &s);   rows = emu2_item_search_rows(s)
 *   next(s, prefill_logits (1 row)) -> tokens[rows], src[rows] (all 0: every row starts from the prefill)
 *   while live: feed tokens to the decoder rows (row i continuing old row src[i]), step,
 *               next(s, logits of its rows)
 *   emu2_item_search_finish(s, &result) (beam search streams its winner here) */
#ifndef EMU2_GENERATE_SEARCH_ITEM_H
#define EMU2_GENERATE_SEARCH_ITEM_H

#include "generate/generate.h"

typedef struct emu2_item_search emu2_item_search;

/* The checks emu2_search makes on its options, special ids and vocabulary. */
emu2_status emu2_search_check(const emu2_gen_options *opts, emu2_search_ids ids, int32_t vocab, emu2_error *err);

/* Options are checked as emu2_search checks them. hooks->on_token gets item 0 (may be NULL);
 * the cancel hook is not used (the caller drops a request by freeing it). */
emu2_status emu2_item_search_create(const emu2_gen_options *opts, emu2_search_ids ids, int32_t vocab,
                                    const emu2_search_hooks *hooks, emu2_item_search **out, emu2_error *err);
/* Decoder rows this request needs: num_beams. */
size_t emu2_item_search_rows(const emu2_item_search *s);
/* Picks the next tokens from logits (first call: the prefill row; after: one row per decoder row).
 * *live = 0: the search is over (finish it; tokens are not to be fed). */
emu2_status emu2_item_search_next(emu2_item_search *s, const float *logits, int32_t *tokens, int32_t *src, int *live,
                                  emu2_error *err);
/* The top-k path (search_topk.h), for a caller whose decoder can hand over the k best logits of
 * each of the request's rows (k <= topk_max): how many the next step can use (0: it needs the full
 * rows; *log_softmax: as log-probabilities), then next from them: values/ids [rows, k], best first.
 * *decided = 0: the candidates cannot decide (a tie at the cut, a bad row); nothing changed, call
 * emu2_item_search_next with the full rows. The choices equal emu2_item_search_next's. */
size_t emu2_item_search_topk(const emu2_item_search *s, size_t topk_max, int *log_softmax);
emu2_status emu2_item_search_next_topk(emu2_item_search *s, const float *values, const int32_t *ids, size_t k,
                                       int32_t *tokens, int32_t *src, int *live, int *decided, emu2_error *err);
/* The result: out->batch = 1, one item (release with emu2_search_result_free). */
emu2_status emu2_item_search_finish(emu2_item_search *s, emu2_search_result *out, emu2_error *err);
void emu2_item_search_free(emu2_item_search *s);

#endif
