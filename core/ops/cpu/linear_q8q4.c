/* linear_q8q4.c: y = x . W^T (+ bias) for int8 / int4 weights (ops.h emu2_weight_format).
 *
 *  - small M (decode): the dot kernels (kern_q8q4_*.c) read the quantized rows directly, four
 *    weight rows per call; threads split N. Weight bytes are streamed once per call, which is
 *    where the 2x (int8) / ~3.5x (int4) fewer bytes than bf16 turn into speed.
 *  - large M (prefill): compute-bound, so packed_gemm.c dequantizes a (64-row, 1024-column) block
 *    of W once into per-thread f32 scratch and multiplies it with the float kernels' packed tiles,
 *    as for float weights. */
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/kern_q8q4.h"
#include "ops/cpu/packed_gemm.h"
#include "quant/quant.h"

#define Q_SMALL_M 8

struct qlin_job {
    const cpu_kernels *k;
    const cpu_qkernels *qk;
    const emu2_op_weight *W;
    size_t M, K, N;
    const float *x;
    size_t ldx;
    const emu2_tensor_view *bias;
    float *y;
    size_t ldy;
    size_t rb, sc; /* bytes of a row of values, scales per row */
    const uint8_t *xprep; /* VNNI int4 path: the x rows prepared (kern_q4_vnni.c), prep_stride apart */
    size_t prep_stride;
};

/* Decode path: weight rows [t0*4, t1*4) against every x row. */
static void direct_range(void *p, size_t t0, size_t t1, int thread)
{
    (void)thread;
    const struct qlin_job *j = p;
    const uint8_t *q = j->W->w.data;
    const uint8_t *s = j->W->scales.data;
    float out[CPU_Q_ROWS];
    for (size_t t = t0; t < t1; t++) {
        size_t n0 = t * CPU_Q_ROWS, nr = j->N - n0 < CPU_Q_ROWS ? j->N - n0 : CPU_Q_ROWS;
        for (size_t m = 0; m < j->M; m++) {
            const float *xr = j->x + m * j->ldx;
            if (j->xprep)
                cpu_q4_vnni_dot(j->xprep + m * j->prep_stride, q + n0 * j->rb, j->rb, s + n0 * j->sc * 2, j->sc,
                                (size_t)j->W->group, nr, out);
            else if (j->W->format == EMU2_WEIGHT_Q8)
                j->qk->dot_q8(xr, (const int8_t *)(q + n0 * j->rb), j->K, nr, s + n0 * 4, out);
            else
                j->qk->dot_q4(xr, q + n0 * j->rb, j->rb, s + n0 * j->sc * 2, j->sc, (size_t)j->W->group, j->K, nr,
                              out);
            float *yr = j->y + m * j->ldy + n0;
            for (size_t i = 0; i < nr; i++)
                yr[i] = out[i] + (j->bias ? cpu_vec_elem(j->bias, n0 + i) : 0.0f);
        }
    }
}

/* Elements [k0, k0 + n) of weight row `row` as f32 into dst (k0 a multiple of the group size):
 * emu2_dequant_row's values, one scale conversion per group instead of per element. */
static void dequant_block(const void *p, size_t row, size_t k0, size_t n, float *dst)
{
    const struct qlin_job *j = p;
    if (j->W->format == EMU2_WEIGHT_Q8) {
        emu2_dequant_row(j->W, j->K, row, k0, n, dst);
        return;
    }
    size_t G = (size_t)j->W->group, half = G / 2;
    const uint8_t *q = (const uint8_t *)j->W->w.data + row * j->rb;
    const uint8_t *sp = (const uint8_t *)j->W->scales.data + row * j->sc * 2;
    for (size_t g0 = k0; g0 < k0 + n; g0 += G) {
        uint16_t h;
        memcpy(&h, sp + g0 / G * 2, 2);
        float s = emu2_f16_to_f32(h);
        const uint8_t *b = q + g0 / G * half;
        size_t m = k0 + n - g0 < G ? k0 + n - g0 : G;
        float *d = dst + (g0 - k0);
        for (size_t i = 0; i < half && i < m; i++)
            d[i] = (float)((b[i] & 15) - 8) * s;
        for (size_t i = 0; i < half && half + i < m; i++)
            d[half + i] = (float)((b[i] >> 4) - 8) * s;
    }
}

emu2_status cpu_linear_quant(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                             const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                             emu2_error *err)
{
    cpu_backend *cb = cpu_of(be);
    emu2_quant_spec spec = {.format = W->format, .group = W->group};
    struct qlin_job j = {.k = cb->k, .qk = cpu_qkernels_for(cb->k->isa), .W = W, .M = M, .K = K, .N = N, .x = x,
                         .ldx = x_stride, .bias = bias, .y = y, .ldy = y_stride,
                         .rb = emu2_quant_q_row_bytes(spec, K), .sc = emu2_quant_scale_row_count(spec, K)};
    if (M < Q_SMALL_M) {
        /* int4 on AVX-512 VNNI, opt-in with $EMU2_CPU_VNNI=1: 2-3x the plain kernel when compute-bound
         * (cache-resident weights, a loaded machine) but ~8% slower when streaming from DRAM, the usual
         * decode case (docs/QUANT.md); it also rounds the activations to int8. */
        const char *vnni_env = getenv("EMU2_CPU_VNNI");
        if (W->format == EMU2_WEIGHT_Q4 && cb->k->isa == EMU2_ISA_AVX512 && vnni_env && !strcmp(vnni_env, "1") &&
            cpu_q4_vnni_supported()) {
            j.prep_stride = (cpu_q4_vnni_prep_bytes(j.rb) + 63) / 64 * 64;
            float *buf = cpu_scratch(cb, (M * j.prep_stride + 3) / 4, err);
            if (!buf)
                return err ? err->status : EMU2_ERR_NOMEM;
            for (size_t m = 0; m < M; m++)
                cpu_q4_vnni_prep(x + m * x_stride, K, (size_t)W->group, j.rb, (uint8_t *)buf + m * j.prep_stride);
            j.xprep = (const uint8_t *)buf;
        }
        cpu_parallel_for(cb, (N + CPU_Q_ROWS - 1) / CPU_Q_ROWS, 4, direct_range, &j);
        return EMU2_OK;
    }
    cpu_packed_gemm g = {.M = M, .K = K, .N = N, .x = x, .ldx = x_stride, .bias = bias, .y = y, .ldy = y_stride,
                         .weight_rows = dequant_block, .weight_ctx = &j};
    return cpu_packed_gemm_run(cb, &g, err);
}
