/* logits.c: the per-row logits processors of HF 4.31 generation (see logits.h). */
#include "generate/logits.h"

#include <math.h>
#include <stdlib.h>

#include "common/error.h"
#include "common/log_softmax.h"

emu2_status emu2_logits_check(const float *row, int32_t vocab, size_t row_index, size_t step, emu2_error *err)
{
    int any_finite = 0;
    for (int32_t i = 0; i < vocab; i++) {
        float v = row[i];
        if (isnan(v) || v == INFINITY)
            return emu2_fail(err, EMU2_ERR_INTERNAL, "decoder produced %s logit for token %d (row %zu, step %zu)",
                             isnan(v) ? "a NaN" : "an infinite", (int)i, row_index, step);
        any_finite |= v != -INFINITY;
    }
    if (!any_finite)
        return emu2_fail(err, EMU2_ERR_INTERNAL, "decoder produced only -inf logits (row %zu, step %zu)", row_index,
                         step);
    return EMU2_OK;
}

static float row_max(const float *row, int32_t vocab)
{
    float m = row[0];
    for (int32_t i = 1; i < vocab; i++)
        if (row[i] > m)
            m = row[i];
    return m;
}

void emu2_log_softmax(float *row, int32_t vocab)
{
    float m = row_max(row, vocab);
    /* torch keeps this order, (x - max) - log(sum), all in fp32 */
    float log_sum = emu2_log_sum_exp(row, (size_t)vocab, m);
    for (int32_t i = 0; i < vocab; i++)
        row[i] = (row[i] - m) - log_sum;
}

void emu2_repetition_penalty(float *row, const int32_t *seq, size_t n, float penalty, unsigned char *mark)
{
    /* HF gathers the scores of seq, penalizes them, scatters back: a repeated id is penalized once */
    for (size_t i = 0; i < n; i++) {
        int32_t t = seq[i];
        if (mark[t])
            continue;
        mark[t] = 1;
        float s = row[t];
        row[t] = s < 0 ? s * penalty : s / penalty;
    }
    for (size_t i = 0; i < n; i++)
        mark[seq[i]] = 0;
}

void emu2_temperature(float *row, int32_t vocab, float temperature)
{
    for (int32_t i = 0; i < vocab; i++)
        row[i] = row[i] / temperature;
}

/* The k-th largest (k >= 1) of a[0..n), reordering a (quickselect, descending). */
static float kth_largest(float *a, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot)
                i++;
            while (a[j] < pivot)
                j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (want <= j)
            hi = j;
        else if (want >= i)
            lo = i;
        else
            return a[want];
    }
    return a[want];
}

void emu2_top_k(float *row, int32_t vocab, int top_k, int min_keep, float *scratch)
{
    int32_t k = top_k > min_keep ? top_k : min_keep;
    if (k > vocab)
        k = vocab;
    for (int32_t i = 0; i < vocab; i++)
        scratch[i] = row[i];
    float kth = kth_largest(scratch, vocab, k);
    for (int32_t i = 0; i < vocab; i++)
        if (row[i] < kth)
            row[i] = -INFINITY;
}

static int by_value_ascending(const void *pa, const void *pb)
{
    const emu2_scored_id *a = pa, *b = pb;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

void emu2_top_p(float *row, int32_t vocab, float top_p, int min_keep, emu2_scored_id *scratch)
{
    for (int32_t i = 0; i < vocab; i++)
        scratch[i] = (emu2_scored_id){row[i], i};
    qsort(scratch, (size_t)vocab, sizeof *scratch, by_value_ascending);
    float m = scratch[vocab - 1].value;
    double sum = 0.0;
    for (int32_t i = 0; i < vocab; i++)
        sum += (double)expf(scratch[i].value - m);
    float threshold = (float)(1.0 - (double)top_p);
    double cumulative = 0.0;
    int32_t keep_from = vocab - (min_keep < vocab ? min_keep : vocab);
    for (int32_t i = 0; i < keep_from; i++) {
        float p = expf(scratch[i].value - m) / (float)sum;
        cumulative += (double)p;
        if ((float)cumulative <= threshold)
            row[scratch[i].id] = -INFINITY;
    }
}

void emu2_logits_process(float *row, int32_t vocab, const emu2_gen_options *o, const int32_t *seq, size_t seq_len,
                         int32_t eos, emu2_logits_scratch *scratch)
{
    (void)vocab;
    if (o->repetition_penalty != 1.0f)
        emu2_repetition_penalty(row, seq, seq_len, o->repetition_penalty, scratch->mark);
    if (seq_len < (size_t)o->min_length)
        row[eos] = -INFINITY;
}

void emu2_logits_warp(float *row, int32_t vocab, const emu2_gen_options *o, int min_keep,
                      emu2_logits_scratch *scratch)
{
    if (o->temperature != 1.0f)
        emu2_temperature(row, vocab, o->temperature);
    if (o->top_k != 0)
        emu2_top_k(row, vocab, o->top_k, min_keep, scratch->topk);
    if (o->top_p < 1.0f)
        emu2_top_p(row, vocab, o->top_p, min_keep, scratch->sorted);
}

int32_t emu2_argmax(const float *row, int32_t vocab)
{
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; i++)
        if (row[i] > row[best])
            best = i;
    return best;
}

int32_t emu2_sample(const float *row, int32_t vocab, emu2_rng *rng)
{
    float m = row_max(row, vocab);
    double total = 0.0;
    for (int32_t i = 0; i < vocab; i++)
        total += (double)expf(row[i] - m);
    double r = emu2_rng_uniform(rng) * total, acc = 0.0;
    int32_t last = emu2_argmax(row, vocab);
    for (int32_t i = 0; i < vocab; i++) {
        double p = (double)expf(row[i] - m);
        if (p <= 0.0)
            continue;
        acc += p;
        last = i;
        if (r < acc)
            return i;
    }
    return last; /* rounding left r at the very top: the last id that has any mass */
}
