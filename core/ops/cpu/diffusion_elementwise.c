/* diffusion_elementwise.c: the small diffusion ops: nearest upsampling, SiLU, products and the
 * per-row vector add (f32). */
#include <math.h>

#include "common/error.h"
#include "ops/cpu/cpu_diffusion.h"
#include "ops/cpu/cpu_internal.h"

#define DIFF_CHUNK 8192

struct de_job {
    const float *a, *b;
    float *y;
    size_t n, C, H, W, Ho, Wo;
};

static void upsample_rows(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct de_job *j = p;
    for (size_t r = r0; r < r1; r++) { /* r = output pixel */
        size_t oy = r / j->Wo, ox = r % j->Wo;
        size_t iy = oy * j->H / j->Ho, ix = ox * j->W / j->Wo;
        const float *src = j->a + (iy * j->W + ix) * j->C;
        float *dst = j->y + r * j->C;
        for (size_t c = 0; c < j->C; c++)
            dst[c] = src[c];
    }
}

static void silu_range(void *p, size_t i0, size_t i1, int thread)
{
    (void)thread;
    const struct de_job *j = p;
    for (size_t i = i0; i < i1; i++) {
        float v = j->a[i];
        j->y[i] = v / (1.0f + expf(-v));
    }
}

static void mul_range(void *p, size_t i0, size_t i1, int thread)
{
    (void)thread;
    const struct de_job *j = p;
    for (size_t i = i0; i < i1; i++)
        j->y[i] = j->a[i] * j->b[i];
}

static void add_vec_rows(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct de_job *j = p;
    for (size_t r = r0; r < r1; r++)
        for (size_t c = 0; c < j->n; c++)
            j->y[r * j->n + c] = j->a[r * j->n + c] + j->b[c];
}

emu2_status cpu_upsample_nearest(emu2_backend *be, size_t C, size_t H, size_t W, size_t Ho, size_t Wo, const float *x,
                                 float *y, emu2_error *err)
{
    emu2_status st = emu2_check_upsample_args(C, H, W, Ho, Wo, x, y, err);
    if (st != EMU2_OK)
        return st;
    struct de_job j = {.a = x, .y = y, .C = C, .H = H, .W = W, .Ho = Ho, .Wo = Wo};
    cpu_parallel_for(cpu_of(be), Ho * Wo, 1 + DIFF_CHUNK / C, upsample_rows, &j);
    return EMU2_OK;
}

emu2_status cpu_silu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_diffusion_elementwise_args("silu", n, x, x, y, err);
    if (st != EMU2_OK)
        return st;
    struct de_job j = {.a = x, .y = y};
    cpu_parallel_for(cpu_of(be), n, DIFF_CHUNK, silu_range, &j);
    return EMU2_OK;
}

emu2_status cpu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_diffusion_elementwise_args("mul", n, a, b, y, err);
    if (st != EMU2_OK)
        return st;
    struct de_job j = {.a = a, .b = b, .y = y};
    cpu_parallel_for(cpu_of(be), n, DIFF_CHUNK, mul_range, &j);
    return EMU2_OK;
}

emu2_status cpu_add_row_vector(emu2_backend *be, size_t rows, size_t n, const float *x, const float *v, float *y,
                               emu2_error *err)
{
    emu2_status st = emu2_check_add_row_vector_args(rows, n, x, v, y, err);
    if (st != EMU2_OK)
        return st;
    struct de_job j = {.a = x, .b = v, .y = y, .n = n};
    cpu_parallel_for(cpu_of(be), rows, 1 + DIFF_CHUNK / n, add_vec_rows, &j);
    return EMU2_OK;
}
