/* conv2d.c: the CPU's part of conv2d (ops/conv2d_im2col.c runs the op): gathering the patches of
 * a chunk of output pixels in parallel, into a buffer of at most CONV_CHUNK_FLOATS. */
#include <stdlib.h>

#include "common/error.h"
#include "ops/conv2d_im2col.h"
#include "ops/cpu/cpu_diffusion.h"
#include "ops/cpu/cpu_internal.h"

#define CONV_CHUNK_FLOATS EMU2_CONV2D_MAX_K /* im2col buffer per chunk: 16 MiB (at least one patch) */

struct im2col_job {
    const emu2_conv2d_shape *s;
    const float *x;
    float *cols;
    size_t first; /* output pixel of row 0 of cols */
};

/* Row r of cols: for c, ky, kx: x[(oy*s - pad + ky), (ox*s - pad + kx), c] or 0 outside. */
static void im2col_range(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct im2col_job *j = p;
    const emu2_conv2d_shape *s = j->s;
    const size_t kk = s->k * s->k, K = s->K;
    for (size_t r = r0; r < r1; r++) {
        size_t o = j->first + r, oy = o / s->Wo, ox = o % s->Wo;
        float *row = j->cols + r * K;
        for (size_t ky = 0; ky < s->k; ky++) {
            long iy = (long)(oy * s->stride + ky) - (long)s->pad;
            for (size_t kx = 0; kx < s->k; kx++) {
                long ix = (long)(ox * s->stride + kx) - (long)s->pad;
                size_t at = ky * s->k + kx;
                if (iy < 0 || ix < 0 || iy >= (long)s->H || ix >= (long)s->W) {
                    for (size_t c = 0; c < s->C; c++)
                        row[c * kk + at] = 0.0f;
                    continue;
                }
                const float *src = j->x + ((size_t)iy * s->W + (size_t)ix) * s->C;
                for (size_t c = 0; c < s->C; c++)
                    row[c * kk + at] = src[c];
            }
        }
    }
}

static emu2_status cpu_im2col(emu2_backend *be, const emu2_conv2d_shape *s, const float *x, size_t first,
                              size_t rows, float *cols, emu2_error *err)
{
    (void)err;
    struct im2col_job j = {s, x, cols, first};
    cpu_parallel_for(cpu_of(be), rows, 1 + 4096 / s->K, im2col_range, &j);
    return EMU2_OK;
}

static float *cpu_cols_buffer(emu2_backend *be, size_t rows, size_t K, emu2_error *err)
{
    (void)be;
    float *cols = malloc(rows * K * sizeof *cols);
    if (!cols)
        emu2_fail(err, EMU2_ERR_NOMEM, "conv2d: out of memory for %zu x %zu patches", rows, K);
    return cols;
}

static void cpu_cols_release(emu2_backend *be, float *cols)
{
    (void)be;
    free(cols);
}

static const emu2_conv2d_impl cpu_conv2d_impl = {CONV_CHUNK_FLOATS, cpu_cols_buffer, cpu_cols_release, cpu_im2col};

emu2_status cpu_conv2d(emu2_backend *be, size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt,
                       const emu2_tensor_view *bias, size_t k, size_t stride, size_t pad, float *y, emu2_error *err)
{
    return emu2_conv2d_im2col_linear(be, &cpu_conv2d_impl, C, H, W, x, Wt, bias, k, stride, pad, y, err);
}
