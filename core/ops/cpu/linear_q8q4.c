/* linear_q8q4.c: y = x . W^T (+ bias) for int8 / int4 weights (ops.h emu2_weight_format).
 *
 *  - small M (decode): the dot kernels (kern_q8q4_*.c) read the quantized rows directly, four
 *    weight rows per call; threads split N. Weight bytes are streamed once per call, which is
 *    where the 2x (int8) / ~3.5x (int4) fewer bytes than bf16 turn into speed.
 *  - large M (prefill): compute-bound, so a (64-row, 1024-column) block of W is dequantized once
 *    into per-thread f32 scratch and multiplied with the float kernels' packed 4x4 tiles; tasks
 *    are (N block, M chunk) pairs as in matmul.c. */
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/kern_q8q4.h"
#include "quant/quant.h"

#define Q_SMALL_M 8
#define Q_BLOCK_N 64
#define Q_BLOCK_K 1024 /* a multiple of every int4 group size */

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
    float *scratch;
    size_t scratch_stride, m_chunk, n_blocks;
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
static void dequant_block(const struct qlin_job *j, size_t row, size_t k0, size_t n, float *dst)
{
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

/* Prefill path: one task = one N block x one chunk of M rows. */
static void packed_task(void *p, size_t task, int thread)
{
    const struct qlin_job *j = p;
    size_t nb = task % j->n_blocks, mc = task / j->n_blocks;
    size_t n0 = nb * Q_BLOCK_N, n1 = n0 + Q_BLOCK_N < j->N ? n0 + Q_BLOCK_N : j->N;
    size_t m0 = mc * j->m_chunk, m1 = m0 + j->m_chunk < j->M ? m0 + j->m_chunk : j->M;
    size_t rows = n1 - n0, rows_pad = (rows + CPU_TILE_N - 1) / CPU_TILE_N * CPU_TILE_N;
    float *bp = j->scratch + (size_t)thread * j->scratch_stride; /* [Q_BLOCK_N][Q_BLOCK_K] */
    float *ap = bp + (size_t)Q_BLOCK_N * Q_BLOCK_K;             /* [CPU_TILE_M][Q_BLOCK_K] */
    float c[CPU_TILE_M * CPU_TILE_N];

    for (size_t m = m0; m < m1; m++) {
        float *yr = j->y + m * j->ldy;
        for (size_t n = n0; n < n1; n++)
            yr[n] = j->bias ? cpu_vec_elem(j->bias, n) : 0.0f;
    }
    for (size_t k0 = 0; k0 < j->K; k0 += Q_BLOCK_K) {
        size_t kl = j->K - k0 < Q_BLOCK_K ? j->K - k0 : Q_BLOCK_K;
        size_t kp = (kl + CPU_KPAD - 1) / CPU_KPAD * CPU_KPAD;
        for (size_t r = 0; r < rows_pad; r++) {
            float *dst = bp + r * kp;
            if (r < rows) {
                dequant_block(j, n0 + r, k0, kl, dst);
                memset(dst + kl, 0, (kp - kl) * sizeof(float));
            } else {
                memset(dst, 0, kp * sizeof(float));
            }
        }
        for (size_t m = m0; m < m1; m += CPU_TILE_M) {
            size_t mr = m1 - m < CPU_TILE_M ? m1 - m : CPU_TILE_M;
            const float *at = j->x + m * j->ldx + k0;
            size_t lda = j->ldx;
            if (mr < CPU_TILE_M || kl != kp) { /* ragged tile: copy and zero-pad */
                for (size_t i = 0; i < CPU_TILE_M; i++) {
                    float *dst = ap + i * kp;
                    if (i < mr) {
                        memcpy(dst, j->x + (m + i) * j->ldx + k0, kl * sizeof(float));
                        memset(dst + kl, 0, (kp - kl) * sizeof(float));
                    } else {
                        memset(dst, 0, kp * sizeof(float));
                    }
                }
                at = ap;
                lda = kp;
            }
            for (size_t r = 0; r < rows; r += CPU_TILE_N) {
                size_t nr = rows - r < CPU_TILE_N ? rows - r : CPU_TILE_N;
                j->k->tile_packed(at, lda, bp + r * kp, kp, c);
                for (size_t i = 0; i < mr; i++) {
                    float *yr = j->y + (m + i) * j->ldy + n0 + r;
                    for (size_t q = 0; q < nr; q++)
                        yr[q] += c[i * CPU_TILE_N + q];
                }
            }
        }
    }
}

emu2_status cpu_linear_quant(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                             const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                             emu2_error *err)
{
    static const char op[] = "linear";
    if (M == 0 || K == 0 || N == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape M=%zu K=%zu N=%zu", op, M, K, N);
    if (!x || !y || !W)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL x, y or weight", op);
    if (x_stride < K || y_stride < N)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: row strides x=%zu y=%zu are narrower than K=%zu N=%zu",
                         op, x_stride, y_stride, K, N);
    emu2_status st = emu2_quant_check_weight(W, N, K, err);
    if (st != EMU2_OK)
        return emu2_fail_prefix(err, "%s: ", op);
    size_t xspan, yspan;
    if (!emu2_mul_size(M - 1, x_stride, &xspan) || !emu2_add_size(xspan, K, &xspan) ||
        !emu2_mul_size(M - 1, y_stride, &yspan) || !emu2_add_size(yspan, N, &yspan) || xspan > SIZE_MAX / 4 ||
        yspan > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    const char *xa = (const char *)x, *ya = (const char *)y;
    if (xa < ya + yspan * 4 && ya < xa + xspan * 4)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps input", op);
    if ((st = cpu_check_vector(op, "bias", bias, N, 0, err)) != EMU2_OK)
        return st;

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
    j.scratch = cpu_scratch(cb, (size_t)Q_BLOCK_N * Q_BLOCK_K + (size_t)CPU_TILE_M * Q_BLOCK_K, err);
    if (!j.scratch)
        return err ? err->status : EMU2_ERR_NOMEM;
    j.scratch_stride = cpu_scratch_stride(cb);
    j.n_blocks = (N + Q_BLOCK_N - 1) / Q_BLOCK_N;
    size_t want = 2 * (size_t)cb->base.threads, m_chunks = 1;
    if (j.n_blocks < want)
        m_chunks = (want + j.n_blocks - 1) / j.n_blocks;
    size_t m_tiles = (M + CPU_TILE_M - 1) / CPU_TILE_M;
    if (m_chunks > m_tiles)
        m_chunks = m_tiles;
    j.m_chunk = (m_tiles + m_chunks - 1) / m_chunks * CPU_TILE_M;
    m_chunks = (M + j.m_chunk - 1) / j.m_chunk;
    cpu_pool_run(cb->pool, j.n_blocks * m_chunks, packed_task, &j);
    return EMU2_OK;
}
