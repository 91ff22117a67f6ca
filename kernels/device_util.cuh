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
