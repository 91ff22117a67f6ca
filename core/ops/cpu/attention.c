/* attention.c: softmax(q.k^T * scale + masks) . v for every (batch, head, query) at once.
 * Two schedules, same math (scores f32, softmax with the max subtracted, sum in f32):
 *  - few queries (decode): one work item per query row of one head; dot products against each
 *    visible key, then out = sum_j p_j v_j. Items are head-major, so a thread's chunk shares keys.
 *  - many queries (prefill, the vision tower): one item per (head, chunk of queries); the head's
 *    keys are transposed and its values copied into 64-column panels once per item, then scores
 *    and p.v are small GEMMs (gemm_nn) over blocks of 64 queries.
 * Masked keys get probability 0: exp(finfo.min - max) is exactly 0 in the reference too. */
#include <math.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/cpu_internal.h"

#define BLOCK_Q 64      /* queries per score block on the blocked schedule */
#define PANEL 64        /* columns per packed key/value panel (gemm_nn's widest tile) */
#define BLOCKED_MIN_Q 8 /* from this many queries on, the blocked schedule is used */

struct attn_job {
    const emu2_attention_args *a;
    const cpu_kernels *k;
    float *scratch;
    size_t scratch_stride;
    size_t kv_pad;  /* blocked: row length of the score rows and key panels (multiple of PANEL) */
    size_t q_chunk; /* blocked: queries per work item (multiple of BLOCK_Q) */
    size_t n_chunks;
};

/* Scores of one query row (visible keys [0, vis)) to probabilities, in place; masked keys and
 * keys in [vis, width) get 0. Returns 0 when no key is usable (the row is then all zeros). */
static int probabilities(const cpu_kernels *k, float *row, size_t vis, size_t width, const uint8_t *mask, float scale)
{
    float max = -INFINITY;
    for (size_t t = 0; t < vis; t++) {
        float s = mask && !mask[t] ? -INFINITY : row[t] * scale;
        row[t] = s;
        max = s > max ? s : max;
    }
    for (size_t t = vis; t < width; t++)
        row[t] = 0.0f;
    if (max == -INFINITY) {
        memset(row, 0, vis * sizeof(float));
        return 0;
    }
    float inv = 1.0f / k->exp_sum(row, vis, max);
    for (size_t t = 0; t < vis; t++)
        row[t] *= inv;
    return 1;
}

static void attn_items(void *p, size_t it0, size_t it1, int thread)
{
    const struct attn_job *j = p;
    const emu2_attention_args *a = j->a;
    float *scores = j->scratch + (size_t)thread * j->scratch_stride;
    size_t hd = a->head_dim;
    for (size_t it = it0; it < it1; it++) {
        size_t i = it % a->q_len, bh = it / a->q_len;
        size_t h = bh % a->n_heads, b = bh / a->n_heads;
        const float *q = a->q + b * a->q_batch_stride + i * a->q_stride + h * hd;
        const float *kb = a->k + b * a->kv_batch_stride + h * hd;
        const float *vb = a->v + b * a->kv_batch_stride + h * hd;
        const uint8_t *mask = a->key_mask ? a->key_mask + b * a->kv_len : NULL;
        float *out = a->out + b * a->out_batch_stride + i * a->out_stride + h * hd;
        size_t visible = a->causal ? a->q_offset + i + 1 : a->kv_len;
        if (visible > a->kv_len)
            visible = a->kv_len;
        for (size_t t = 0; t < visible; t++)
            scores[t] = mask && !mask[t] ? 0.0f : j->k->dot(q, kb + t * a->k_stride, hd);
        if (!probabilities(j->k, scores, visible, visible, mask, a->scale)) {
            memset(out, 0, hd * sizeof(float)); /* no usable key (a left-padding row): zeros */
            continue;
        }
        if (!mask || memchr(mask, 0, visible) == NULL) {
            /* out = p . V as a one-row GEMM: out stays in registers over all keys (one multiply-add
             * per key and element, in key order, as the per-key axpy below, without its loads and
             * stores of out) */
            j->k->gemm_nn(1, hd, visible, scores, visible, vb, a->v_stride, out, hd, 0);
            continue;
        }
        /* masked keys are skipped, not multiplied by 0: their values need not be finite */
        memset(out, 0, hd * sizeof(float));
        for (size_t t = 0; t < visible; t++)
            if (scores[t] != 0.0f)
                j->k->axpy(scores[t], vb + t * a->v_stride, out, hd);
    }
}

/* Blocked schedule: item = (batch*head, chunk of q_chunk queries). */
static void attn_blocks(void *p, size_t it0, size_t it1, int thread)
{
    const struct attn_job *j = p;
    const emu2_attention_args *a = j->a;
    size_t hd = a->head_dim, tp = j->kv_pad, hd_panels = (hd + PANEL - 1) / PANEL;
    float *kt = j->scratch + (size_t)thread * j->scratch_stride; /* [tp/PANEL][hd][PANEL]: keys^T */
    float *vp = kt + tp * hd;                                     /* [hd_panels][tp][PANEL]: values */
    float *sc = vp + hd_panels * PANEL * tp;                      /* [BLOCK_Q][tp]: scores */
    for (size_t it = it0; it < it1; it++) {
        size_t qc = it % j->n_chunks, bh = it / j->n_chunks;
        size_t h = bh % a->n_heads, b = bh / a->n_heads;
        size_t c0 = qc * j->q_chunk, c1 = c0 + j->q_chunk < a->q_len ? c0 + j->q_chunk : a->q_len;
        size_t vis_chunk = a->causal ? a->q_offset + c1 : a->kv_len;
        if (vis_chunk > a->kv_len)
            vis_chunk = a->kv_len;
        const float *q = a->q + b * a->q_batch_stride + h * hd;
        const float *kb = a->k + b * a->kv_batch_stride + h * hd;
        const float *vb = a->v + b * a->kv_batch_stride + h * hd;
        const uint8_t *mask = a->key_mask ? a->key_mask + b * a->kv_len : NULL;
        float *out = a->out + b * a->out_batch_stride + h * hd;

        for (size_t t0 = 0; t0 < vis_chunk; t0 += PANEL) { /* keys^T, one panel of keys at a time */
            size_t tn = vis_chunk - t0 < PANEL ? vis_chunk - t0 : PANEL;
            float *panel = kt + t0 * hd;
            for (size_t t = 0; t < tn; t++) {
                const float *kr = kb + (t0 + t) * a->k_stride;
                for (size_t e = 0; e < hd; e++)
                    panel[e * PANEL + t] = kr[e];
            }
        }
        for (size_t t = 0; t < vis_chunk; t++) {
            const float *vr = vb + t * a->v_stride;
            for (size_t d = 0; d < hd_panels; d++) {
                size_t dn = hd - d * PANEL < PANEL ? hd - d * PANEL : PANEL;
                memcpy(vp + (d * tp + t) * PANEL, vr + d * PANEL, dn * sizeof(float));
            }
        }
        for (size_t i0 = c0; i0 < c1; i0 += BLOCK_Q) {
            size_t i1 = i0 + BLOCK_Q < c1 ? i0 + BLOCK_Q : c1;
            size_t vis_max = a->causal ? a->q_offset + i1 : a->kv_len;
            if (vis_max > a->kv_len)
                vis_max = a->kv_len;
            for (size_t i = i0; i < i1; i += 4) {
                size_t mr = i1 - i < 4 ? i1 - i : 4;
                for (size_t t0 = 0; t0 < vis_max; t0 += PANEL) {
                    size_t tn = vis_max - t0 < PANEL ? vis_max - t0 : PANEL;
                    j->k->gemm_nn(mr, tn, hd, q + i * a->q_stride, a->q_stride, kt + t0 * hd, PANEL,
                                  sc + (i - i0) * tp + t0, tp, 0);
                }
            }
            for (size_t i = i0; i < i1; i++) {
                size_t vis = a->causal ? a->q_offset + i + 1 : a->kv_len;
                probabilities(j->k, sc + (i - i0) * tp, vis < vis_max ? vis : vis_max, vis_max, mask, a->scale);
            }
            for (size_t i = i0; i < i1; i += 4) {
                size_t mr = i1 - i < 4 ? i1 - i : 4;
                for (size_t d = 0; d < hd_panels; d++) {
                    size_t dn = hd - d * PANEL < PANEL ? hd - d * PANEL : PANEL;
                    j->k->gemm_nn(mr, dn, vis_max, sc + (i - i0) * tp, tp, vp + d * tp * PANEL, PANEL,
                                  out + i * a->out_stride + d * PANEL, a->out_stride, 0);
                }
            }
        }
    }
}

emu2_status cpu_attention(emu2_backend *be, const emu2_attention_args *a, emu2_error *err)
{
    static const char op[] = "attention";
    size_t items;
    emu2_status st = emu2_check_attention_args(a, &items, err);
    if (st != EMU2_OK)
        return st;

    cpu_backend *cb = cpu_of(be);
    struct attn_job j = {a, cb->k, NULL, 0, (a->kv_len + PANEL - 1) / PANEL * PANEL, 0, 0};
    if (a->q_len < BLOCKED_MIN_Q) {
        j.scratch = cpu_scratch(cb, a->kv_len, err);
        if (!j.scratch)
            return err ? err->status : EMU2_ERR_NOMEM;
        j.scratch_stride = cpu_scratch_stride(cb);
        cpu_parallel_for(cb, items, 1 + 65536 / (a->kv_len * a->head_dim + 1), attn_items, &j);
        return EMU2_OK;
    }
    size_t per_thread;
    size_t hd_cols = (a->head_dim + PANEL - 1) / PANEL * PANEL; /* keys^T + value panels + scores */
    if (!emu2_add_size(a->head_dim, hd_cols, &per_thread) || !emu2_add_size(per_thread, BLOCK_Q, &per_thread) ||
        !emu2_mul_size(per_thread, j.kv_pad, &per_thread))
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: scratch for %zu keys overflows", op, a->kv_len);
    j.scratch = cpu_scratch(cb, per_thread, err);
    if (!j.scratch)
        return err ? err->status : EMU2_ERR_NOMEM;
    j.scratch_stride = cpu_scratch_stride(cb);
    /* one item per head packs its keys and values once; heads are split into query chunks only
     * when there are too few of them to give every thread ~4 items */
    size_t n_qb = (a->q_len + BLOCK_Q - 1) / BLOCK_Q, heads = a->batch * a->n_heads;
    size_t want = 4 * (size_t)cb->base.threads, chunks = heads >= want ? 1 : (want + heads - 1) / heads;
    if (chunks > n_qb)
        chunks = n_qb;
    j.q_chunk = (n_qb + chunks - 1) / chunks * BLOCK_Q;
    j.n_chunks = (a->q_len + j.q_chunk - 1) / j.q_chunk;
    cpu_parallel_for(cb, heads * j.n_chunks, 1, attn_blocks, &j);
    return EMU2_OK;
}
