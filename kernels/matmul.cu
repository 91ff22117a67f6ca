/* matmul.cu: the weight-streaming kernel for small M (decode), activation conversion for
 * cuBLASLt, and the bias epilogue. */
#include "device_util.cuh"

#define GEMV_MAX_ROWS 8
#define GEMV_WARPS 8 /* one output column (weight row) per warp */

/* Widens 8 packed 16-bit weights (one 16-byte load) to f32. */
template <int DT>
__device__ __forceinline__ void widen8(uint4 raw, float out[8])
{
    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (DT == EMU2_DT_BF16) {
            out[2 * i] = __uint_as_float(words[i] << 16);
            out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
        } else {
            __half2 h = *reinterpret_cast<const __half2 *>(&words[i]);
            float2 f = __half22float2(h);
            out[2 * i] = f.x;
            out[2 * i + 1] = f.y;
        }
    }
}

/* Weight rows per warp: with several activation rows, one warp takes R weight rows so each
 * activation load (from L1/L2) serves R weight loads and the caches keep up with memory. */
template <int MR>
struct gemv_rows_per_warp {
    static constexpr int R = MR == 1 ? 1 : MR <= 4 ? 2 : 4;
};

/* y[m, n] = sum_k x[m, k] w[n, k] (+ bias[n]) for m < MR, one warp per R consecutive n. VEC: rows
 * are 16-byte aligned and K is a multiple of 8, so each lane streams 8 weights of each of its R
 * rows and 2x4 activations of each of the MR rows per step. */
template <int MR, int DT, bool VEC>
__global__ void __launch_bounds__(32 * GEMV_WARPS) gemv_kernel(size_t K, size_t N, const float *__restrict__ x,
                                                             size_t ldx, const void *__restrict__ w,
                                                             const void *__restrict__ bias, int bias_dt,
                                                             float *__restrict__ y, size_t ldy)
{
    constexpr int R = gemv_rows_per_warp<MR>::R;
    int lane = threadIdx.x & 31;
    size_t n0 = ((size_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5)) * R;
    if (n0 >= N)
        return; /* whole warps leave together: the shuffles below see full warps */
    float acc[R][MR] = {}; /* all zero */
    const uint16_t *wbase = (const uint16_t *)w + n0 * K;
    if (VEC) {
        size_t steps = K / 8;
#pragma unroll 2
        for (size_t s = lane; s < steps; s += 32) {
            float wf[R][8];
#pragma unroll
            for (int r = 0; r < R; r++) {
                if (n0 + r < N)
                    widen8<DT>(__ldg(reinterpret_cast<const uint4 *>(wbase + r * K) + s), wf[r]);
                else
#pragma unroll
                    for (int i = 0; i < 8; i++)
                        wf[r][i] = 0.0f;
            }
#pragma unroll
            for (int m = 0; m < MR; m++) {
                const float4 *xv = reinterpret_cast<const float4 *>(x + m * ldx) + 2 * s;
                float4 a = __ldg(xv), b = __ldg(xv + 1);
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][m] += a.x * wf[r][0] + a.y * wf[r][1] + a.z * wf[r][2] + a.w * wf[r][3] +
                                 b.x * wf[r][4] + b.y * wf[r][5] + b.z * wf[r][6] + b.w * wf[r][7];
            }
        }
    } else {
        for (size_t k = lane; k < K; k += 32) {
#pragma unroll
            for (int r = 0; r < R; r++) {
                float wk = n0 + r < N ? emu2d_load(wbase + r * K, DT, k) : 0.0f;
#pragma unroll
                for (int m = 0; m < MR; m++)
                    acc[r][m] += x[m * ldx + k] * wk;
            }
        }
    }
    emu2d_gemv_finish<false>(acc, lane, n0, N, NULL, bias, bias_dt, y, ldy);
}

template <int MR, int DT>
static void launch_gemv(cudaStream_t s, size_t K, size_t N, const float *x, size_t ldx, const void *w,
                        const void *bias, int bias_dt, float *y, size_t ldy)
{
    constexpr int R = gemv_rows_per_warp<MR>::R;
    bool vec = K % 8 == 0 && ldx % 4 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)w & 15) == 0;
    size_t per_block = (size_t)GEMV_WARPS * R;
    dim3 grid((unsigned)((N + per_block - 1) / per_block)), block(32 * GEMV_WARPS);
    if (vec)
        gemv_kernel<MR, DT, true><<<grid, block, 0, s>>>(K, N, x, ldx, w, bias, bias_dt, y, ldy);
    else
        gemv_kernel<MR, DT, false><<<grid, block, 0, s>>>(K, N, x, ldx, w, bias, bias_dt, y, ldy);
}

template <int DT>
static void gemv_rows(cudaStream_t s, size_t M, size_t K, size_t N, const float *x, size_t ldx, const void *w,
                      const void *bias, int bias_dt, float *y, size_t ldy)
{
    switch (M) {
    case 1: launch_gemv<1, DT>(s, K, N, x, ldx, w, bias, bias_dt, y, ldy); break;
    case 2: launch_gemv<2, DT>(s, K, N, x, ldx, w, bias, bias_dt, y, ldy); break;
    case 3: launch_gemv<3, DT>(s, K, N, x, ldx, w, bias, bias_dt, y, ldy); break;
    case 4: launch_gemv<4, DT>(s, K, N, x, ldx, w, bias, bias_dt, y, ldy); break;
    case 5: launch_gemv<5, DT>(s, K, N, x, ldx, w, bias, bias_dt, y, ldy); break;
    case 6: launch_gemv<6, DT>(s, K, N, x, ldx, w, bias, bias_dt, y, ldy); break;
    case 7: launch_gemv<7, DT>(s, K, N, x, ldx, w, bias, bias_dt, y, ldy); break;
    default: launch_gemv<8, DT>(s, K, N, x, ldx, w, bias, bias_dt, y, ldy); break;
    }
}

extern "C" int emu2k_gemv_max_rows(void)
{
    return GEMV_MAX_ROWS;
}

extern "C" cudaError_t emu2k_gemv(cudaStream_t s, size_t M, size_t K, size_t N, const float *x, size_t ldx,
                                  const void *w, int w_dtype, const void *bias, int bias_dtype, float *y, size_t ldy)
{
    if (M == 0 || M > GEMV_MAX_ROWS || (w_dtype != EMU2_DT_BF16 && w_dtype != EMU2_DT_F16))
        return cudaErrorInvalidValue;
    if (w_dtype == EMU2_DT_BF16)
        gemv_rows<EMU2_DT_BF16>(s, M, K, N, x, ldx, w, bias, bias_dtype, y, ldy);
    else
        gemv_rows<EMU2_DT_F16>(s, M, K, N, x, ldx, w, bias, bias_dtype, y, ldy);
    return cudaGetLastError();
}

/* ---------------------------------------------------------------- conversion and bias */

template <int DT>
__global__ void to_half_kernel(size_t M, size_t K, const float *__restrict__ x, size_t ldx, void *__restrict__ out)
{
    size_t total = M * K;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t m = i / K, k = i - m * K;
        float v = x[m * ldx + k];
        if (DT == EMU2_DT_BF16)
            ((__nv_bfloat16 *)out)[i] = __float2bfloat16_rn(v);
        else
            ((__half *)out)[i] = __float2half_rn(v);
    }
}

extern "C" cudaError_t emu2k_to_half(cudaStream_t s, size_t M, size_t K, const float *x, size_t ldx, void *out,
                                     int dtype)
{
    unsigned blocks = emu2d_blocks(M * K, 256);
    if (dtype == EMU2_DT_BF16)
        to_half_kernel<EMU2_DT_BF16><<<blocks, 256, 0, s>>>(M, K, x, ldx, out);
    else if (dtype == EMU2_DT_F16)
        to_half_kernel<EMU2_DT_F16><<<blocks, 256, 0, s>>>(M, K, x, ldx, out);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}

__global__ void add_bias_kernel(size_t M, size_t N, float *__restrict__ y, size_t ldy, const void *__restrict__ bias,
                                int bias_dt)
{
    size_t total = M * N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t m = i / N, n = i - m * N;
        y[m * ldy + n] += emu2d_load(bias, bias_dt, n);
    }
}

extern "C" cudaError_t emu2k_add_bias(cudaStream_t s, size_t M, size_t N, float *y, size_t ldy, const void *bias,
                                      int bias_dtype)
{
    add_bias_kernel<<<emu2d_blocks(M * N, 256), 256, 0, s>>>(M, N, y, ldy, bias, bias_dtype);
    return cudaGetLastError();
}
