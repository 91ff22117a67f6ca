/* quant.cu: linears from weight-only quantized weights (layouts in core/ops/ops.h, docs/QUANT.md).
 *   - decode (M <= 8): one warp per 1, 2 or 4 weight rows streams the int8 / int4 bytes as they are
 *     stored (16-byte loads), f32 activations, f32 sums, the scale applied per row (int8) or per
 *     group (int4), bias fused;
 *   - larger M: the weights are widened to bf16 in row chunks (dequant_*), then cuBLASLt (host side,
 *     cuda_quant.c). int8 values are widened unscaled (exact in bf16) and the row scale is applied
 *     to the f32 output (scale_bias), so only the activations are rounded.
 * Where each weight is and how it is widened: quant_layout.h (shared with the CI tests). */
#include "device_util.cuh"
#include "quant_layout.h"

#define QGEMV_MAX_ROWS 8
#define QGEMV_WARPS 8

/* Weight rows per warp (as matmul.cu): with more activation rows a warp takes more weight rows, so
 * each cached activation load serves several weight loads. int4 stops at 2: each row's chunk
 * widens to 32 floats, and 4 rows would spill registers. */
template <int MR, bool Q4>
struct qgemv_rows_per_warp {
    static constexpr int R = MR == 1 ? 1 : (MR <= 4 || Q4) ? 2 : 4;
};

/* The 16 activations x[k0 .. k0+16) of one row (16-byte aligned), as four float4 loads. */
__device__ __forceinline__ void load_x16(const float *__restrict__ x, size_t k0, float out[16])
{
    const float4 *p = reinterpret_cast<const float4 *>(x + k0);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float4 v = __ldg(p + i);
        out[4 * i] = v.x, out[4 * i + 1] = v.y, out[4 * i + 2] = v.z, out[4 * i + 3] = v.w;
    }
}

/* ---------------------------------------------------------------- int8 decode */

/* y[m, n] = s[n] * sum_k x[m, k] q[n, k] (+ bias[n]). VEC: K % 16 == 0 and 16-byte aligned rows of
 * q and x, so each lane takes 16 weights of each of its R rows per step. */
template <int MR, bool VEC>
__global__ void __launch_bounds__(32 * QGEMV_WARPS)
    q8_gemv_kernel(size_t K, size_t N, const float *__restrict__ x, size_t ldx, const int8_t *__restrict__ q,
                   const float *__restrict__ scales, const void *__restrict__ bias, int bias_dt,
                   float *__restrict__ y, size_t ldy)
{
    constexpr int R = qgemv_rows_per_warp<MR, false>::R;
    int lane = threadIdx.x & 31;
    size_t n0 = ((size_t)blockIdx.x * QGEMV_WARPS + (threadIdx.x >> 5)) * R;
    if (n0 >= N)
        return; /* whole warps leave together */
    float acc[R][MR] = {}; /* all zero */
    if (VEC) {
        size_t steps = K / 16;
        for (size_t s = lane; s < steps; s += 32) {
            float wf[R][16];
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (n0 + r < N) {
                    uint4 raw = __ldg(reinterpret_cast<const uint4 *>(q + (n0 + r) * K) + s);
                    const uint32_t words[4] = {raw.x ^ 0x80808080u, raw.y ^ 0x80808080u, raw.z ^ 0x80808080u,
                                               raw.w ^ 0x80808080u};
#pragma unroll
                    for (int i = 0; i < 16; i++)
                        wf[r][i] = emu2q_q8_byte(words[i / 4], i % 4);
                } else {
#pragma unroll
                    for (int i = 0; i < 16; i++)
                        wf[r][i] = 0.0f;
                }
            }
#pragma unroll
            for (int m = 0; m < MR; m++) {
                float xv[16];
                load_x16(x + m * ldx, 16 * s, xv);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float sum = 0.0f;
#pragma unroll
                    for (int i = 0; i < 16; i++)
                        sum += xv[i] * wf[r][i];
                    acc[r][m] += sum;
                }
            }
        }
    } else {
        for (size_t k = lane; k < K; k += 32) {
#pragma unroll
            for (int r = 0; r < R; r++) {
                float wk = n0 + r < N ? (float)q[(n0 + r) * K + k] : 0.0f;
#pragma unroll
                for (int m = 0; m < MR; m++)
                    acc[r][m] += x[m * ldx + k] * wk;
            }
        }
    }
    emu2d_gemv_finish<true>(acc, lane, n0, N, scales, bias, bias_dt, y, ldy);
}

/* ---------------------------------------------------------------- int4 decode */

/* y[m, n] = sum_g s[n, g] sum_{k in g} x[m, k] (nib - 8) (+ bias[n]); G groups of `group` per row,
 * rb = G * group / 2 bytes. VEC: K % group == 0 (no padded tail), 16-byte aligned q and x rows:
 * each lane takes one 16-byte chunk of each of its R rows per step; a chunk lies inside one group
 * (group/2 is a multiple of 16) and holds 16 consecutive elements in its low nibbles and the 16
 * elements group/2 further on in its high nibbles. */
template <int MR, bool VEC>
__global__ void __launch_bounds__(32 * QGEMV_WARPS)
    q4_gemv_kernel(size_t K, size_t N, int group, const float *__restrict__ x, size_t ldx,
                   const uint8_t *__restrict__ q, const __half *__restrict__ scales, const void *__restrict__ bias,
                   int bias_dt, float *__restrict__ y, size_t ldy)
{
    constexpr int R = qgemv_rows_per_warp<MR, true>::R;
    int lane = threadIdx.x & 31;
    size_t n0 = ((size_t)blockIdx.x * QGEMV_WARPS + (threadIdx.x >> 5)) * R;
    if (n0 >= N)
        return;
    size_t half = (size_t)group / 2, G = (K + group - 1) / group, rb = G * half;
    float acc[R][MR] = {}; /* all zero */
    if (VEC) {
        size_t steps = rb / 16;
        for (size_t s = lane; s < steps; s += 32) {
            size_t gi, k_lo;
            emu2q_q4_chunk(s, group, &gi, &k_lo);
            size_t k_hi = k_lo + half;
            float lo[R][16], hi[R][16], sc[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (n0 + r < N) {
                    uint4 raw = __ldg(reinterpret_cast<const uint4 *>(q + (n0 + r) * rb) + s);
                    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
                    for (int i = 0; i < 16; i++) { /* byte i: nibbles 2*(i%4) (low) and 2*(i%4)+1 (high) */
                        lo[r][i] = emu2q_q4_nibble(words[i / 4], 2 * (i % 4));
                        hi[r][i] = emu2q_q4_nibble(words[i / 4], 2 * (i % 4) + 1);
                    }
                    sc[r] = __half2float(scales[(n0 + r) * G + gi]);
                } else {
#pragma unroll
                    for (int i = 0; i < 16; i++)
                        lo[r][i] = hi[r][i] = 0.0f;
                    sc[r] = 0.0f;
                }
            }
#pragma unroll
            for (int m = 0; m < MR; m++) {
                float xl[16], xh[16];
                load_x16(x + m * ldx, k_lo, xl);
                load_x16(x + m * ldx, k_hi, xh);
#pragma unroll
                for (int r = 0; r < R; r++) {
                    float sum = 0.0f;
#pragma unroll
                    for (int i = 0; i < 16; i++)
                        sum += xl[i] * lo[r][i] + xh[i] * hi[r][i];
                    acc[r][m] += sum * sc[r];
                }
            }
        }
    } else {
        for (size_t k = lane; k < K; k += 32) {
            size_t gi, byte;
            int shift;
            emu2q_q4_element(k, group, &gi, &byte, &shift);
#pragma unroll
            for (int r = 0; r < R; r++) {
                float wk = 0.0f;
                if (n0 + r < N) {
                    int v = (int)((q[(n0 + r) * rb + byte] >> shift) & 15u) - 8;
                    wk = (float)v * __half2float(scales[(n0 + r) * G + gi]);
                }
#pragma unroll
                for (int m = 0; m < MR; m++)
                    acc[r][m] += x[m * ldx + k] * wk;
            }
        }
    }
    emu2d_gemv_finish<false>(acc, lane, n0, N, NULL, bias, bias_dt, y, ldy);
}

/* ---------------------------------------------------------------- launchers */

static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

template <int MR, bool Q4>
static void launch_qgemv(cudaStream_t s, const emu2k_qlinear *a)
{
    constexpr int R = qgemv_rows_per_warp<MR, Q4>::R;
    size_t per_block = (size_t)QGEMV_WARPS * R;
    dim3 grid((unsigned)((a->N + per_block - 1) / per_block)), block(32 * QGEMV_WARPS);
    bool xvec = a->ldx % 4 == 0 && aligned16(a->x) && aligned16(a->q);
    if (!Q4) {
        const int8_t *q = (const int8_t *)a->q;
        const float *sc = (const float *)a->scales;
        if (xvec && a->K % 16 == 0)
            q8_gemv_kernel<MR, true><<<grid, block, 0, s>>>(a->K, a->N, a->x, a->ldx, q, sc, a->bias, a->bias_dtype,
                                                            a->y, a->ldy);
        else
            q8_gemv_kernel<MR, false><<<grid, block, 0, s>>>(a->K, a->N, a->x, a->ldx, q, sc, a->bias,
                                                             a->bias_dtype, a->y, a->ldy);
    } else {
        const uint8_t *q = (const uint8_t *)a->q;
        const __half *sc = (const __half *)a->scales;
        if (xvec && a->K % (size_t)a->group == 0)
            q4_gemv_kernel<MR, true><<<grid, block, 0, s>>>(a->K, a->N, a->group, a->x, a->ldx, q, sc, a->bias,
                                                            a->bias_dtype, a->y, a->ldy);
        else
            q4_gemv_kernel<MR, false><<<grid, block, 0, s>>>(a->K, a->N, a->group, a->x, a->ldx, q, sc, a->bias,
                                                             a->bias_dtype, a->y, a->ldy);
    }
}

template <bool Q4>
static void launch_rows(cudaStream_t s, const emu2k_qlinear *a)
{
    switch (a->M) {
    case 1: launch_qgemv<1, Q4>(s, a); break;
    case 2: launch_qgemv<2, Q4>(s, a); break;
    case 3: launch_qgemv<3, Q4>(s, a); break;
    case 4: launch_qgemv<4, Q4>(s, a); break;
    case 5: launch_qgemv<5, Q4>(s, a); break;
    case 6: launch_qgemv<6, Q4>(s, a); break;
    case 7: launch_qgemv<7, Q4>(s, a); break;
    default: launch_qgemv<8, Q4>(s, a); break;
    }
}

extern "C" int emu2k_qgemv_max_rows(void)
{
    return QGEMV_MAX_ROWS;
}

extern "C" cudaError_t emu2k_qgemv(cudaStream_t s, const emu2k_qlinear *a)
{
    if (!a || a->M == 0 || a->M > QGEMV_MAX_ROWS || a->N == 0 || a->K == 0)
        return cudaErrorInvalidValue;
    if (a->format != EMU2_WEIGHT_Q8 &&
        !(a->format == EMU2_WEIGHT_Q4 && (a->group == 32 || a->group == 64 || a->group == 128)))
        return cudaErrorInvalidValue;
    if (a->format == EMU2_WEIGHT_Q8)
        launch_rows<false>(s, a);
    else
        launch_rows<true>(s, a);
    return cudaGetLastError();
}

/* ---------------------------------------------------------------- widening for cuBLASLt */

/* out[r, k] = bf16(q[row0 + r, k]) for r < rows: the int8 value itself, exact (|q| <= 128 fits
 * bf16's 8-bit significand); the scale is applied to the product by scale_bias_kernel. */
__global__ void dequant_q8_kernel(size_t rows, size_t K, const int8_t *__restrict__ q, __nv_bfloat16 *__restrict__ out)
{
    size_t total = rows * K;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn((float)q[i]);
}

/* out[r, k] = bf16((nib - 8) * s[r, k / group]) for r < rows, k < K (q, scales: the chunk's rows). */
__global__ void dequant_q4_kernel(size_t rows, size_t K, int group, const uint8_t *__restrict__ q,
                                  const __half *__restrict__ scales, __nv_bfloat16 *__restrict__ out)
{
    size_t half = (size_t)group / 2, G = (K + group - 1) / group, rb = G * half, total = rows * K;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / K, k = i - r * K, gi, byte;
        int shift;
        emu2q_q4_element(k, group, &gi, &byte, &shift);
        int v = (int)((q[r * rb + byte] >> shift) & 15u) - 8;
        out[i] = __float2bfloat16_rn((float)v * __half2float(scales[r * G + gi]));
    }
}

extern "C" cudaError_t emu2k_dequant_bf16(cudaStream_t s, int format, int group, size_t rows, size_t K,
                                          const void *q, const void *scales, void *out)
{
    unsigned blocks = emu2d_blocks(rows * K, 256);
    if (format == EMU2_WEIGHT_Q8)
        dequant_q8_kernel<<<blocks, 256, 0, s>>>(rows, K, (const int8_t *)q, (__nv_bfloat16 *)out);
    else if (format == EMU2_WEIGHT_Q4 && (group == 32 || group == 64 || group == 128))
        dequant_q4_kernel<<<blocks, 256, 0, s>>>(rows, K, group, (const uint8_t *)q, (const __half *)scales,
                                                 (__nv_bfloat16 *)out);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

/* y[m, n] = y[m, n] * scales[n] + bias[n] (scales: f32 [N] or NULL = 1; bias any float dtype or NULL). */
__global__ void scale_bias_kernel(size_t M, size_t N, float *__restrict__ y, size_t ldy,
                                  const float *__restrict__ scales, const void *__restrict__ bias, int bias_dt)
{
    size_t total = M * N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t m = i / N, n = i - m * N;
        float v = y[m * ldy + n];
        if (scales)
            v *= scales[n];
        if (bias)
            v += emu2d_load(bias, bias_dt, n);
        y[m * ldy + n] = v;
    }
}

extern "C" cudaError_t emu2k_scale_bias(cudaStream_t s, size_t M, size_t N, float *y, size_t ldy, const float *scales,
                                        const void *bias, int bias_dtype)
{
    if (!scales && !bias)
        return cudaSuccess;
    scale_bias_kernel<<<emu2d_blocks(M * N, 256), 256, 0, s>>>(M, N, y, ldy, scales, bias, bias_dtype);
    return cudaGetLastError();
}
