/* cuda_rows.c: argument checks and launches of the row ops: norms, softmaxes, elementwise, rope.
 * The checks and messages are the CPU backend's (core/ops/cpu/), so both fail alike. */
#include <math.h>

#include "common/error.h"
#include "cuda_internal.h"

#define ROPE_MAX_HALF 512

static emu2_status check_n(const char *op, size_t n, const void *a, const void *b, const void *y, emu2_error *err)
{
    if (n == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no elements", op);
    if (!a || !b || !y)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL buffer", op);
    if (n > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu elements is too many", op, n);
    return EMU2_OK;
}

emu2_status cuda_gelu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err)
{
    emu2_status st = check_n("gelu", n, x, x, y, err);
    return st ? st : cuda_launched(err, emu2k_gelu(cuda_stream_of(be), n, x, y), "gelu");
}

emu2_status cuda_silu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = check_n("silu_mul", n, a, b, y, err);
    return st ? st : cuda_launched(err, emu2k_silu_mul(cuda_stream_of(be), n, a, b, y), "silu_mul");
}

emu2_status cuda_add(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = check_n("add", n, a, b, y, err);
    return st ? st : cuda_launched(err, emu2k_add(cuda_stream_of(be), n, a, b, y), "add");
}

static emu2_status check_rows(const char *op, size_t rows, size_t n, const float *x, const float *y, float eps,
                              emu2_error *err)
{
    if (rows == 0 || n == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape rows=%zu n=%zu", op, rows, n);
    if (!x || !y)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL x or y", op);
    if (!(eps >= 0) || isinf(eps))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: eps must be a finite value >= 0", op);
    if (rows > SIZE_MAX / 4 / n)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu x %zu is too large", op, rows, n);
    return EMU2_OK;
}

emu2_status cuda_layernorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                           const emu2_tensor_view *bias, float eps, float *y, emu2_error *err)
{
    emu2_status st = check_rows("layernorm", rows, n, x, y, eps, err);
    if (st == EMU2_OK)
        st = cuda_check_vector("layernorm", "weight", weight, n, 1, err);
    if (st == EMU2_OK)
        st = cuda_check_vector("layernorm", "bias", bias, n, 0, err);
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
    emu2_status st = check_rows("rmsnorm", rows, n, x, y, eps, err);
    if (st == EMU2_OK)
        st = cuda_check_vector("rmsnorm", "weight", weight, n, 1, err);
    if (st != EMU2_OK)
        return st;
    return cuda_launched(
        err, emu2k_rmsnorm(cuda_stream_of(be), rows, n, x, weight->data, (int)weight->dtype, eps, y), "rmsnorm");
}

static emu2_status softmax_common(emu2_backend *be, const char *op, size_t rows, size_t n, const float *x, float *y,
                                  int log_form, emu2_error *err)
{
    if (rows == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no rows", op);
    emu2_status st = check_n(op, n, x, x, y, err);
    if (st != EMU2_OK)
        return st;
    if (rows > SIZE_MAX / 4 / n)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu x %zu is too large", op, rows, n);
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
    if (rows == 0 || n_heads == 0 || head_dim == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape", op);
    if (!x || !positions)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL x or positions", op);
    if (head_dim % 2 || head_dim / 2 > ROPE_MAX_HALF)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: head_dim %zu must be even and at most %d", op, head_dim,
                         2 * ROPE_MAX_HALF);
    if (n_heads > SIZE_MAX / head_dim || stride < n_heads * head_dim)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: row stride %zu is narrower than %zu heads x %zu", op,
                         stride, n_heads, head_dim);
    if (rows - 1 > (SIZE_MAX / 4 - n_heads * head_dim) / stride)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (!(theta > 1.0f) || isinf(theta))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: theta must be finite and > 1", op);
    if (flags & ~EMU2_ROPE_TABLE_BF16)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", op, flags);
    for (size_t r = 0; r < rows; r++)
        if (positions[r] < 0)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: position %d of row %zu is negative", op,
                             (int)positions[r], r);
    float inv_freq[ROPE_MAX_HALF];
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) /* f32 steps, as torch (and the CPU backend) does them */
        inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
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
