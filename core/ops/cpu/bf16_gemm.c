/* bf16_gemm.c: see bf16_gemm.h. First x is rounded to bf16 once (threads split the rows) into a
 * buffer the backend keeps, rows padded to whole pairs and to a whole number of 6-row tiles. Then
 * a task is one block of BLOCK_N weight rows x one chunk of activation rows: for each BLOCK_K slice
 * the block's weights are packed into panels by the weights' own pack (BF16 rows transposed, int8 /
 * int4 rows dequantized: BLOCK_N x BLOCK_K bf16 = 256 KiB, stays in L2, beside the next block being
 * prefetched) and every 6-row tile of rounded x (12 KiB: stays in L1) runs against all of the
 * block's panels. Packing at run time costs one pass over the weights per call, small next to M >= 8
 * rows of dot products, and needs no second copy of the weights. */
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/bf16_gemm.h"
#include "ops/cpu/kern_bf16dot.h"

#define BLOCK_N (2 * CPU_BF16_NR)
#define BLOCK_K CPU_BF16_BLOCK_K

struct bf16_job {
    size_t M, K, N, ldx, ldy, lda; /* lda: words per rounded row */
    const float *x;
    uint32_t *xb; /* x rounded to bf16 pairs */
    const cpu_bf16_weights *w;
    const emu2_tensor_view *bias;
    float *y;
    uint32_t *scratch; /* per thread: the packed block */
    size_t scratch_stride, m_chunk, n_blocks;
};

static void round_range(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct bf16_job *j = p;
    cpu_bf16dot_round_rows(j->x + r0 * j->ldx, j->ldx, r1 - r0, j->K, j->xb + r0 * j->lda, j->lda);
}

static void bf16_task(void *p, size_t task, int thread)
{
    const struct bf16_job *j = p;
    size_t nb = task % j->n_blocks, mc = task / j->n_blocks;
    size_t n0 = nb * BLOCK_N, n1 = n0 + BLOCK_N < j->N ? n0 + BLOCK_N : j->N;
    size_t m0 = mc * j->m_chunk, m1 = m0 + j->m_chunk < j->M ? m0 + j->m_chunk : j->M;
    uint32_t *bp = j->scratch + (size_t)thread * j->scratch_stride;

    float bias[BLOCK_N];
    for (size_t n = n0; n < n1; n++)
        bias[n - n0] = j->bias ? cpu_vec_elem(j->bias, n) : 0.0f;
    for (size_t m = m0; m < m1; m++)
        memcpy(j->y + m * j->ldy + n0, bias, (n1 - n0) * sizeof(float));
    for (size_t k0 = 0; k0 < j->K; k0 += BLOCK_K) {
        size_t kl = j->K - k0 < BLOCK_K ? j->K - k0 : BLOCK_K;
        size_t kpairs = (kl + 1) / 2;
        for (size_t n = n0; n < n1; n += CPU_BF16_NR) {
            size_t rows = n1 - n < CPU_BF16_NR ? n1 - n : CPU_BF16_NR;
            j->w->pack(j->w->ctx, n, rows, k0, kl, bp + (n - n0) / CPU_BF16_NR * kpairs * CPU_BF16_NR);
        }
        /* the weights this task (or, at its last slice, the next one) packs next: fetched into L2
         * a little per tile, so the packing does not wait on memory */
        size_t pk0 = k0 + BLOCK_K, pn0 = n0, pn1 = n1, tiles = (m1 - m0 + CPU_BF16_MR - 1) / CPU_BF16_MR;
        if (pk0 >= j->K) {
            pk0 = 0;
            pn0 = n1 < j->N ? n1 : 0;
            pn1 = pn0 + BLOCK_N < j->N ? pn0 + BLOCK_N : j->N;
        }
        size_t pkl = j->K - pk0 < BLOCK_K ? j->K - pk0 : BLOCK_K;
        size_t row_lines = (pkl * j->w->bits / 8 + 63) / 64, lines = (pn1 - pn0) * row_lines, line = 0, col = 0;
        const uint8_t *prow = (const uint8_t *)j->w->data + pn0 * j->w->row_bytes + pk0 * j->w->bits / 8;
        for (size_t m = m0; m < m1; m += CPU_BF16_MR) {
            size_t mr = m1 - m < CPU_BF16_MR ? m1 - m : CPU_BF16_MR, t = (m - m0) / CPU_BF16_MR;
            for (size_t end = (t + 1) * lines / tiles; line < end; line++) {
                __builtin_prefetch(prow + 64 * col, 0, 2);
                if (++col == row_lines) {
                    col = 0;
                    prow += j->w->row_bytes;
                }
            }
            const uint32_t *at = j->xb + m * j->lda + k0 / 2; /* rows past M are zero padding */
            for (size_t n = n0; n < n1; n += CPU_BF16_NR) {
                size_t nr = n1 - n < CPU_BF16_NR ? n1 - n : CPU_BF16_NR;
                cpu_bf16dot_tile(at, j->lda, bp + (n - n0) / CPU_BF16_NR * kpairs * CPU_BF16_NR, kpairs,
                                 j->y + m * j->ldy + n, j->ldy, mr, nr);
            }
        }
    }
}

/* The backend's buffer for rounded x, grown to at least bytes. */
static uint32_t *rounded_x_buffer(cpu_backend *cb, size_t bytes, emu2_error *err)
{
    if (bytes <= cb->bf16_x_bytes)
        return cb->bf16_x;
    size_t size;
    if (!emu2_add_size(bytes, 63, &size)) {
        emu2_fail(err, EMU2_ERR_LIMIT, "linear (bf16): %zu bytes of rounded activations is too large", bytes);
        return NULL;
    }
    void *p = aligned_alloc(64, size / 64 * 64);
    if (!p) {
        emu2_fail(err, EMU2_ERR_NOMEM, "linear (bf16): out of memory for %zu bytes of rounded activations", bytes);
        return NULL;
    }
    free(cb->bf16_x);
    cb->bf16_x = p;
    cb->bf16_x_bytes = size / 64 * 64;
    return p;
}

emu2_status cpu_bf16_gemm_weights(cpu_backend *cb, size_t M, size_t K, size_t N, const float *x, size_t ldx,
                                  const cpu_bf16_weights *w, const emu2_tensor_view *bias, float *y, size_t ldy,
                                  emu2_error *err)
{
    struct bf16_job j = {.M = M, .K = K, .N = N, .ldx = ldx, .ldy = ldy, .x = x, .w = w, .bias = bias, .y = y};
    j.lda = ((K + 1) / 2 + 7) / 8 * 8;
    size_t m_pad = (M + CPU_BF16_MR - 1) / CPU_BF16_MR * CPU_BF16_MR, bytes;
    if (!emu2_mul_size(m_pad, j.lda, &bytes) || !emu2_mul_size(bytes, 4, &bytes))
        return emu2_fail(err, EMU2_ERR_LIMIT, "linear (bf16): %zu x %zu activations are too large", M, K);
    if (!(j.xb = rounded_x_buffer(cb, bytes, err)))
        return err ? err->status : EMU2_ERR_NOMEM;
    /* words (4 bytes, the size of the scratch's floats) */
    float *s = cpu_scratch(cb, (size_t)BLOCK_N * BLOCK_K / 2, err);
    if (!s)
        return err ? err->status : EMU2_ERR_NOMEM;
    j.scratch = (uint32_t *)s;
    j.scratch_stride = cpu_scratch_stride(cb);
    memset(j.xb + M * j.lda, 0, (m_pad - M) * j.lda * 4);
    cpu_parallel_for(cb, M, 16, round_range, &j);

    j.n_blocks = (N + BLOCK_N - 1) / BLOCK_N;
    size_t m_chunks = cpu_gemm_m_chunks(cb, j.n_blocks, M, CPU_BF16_MR, &j.m_chunk);
    cpu_pool_run(cb->pool, j.n_blocks * m_chunks, bf16_task, &j);
    return EMU2_OK;
}

/* BF16 weights: a panel is a transposed copy of the rows' slice. */
static void pack_bf16(const void *ctx, size_t n, size_t rows, size_t k0, size_t kl, uint32_t *dst)
{
    const cpu_bf16_weights *w = ctx;
    const uint16_t *base = w->data;
    size_t K = w->row_bytes / 2;
    cpu_bf16dot_pack_panel(base + n * K + k0, K, rows, kl, dst);
}

emu2_status cpu_bf16_gemm(cpu_backend *cb, size_t M, size_t K, size_t N, const float *x, size_t ldx,
                          const uint16_t *w, const emu2_tensor_view *bias, float *y, size_t ldy, emu2_error *err)
{
    cpu_bf16_weights bw = {.pack = pack_bf16, .data = w, .row_bytes = K * 2, .bits = 16};
    bw.ctx = &bw;
    return cpu_bf16_gemm_weights(cb, M, K, N, x, ldx, &bw, bias, y, ldy, err);
}
