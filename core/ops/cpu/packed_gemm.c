/* packed_gemm.c: see packed_gemm.h. */
#include <string.h>

#include "ops/cpu/packed_gemm.h"

struct packed_job {
    const cpu_kernels *k;
    const cpu_packed_gemm *g;
    float *scratch;
    size_t scratch_stride, m_chunk, n_blocks;
};

/* Weight rows [n0, n0 + rows) x columns [k0, k0 + kl) as f32 into bp, rows kp apart, zero-padded
 * to kp columns and to a whole number of CPU_TILE_N rows. */
static void pack_weight_block(const cpu_packed_gemm *g, size_t n0, size_t rows, size_t k0, size_t kl, size_t kp,
                              float *bp)
{
    size_t rows_pad = (rows + CPU_TILE_N - 1) / CPU_TILE_N * CPU_TILE_N;
    for (size_t r = 0; r < rows_pad; r++) {
        float *dst = bp + r * kp;
        if (r < rows) {
            g->weight_rows(g->weight_ctx, n0 + r, k0, kl, dst);
            memset(dst + kl, 0, (kp - kl) * sizeof(float));
        } else {
            memset(dst, 0, kp * sizeof(float));
        }
    }
}

/* One task = one N block x one chunk of M rows. */
static void packed_task(void *p, size_t task, int thread)
{
    const struct packed_job *j = p;
    const cpu_packed_gemm *g = j->g;
    size_t nb = task % j->n_blocks, mc = task / j->n_blocks;
    size_t n0 = nb * CPU_PACK_BLOCK_N, n1 = n0 + CPU_PACK_BLOCK_N < g->N ? n0 + CPU_PACK_BLOCK_N : g->N;
    size_t m0 = mc * j->m_chunk, m1 = m0 + j->m_chunk < g->M ? m0 + j->m_chunk : g->M;
    size_t rows = n1 - n0;
    float *bp = j->scratch + (size_t)thread * j->scratch_stride; /* [BLOCK_N][BLOCK_K] */
    float *ap = bp + (size_t)CPU_PACK_BLOCK_N * CPU_PACK_BLOCK_K; /* [CPU_TILE_M][BLOCK_K] */
    float c[CPU_TILE_M * CPU_TILE_N];

    for (size_t m = m0; m < m1; m++) {
        float *yr = g->y + m * g->ldy;
        if (!g->bias)
            memset(yr + n0, 0, (n1 - n0) * sizeof(float));
        else if (g->bias->dtype == EMU2_DT_F32)
            memcpy(yr + n0, (const float *)g->bias->data + n0, (n1 - n0) * sizeof(float));
        else
            for (size_t n = n0; n < n1; n++)
                yr[n] = cpu_vec_elem(g->bias, n);
    }
    for (size_t k0 = 0; k0 < g->K; k0 += CPU_PACK_BLOCK_K) {
        size_t kl = g->K - k0 < CPU_PACK_BLOCK_K ? g->K - k0 : CPU_PACK_BLOCK_K;
        size_t kp = (kl + CPU_KPAD - 1) / CPU_KPAD * CPU_KPAD;
        /* f32 weights of one whole k block (K <= CPU_PACK_BLOCK_K, a multiple of CPU_KPAD) are
         * read in place: the 64-row block is at most 256 KiB, so it stays in L2 as a packed copy
         * would, and the copy cost as much as the multiply-adds at a few dozen rows (decode
         * batches). Only a partial last 4-row tile is copied, zero-padded. */
        const float *wb = bp;
        size_t whole = rows;
        if (g->w_f32 && kl == g->K && kl == kp) {
            wb = g->w_f32 + n0 * g->K;
            whole = rows / CPU_TILE_N * CPU_TILE_N;
            if (whole < rows)
                pack_weight_block(g, n0 + whole, rows - whole, k0, kl, kp, bp + whole * kp);
        } else {
            pack_weight_block(g, n0, rows, k0, kl, kp, bp);
        }
        for (size_t m = m0; m < m1; m += CPU_TILE_M) {
            size_t mr = m1 - m < CPU_TILE_M ? m1 - m : CPU_TILE_M;
            /* x rows are read in place when the tile is whole (the usual case: real widths are
             * multiples of 16); a partial tile is copied and zero-padded */
            const float *at = g->x + m * g->ldx + k0;
            size_t lda = g->ldx;
            if (mr < CPU_TILE_M || kl != kp) {
                for (size_t i = 0; i < CPU_TILE_M; i++) {
                    float *dst = ap + i * kp;
                    if (i < mr) {
                        memcpy(dst, g->x + (m + i) * g->ldx + k0, kl * sizeof(float));
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
                j->k->tile_packed(at, lda, (r < whole ? wb : bp) + r * kp, kp, c);
                for (size_t i = 0; i < mr; i++) {
                    float *yr = g->y + (m + i) * g->ldy + n0 + r;
                    if (nr == CPU_TILE_N) /* a constant trip count: one vector add */
                        for (size_t q = 0; q < CPU_TILE_N; q++)
                            yr[q] += c[i * CPU_TILE_N + q];
                    else
                        for (size_t q = 0; q < nr; q++)
                            yr[q] += c[i * CPU_TILE_N + q];
                }
            }
        }
    }
}

emu2_status cpu_packed_gemm_run(cpu_backend *cb, const cpu_packed_gemm *g, emu2_error *err)
{
    struct packed_job j = {.k = cb->k, .g = g};
    j.scratch = cpu_scratch(cb, (size_t)CPU_PACK_BLOCK_N * CPU_PACK_BLOCK_K + (size_t)CPU_TILE_M * CPU_PACK_BLOCK_K,
                            err);
    if (!j.scratch)
        return err ? err->status : EMU2_ERR_NOMEM;
    j.scratch_stride = cpu_scratch_stride(cb);
    j.n_blocks = (g->N + CPU_PACK_BLOCK_N - 1) / CPU_PACK_BLOCK_N;
    size_t m_chunks = cpu_gemm_m_chunks(cb, j.n_blocks, g->M, CPU_TILE_M, &j.m_chunk);
    cpu_pool_run(cb->pool, j.n_blocks * m_chunks, packed_task, &j);
    return EMU2_OK;
}
