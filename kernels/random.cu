/* random.cu: random weights generated in device memory (EMU2_LOAD_RANDOM_WEIGHTS), with the
 * formula of core/model/random_weights.h, so the host generator gives bit-identical tensors. */
#include "device_util.cuh"
#include "model/random_weights.h"

template <int DT>
__global__ void random_fill_kernel(void *dst, size_t n, uint64_t key, float scale, float constant)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = scale == 0.0f ? constant : emu2_rw_value(key, (uint64_t)i, scale);
        if (DT == EMU2_DT_BF16)
            ((uint16_t *)dst)[i] = emu2_rw_bf16(v);
        else if (DT == EMU2_DT_F16)
            ((__half *)dst)[i] = __float2half_rn(v);
        else
            ((float *)dst)[i] = v;
    }
}

extern "C" cudaError_t emu2k_random_fill(cudaStream_t s, void *dst, size_t n, int dtype, uint64_t key, float scale,
                                         float constant)
{
    unsigned blocks = emu2d_blocks(n, 256);
    if (dtype == EMU2_DT_BF16)
        random_fill_kernel<EMU2_DT_BF16><<<blocks, 256, 0, s>>>(dst, n, key, scale, constant);
    else if (dtype == EMU2_DT_F16)
        random_fill_kernel<EMU2_DT_F16><<<blocks, 256, 0, s>>>(dst, n, key, scale, constant);
    else if (dtype == EMU2_DT_F32)
        random_fill_kernel<EMU2_DT_F32><<<blocks, 256, 0, s>>>(dst, n, key, scale, constant);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}
