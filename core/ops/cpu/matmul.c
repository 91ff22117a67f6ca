/* matmul.c: y = x . W^T (+ bias) for f32 activations and F32/F16/BF16 weights.
 *
 * Two paths:
 *  - small M (decode, GEMV-like): each weight element is used by only a few rows, so it is
 *    converted on the fly while streaming W once (tile_direct); threads split N.
 *  - large M (prefill): packed_gemm.c, W converted to f32 once per (64-row, 1024-column) block.
 *  - large M with BF16 weights under the "bf16" precision: bf16_gemm.c, x rounded to bf16 and bf16
 *    dot products (AVX512_BF16).
 * Accumulation is f32 throughout. */
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/bf16_gemm.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/kern_q8q4.h"
#include "ops/cpu/packed_gemm.h"
#include "quant/quant.h"

#define SMALL_M 8 /* below this, the direct path wins (no packing to amortize) */

struct lin_job {
    const cpu_kernels *k;
    size_t M, K, N;
    const float *x;
    size_t ldx;
    const void *w;
    emu2_dtype wdt;
    size_t wes; /* weight element size */
    const emu2_tensor_view *bias;
    float *y;
    size_t ldy;
};

/* Direct path: columns [t0*4, t1*4) of every row. */
static void direct_range(void *p, size_t t0, size_t t1, int thread)
{
    (void)thread;
    const struct lin_job *j = p;
    float c[CPU_TILE_M * CPU_TILE_N];
    for (size_t t = t0; t < t1; t++) {
        size_t n0 = t * CPU_TILE_N;
        size_t nr = j->N - n0 < CPU_TILE_N ? j->N - n0 : CPU_TILE_N;
        const char *wr = (const char *)j->w + n0 * j->K * j->wes;
        for (size_t m0 = 0; m0 < j->M; m0 += CPU_TILE_M) {
            size_t mr = j->M - m0 < CPU_TILE_M ? j->M - m0 : CPU_TILE_M;
            j->k->tile_direct(j->x + m0 * j->ldx, j->ldx, mr, wr, j->wdt, j->K, nr, j->K, c);
            for (size_t i = 0; i < mr; i++) {
                float *yr = j->y + (m0 + i) * j->ldy + n0;
                for (size_t q = 0; q < nr; q++)
                    yr[q] = c[i * CPU_TILE_N + q] + (j->bias ? cpu_vec_elem(j->bias, n0 + q) : 0.0f);
            }
        }
    }
}

/* Packed path: elements [k0, k0 + n) of weight row `row` as f32. */
static void float_weight_rows(const void *p, size_t row, size_t k0, size_t n, float *dst)
{
    const struct lin_job *j = p;
    j->k->to_f32((const char *)j->w + (row * j->K + k0) * j->wes, j->wdt, dst, n);
}

emu2_status cpu_linear(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                       const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                       emu2_error *err)
{
    static const char op[] = "linear";
    emu2_status st = emu2_check_linear_head(M, K, N, x, x_stride, W, y, y_stride, err);
    if (st != EMU2_OK)
        return st;
    const emu2_tensor_view *w = &W->w;
    if (W->format == EMU2_WEIGHT_FLOAT)
        st = emu2_check_linear_float_weight(w, N, K, NULL, err);
    else if (emu2_quant_check_weight(W, N, K, err) != EMU2_OK) /* int8 / int4 */
        st = emu2_fail_prefix(err, "%s: ", op);
    if (st != EMU2_OK)
        return st;
    size_t xspan, yspan;
    if (!emu2_linear_extents(M, K, N, x_stride, y_stride, &xspan, &yspan))
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (emu2_floats_overlap(x, xspan, y, yspan))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps input", op);
    if ((st = emu2_check_vector(op, "bias", bias, N, 0, NULL, err)) != EMU2_OK)
        return st;
    if (W->format != EMU2_WEIGHT_FLOAT) /* int8 / int4: linear_q8q4.c */
        return cpu_linear_quant(be, M, K, N, x, x_stride, W, bias, y, y_stride, err);

    cpu_backend *cb = cpu_of(be);
    struct lin_job j = {.k = cb->k, .M = M, .K = K, .N = N, .x = x, .ldx = x_stride, .w = w->data,
                        .wdt = w->dtype, .wes = emu2_dtype_size(w->dtype), .bias = bias, .y = y, .ldy = y_stride};
    if (M < SMALL_M) {
        cpu_parallel_for(cb, (N + CPU_TILE_N - 1) / CPU_TILE_N, 8, direct_range, &j);
        return EMU2_OK;
    }
    if (cb->bf16_dot && w->dtype == EMU2_DT_BF16)
        return cpu_bf16_gemm(cb, M, K, N, x, x_stride, (const uint16_t *)w->data, bias, y, y_stride, err);
    cpu_packed_gemm g = {.M = M, .K = K, .N = N, .x = x, .ldx = x_stride, .bias = bias, .y = y, .ldy = y_stride,
                         .weight_rows = float_weight_rows, .weight_ctx = &j,
                         .w_f32 = w->dtype == EMU2_DT_F32 ? (const float *)w->data : NULL};
    return cpu_packed_gemm_run(cb, &g, err);
}

emu2_status cpu_matmul_nt(emu2_backend *be, size_t M, size_t K, size_t N, const float *A, const float *B, float *C,
                          emu2_error *err)
{
    size_t bytes;
    if (!emu2_mul_size(N, K, &bytes) || !emu2_mul_size(bytes, sizeof(float), &bytes))
        return emu2_fail(err, EMU2_ERR_LIMIT, "matmul_nt: B [%zu, %zu] is too large", N, K);
    emu2_op_weight w = {.w = {.dtype = EMU2_DT_F32, .ndim = 2, .shape = {(int64_t)N, (int64_t)K}, .data = B,
                              .nbytes = bytes}};
    return cpu_linear(be, M, K, N, A, K, &w, NULL, C, N, err);
}
