/* cuda_attention.c: argument checks of attention (the CPU backend's rules) and the launch; the
 * key mask is staged to the device. */
#include <math.h>

#include "common/checked.h"
#include "common/error.h"
#include "cuda_internal.h"

static int extent(size_t batch, size_t bstride, size_t rows, size_t rstride, size_t w, size_t *out)
{
    size_t e1, e2;
    return emu2_mul_size(batch - 1, bstride, &e1) && emu2_mul_size(rows - 1, rstride, &e2) &&
           emu2_add_size(e1, e2, &e1) && emu2_add_size(e1, w, out) && *out <= SIZE_MAX / 4;
}

emu2_status cuda_attention(emu2_backend *be, const emu2_attention_args *a, emu2_error *err)
{
    static const char op[] = "attention";
    if (!a)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL arguments", op);
    if (!a->batch || !a->n_heads || !a->head_dim || !a->q_len || !a->kv_len)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "%s: empty shape batch=%zu heads=%zu head_dim=%zu q_len=%zu kv_len=%zu", op, a->batch,
                         a->n_heads, a->head_dim, a->q_len, a->kv_len);
    if (!a->q || !a->k || !a->v || !a->out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL q, k, v or out", op);
    size_t width;
    if (!emu2_mul_size(a->n_heads, a->head_dim, &width))
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: heads x head_dim overflows", op);
    if (a->q_stride < width || a->k_stride < width || a->v_stride < width || a->out_stride < width)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: a row stride is narrower than heads x head_dim = %zu",
                         op, width);
    if (a->causal && (a->q_offset > a->kv_len || a->q_len > a->kv_len - a->q_offset))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: causal queries at %zu..%zu run past the %zu keys", op,
                         a->q_offset, a->q_offset + a->q_len, a->kv_len);
    if (!(a->scale == a->scale) || isinf(a->scale))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: scale is not finite", op);
    size_t qn, kn, vn, on, items, mask_n = 0;
    if (!extent(a->batch, a->q_batch_stride, a->q_len, a->q_stride, width, &qn) ||
        !extent(a->batch, a->kv_batch_stride, a->kv_len, a->k_stride, width, &kn) ||
        !extent(a->batch, a->kv_batch_stride, a->kv_len, a->v_stride, width, &vn) ||
        !extent(a->batch, a->out_batch_stride, a->q_len, a->out_stride, width, &on) ||
        !emu2_mul_size(a->batch * a->n_heads, a->q_len, &items) || a->batch > SIZE_MAX / a->n_heads ||
        !emu2_mul_size(a->batch, a->kv_len, &mask_n))
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (cuda_overlaps(a->out, on, a->q, qn) || cuda_overlaps(a->out, on, a->k, kn) ||
        cuda_overlaps(a->out, on, a->v, vn))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: out overlaps q, k or v", op);

    cuda_backend *cb = cuda_of(be);
    cuda_use(cb);
    emu2k_attention k = {
        .batch = a->batch, .n_heads = a->n_heads, .head_dim = a->head_dim, .q_len = a->q_len,
        .kv_len = a->kv_len, .q_offset = a->q_offset, .causal = a->causal, .scale = a->scale,
        .q = a->q, .k = a->k, .v = a->v, .out = a->out,
        .q_stride = a->q_stride, .k_stride = a->k_stride, .v_stride = a->v_stride, .out_stride = a->out_stride,
        .q_batch_stride = a->q_batch_stride, .kv_batch_stride = a->kv_batch_stride,
        .out_batch_stride = a->out_batch_stride, .key_mask = NULL,
    };
    const char *why = emu2k_attention_unsupported(&k, cb->max_smem_optin);
    if (why)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: %s (batch=%zu heads=%zu head_dim=%zu q_len=%zu kv_len=%zu)",
                         op, why, a->batch, a->n_heads, a->head_dim, a->q_len, a->kv_len);
    if (a->key_mask && !(k.key_mask = cuda_stage(cb, a->key_mask, mask_n, err)))
        return err ? err->status : EMU2_ERR_INTERNAL;
    return cuda_launched(err, emu2k_attention_run(cb->stream, &k, cb->max_smem_optin), op);
}
