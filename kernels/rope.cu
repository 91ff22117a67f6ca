/* rope.cu: rotary embedding in place, HF rotate-half pairing. inv_freq comes from the host (computed
 * there exactly as the CPU backend does); angle = pos * inv_freq in f32, cos/sin in double rounded
 * to f32 (and to bf16 with the table flag), so both backends see the same table. */
#include "device_util.cuh"

__global__ void rope_kernel(size_t rows, size_t n_heads, size_t half, float *x, size_t stride,
                            const int32_t *positions, const float *inv_freq, int bf16_table)
{
    size_t total = rows * n_heads * half;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t i = t % half, rh = t / half, h = rh % n_heads, r = rh / n_heads;
        float angle = (float)positions[r] * inv_freq[i];
        float c = (float)cos((double)angle), sn = (float)sin((double)angle);
        if (bf16_table) {
            c = __bfloat162float(__float2bfloat16_rn(c));
            sn = __bfloat162float(__float2bfloat16_rn(sn));
        }
        float *a = x + r * stride + h * 2 * half, *b = a + half;
        float x1 = a[i], x2 = b[i];
        a[i] = x1 * c - x2 * sn;
        b[i] = x2 * c + x1 * sn;
    }
}

extern "C" cudaError_t emu2k_rope(cudaStream_t s, size_t rows, size_t n_heads, size_t head_dim, float *x,
                                  size_t stride, const int32_t *positions, const float *inv_freq, int bf16_table)
{
    size_t half = head_dim / 2;
    rope_kernel<<<emu2d_blocks(rows * n_heads * half, 256), 256, 0, s>>>(rows, n_heads, half, x, stride, positions,
                                                                          inv_freq, bf16_table);
    return cudaGetLastError();
}
