/* search_topk.h: the search's use of emu2_lm_stepper.step_topk: when a step may hand over only k
 * candidates per row, and the choices made from them, exactly those the full rows give.
 * Environment: EMU2_SEARCH_FULL_LOGITS=1 makes the decoder stepper offer no step_topk (the old
 * full-logits path, for comparisons). */
#ifndef EMU2_GENERATE_SEARCH_TOPK_H
#define EMU2_GENERATE_SEARCH_TOPK_H

#include <stddef.h>
#include <stdint.h>

#include "generate/beam_candidates.h"
#include "generate/generate.h"
#include "generate/logits.h"
#include "generate/rng.h"

/* Candidates per row a greedy / sampling step needs (0: the full rows). min_length_applies: some
 * running row will see EOS banned at the next choice. */
size_t emu2_topk_greedy_k(const emu2_lm_stepper *lm, const emu2_gen_options *o, int min_length_applies);
/* The same for a beam step (2 * num_beams + 1, or 0). */
size_t emu2_topk_beam_k(const emu2_lm_stepper *lm, const emu2_gen_options *o, int min_length_applies);
/* Both for a caller whose decoder takes k <= topk_max (0: no top-k at all). */
size_t emu2_topk_greedy_k_for(const emu2_gen_options *o, size_t topk_max, int32_t vocab, int min_length_applies);
size_t emu2_topk_beam_k_for(const emu2_gen_options *o, size_t topk_max, int32_t vocab, int min_length_applies);

/* Scratch for a sampling choice from k candidates: each array holds emu2_topk_greedy_k entries. */
typedef struct emu2_topk_scratch {
    float *row, *topk;
    int32_t *ids;
    emu2_scored_id *sorted;
} emu2_topk_scratch;

/* The next id of a row from its k raw candidates (values best first, ids): argmax, or with
 * do_sample the warpers and a draw over them. 1: *chosen set; 0: the candidates cannot decide (a
 * bad row, a tie at top_k's cut) and the full row must. */
int emu2_topk_greedy_choose(const emu2_gen_options *o, const float *values, const int32_t *ids, size_t k,
                            emu2_rng *rng, emu2_topk_scratch *scratch, int32_t *chosen);

/* The 2*nb best (beam x vocab) candidates of one item, as emu2_beam_top over its processed rows
 * would give them, from k = 2*nb + 1 log-softmax candidates per beam row (values/ids [nb, k]) and
 * the beams' running scores. list: nb * (k - 1) entries of scratch. Returns 2*nb, or 0 when the
 * candidates cannot decide (a bad row, a tie at the cut). */
size_t emu2_topk_beam_top(const float *values, const int32_t *ids, size_t k, size_t nb, const float *beam_scores,
                          size_t vocab, emu2_beam_candidate *list, emu2_beam_candidate *top);

/* The last step's full rows into logits for a choice its candidates could not decide: fetched once
 * per step (*ready, cleared by the caller at each step), each such step counted in *fallbacks. */
emu2_status emu2_topk_full_rows(const emu2_lm_stepper *lm, float *logits, int *ready, size_t *fallbacks,
                                emu2_error *err);

#endif
