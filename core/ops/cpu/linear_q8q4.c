/* linear_q8q4.c: y = x . W^T (+ bias) for int8 / int4 weights (ops.h emu2_weight_format).
 *
 *  - AVX512_BF16 at M >= CPU_BF16_QUANT_MIN_M (40; prefill; the default where the CPU has it): the
 *    bf16 GEMM (bf16_gemm.c) with the weight panels dequantized from the int8 / int4 rows as it packs
 *    them (kern_bf16dot.c) and x rounded to bf16; 1.2-1.6x the VNNI tiles below at 128 rows, slower
 *    below 40 rows (docs/QUANT.md). $EMU2_CPU_QUANT_BF16=0 turns it off (then the paths below).
 *  - AVX-512 VNNI (the default where the CPU has it; kern_q4_vnni.c, kern_q8_vnni.c), int4 at any
 *    M and int8 at M >= Q_SMALL_M: the activation rows are quantized to int8 blocks of 32 once per
 *    call, then integer dot products: one weight row after another for a single row (int4
 *    decode), 4x4 tiles for more rows (beams, prefill). Threads split N.
 *    $EMU2_CPU_QUANT_EXACT=1 turns it off (f32 activations, the paths below);
 *    $EMU2_CPU_QUANT_DECODE=legacy runs the decode kernels of before their rewrite (same-run A/B:
 *    the int4 VNNI row kernel and the AVX-512 int8 dot).
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
#include "ops/cpu/bf16_gemm.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/kern_bf16dot.h"
#include "ops/cpu/kern_q8q4.h"
#include "ops/cpu/packed_gemm.h"
#include "quant/quant.h"

#define Q_SMALL_M 8
/* x rows per pass of the VNNI paths: at most VNNI_ROWS, and as many as fit VNNI_PREP_BYTES of their
 * int8 copy (it stays in L2 while the weights pass over it), at least VNNI_MIN_ROWS */
#define VNNI_ROWS 128
#define VNNI_PREP_BYTES (512u << 10) /* measured: better than 128 KiB and 256 KiB (M 128, K 2048 and 5504) */
#define VNNI_MIN_ROWS 16

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
    const uint8_t *xprep; /* VNNI paths: the x rows as int8 blocks (kern_q4/q8_vnni.c), prep_stride apart */
    size_t prep_stride;
    int legacy_decode; /* $EMU2_CPU_QUANT_DECODE=legacy: the previous decode kernels, for A/B runs */
};

/* y[m, n0 + i] = out[i] (+ bias), i < nr. */
static void store_rows(const struct qlin_job *j, size_t m, size_t n0, size_t nr, const float *out)
{
    float *yr = j->y + m * j->ldy + n0;
    for (size_t i = 0; i < nr; i++)
        yr[i] = out[i] + (j->bias ? cpu_vec_elem(j->bias, n0 + i) : 0.0f);
}

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
            if (j->W->format == EMU2_WEIGHT_Q8)
                (j->legacy_decode && j->qk->dot_q8_legacy ? j->qk->dot_q8_legacy : j->qk->dot_q8)(
                    xr, (const int8_t *)(q + n0 * j->rb), j->K, nr, s + n0 * 4, out);
            else
                j->qk->dot_q4(xr, q + n0 * j->rb, j->rb, s + n0 * j->sc * 2, j->sc, (size_t)j->W->group, j->K, nr,
                              out);
            store_rows(j, m, n0, nr, out);
        }
    }
}

/* VNNI paths: x rows [m0, m1) quantized into their int8 copy (kern_q4_vnni.c / kern_q8_vnni.c). */
static void prep_range(void *p, size_t m0, size_t m1, int thread)
{
    (void)thread;
    const struct qlin_job *j = p;
    for (size_t m = m0; m < m1; m++) {
        uint8_t *dst = (uint8_t *)j->xprep + m * j->prep_stride; /* the caller's scratch, written here only */
        if (j->W->format == EMU2_WEIGHT_Q8)
            cpu_q8_vnni_prep(j->x + m * j->ldx, j->K, dst);
        else
            cpu_q4_vnni_prep(j->x + m * j->ldx, j->K, (size_t)j->W->group, j->rb, dst);
    }
}

/* VNNI paths: weight rows [t0*4, t1*4) against every prepared x row; int4: one x row by the
 * sequential row kernel, several by 4x4 tiles; int8 (M >= Q_SMALL_M only): 4x4 tiles. */
static void vnni_range(void *p, size_t t0, size_t t1, int thread)
{
    (void)thread;
    const struct qlin_job *j = p;
    const uint8_t *q = j->W->w.data;
    const uint8_t *s = j->W->scales.data;
    const size_t G = (size_t)j->W->group;
    if (j->M == 1) {
        size_t n0 = t0 * CPU_Q_ROWS, n1 = t1 * CPU_Q_ROWS < j->N ? t1 * CPU_Q_ROWS : j->N;
        for (size_t n = n0; n < n1; n += CPU_Q_ROWS) {
            float out[CPU_Q_ROWS];
            size_t nr = n1 - n < CPU_Q_ROWS ? n1 - n : CPU_Q_ROWS;
            (j->legacy_decode ? cpu_q4_vnni_dot_legacy : cpu_q4_vnni_dot)(j->xprep, q + n * j->rb, j->rb,
                                                                          s + n * j->sc * 2, j->sc, G, nr, out);
            store_rows(j, 0, n, nr, out);
        }
        return;
    }
    float out[CPU_VNNI_TM][CPU_Q_ROWS];
    for (size_t t = t0; t < t1; t++) {
        size_t n0 = t * CPU_Q_ROWS, nr = j->N - n0 < CPU_Q_ROWS ? j->N - n0 : CPU_Q_ROWS;
        for (size_t m0 = 0; m0 < j->M; m0 += CPU_VNNI_TM) {
            size_t mr = j->M - m0 < CPU_VNNI_TM ? j->M - m0 : CPU_VNNI_TM;
            const uint8_t *xp = j->xprep + m0 * j->prep_stride;
            if (j->W->format == EMU2_WEIGHT_Q8) {
                cpu_q8_vnni_tile(xp, j->prep_stride, mr, (const int8_t *)(q + n0 * j->rb), j->K, nr, out);
                for (size_t i = 0; i < nr; i++) { /* the row scales, f32 at any alignment */
                    float sc;
                    memcpy(&sc, s + (n0 + i) * 4, 4);
                    for (size_t m = 0; m < mr; m++)
                        out[m][i] *= sc;
                }
            } else {
                cpu_q4_vnni_tile(xp, j->prep_stride, mr, q + n0 * j->rb, j->rb, s + n0 * j->sc * 2, j->sc, G, nr,
                                 out);
            }
            for (size_t m = 0; m < mr; m++)
                store_rows(j, m0 + m, n0, nr, out[m]);
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

/* One bf16 panel of the prefill GEMM, dequantized from the int8 / int4 rows (bf16_gemm.h). */
static void pack_quant_panel(const void *p, size_t n, size_t rows, size_t k0, size_t kl, uint32_t *dst)
{
    const struct qlin_job *j = p;
    const uint8_t *q = (const uint8_t *)j->W->w.data + n * j->rb;
    const uint8_t *s = j->W->scales.data;
    if (j->W->format == EMU2_WEIGHT_Q8) {
        cpu_bf16dot_pack_panel_q8((const int8_t *)q + k0, j->rb, s + n * 4, rows, kl, dst);
        return;
    }
    size_t G = (size_t)j->W->group;
    cpu_bf16dot_pack_panel_q4(q + k0 / 2, j->rb, s + (n * j->sc + k0 / G) * 2, j->sc, G, rows, kl, dst);
}

/* $EMU2_CPU_QUANT_EXACT=1: keep the activations f32 (no int8 VNNI or bf16 path), for tests and A/B runs. */
static int exact_activations(void)
{
    const char *e = getenv("EMU2_CPU_QUANT_EXACT");
    return e && !strcmp(e, "1");
}

/* $EMU2_CPU_QUANT_DECODE=legacy: the decode kernels before their rewrite (same-run A/B). */
static int legacy_decode(void)
{
    const char *e = getenv("EMU2_CPU_QUANT_DECODE");
    return e && !strcmp(e, "legacy");
}

/* The bf16 prefill path, unless $EMU2_CPU_QUANT_BF16=0 (tests of the VNNI tiles, A/B runs) or exact. */
static int bf16_prefill(const cpu_backend *cb, size_t M, int exact)
{
    const char *e = getenv("EMU2_CPU_QUANT_BF16");
    return M >= CPU_BF16_QUANT_MIN_M && cb->k->isa == EMU2_ISA_AVX512 && !(e && !strcmp(e, "0")) && !exact &&
           cpu_bf16dot_supported();
}

emu2_status cpu_linear_quant(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                             const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                             emu2_error *err)
{
    cpu_backend *cb = cpu_of(be);
    emu2_quant_spec spec = {.format = W->format, .group = W->group};
    struct qlin_job j = {.k = cb->k, .qk = cpu_qkernels_for(cb->k->isa), .W = W, .M = M, .K = K, .N = N, .x = x,
                         .ldx = x_stride, .bias = bias, .y = y, .ldy = y_stride,
                         .rb = emu2_quant_q_row_bytes(spec, K), .sc = emu2_quant_scale_row_count(spec, K),
                         .legacy_decode = legacy_decode()};
    int q8 = W->format == EMU2_WEIGHT_Q8, exact = exact_activations();
    if (bf16_prefill(cb, M, exact)) {
        cpu_bf16_weights bw = {.pack = pack_quant_panel, .ctx = &j, .data = W->w.data, .row_bytes = j.rb,
                               .bits = q8 ? 8 : 4};
        return cpu_bf16_gemm_weights(cb, M, K, N, x, x_stride, &bw, bias, y, y_stride, err);
    }
    if ((!q8 || M >= Q_SMALL_M) && cpu_q4_vnni_usable(cb->k->isa) && !exact) {
        /* a pass of `rows` x rows at a time: their int8 copy stays in L2 while a thread's weight
         * tiles pass over it, and the scratch stays small for long prompts */
        j.prep_stride = ((q8 ? cpu_q8_vnni_prep_bytes(K) : cpu_q4_vnni_prep_bytes(j.rb)) + 63) / 64 * 64;
        size_t rows = VNNI_PREP_BYTES / j.prep_stride / CPU_VNNI_TM * CPU_VNNI_TM;
        rows = rows < VNNI_MIN_ROWS ? VNNI_MIN_ROWS : rows > VNNI_ROWS ? VNNI_ROWS : rows;
        rows = M < rows ? M : rows;
        float *buf = cpu_scratch(cb, (rows * j.prep_stride + 3) / 4, err);
        if (!buf)
            return err ? err->status : EMU2_ERR_NOMEM;
        for (size_t m0 = 0; m0 < M; m0 += rows) {
            struct qlin_job c = j;
            c.M = M - m0 < rows ? M - m0 : rows;
            c.x = x + m0 * x_stride;
            c.y = y + m0 * y_stride;
            c.xprep = (const uint8_t *)buf;
            cpu_parallel_for(cb, c.M, 8, prep_range, &c);
            cpu_parallel_for(cb, (N + CPU_Q_ROWS - 1) / CPU_Q_ROWS, 4, vnni_range, &c);
        }
        return EMU2_OK;
    }
    if (M < Q_SMALL_M) {
        cpu_parallel_for(cb, (N + CPU_Q_ROWS - 1) / CPU_Q_ROWS, 4, direct_range, &j);
        return EMU2_OK;
    }
    cpu_packed_gemm g = {.M = M, .K = K, .N = N, .x = x, .ldx = x_stride, .bias = bias, .y = y, .ldy = y_stride,
                         .weight_rows = dequant_block, .weight_ctx = &j};
    return cpu_packed_gemm_run(cb, &g, err);
}
