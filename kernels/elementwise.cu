/* elementwise.cu: GELU (exact, erfc form), silu(a)*b, add. Grid-stride loops; y may alias inputs
 * (each element is read before it is written by the same thread). */
#include "device_util.cuh"

#define EW_THREADS 256

__global__ void gelu_kernel(size_t n, const float *x, float *y)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = 0.5f * v * erfcf(-v * 0.70710678118654752f); /* x/2 erfc(-x/sqrt2): no cancellation */
    }
}

__global__ void silu_mul_kernel(size_t n, const float *a, const float *b, float *y)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = a[i];
        y[i] = v / (1.0f + expf(-v)) * b[i];
    }
}

__global__ void add_kernel(size_t n, const float *a, const float *b, float *y)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = a[i] + b[i];
}

extern "C" cudaError_t emu2k_gelu(cudaStream_t s, size_t n, const float *x, float *y)
{
    gelu_kernel<<<emu2d_blocks(n, EW_THREADS), EW_THREADS, 0, s>>>(n, x, y);
    return cudaGetLastError();
}

extern "C" cudaError_t emu2k_silu_mul(cudaStream_t s, size_t n, const float *a, const float *b, float *y)
{
    silu_mul_kernel<<<emu2d_blocks(n, EW_THREADS), EW_THREADS, 0, s>>>(n, a, b, y);
    return cudaGetLastError();
}

extern "C" cudaError_t emu2k_add(cudaStream_t s, size_t n, const float *a, const float *b, float *y)
{
    add_kernel<<<emu2d_blocks(n, EW_THREADS), EW_THREADS, 0, s>>>(n, a, b, y);
    return cudaGetLastError();
}
