/* beam_hyps.c: HF 4.31 BeamHypotheses, including its tie rules (see beam_hyps.h). */
#include "generate/beam_hyps.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"

emu2_status emu2_beam_hyps_init(emu2_beam_hyps *h, size_t num_beams, double length_penalty, emu2_error *err)
{
    memset(h, 0, sizeof *h);
    h->num_beams = num_beams;
    h->length_penalty = length_penalty;
    h->worst_score = 1e9; /* HF's initial value: any first score is below it */
    h->beams = calloc(num_beams + 1, sizeof *h->beams);
    if (!h->beams)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for %zu beam hypotheses", num_beams);
    return EMU2_OK;
}

void emu2_beam_hyps_free(emu2_beam_hyps *h)
{
    if (!h || !h->beams)
        return;
    for (size_t i = 0; i < h->count; i++)
        free(h->beams[i].tokens);
    free(h->beams);
    memset(h, 0, sizeof *h);
}

static double length_score(double sum_logprobs, size_t length, double length_penalty)
{
    /* Python: sum_logprobs / (L ** length_penalty) with L an int -> C pow on doubles */
    return sum_logprobs / pow((double)length, length_penalty);
}

emu2_status emu2_beam_hyps_add(emu2_beam_hyps *h, const int32_t *tokens, size_t n_tokens, float sum_logprobs,
                               int ended_by_eos, emu2_error *err)
{
    double score = length_score((double)sum_logprobs, n_tokens + 1, h->length_penalty);
    if (!(h->count < h->num_beams || score > h->worst_score))
        return EMU2_OK;
    size_t bytes;
    if (!emu2_mul_size(n_tokens ? n_tokens : 1, sizeof *tokens, &bytes))
        return emu2_fail(err, EMU2_ERR_LIMIT, "beam hypothesis of %zu tokens is too long", n_tokens);
    int32_t *copy = malloc(bytes);
    if (!copy)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for a beam hypothesis of %zu tokens", n_tokens);
    if (n_tokens)
        memcpy(copy, tokens, n_tokens * sizeof *tokens);
    h->beams[h->count++] = (emu2_beam_hyp){score, copy, n_tokens, ended_by_eos};
    if (h->count > h->num_beams) {
        /* HF sorts (score, index) pairs, deletes the first and takes the second's score as the
         * new worst: the lowest score goes, the earliest one among equals. */
        size_t worst = 0;
        for (size_t i = 1; i < h->count; i++)
            if (h->beams[i].score < h->beams[worst].score)
                worst = i;
        free(h->beams[worst].tokens);
        memmove(&h->beams[worst], &h->beams[worst + 1], (h->count - worst - 1) * sizeof *h->beams);
        h->count--;
        double next = h->beams[0].score;
        for (size_t i = 1; i < h->count; i++)
            if (h->beams[i].score < next)
                next = h->beams[i].score;
        h->worst_score = next;
    } else if (score < h->worst_score) {
        h->worst_score = score;
    }
    return EMU2_OK;
}

int emu2_beam_hyps_is_done(const emu2_beam_hyps *h, float best_sum_logprobs, size_t cur_len)
{
    if (h->count < h->num_beams)
        return 0;
    return h->worst_score >= length_score((double)best_sum_logprobs, cur_len, h->length_penalty);
}

const emu2_beam_hyp *emu2_beam_hyps_best(const emu2_beam_hyps *h)
{
    const emu2_beam_hyp *best = NULL;
    for (size_t i = 0; i < h->count; i++)
        if (!best || h->beams[i].score >= best->score)
            best = &h->beams[i];
    return best;
}
