/* log_softmax.h: the normalizer of a log-softmax row, log(sum exp(x - max)), with the float steps
 * the reference (torch) takes: a double sum of f32 expf, then logf of its f32. The search
 * (core/generate/logits.c) and the CPU top_k op (core/ops/cpu/cpu_topk.c) both use it, so that the
 * top-k path hands the search bit-identical log-probabilities. */
#ifndef EMU2_COMMON_LOG_SOFTMAX_H
#define EMU2_COMMON_LOG_SOFTMAX_H

#include <math.h>
#include <stddef.h>

/* log(sum_i exp(row[i] - max)) for the row's max `max`; each value is then (x - max) - this. */
static inline float emu2_log_sum_exp(const float *row, size_t n, float max)
{
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += (double)expf(row[i] - max);
    return logf((float)sum);
}

#endif
