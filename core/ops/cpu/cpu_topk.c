/* cpu_topk.c: the top_k op (ops.h) on the CPU: one pass per row keeping the k best seen so far in
 * a sorted list (a value that does not beat the current k-th costs one compare); rows split over
 * the threads. With EMU2_TOPK_LOG_SOFTMAX the values are computed with exactly the float steps of
 * core/generate's emu2_log_softmax, so the search gets bit-identical log-probabilities. */
#include <math.h>

#include "common/log_softmax.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/cpu_topk.h"
#include "ops/topk_check.h"

typedef struct topk_entry {
    uint32_t key;
    int32_t id;
    float value;
} topk_entry;

struct topk_job {
    size_t n, k;
    unsigned flags;
    const float *x;
    float *values;
    int32_t *ids;
};

/* Whether a ranks before b: larger key, then lower index. */
static int topk_before(uint32_t key, int32_t id, const topk_entry *b)
{
    return key > b->key || (key == b->key && id < b->id);
}

/* log_softmax's shift and normalizer for a row, or 0 when the row holds NaN/+inf or only -inf. */
static int row_normalizer(const float *row, size_t n, float *max_out, float *log_sum_out)
{
    float m = row[0];
    for (size_t i = 0; i < n; i++) {
        if (isnan(row[i]) || row[i] == INFINITY)
            return 0;
        if (row[i] > m)
            m = row[i];
    }
    if (m == -INFINITY)
        return 0;
    *max_out = m;
    *log_sum_out = emu2_log_sum_exp(row, n, m); /* as emu2_log_softmax */
    return 1;
}

static void topk_row(const struct topk_job *j, size_t r)
{
    const float *row = j->x + r * j->n;
    float *vals = j->values + r * j->k;
    int32_t *ids = j->ids + r * j->k;
    float m = 0.0f, log_sum = 0.0f;
    int log_form = (j->flags & EMU2_TOPK_LOG_SOFTMAX) != 0;
    if (log_form && !row_normalizer(row, j->n, &m, &log_sum)) {
        for (size_t i = 0; i < j->k; i++) {
            vals[i] = NAN;
            ids[i] = (int32_t)i;
        }
        return;
    }
    topk_entry best[EMU2_TOPK_MAX_K];
    size_t have = 0, k = j->k;
    for (size_t i = 0; i < j->n; i++) {
        float v = log_form ? (row[i] - m) - log_sum : row[i];
        uint32_t key = emu2_topk_key(v);
        int32_t id = (int32_t)i;
        if (have == k && !topk_before(key, id, &best[k - 1]))
            continue;
        size_t pos = have < k ? have++ : k - 1; /* when full, the k-th drops out */
        while (pos > 0 && topk_before(key, id, &best[pos - 1])) {
            best[pos] = best[pos - 1];
            pos--;
        }
        best[pos] = (topk_entry){key, id, v};
    }
    for (size_t i = 0; i < k; i++) {
        vals[i] = best[i].value;
        ids[i] = best[i].id;
    }
}

static void topk_rows(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    for (size_t r = r0; r < r1; r++)
        topk_row(p, r);
}

emu2_status cpu_top_k(emu2_backend *be, size_t rows, size_t n, const float *x, size_t k, unsigned flags,
                      float *values, int32_t *ids, emu2_error *err)
{
    emu2_status st = emu2_check_top_k_args(rows, n, x, k, flags, values, ids, err);
    if (st != EMU2_OK || rows == 0)
        return st;
    struct topk_job j = {n, k, flags, x, values, ids};
    cpu_parallel_for(cpu_of(be), rows, 1 + 16384 / n, topk_rows, &j);
    return EMU2_OK;
}
