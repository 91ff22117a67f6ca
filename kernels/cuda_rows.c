/* cuda_rows.c: launches of the row ops (norms, softmaxes, elementwise, rope) after the argument
 * checks both backends share (ops/op_checks.c), so both fail alike. */
#include "common/error.h"
#include "cuda_internal.h"

emu2_status cuda_gelu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_elementwise_args("gelu", n, x, x, y, err);
    return st ? st : cuda_launched(err, emu2k_gelu(cuda_stream_of(be), n, x, y), "gelu");
}

emu2_status cuda_silu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_elementwise_args("silu_mul", n, a, b, y, err);
    return st ? st : cuda_launched(err, emu2k_silu_mul(cuda_stream_of(be), n, a, b, y), "silu_mul");
}

emu2_status cuda_add(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_elementwise_args("add", n, a, b, y, err);
    return st ? st : cuda_launched(err, emu2k_add(cuda_stream_of(be), n, a, b, y), "add");
}

emu2_status cuda_layernorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                           const emu2_tensor_view *bias, float eps, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_norm_args("layernorm", rows, n, x, y, eps, weight, bias, cuda_is_device_ptr, err);
    if (st != EMU2_OK)
        return st;
    return cuda_launched(err,
                         emu2k_layernorm(cuda_stream_of(be), rows, n, x, weight->data, (int)weight->dtype,
                                         bias ? bias->data : NULL, bias ? (int)bias->dtype : 0, eps, y),
                         "layernorm");
}

emu2_status cuda_rmsnorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                         float eps, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_norm_args("rmsnorm", rows, n, x, y, eps, weight, NULL, cuda_is_device_ptr, err);
    if (st != EMU2_OK)
        return st;
    return cuda_launched(
        err, emu2k_rmsnorm(cuda_stream_of(be), rows, n, x, weight->data, (int)weight->dtype, eps, y), "rmsnorm");
}

static emu2_status softmax_common(emu2_backend *be, const char *op, size_t rows, size_t n, const float *x, float *y,
                                  int log_form, emu2_error *err)
{
    emu2_status st = emu2_check_softmax_args(op, rows, n, x, y, err);
    if (st != EMU2_OK)
        return st;
    return cuda_launched(err, emu2k_softmax(cuda_stream_of(be), rows, n, x, y, log_form), op);
}

emu2_status cuda_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err)
{
    return softmax_common(be, "softmax", rows, n, x, y, 0, err);
}

emu2_status cuda_log_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err)
{
    return softmax_common(be, "log_softmax", rows, n, x, y, 1, err);
}

emu2_status cuda_rope(emu2_backend *be, size_t rows, size_t n_heads, size_t head_dim, float *x, size_t stride,
                      const int32_t *positions, float theta, unsigned flags, emu2_error *err)
{
    static const char op[] = "rope";
    emu2_status st = emu2_check_rope_args(rows, n_heads, head_dim, x, stride, positions, theta, flags, err);
    if (st != EMU2_OK)
        return st;
    float inv_freq[EMU2_ROPE_MAX_HALF];
    size_t half = head_dim / 2;
    emu2_rope_inv_freq(theta, head_dim, inv_freq); /* on the host, as the CPU backend does */
    cuda_backend *cb = cuda_of(be);
    const int32_t *dpos = cuda_stage(cb, positions, rows * sizeof *positions, err);
    const float *dfreq = dpos ? cuda_stage(cb, inv_freq, half * sizeof *inv_freq, err) : NULL;
    if (!dpos || !dfreq)
        return err ? err->status : EMU2_ERR_INTERNAL;
    return cuda_launched(err,
                         emu2k_rope(cb->stream, rows, n_heads, head_dim, x, stride, dpos, dfreq,
                                    (flags & EMU2_ROPE_TABLE_BF16) != 0),
                         op);
}
