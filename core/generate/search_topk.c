/* search_topk.c: choices from the k candidates per row of emu2_lm_stepper.step_topk (search_topk.h).
 * Everything here must give what the full-row path gives, bit for bit; each function says why. */
#include "generate/search_topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static int stepper_has_topk(const emu2_lm_stepper *lm)
{
    return lm->step_topk && lm->last_logits && lm->topk_max > 0;
}

size_t emu2_topk_greedy_k(const emu2_lm_stepper *lm, const emu2_gen_options *o, int min_length_applies)
{
    return stepper_has_topk(lm) ? emu2_topk_greedy_k_for(o, lm->topk_max, lm->vocab, min_length_applies) : 0;
}

size_t emu2_topk_beam_k(const emu2_lm_stepper *lm, const emu2_gen_options *o, int min_length_applies)
{
    return stepper_has_topk(lm) ? emu2_topk_beam_k_for(o, lm->topk_max, lm->vocab, min_length_applies) : 0;
}

size_t emu2_topk_greedy_k_for(const emu2_gen_options *o, size_t topk_max, int32_t vocab, int min_length_applies)
{
    /* the repetition penalty and the min-length ban change single logits after the fact: a
     * penalized id can leave the top, a banned EOS can be the top; those steps use full rows */
    if (topk_max == 0 || o->repetition_penalty != 1.0f || min_length_applies)
        return 0;
    if (!o->do_sample)
        return 1; /* argmax: the first index of the maximum = the op's best (ties to the lower id) */
    /* sampling: top-k's kept set, then top-p and the draw over it, need the top_k best plus one
     * more to see whether a tie at the cut would keep ids beyond them; without top_k the whole
     * distribution is drawn from */
    if (o->top_k <= 0)
        return 0;
    size_t k = (size_t)o->top_k + 1;
    return k <= topk_max && k <= (size_t)vocab ? k : 0;
}

size_t emu2_topk_beam_k_for(const emu2_gen_options *o, size_t topk_max, int32_t vocab, int min_length_applies)
{
    /* beam_sample draws over every id: full rows */
    if (topk_max == 0 || o->repetition_penalty != 1.0f || min_length_applies || o->do_sample)
        return 0;
    size_t k = 2 * (size_t)o->num_beams + 1;
    return k <= topk_max && k <= (size_t)vocab ? k : 0;
}

static int by_id(const void *pa, const void *pb)
{
    const emu2_scored_id *a = pa, *b = pb;
    return (a->id > b->id) - (a->id < b->id);
}

int emu2_topk_greedy_choose(const emu2_gen_options *o, const float *values, const int32_t *ids, size_t k,
                            emu2_rng *rng, emu2_topk_scratch *scratch, int32_t *chosen)
{
    /* NaN and +inf rank first, and a row of -inf only has -inf first: emu2_logits_check on the
     * full row reports those (with the id it names) */
    if (!isfinite(values[0]))
        return 0;
    if (!o->do_sample) {
        *chosen = ids[0];
        return 1;
    }
    /* temperature is a division by a positive number: monotonic, so the full row's top_k-th
     * largest is the top_k-th candidate's. If the first id left out ties it after the division,
     * more ids may tie too and top-k would keep them: ask the full row. (A tie at -inf keeps only
     * ids without probability: no effect on top-p or the draw.) */
    size_t top_k = (size_t)o->top_k;
    float in = values[top_k - 1], out = values[top_k];
    if (o->temperature != 1.0f) {
        in = in / o->temperature;
        out = out / o->temperature;
    }
    if (in == out && out != -INFINITY)
        return 0;
    /* the warpers and the draw walk ids in index order (the draw's running sum, top-p's tie
     * order): lay the candidates out by id. Every id not among them ends at -inf in the full row
     * (probability exactly 0: it adds 0 to every sum and is skipped by the draw). */
    emu2_scored_id *pairs = scratch->sorted;
    for (size_t i = 0; i < k; i++)
        pairs[i] = (emu2_scored_id){values[i], ids[i]};
    qsort(pairs, k, sizeof *pairs, by_id);
    for (size_t i = 0; i < k; i++) {
        scratch->row[i] = pairs[i].value;
        scratch->ids[i] = pairs[i].id;
    }
    emu2_logits_scratch ls = {scratch->topk, scratch->sorted, NULL};
    emu2_logits_warp(scratch->row, (int32_t)k, o, 1, &ls);
    *chosen = scratch->ids[emu2_sample(scratch->row, (int32_t)k, rng)];
    return 1;
}

static int by_score_then_flat(const void *pa, const void *pb)
{
    const emu2_beam_candidate *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return (a->flat > b->flat) - (a->flat < b->flat);
}

/* Why 2*nb candidates per beam row are enough (with one more to see the cut):
 * emu2_beam_top ranks the item's nb*vocab scores s = lp + b_beam by (s desc, flat asc), flat =
 * beam*vocab + id. If an entry e of row j is among the global 2*nb best, every entry of row j
 * ranked before e is ranked before it globally too, so fewer than 2*nb of them exist: e is among
 * row j's 2*nb best under that order. Within a row b_beam is one constant and x -> x + b is
 * monotonic in f32, so the row's order by s is its order by lp, except that two lp can round to
 * one s: the op returns the 2*nb + 1 best by lp; when s of the (2*nb)th and of the (2*nb + 1)th
 * differ, every id left out has s below every id kept, so the kept ones are exactly the row's
 * 2*nb best by s (their order among themselves is redone below on s). When they are equal, the
 * step goes to the full rows. The union of the rows' 2*nb best, ranked by (s desc, flat asc),
 * then starts with the same 2*nb entries as the full ranking. */
size_t emu2_topk_beam_top(const float *values, const int32_t *ids, size_t k, size_t nb, const float *beam_scores,
                          size_t vocab, emu2_beam_candidate *list, emu2_beam_candidate *top)
{
    size_t want = 2 * nb, n = 0;
    if (k != want + 1)
        return 0;
    for (size_t j = 0; j < nb; j++) {
        const float *v = values + j * k;
        const int32_t *id = ids + j * k;
        float b = beam_scores[j];
        if (!isfinite(v[0])) /* NaN: the op's mark of a bad row; emu2_logits_check names it */
            return 0;
        if (!(v[want - 1] + b > v[want] + b))
            return 0;
        for (size_t i = 0; i < want; i++) /* the same f32 sum score_row makes */
            list[n++] = (emu2_beam_candidate){v[i] + b, j * vocab + (size_t)id[i]};
    }
    qsort(list, n, sizeof *list, by_score_then_flat);
    memcpy(top, list, want * sizeof *top);
    return want;
}

emu2_status emu2_topk_full_rows(const emu2_lm_stepper *lm, float *logits, int *ready, size_t *fallbacks,
                                emu2_error *err)
{
    if (*ready)
        return EMU2_OK;
    if (!lm->last_logits) /* the k functions offer candidates only with last_logits: never here */
        return emu2_fail(err, EMU2_ERR_INTERNAL, "search: undecided candidates without full logits");
    emu2_status st = lm->last_logits(lm->user, logits, err);
    if (st != EMU2_OK)
        return st;
    *ready = 1;
    (*fallbacks)++;
    return EMU2_OK;
}
