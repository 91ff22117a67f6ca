/* pool.cu: k x k average pooling, stride k, floor mode, on token-major [H*W, C] or channel-major
 * [C, H*W] grids; one thread per output value, summing in the CPU backend's order (dy, dx). */
#include "device_util.cuh"

__global__ void avgpool_kernel(int channel_major, size_t C, size_t H, size_t W, size_t k, size_t OH, size_t OW,
                               const float *x, float *y)
{
    size_t total = C * OH * OW;
    float inv = 1.0f / (float)(k * k);
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t c, cell;
        if (channel_major) {
            c = t / (OH * OW);
            cell = t - c * OH * OW;
        } else {
            cell = t / C;
            c = t - cell * C;
        }
        size_t oy = cell / OW, ox = cell - oy * OW;
        float s = 0.0f;
        for (size_t dy = 0; dy < k; dy++)
            for (size_t dx = 0; dx < k; dx++) {
                size_t pix = (oy * k + dy) * W + ox * k + dx;
                s += channel_major ? x[c * H * W + pix] : x[pix * C + c];
            }
        y[t] = s * inv;
    }
}

extern "C" cudaError_t emu2k_avgpool2d(cudaStream_t s, int channel_major, size_t C, size_t H, size_t W, size_t k,
                                       const float *x, float *y)
{
    size_t OH = H / k, OW = W / k;
    avgpool_kernel<<<emu2d_blocks(C * OH * OW, 256), 256, 0, s>>>(channel_major, C, H, W, k, OH, OW, x, y);
    return cudaGetLastError();
}
