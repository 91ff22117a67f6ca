/* groupnorm.c: GroupNorm over token-major feature maps [rows, C] (optionally followed by SiLU).
 * Two-pass statistics in double: per block of GN_BLOCK rows, each group's sum (then sum of squared
 * deviations) goes to its own slot, and the slots are added in block order, so the result does not
 * depend on how threads took the blocks. Then every row is normalized (rows read contiguously). */
#include <math.h>
#include <stdlib.h>

#include "common/error.h"
#include "ops/cpu/cpu_diffusion.h"
#include "ops/cpu/cpu_internal.h"

#define GN_BLOCK 64

struct gn_job {
    size_t rows, C, G, cg;
    const float *x;
    const float *gamma, *beta; /* [C] as f32 */
    double *partial;           /* [blocks, G] */
    const double *mean;        /* [G] (pass 2) */
    const float *fmean, *inv;  /* [G] (pass 3) */
    float eps;
    int silu;
    float *y;
};

static void gn_sums(void *p, size_t b0, size_t b1, int thread)
{
    (void)thread;
    const struct gn_job *j = p;
    for (size_t b = b0; b < b1; b++) {
        double *acc = j->partial + b * j->G;
        size_t r1 = (b + 1) * GN_BLOCK < j->rows ? (b + 1) * GN_BLOCK : j->rows;
        for (size_t g = 0; g < j->G; g++)
            acc[g] = 0;
        for (size_t r = b * GN_BLOCK; r < r1; r++) {
            const float *row = j->x + r * j->C;
            for (size_t g = 0; g < j->G; g++) {
                double s = 0;
                if (j->mean) {
                    const double m = j->mean[g];
                    for (size_t c = g * j->cg; c < (g + 1) * j->cg; c++)
                        s += (row[c] - m) * (row[c] - m);
                } else {
                    for (size_t c = g * j->cg; c < (g + 1) * j->cg; c++)
                        s += row[c];
                }
                acc[g] += s;
            }
        }
    }
}

static void gn_apply(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct gn_job *j = p;
    for (size_t r = r0; r < r1; r++) {
        const float *row = j->x + r * j->C;
        float *out = j->y + r * j->C;
        for (size_t c = 0; c < j->C; c++) {
            size_t g = c / j->cg;
            float v = (row[c] - j->fmean[g]) * j->inv[g] * j->gamma[c] + j->beta[c];
            out[c] = j->silu ? v / (1.0f + expf(-v)) : v;
        }
    }
}

/* Adds the per-block slots in block order into out[G]. */
static void reduce_blocks(const double *partial, size_t blocks, size_t G, double *out)
{
    for (size_t g = 0; g < G; g++)
        out[g] = 0;
    for (size_t b = 0; b < blocks; b++)
        for (size_t g = 0; g < G; g++)
            out[g] += partial[b * G + g];
}

emu2_status cpu_group_norm(emu2_backend *be, size_t rows, size_t C, size_t groups, const float *x,
                           const emu2_tensor_view *weight, const emu2_tensor_view *bias, float eps, int apply_silu,
                           float *y, emu2_error *err)
{
    emu2_status st = emu2_check_group_norm_args(rows, C, groups, x, y, eps, weight, bias, NULL, err);
    if (st != EMU2_OK)
        return st;
    const size_t blocks = (rows + GN_BLOCK - 1) / GN_BLOCK;
    float *affine = malloc((2 * C + 2 * groups) * sizeof *affine);
    double *partial = malloc((blocks + 2) * groups * sizeof *partial);
    if (!affine || !partial) {
        free(affine);
        free(partial);
        return emu2_fail(err, EMU2_ERR_NOMEM, "group_norm: out of memory");
    }
    for (size_t c = 0; c < C; c++) {
        affine[c] = cpu_vec_elem(weight, c);
        affine[C + c] = bias ? cpu_vec_elem(bias, c) : 0.0f;
    }
    double *mean = partial + blocks * groups, *var = mean + groups;
    float *fmean = affine + 2 * C, *inv = fmean + groups;
    const double count = (double)rows * (double)(C / groups);
    struct gn_job j = {rows, C, groups, C / groups, x, affine, affine + C, partial, NULL, fmean, inv, eps, apply_silu, y};
    cpu_parallel_for(cpu_of(be), blocks, 1, gn_sums, &j);
    reduce_blocks(partial, blocks, groups, mean);
    for (size_t g = 0; g < groups; g++)
        mean[g] /= count;
    j.mean = mean;
    cpu_parallel_for(cpu_of(be), blocks, 1, gn_sums, &j);
    reduce_blocks(partial, blocks, groups, var);
    for (size_t g = 0; g < groups; g++) {
        fmean[g] = (float)mean[g];
        inv[g] = (float)(1.0 / sqrt(var[g] / count + (double)eps));
    }
    cpu_parallel_for(cpu_of(be), rows, 1 + 4096 / C, gn_apply, &j);
    free(affine);
    free(partial);
    return EMU2_OK;
}
