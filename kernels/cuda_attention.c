/* cuda_attention.c: attention's launch after the shared argument checks (ops/op_checks.c); the
 * key mask is staged to the device. */
#include "common/error.h"
#include "cuda_internal.h"

emu2_status cuda_attention(emu2_backend *be, const emu2_attention_args *a, emu2_error *err)
{
    static const char op[] = "attention";
    emu2_status st = emu2_check_attention_args(a, NULL, err);
    if (st != EMU2_OK)
        return st;
    size_t mask_n = a->batch * a->kv_len; /* checked not to overflow */

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
