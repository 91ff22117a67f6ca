/* cuda_diffusion.c: argument checks (the CPU backend's rules, core/ops/cpu/conv2d.c, groupnorm.c,
 * diffusion_elementwise.c) and launches of the Emu2-Gen ops. conv2d is im2col in chunks of output
 * pixels (patches bounded to IM2COL_MAX_FLOATS) followed by cuda_linear on the weight viewed as
 * [O, C*k*k]; a 1x1 stride-1 convolution is the linear directly. */
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "cuda_internal.h"

#define IM2COL_MAX_FLOATS ((size_t)64 << 20) /* 256 MiB of patches per chunk */
#define CONV_MAX_K ((size_t)4 << 20)

emu2_status cuda_conv2d(emu2_backend *be, size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt,
                        const emu2_tensor_view *bias, size_t k, size_t stride, size_t pad, float *y, emu2_error *err)
{
    if (!x || !y || !Wt)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "conv2d: NULL x, y or weight");
    if (!C || !H || !W || !k || !stride || k > 64 || pad > 64)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "conv2d: bad geometry C=%zu H=%zu W=%zu k=%zu stride=%zu pad=%zu",
                         C, H, W, k, stride, pad);
    if (H + 2 * pad < k || W + 2 * pad < k)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "conv2d: kernel %zu is larger than the padded %zux%zu input", k,
                         H, W);
    const emu2_tensor_view *w4 = &Wt->w;
    if (Wt->format != EMU2_WEIGHT_FLOAT || w4->ndim != 4 || w4->shape[1] != (int64_t)C || w4->shape[2] != (int64_t)k ||
        w4->shape[3] != (int64_t)k || w4->shape[0] <= 0)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "conv2d: weight must be a float [O, %zu, %zu, %zu] tensor", C, k, k);
    const size_t O = (size_t)w4->shape[0], Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1;
    size_t K, n_out, in_n;
    if (!emu2_mul_size(C, k * k, &K) || !emu2_mul_size(Ho, Wo, &n_out) || K > CONV_MAX_K ||
        !emu2_mul_size(H * W, C, &in_n) || in_n > SIZE_MAX / 8)
        return emu2_fail(err, EMU2_ERR_LIMIT, "conv2d: %zu input channels x %zux%zu kernel is too large", C, k, k);
    emu2_op_weight mat;
    memset(&mat, 0, sizeof mat);
    mat.w = *w4;
    mat.w.ndim = 2;
    mat.w.shape[1] = (int64_t)K;
    mat.w.shape[2] = mat.w.shape[3] = 0;
    if (k == 1 && stride == 1 && pad == 0) /* a 1x1 convolution is a linear layer on the pixels */
        return cuda_linear(be, n_out, C, O, x, C, &mat, bias, y, O, err);
    cuda_backend *cb = cuda_of(be);
    cuda_use(cb);
    size_t chunk = IM2COL_MAX_FLOATS / K;
    if (chunk > n_out)
        chunk = n_out;
    float *cols = cuda_scratch(cb, CUDA_SCRATCH_IM2COL, chunk * K * sizeof *cols, err);
    if (!cols)
        return err ? err->status : EMU2_ERR_NOMEM;
    emu2_status st = EMU2_OK;
    for (size_t first = 0; first < n_out && st == EMU2_OK; first += chunk) {
        size_t rows = n_out - first < chunk ? n_out - first : chunk;
        st = cuda_launched(err, emu2k_im2col(cb->stream, C, H, W, Wo, k, stride, pad, first, rows, x, cols),
                           "conv2d (im2col)");
        if (st == EMU2_OK)
            st = cuda_linear(be, rows, K, O, cols, K, &mat, bias, y + first * O, O, err);
    }
    return st;
}

emu2_status cuda_group_norm(emu2_backend *be, size_t rows, size_t C, size_t groups, const float *x,
                            const emu2_tensor_view *weight, const emu2_tensor_view *bias, float eps, int apply_silu,
                            float *y, emu2_error *err)
{
    if (!x || !y)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "group_norm: NULL buffer");
    if (!rows || !C || !groups || C % groups)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "group_norm: %zu channels do not split into %zu groups", C,
                         groups);
    if (!(eps >= 0.0f))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "group_norm: eps must be >= 0");
    if (rows > SIZE_MAX / 8 / C || groups > 0x7fffffffu)
        return emu2_fail(err, EMU2_ERR_LIMIT, "group_norm: %zu rows of %zu is too large", rows, C);
    emu2_status st = cuda_check_vector("group_norm", "weight", weight, C, 1, err);
    if (st == EMU2_OK)
        st = cuda_check_vector("group_norm", "bias", bias, C, 0, err);
    if (st != EMU2_OK)
        return st;
    cuda_backend *cb = cuda_of(be);
    cuda_use(cb);
    void *stats = cuda_scratch(cb, CUDA_SCRATCH_STATS, groups * (sizeof(double) + 2 * sizeof(float)), err);
    if (!stats)
        return err ? err->status : EMU2_ERR_NOMEM;
    if ((st = cuda_launched(err, emu2k_group_stats(cb->stream, rows, C, groups, x, eps, stats), "group_norm")))
        return st;
    return cuda_launched(err,
                         emu2k_group_apply(cb->stream, rows, C, groups, x, stats, weight->data, (int)weight->dtype,
                                           bias ? bias->data : NULL, bias ? (int)bias->dtype : 0, apply_silu, y),
                         "group_norm");
}

static emu2_status check_buffers(const char *op, size_t n, const void *a, const void *b, const void *y,
                                 emu2_error *err)
{
    if (n == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no elements", op);
    if (!a || !b || !y)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL buffer", op);
    if (n > SIZE_MAX / 8)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu elements is too many", op, n);
    return EMU2_OK;
}

emu2_status cuda_upsample_nearest(emu2_backend *be, size_t C, size_t H, size_t W, size_t Ho, size_t Wo,
                                  const float *x, float *y, emu2_error *err)
{
    if (!C || !H || !W || !Ho || !Wo || Ho > SIZE_MAX / Wo || Ho * Wo > SIZE_MAX / 8 / C)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "upsample_nearest: bad sizes %zux%zu -> %zux%zu x %zu", H, W,
                         Ho, Wo, C);
    emu2_status st = check_buffers("upsample_nearest", C, x, x, y, err);
    if (st != EMU2_OK)
        return st;
    return cuda_launched(err, emu2k_upsample_nearest(cuda_stream_of(be), C, H, W, Ho, Wo, x, y), "upsample_nearest");
}

emu2_status cuda_silu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err)
{
    emu2_status st = check_buffers("silu", n, x, x, y, err);
    return st ? st : cuda_launched(err, emu2k_silu(cuda_stream_of(be), n, x, y), "silu");
}

emu2_status cuda_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = check_buffers("mul", n, a, b, y, err);
    return st ? st : cuda_launched(err, emu2k_mul(cuda_stream_of(be), n, a, b, y), "mul");
}

emu2_status cuda_add_row_vector(emu2_backend *be, size_t rows, size_t n, const float *x, const float *v, float *y,
                                emu2_error *err)
{
    emu2_status st = check_buffers("add_row_vector", n, x, v, y, err);
    if (st == EMU2_OK && (!rows || rows > SIZE_MAX / 8 / n))
        st = emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "add_row_vector: %zu rows of %zu", rows, n);
    return st ? st : cuda_launched(err, emu2k_add_row_vector(cuda_stream_of(be), rows, n, x, v, y), "add_row_vector");
}
