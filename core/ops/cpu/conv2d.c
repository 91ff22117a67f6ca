/* conv2d.c: 2-D convolution as im2col + the linear kernels. Output pixels are taken in chunks: each
 * chunk's patches ([rows, C*k*k], in the flattening order of a Conv2d weight) are gathered in
 * parallel, then one cpu_linear multiplies them by the weight viewed as [O, C*k*k]. */
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/cpu_diffusion.h"
#include "ops/cpu/cpu_internal.h"

#define CONV_CHUNK_FLOATS ((size_t)4 << 20) /* im2col buffer per chunk: 16 MiB */

struct im2col_job {
    const float *x;
    float *cols;
    size_t C, H, W, Wo, k, stride, pad;
    size_t first; /* output pixel of row 0 of cols */
};

/* Row r of cols: for c, ky, kx: x[(oy*s - pad + ky), (ox*s - pad + kx), c] or 0 outside. */
static void im2col_range(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct im2col_job *j = p;
    const size_t kk = j->k * j->k, K = j->C * kk;
    for (size_t r = r0; r < r1; r++) {
        size_t o = j->first + r, oy = o / j->Wo, ox = o % j->Wo;
        float *row = j->cols + r * K;
        for (size_t ky = 0; ky < j->k; ky++) {
            long iy = (long)(oy * j->stride + ky) - (long)j->pad;
            for (size_t kx = 0; kx < j->k; kx++) {
                long ix = (long)(ox * j->stride + kx) - (long)j->pad;
                size_t at = ky * j->k + kx;
                if (iy < 0 || ix < 0 || iy >= (long)j->H || ix >= (long)j->W) {
                    for (size_t c = 0; c < j->C; c++)
                        row[c * kk + at] = 0.0f;
                    continue;
                }
                const float *src = j->x + ((size_t)iy * j->W + (size_t)ix) * j->C;
                for (size_t c = 0; c < j->C; c++)
                    row[c * kk + at] = src[c];
            }
        }
    }
}

emu2_status cpu_conv2d(emu2_backend *be, size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt,
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
    size_t K, n_out;
    if (!emu2_mul_size(C, k * k, &K) || !emu2_mul_size(Ho, Wo, &n_out) || K > CONV_CHUNK_FLOATS)
        return emu2_fail(err, EMU2_ERR_LIMIT, "conv2d: %zu input channels x %zux%zu kernel is too large", C, k, k);
    emu2_op_weight mat;
    memset(&mat, 0, sizeof mat);
    mat.w = *w4;
    mat.w.ndim = 2;
    mat.w.shape[1] = (int64_t)K;
    mat.w.shape[2] = mat.w.shape[3] = 0;
    if (k == 1 && stride == 1 && pad == 0) /* a 1x1 convolution is a linear layer on the pixels */
        return cpu_linear(be, n_out, C, O, x, C, &mat, bias, y, O, err);

    size_t chunk = CONV_CHUNK_FLOATS / K;
    if (chunk > n_out)
        chunk = n_out;
    float *cols = malloc(chunk * K * sizeof *cols);
    if (!cols)
        return emu2_fail(err, EMU2_ERR_NOMEM, "conv2d: out of memory for %zu x %zu patches", chunk, K);
    struct im2col_job j = {x, cols, C, H, W, Wo, k, stride, pad, 0};
    emu2_status st = EMU2_OK;
    for (size_t first = 0; first < n_out && st == EMU2_OK; first += chunk) {
        size_t rows = n_out - first < chunk ? n_out - first : chunk;
        j.first = first;
        cpu_parallel_for(cpu_of(be), rows, 1 + 4096 / K, im2col_range, &j);
        st = cpu_linear(be, rows, K, O, cols, K, &mat, bias, y + first * O, O, err);
    }
    free(cols);
    return st;
}
