/* kern_scalar.c: portable C versions of the hot loops (the reference path and the fallback). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ops/cpu/kernels.h"

static void scalar_tile_packed(const float *a, size_t lda, const float *b, size_t kp, float *c)
{
    for (int i = 0; i < CPU_TILE_M; i++)
        for (int j = 0; j < CPU_TILE_N; j++) {
            /* four partial sums: lets the compiler vectorize without reassociating */
            float s[4] = {0, 0, 0, 0};
            const float *ar = a + (size_t)i * lda, *br = b + (size_t)j * kp;
            for (size_t k = 0; k < kp; k += 4)
                for (int u = 0; u < 4; u++)
                    s[u] += ar[k + u] * br[k + u];
            c[i * CPU_TILE_N + j] = (s[0] + s[1]) + (s[2] + s[3]);
        }
}

static void scalar_tile_direct(const float *x, size_t ldx, size_t mr, const void *w, emu2_dtype dt, size_t ldw,
                               size_t nr, size_t k, float *c)
{
    size_t es = emu2_dtype_size(dt);
    for (size_t j = 0; j < nr; j++) {
        const char *wr = (const char *)w + j * ldw * es;
        for (size_t i = 0; i < mr; i++) {
            const float *xr = x + i * ldx;
            float s = 0;
            for (size_t q = 0; q < k; q++)
                s += xr[q] * cpu_load_elem(wr, dt, q);
            c[i * CPU_TILE_N + j] = s;
        }
    }
}

static void scalar_to_f32(const void *src, emu2_dtype dt, float *dst, size_t n)
{
    if (dt == EMU2_DT_F32) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = cpu_load_elem(src, dt, i);
}

static void scalar_gemm_nn(size_t mr, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                           float *c, size_t ldc, int accumulate)
{
    for (size_t i = 0; i < mr; i++) {
        float *cr = c + i * ldc;
        if (!accumulate)
            memset(cr, 0, n * sizeof(float));
        for (size_t p = 0; p < k; p++) {
            float av = a[i * lda + p];
            const float *br = b + p * ldb;
            for (size_t j = 0; j < n; j++)
                cr[j] += av * br[j];
        }
    }
}

static float scalar_exp_sum(float *x, size_t n, float max)
{
    float s = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        s += x[i];
    }
    return s;
}

static void scalar_gelu(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        /* erfc form: no cancellation in 1 + erf for negative x */
        y[i] = 0.5f * v * erfcf(-v * (float)M_SQRT1_2);
    }
}

static float scalar_dot(const float *a, const float *b, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void scalar_axpy(float alpha, const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

const cpu_kernels cpu_kernels_scalar = {
    .isa = EMU2_ISA_SCALAR,
    .tile_packed = scalar_tile_packed,
    .tile_direct = scalar_tile_direct,
    .to_f32 = scalar_to_f32,
    .gemm_nn = scalar_gemm_nn,
    .exp_sum = scalar_exp_sum,
    .gelu = scalar_gelu,
    .dot = scalar_dot,
    .axpy = scalar_axpy,
};
