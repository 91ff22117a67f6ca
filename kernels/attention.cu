/* attention.cu: softmax(q k^T * scale) v for all batches and heads, f32 throughout.
 *   - row kernel (q_len < 8: decode, or head_dim > 128): one block per query row; the row's scores
 *     live in shared memory (kv_len floats), then p.v with threads over head dims.
 *   - flash kernel (q_len >= 8, head_dim <= 128: prefill, the vision tower): blocks of 32 queries
 *     walk tiles of 32 keys with an online softmax, so nothing grows with kv_len.
 * Masking (causal with q_offset, key_mask) gives masked keys exactly zero weight; a query that sees
 * no key writes zeros. Scores and sums in f32, as on the CPU. */
#include "device_util.cuh"

#define ROW_THREADS 128
#define FLASH_BQ 32
#define FLASH_BK 32
#define FLASH_THREADS 128 /* 4 threads per query row */
#define ROW_SMEM_LIMIT_DEFAULT (48 * 1024)

/* Whether key j is usable by query i (absolute position q_offset + i) of batch b. */
__device__ __forceinline__ bool key_visible(const emu2k_attention &a, size_t b, size_t i, size_t j)
{
    if (j >= a.kv_len)
        return false;
    if (a.causal && j > a.q_offset + i)
        return false;
    if (a.key_mask && !a.key_mask[b * a.kv_len + j])
        return false;
    return true;
}

/* ---------------------------------------------------------------- one query row per block */

__global__ void __launch_bounds__(ROW_THREADS) attention_row_kernel(emu2k_attention a)
{
    extern __shared__ float smem[];
    __shared__ float red[32];
    __shared__ double redd[32];
    float *q = smem, *score = smem + a.head_dim;
    size_t item = blockIdx.x; /* (b * n_heads + h) * q_len + i */
    size_t i = item % a.q_len, bh = item / a.q_len, h = bh % a.n_heads, b = bh / a.n_heads;
    const float *qrow = a.q + b * a.q_batch_stride + i * a.q_stride + h * a.head_dim;
    float *orow = a.out + b * a.out_batch_stride + i * a.out_stride + h * a.head_dim;
    const float *kbase = a.k + b * a.kv_batch_stride + h * a.head_dim;
    const float *vbase = a.v + b * a.kv_batch_stride + h * a.head_dim;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;

    for (size_t d = threadIdx.x; d < a.head_dim; d += blockDim.x)
        q[d] = qrow[d];
    __syncthreads();
    size_t n_keys = a.causal ? min(a.kv_len, a.q_offset + i + 1) : a.kv_len;
    for (size_t j = warp; j < n_keys; j += warps) {
        const float *krow = kbase + j * a.k_stride;
        float s = 0.0f;
        for (size_t d = lane; d < a.head_dim; d += 32)
            s += q[d] * krow[d];
        s = emu2d_warp_sum(s);
        if (lane == 0)
            score[j] = key_visible(a, b, i, j) ? s * a.scale : -INFINITY;
    }
    __syncthreads();
    float m = -INFINITY;
    for (size_t j = threadIdx.x; j < n_keys; j += blockDim.x)
        m = fmaxf(m, score[j]);
    m = emu2d_block_max(m, red);
    if (m == -INFINITY) { /* no usable key: zeros */
        for (size_t d = threadIdx.x; d < a.head_dim; d += blockDim.x)
            orow[d] = 0.0f;
        return;
    }
    float part = 0.0f;
    for (size_t j = threadIdx.x; j < n_keys; j += blockDim.x) {
        float p = expf(score[j] - m); /* masked: exp(-inf) = 0 */
        score[j] = p;
        part += p;
    }
    float inv = (float)(1.0 / emu2d_block_sum_d((double)part, redd)); /* the block sum's barriers publish score */
    for (size_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
        float acc = 0.0f;
        for (size_t j = 0; j < n_keys; j++)
            acc += score[j] * vbase[j * a.v_stride + d];
        orow[d] = acc * inv;
    }
}

/* ---------------------------------------------------------------- flash (tiled, online softmax) */

/* Thread t owns query row r = t / 4 of the block and, of each key tile, keys c*8 .. c*8+7
 * (c = t % 4); of the output, dims d = 4*j + c (interleaved: no shared-memory bank conflicts). */
template <int DMAX>
__global__ void __launch_bounds__(FLASH_THREADS) attention_flash_kernel(emu2k_attention a, size_t q_blocks)
{
    constexpr int LD = DMAX + 1; /* padded rows */
    constexpr int DQ = DMAX / 4;
    extern __shared__ float smem[];
    float *Qs = smem, *Ks = Qs + FLASH_BQ * LD, *Vs = Ks + FLASH_BK * LD, *P = Vs + FLASH_BK * DMAX;
    const size_t D = a.head_dim;
    size_t qb = blockIdx.x % q_blocks, bh = blockIdx.x / q_blocks, h = bh % a.n_heads, b = bh / a.n_heads;
    size_t i0 = qb * FLASH_BQ;
    int t = threadIdx.x, r = t >> 2, c = t & 3;
    size_t qi = i0 + r;
    const float *qbase = a.q + b * a.q_batch_stride + h * D;
    const float *kbase = a.k + b * a.kv_batch_stride + h * D;
    const float *vbase = a.v + b * a.kv_batch_stride + h * D;

    for (int e = t; e < FLASH_BQ * DMAX; e += FLASH_THREADS) {
        int rr = e / DMAX, d = e - rr * DMAX;
        size_t qq = i0 + rr;
        Qs[rr * LD + d] = (qq < a.q_len && (size_t)d < D) ? qbase[qq * a.q_stride + d] : 0.0f;
    }
    float o[DQ];
#pragma unroll
    for (int j = 0; j < DQ; j++)
        o[j] = 0.0f;
    float m_run = -INFINITY, l_run = 0.0f;

    /* keys past the last query's causal limit are never visible to this block */
    size_t last_q = min(i0 + FLASH_BQ, a.q_len) - 1;
    size_t kv_end = a.causal ? min(a.kv_len, a.q_offset + last_q + 1) : a.kv_len;
    for (size_t j0 = 0; j0 < kv_end; j0 += FLASH_BK) {
        __syncthreads(); /* the previous tile is no longer read */
        for (int e = t; e < FLASH_BK * DMAX; e += FLASH_THREADS) {
            int kk = e / DMAX, d = e - kk * DMAX;
            size_t j = j0 + kk;
            bool in = j < a.kv_len && (size_t)d < D;
            Ks[kk * LD + d] = in ? kbase[j * a.k_stride + d] : 0.0f;
            Vs[kk * DMAX + d] = in ? vbase[j * a.v_stride + d] : 0.0f;
        }
        __syncthreads();
        float s[8];
#pragma unroll
        for (int u = 0; u < 8; u++)
            s[u] = 0.0f;
        for (int d = 0; d < DMAX; d++) {
            float qd = Qs[r * LD + d];
#pragma unroll
            for (int u = 0; u < 8; u++)
                s[u] += qd * Ks[(c * 8 + u) * LD + d];
        }
        float m_tile = -INFINITY;
#pragma unroll
        for (int u = 0; u < 8; u++) {
            size_t j = j0 + c * 8 + u;
            s[u] = (qi < a.q_len && key_visible(a, b, qi, j)) ? s[u] * a.scale : -INFINITY;
            m_tile = fmaxf(m_tile, s[u]);
        }
        m_tile = fmaxf(m_tile, __shfl_xor_sync(0xffffffffu, m_tile, 1));
        m_tile = fmaxf(m_tile, __shfl_xor_sync(0xffffffffu, m_tile, 2));
        float m_new = fmaxf(m_run, m_tile);
        float alpha = 1.0f, psum = 0.0f;
        if (m_new != -INFINITY) {
            alpha = expf(m_run - m_new); /* m_run = -inf: 0 */
#pragma unroll
            for (int u = 0; u < 8; u++) {
                s[u] = expf(s[u] - m_new);
                psum += s[u];
            }
        } else {
#pragma unroll
            for (int u = 0; u < 8; u++)
                s[u] = 0.0f;
        }
        psum += __shfl_xor_sync(0xffffffffu, psum, 1);
        psum += __shfl_xor_sync(0xffffffffu, psum, 2);
        l_run = l_run * alpha + psum;
        m_run = m_new;
#pragma unroll
        for (int u = 0; u < 8; u++)
            P[r * (FLASH_BK + 1) + c * 8 + u] = s[u];
        __syncwarp(); /* the row's four threads share one warp */
#pragma unroll
        for (int j = 0; j < DQ; j++)
            o[j] *= alpha;
        for (int kk = 0; kk < FLASH_BK; kk++) {
            float p = P[r * (FLASH_BK + 1) + kk];
#pragma unroll
            for (int j = 0; j < DQ; j++)
                o[j] += p * Vs[kk * DMAX + 4 * j + c];
        }
        __syncwarp(); /* P is rewritten by the next tile */
    }
    if (qi >= a.q_len)
        return;
    float *orow = a.out + b * a.out_batch_stride + qi * a.out_stride + h * D;
    float inv = l_run > 0.0f ? 1.0f / l_run : 0.0f; /* no usable key: zeros */
#pragma unroll
    for (int j = 0; j < DQ; j++) {
        size_t d = 4 * (size_t)j + c;
        if (d < D)
            orow[d] = o[j] * inv;
    }
}

template <int DMAX>
static size_t flash_smem(void)
{
    return sizeof(float) * ((size_t)FLASH_BQ * (DMAX + 1) + (size_t)FLASH_BK * (DMAX + 1) + (size_t)FLASH_BK * DMAX +
                            (size_t)FLASH_BQ * (FLASH_BK + 1));
}

template <int DMAX>
static cudaError_t launch_flash(cudaStream_t s, const emu2k_attention *a)
{
    size_t smem = flash_smem<DMAX>();
    cudaError_t e = cudaFuncSetAttribute(attention_flash_kernel<DMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (int)smem);
    if (e != cudaSuccess)
        return e;
    size_t q_blocks = (a->q_len + FLASH_BQ - 1) / FLASH_BQ;
    attention_flash_kernel<DMAX><<<(unsigned)(a->batch * a->n_heads * q_blocks), FLASH_THREADS, smem, s>>>(*a,
                                                                                                          q_blocks);
    return cudaGetLastError();
}

static size_t row_smem(const emu2k_attention *a)
{
    return sizeof(float) * (a->head_dim + a->kv_len);
}

static bool use_flash(const emu2k_attention *a)
{
    return a->q_len >= 8 && a->head_dim <= 128;
}

extern "C" const char *emu2k_attention_unsupported(const emu2k_attention *a, size_t smem_optin)
{
    size_t items = a->batch * a->n_heads * (use_flash(a) ? (a->q_len + FLASH_BQ - 1) / FLASH_BQ : a->q_len);
    if (items > 0x7fffffffu)
        return "too many (batch x heads x query) blocks for one launch";
    if (use_flash(a))
        return (a->head_dim <= 64 ? flash_smem<64>() : flash_smem<128>()) <= smem_optin
                   ? NULL
                   : "the device has too little shared memory for the tiled kernel";
    if (row_smem(a) + 512 > smem_optin) /* + the static reduction arrays */
        return a->head_dim > 128 ? "head_dim above 128 with more keys than shared memory holds"
                                 : "more keys than shared memory holds for one decode row";
    return NULL;
}

extern "C" cudaError_t emu2k_attention_run(cudaStream_t s, const emu2k_attention *a, size_t smem_optin)
{
    (void)smem_optin;
    if (use_flash(a))
        return a->head_dim <= 64 ? launch_flash<64>(s, a) : launch_flash<128>(s, a);
    size_t smem = row_smem(a);
    if (smem > ROW_SMEM_LIMIT_DEFAULT) {
        cudaError_t e =
            cudaFuncSetAttribute(attention_row_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess)
            return e;
    }
    attention_row_kernel<<<(unsigned)(a->batch * a->n_heads * a->q_len), ROW_THREADS, smem, s>>>(*a);
    return cudaGetLastError();
}
