/* cuda_diffusion.c: launches of the Emu2-Gen ops after the shared argument checks
 * (ops/op_checks.c). conv2d runs as ops/conv2d_im2col.c lays out: im2col kernels in chunks of
 * output pixels (patches bounded to IM2COL_MAX_FLOATS), each followed by cuda_linear. */
#include "common/error.h"
#include "cuda_internal.h"
#include "ops/conv2d_im2col.h"

#define IM2COL_MAX_FLOATS ((size_t)64 << 20) /* 256 MiB of patches per chunk */

static emu2_status cuda_im2col(emu2_backend *be, const emu2_conv2d_shape *s, const float *x, size_t first,
                               size_t rows, float *cols, emu2_error *err)
{
    return cuda_launched(err,
                         emu2k_im2col(cuda_stream_of(be), s->C, s->H, s->W, s->Wo, s->k, s->stride, s->pad, first,
                                      rows, x, cols),
                         "conv2d (im2col)");
}

/* The backend's im2col scratch slot (kept for later calls). */
static float *cuda_cols_buffer(emu2_backend *be, size_t rows, size_t K, emu2_error *err)
{
    cuda_backend *cb = cuda_of(be);
    cuda_use(cb);
    return cuda_scratch(cb, CUDA_SCRATCH_IM2COL, rows * K * sizeof(float), err);
}

static const emu2_conv2d_impl cuda_conv2d_impl = {IM2COL_MAX_FLOATS, cuda_cols_buffer, NULL, cuda_im2col};

emu2_status cuda_conv2d(emu2_backend *be, size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt,
                        const emu2_tensor_view *bias, size_t k, size_t stride, size_t pad, float *y, emu2_error *err)
{
    return emu2_conv2d_im2col_linear(be, &cuda_conv2d_impl, C, H, W, x, Wt, bias, k, stride, pad, y, err);
}

emu2_status cuda_group_norm(emu2_backend *be, size_t rows, size_t C, size_t groups, const float *x,
                            const emu2_tensor_view *weight, const emu2_tensor_view *bias, float eps, int apply_silu,
                            float *y, emu2_error *err)
{
    emu2_status st =
        emu2_check_group_norm_args(rows, C, groups, x, y, eps, weight, bias, cuda_is_device_ptr, err);
    if (st != EMU2_OK)
        return st;
    if (groups > 0x7fffffffu) /* the statistics kernels index groups with int */
        return emu2_fail(err, EMU2_ERR_LIMIT, "group_norm: %zu rows of %zu is too large", rows, C);
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

emu2_status cuda_upsample_nearest(emu2_backend *be, size_t C, size_t H, size_t W, size_t Ho, size_t Wo,
                                  const float *x, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_upsample_args(C, H, W, Ho, Wo, x, y, err);
    if (st != EMU2_OK)
        return st;
    return cuda_launched(err, emu2k_upsample_nearest(cuda_stream_of(be), C, H, W, Ho, Wo, x, y), "upsample_nearest");
}

emu2_status cuda_silu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_diffusion_elementwise_args("silu", n, x, x, y, err);
    return st ? st : cuda_launched(err, emu2k_silu(cuda_stream_of(be), n, x, y), "silu");
}

emu2_status cuda_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_diffusion_elementwise_args("mul", n, a, b, y, err);
    return st ? st : cuda_launched(err, emu2k_mul(cuda_stream_of(be), n, a, b, y), "mul");
}

emu2_status cuda_add_row_vector(emu2_backend *be, size_t rows, size_t n, const float *x, const float *v, float *y,
                                emu2_error *err)
{
    emu2_status st = emu2_check_add_row_vector_args(rows, n, x, v, y, err);
    return st ? st : cuda_launched(err, emu2k_add_row_vector(cuda_stream_of(be), rows, n, x, v, y), "add_row_vector");
}
