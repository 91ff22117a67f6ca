/* matmul.c: y = x . W^T (+ bias) for f32 activations and F32/F16/BF16 weights.
 *
 * Two paths:
 *  - small M (decode, GEMV-like): each weight element is used by only a few rows, so it is
 *    converted on the fly while streaming W once (tile_direct); threads split N.
 *  - large M (prefill): W is converted to f32 once per (64-row, 1024-column) block into per-thread
 *    scratch (it stays in L2); x rows are read 4 at a time in place (copied only for a ragged
 *    tile); tile_packed does 4x4 dot products over the block. Tasks are (N block, M chunk) pairs, so even narrow
 *    outputs keep every thread busy. Accumulation is f32 throughout. */
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/kern_q8q4.h"

#define SMALL_M 8   /* below this, the direct path wins (no packing to amortize) */
#define BLOCK_N 64  /* weight rows per packed block */
#define BLOCK_K 1024 /* columns per packed block: 64 x 1024 f32 = 256 KiB, an L2's worth */

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
    /* packed path */
    float *scratch;
    size_t scratch_stride;
    size_t m_chunk, n_blocks;
};

static void init_rows(const struct lin_job *j, size_t m0, size_t m1, size_t n0, size_t n1)
{
    for (size_t m = m0; m < m1; m++) {
        float *yr = j->y + m * j->ldy;
        if (j->bias)
            for (size_t n = n0; n < n1; n++)
                yr[n] = cpu_vec_elem(j->bias, n);
        else
            memset(yr + n0, 0, (n1 - n0) * sizeof(float));
    }
}

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

/* Packed path: one task = one N block x one chunk of M rows. */
static void packed_task(void *p, size_t task, int thread)
{
    const struct lin_job *j = p;
    size_t nb = task % j->n_blocks, mc = task / j->n_blocks;
    size_t n0 = nb * BLOCK_N, n1 = n0 + BLOCK_N < j->N ? n0 + BLOCK_N : j->N;
    size_t m0 = mc * j->m_chunk, m1 = m0 + j->m_chunk < j->M ? m0 + j->m_chunk : j->M;
    size_t rows = n1 - n0, rows_pad = (rows + CPU_TILE_N - 1) / CPU_TILE_N * CPU_TILE_N;
    float *bp = j->scratch + (size_t)thread * j->scratch_stride; /* [BLOCK_N][BLOCK_K] */
    float *ap = bp + (size_t)BLOCK_N * BLOCK_K;                 /* [CPU_TILE_M][BLOCK_K] */
    float c[CPU_TILE_M * CPU_TILE_N];

    init_rows(j, m0, m1, n0, n1);
    for (size_t k0 = 0; k0 < j->K; k0 += BLOCK_K) {
        size_t kl = j->K - k0 < BLOCK_K ? j->K - k0 : BLOCK_K;
        size_t kp = (kl + CPU_KPAD - 1) / CPU_KPAD * CPU_KPAD;
        for (size_t r = 0; r < rows_pad; r++) {
            float *dst = bp + r * kp;
            if (r < rows) {
                j->k->to_f32((const char *)j->w + ((n0 + r) * j->K + k0) * j->wes, j->wdt, dst, kl);
                memset(dst + kl, 0, (kp - kl) * sizeof(float));
            } else {
                memset(dst, 0, kp * sizeof(float));
            }
        }
        for (size_t m = m0; m < m1; m += CPU_TILE_M) {
            size_t mr = m1 - m < CPU_TILE_M ? m1 - m : CPU_TILE_M;
            /* x rows are read in place when the tile is whole (the usual case: real widths are
             * multiples of 16); a partial tile is copied and zero-padded */
            const float *at = j->x + m * j->ldx + k0;
            size_t lda = j->ldx;
            if (mr < CPU_TILE_M || kl != kp) {
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

static int overlaps(const void *a, size_t a_bytes, const void *b, size_t b_bytes)
{
    const char *pa = a, *pb = b;
    return pa < pb + b_bytes && pb < pa + a_bytes;
}

emu2_status cpu_linear(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                       const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                       emu2_error *err)
{
    static const char op[] = "linear";
    if (M == 0 || K == 0 || N == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape M=%zu K=%zu N=%zu", op, M, K, N);
    if (!x || !y || !W)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL x, y or weight", op);
    if (W->format != EMU2_WEIGHT_FLOAT) /* int8 / int4: linear_q8q4.c */
        return cpu_linear_quant(be, M, K, N, x, x_stride, W, bias, y, y_stride, err);
    if (x_stride < K || y_stride < N)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: row strides x=%zu y=%zu are narrower than K=%zu N=%zu",
                         op, x_stride, y_stride, K, N);
    const emu2_tensor_view *w = &W->w;
    if (!cpu_is_float_dtype(w->dtype))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: weight dtype %s (want F32, F16 or BF16)", op,
                         emu2_dtype_name(w->dtype));
    if (w->ndim != 2 || w->shape[0] < 0 || w->shape[1] < 0 || (uint64_t)w->shape[0] != N ||
        (uint64_t)w->shape[1] != K)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: weight must be [%zu, %zu] (N, K); it has %d dims [%lld, %lld]",
                         op, N, K, w->ndim, w->ndim > 0 ? (long long)w->shape[0] : -1LL,
                         w->ndim > 1 ? (long long)w->shape[1] : -1LL);
    size_t es = emu2_dtype_size(w->dtype), wbytes, xspan, yspan;
    if (!emu2_mul_size(N, K, &wbytes) || !emu2_mul_size(wbytes, es, &wbytes) || !w->data || w->nbytes < wbytes)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: weight data (%llu bytes) is smaller than [%zu, %zu]", op,
                         (unsigned long long)w->nbytes, N, K);
    if (!emu2_mul_size(M - 1, x_stride, &xspan) || !emu2_add_size(xspan, K, &xspan) ||
        !emu2_mul_size(M - 1, y_stride, &yspan) || !emu2_add_size(yspan, N, &yspan) ||
        xspan > SIZE_MAX / 4 || yspan > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (overlaps(x, xspan * 4, y, yspan * 4))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps input", op);
    emu2_status st = cpu_check_vector(op, "bias", bias, N, 0, err);
    if (st != EMU2_OK)
        return st;

    cpu_backend *cb = cpu_of(be);
    struct lin_job j = {.k = cb->k, .M = M, .K = K, .N = N, .x = x, .ldx = x_stride, .w = w->data,
                        .wdt = w->dtype, .wes = es, .bias = bias, .y = y, .ldy = y_stride};
    if (M < SMALL_M) {
        cpu_parallel_for(cb, (N + CPU_TILE_N - 1) / CPU_TILE_N, 8, direct_range, &j);
        return EMU2_OK;
    }
    j.scratch = cpu_scratch(cb, (size_t)BLOCK_N * BLOCK_K + (size_t)CPU_TILE_M * BLOCK_K, err);
    if (!j.scratch)
        return err ? err->status : EMU2_ERR_NOMEM;
    j.scratch_stride = cpu_scratch_stride(cb);
    j.n_blocks = (N + BLOCK_N - 1) / BLOCK_N;
    /* split M too when there are too few N blocks to go round (2 tasks per thread) */
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
