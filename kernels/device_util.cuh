/* device_util.cuh: small device helpers the kernel files share (element loads of any float dtype,
 * warp and block reductions, grid sizing). */
#ifndef EMU2_KERNELS_DEVICE_UTIL_CUH
#define EMU2_KERNELS_DEVICE_UTIL_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "cuda_internal.h"

/* Element i of a vector stored as F32, BF16 or F16, widened exactly to f32. */
__device__ __forceinline__ float emu2d_load(const void *p, int dt, size_t i)
{
    if (dt == EMU2_DT_F32)
        return ((const float *)p)[i];
    if (dt == EMU2_DT_BF16)
        return __uint_as_float((uint32_t)((const uint16_t *)p)[i] << 16);
    return __half2float(((const __half *)p)[i]);
}

__device__ __forceinline__ float emu2d_bf16_bits_to_f32(uint32_t bits16)
{
    return __uint_as_float(bits16 << 16);
}

__device__ __forceinline__ float emu2d_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double emu2d_warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float emu2d_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* The end of the warp-per-rows GEMV kernels (matmul.cu, quant.cu): sums each lane's partial dots over
 * the warp, then lane 0 writes y[m * ldy + n0 + r] = acc[r][m] (* scales[n0 + r] when SCALED) + bias
 * for the rows below N. SCALED is a template argument: no branch in the kernel. */
template <bool SCALED, int R, int MR>
__device__ __forceinline__ void emu2d_gemv_finish(float (&acc)[R][MR], int lane, size_t n0, size_t N,
                                                  const float *__restrict__ scales, const void *__restrict__ bias,
                                                  int bias_dt, float *__restrict__ y, size_t ldy)
{
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int m = 0; m < MR; m++)
            acc[r][m] = emu2d_warp_sum(acc[r][m]);
    if (lane != 0)
        return;
#pragma unroll
    for (int r = 0; r < R; r++) {
        size_t n = n0 + r;
        if (n >= N)
            break;
        float s = SCALED ? scales[n] : 1.0f, b = bias ? emu2d_load(bias, bias_dt, n) : 0.0f;
#pragma unroll
        for (int m = 0; m < MR; m++)
            y[m * ldy + n] = SCALED ? acc[r][m] * s + b : acc[r][m] + b;
    }
}

/* Block-wide sums / max for blocks of a multiple of 32 threads, at most 1024; `shared` holds 32
 * entries. Every thread gets the result. */
__device__ __forceinline__ double emu2d_block_sum_d(double v, double *shared)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = emu2d_warp_sum_d(v);
    __syncthreads(); /* shared may still be read from a previous call */
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : 0.0;
    return emu2d_warp_sum_d(v);
}

__device__ __forceinline__ float emu2d_block_max(float v, float *shared)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
    v = emu2d_warp_max(v);
    __syncthreads();
    if (lane == 0)
        shared[warp] = v;
    __syncthreads();
    v = lane < warps ? shared[lane] : -INFINITY;
    return emu2d_warp_max(v);
}

/* Blocks for n items at `per_block` each, capped (kernels loop grid-stride over the rest). */
static inline unsigned emu2d_blocks(size_t n, unsigned per_block)
{
    size_t b = (n + per_block - 1) / per_block;
    if (b > 65535u * 16u)
        b = 65535u * 16u;
    return b ? (unsigned)b : 1u;
}

#endif
