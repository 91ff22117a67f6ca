/* norm.c: LayerNorm and RMSNorm over rows. Row statistics are summed in double: it costs nothing
 * next to the matmuls and keeps the result within f32 rounding of the exact value. */
#include <math.h>

#include "common/error.h"
#include "ops/cpu/cpu_internal.h"

struct norm_job {
    size_t n;
    const float *x;
    const emu2_tensor_view *weight, *bias;
    float eps;
    float *y;
};

static void layernorm_rows(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct norm_job *j = p;
    for (size_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * j->n;
        float *yr = j->y + r * j->n;
        double sum = 0;
        for (size_t i = 0; i < j->n; i++)
            sum += xr[i];
        double mean = sum / (double)j->n, var = 0;
        for (size_t i = 0; i < j->n; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        var /= (double)j->n;
        float fmean = (float)mean, inv = (float)(1.0 / sqrt(var + (double)j->eps));
        for (size_t i = 0; i < j->n; i++) {
            float v = (xr[i] - fmean) * inv * cpu_vec_elem(j->weight, i);
            yr[i] = j->bias ? v + cpu_vec_elem(j->bias, i) : v;
        }
    }
}

static void rmsnorm_rows(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct norm_job *j = p;
    for (size_t r = r0; r < r1; r++) {
        const float *xr = j->x + r * j->n;
        float *yr = j->y + r * j->n;
        double ss = 0;
        for (size_t i = 0; i < j->n; i++)
            ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / (double)j->n + (double)j->eps));
        for (size_t i = 0; i < j->n; i++)
            yr[i] = cpu_vec_elem(j->weight, i) * (xr[i] * inv);
    }
}

emu2_status cpu_layernorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                          const emu2_tensor_view *bias, float eps, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_norm_args("layernorm", rows, n, x, y, eps, weight, bias, NULL, err);
    if (st != EMU2_OK)
        return st;
    struct norm_job j = {n, x, weight, bias, eps, y};
    cpu_parallel_for(cpu_of(be), rows, 1 + 8192 / n, layernorm_rows, &j);
    return EMU2_OK;
}

emu2_status cpu_rmsnorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                        float eps, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_norm_args("rmsnorm", rows, n, x, y, eps, weight, NULL, NULL, err);
    if (st != EMU2_OK)
        return st;
    struct norm_job j = {n, x, weight, NULL, eps, y};
    cpu_parallel_for(cpu_of(be), rows, 1 + 8192 / n, rmsnorm_rows, &j);
    return EMU2_OK;
}
