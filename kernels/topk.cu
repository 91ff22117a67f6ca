/* topk.cu: the top_k op (ops.h) on the GPU, one block per row. The k-th best key is found by a
 * radix select (four passes of an 8-bit histogram over the row, each narrowing the key prefix);
 * one more pass collects the keys above it (any order) and the first equal ones by index (a
 * block-wide ordered count), and the k candidates are ranked against each other in shared memory.
 * With log_form the values are (x - max) - logf((float)sum_double expf(x - max)), computed on the
 * fly in every pass (the row is read, never written). Keys: core/ops/topk_check.h's order. */
#include "cuda_topk.h"
#include "device_util.cuh"

#define TOPK_THREADS 256
#define TOPK_WARPS (TOPK_THREADS / 32)

__device__ __forceinline__ uint32_t topk_key(float v)
{
    if (v != v)
        return 0xffffffffu;
    if (v == 0.0f)
        v = 0.0f;
    uint32_t bits = __float_as_uint(v);
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

__device__ __forceinline__ float topk_value(const float *row, size_t i, int log_form, float m, float lse)
{
    float v = row[i];
    return log_form ? (v - m) - lse : v;
}

__global__ void __launch_bounds__(TOPK_THREADS) topk_kernel(size_t rows, size_t n, const float *x, int k, int log_form,
                                                            float *out_values, int32_t *out_ids)
{
    __shared__ unsigned hist[256];
    __shared__ double red[32];
    __shared__ float redf[32];
    __shared__ uint32_t cand_key[EMU2_TOPK_MAX_K];
    __shared__ int32_t cand_id[EMU2_TOPK_MAX_K];
    __shared__ float cand_val[EMU2_TOPK_MAX_K];
    __shared__ uint32_t s_prefix;
    __shared__ int s_remaining, s_gt;
    __shared__ int warp_eq[TOPK_WARPS];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *row = x + r * n;
        float *ov = out_values + r * (size_t)k;
        int32_t *oi = out_ids + r * (size_t)k;
        float m = 0.0f, lse = 0.0f;
        if (log_form) {
            int bad = 0;
            float mx = -INFINITY;
            for (size_t i = tid; i < n; i += blockDim.x) {
                float v = row[i];
                if (isnan(v) || v == INFINITY)
                    bad = 1;
                else
                    mx = fmaxf(mx, v);
            }
            bad = __syncthreads_or(bad);
            mx = emu2d_block_max(mx, redf);
            if (bad || mx == -INFINITY) { /* the op's contract: NaN values, ids 0..k-1 */
                for (int i = tid; i < k; i += blockDim.x) {
                    ov[i] = __int_as_float(0x7fc00000);
                    oi[i] = i;
                }
                __syncthreads();
                continue;
            }
            double s = 0.0;
            for (size_t i = tid; i < n; i += blockDim.x)
                s += (double)expf(row[i] - mx);
            s = emu2d_block_sum_d(s, red);
            m = mx;
            lse = logf((float)s);
        }
        /* radix select of the k-th best key, most significant byte first */
        uint32_t prefix = 0, mask = 0;
        int remaining = k;
        for (int shift = 24; shift >= 0; shift -= 8) {
            hist[tid] = 0; /* TOPK_THREADS == 256 bins */
            __syncthreads();
            for (size_t i = tid; i < n; i += blockDim.x) {
                uint32_t key = topk_key(topk_value(row, i, log_form, m, lse));
                if ((key & mask) == prefix)
                    atomicAdd(&hist[(key >> shift) & 255u], 1u);
            }
            __syncthreads();
            if (tid == 0) {
                int left = remaining;
                for (int d = 255; d >= 0; d--) {
                    if ((int)hist[d] >= left) {
                        s_prefix = prefix | ((uint32_t)d << shift);
                        break;
                    }
                    left -= (int)hist[d];
                }
                s_remaining = left;
                s_gt = 0;
            }
            __syncthreads();
            prefix = s_prefix;
            remaining = s_remaining;
            mask |= 255u << shift;
        }
        /* collect: keys above the threshold (k - remaining of them), then the first `remaining`
         * equal ones in index order */
        const uint32_t kth = prefix;
        const int above = k - remaining;
        int eq_seen = 0;
        for (size_t base = 0; base < n; base += blockDim.x) {
            size_t i = base + tid;
            float v = i < n ? topk_value(row, i, log_form, m, lse) : 0.0f;
            uint32_t key = i < n ? topk_key(v) : 0u;
            int gt = i < n && key > kth, eq = i < n && key == kth;
            if (gt) {
                int slot = atomicAdd(&s_gt, 1);
                cand_key[slot] = key;
                cand_id[slot] = (int32_t)i;
                cand_val[slot] = v;
            }
            unsigned ballot = __ballot_sync(0xffffffffu, eq);
            if (lane == 0)
                warp_eq[warp] = __popc(ballot);
            __syncthreads();
            int before = 0, total = 0;
            for (int w = 0; w < TOPK_WARPS; w++) {
                before += w < warp ? warp_eq[w] : 0;
                total += warp_eq[w];
            }
            int rank = eq_seen + before + __popc(ballot & ((1u << lane) - 1u));
            if (eq && rank < remaining) {
                cand_key[above + rank] = key;
                cand_id[above + rank] = (int32_t)i;
                cand_val[above + rank] = v;
            }
            eq_seen += total;
            __syncthreads(); /* warp_eq is rewritten next round */
        }
        __syncthreads();
        /* rank the k candidates: larger key first, then lower index */
        for (int t = tid; t < k; t += blockDim.x) {
            int pos = 0;
            for (int j = 0; j < k; j++)
                pos += cand_key[j] > cand_key[t] || (cand_key[j] == cand_key[t] && cand_id[j] < cand_id[t]);
            ov[pos] = cand_val[t];
            oi[pos] = cand_id[t];
        }
        __syncthreads();
    }
}

extern "C" cudaError_t emu2k_top_k(cudaStream_t s, size_t rows, size_t n, const float *x, size_t k, int log_form,
                                   float *values, int32_t *ids)
{
    unsigned blocks = rows > 65535u * 8u ? 65535u * 8u : (unsigned)rows;
    topk_kernel<<<blocks, TOPK_THREADS, 0, s>>>(rows, n, x, (int)k, log_form, values, ids);
    return cudaGetLastError();
}
