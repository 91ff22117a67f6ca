/* norms.cu: LayerNorm, RMSNorm and the row softmaxes, one block per row. Row statistics in double
 * (as the CPU backend), max-subtracted softmax. In place (y == x) is fine: a row is read fully
 * before any of it is written, and only by its own block. */
#include "device_util.cuh"

#define ROW_THREADS 256

__global__ void __launch_bounds__(ROW_THREADS) layernorm_kernel(size_t rows, size_t n, const float *x, const void *w,
                                                                int w_dt, const void *b, int b_dt, float eps, float *y)
{
    __shared__ double red[32];
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * n;
        double s = 0.0;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x)
            s += xr[i];
        double mean = emu2d_block_sum_d(s, red) / (double)n;
        double q = 0.0;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
            double d = (double)xr[i] - mean;
            q += d * d;
        }
        double var = emu2d_block_sum_d(q, red) / (double)n;
        float inv = (float)(1.0 / sqrt(var + (double)eps));
        float fmean = (float)mean;
        __syncthreads(); /* every thread has read xr before anyone writes y (y may be x) */
        float *yr = y + r * n;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
            float v = (xr[i] - fmean) * inv * emu2d_load(w, w_dt, i);
            yr[i] = b ? v + emu2d_load(b, b_dt, i) : v;
        }
        __syncthreads();
    }
}

__global__ void __launch_bounds__(ROW_THREADS) rmsnorm_kernel(size_t rows, size_t n, const float *x, const void *w,
                                                              int w_dt, float eps, float *y)
{
    __shared__ double red[32];
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * n;
        double q = 0.0;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x)
            q += (double)xr[i] * (double)xr[i];
        double ms = emu2d_block_sum_d(q, red) / (double)n;
        float inv = (float)(1.0 / sqrt(ms + (double)eps));
        __syncthreads();
        float *yr = y + r * n;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x)
            yr[i] = xr[i] * inv * emu2d_load(w, w_dt, i);
        __syncthreads();
    }
}

__global__ void __launch_bounds__(ROW_THREADS) softmax_kernel(size_t rows, size_t n, const float *x, float *y,
                                                              int log_form)
{
    __shared__ double red[32];
    __shared__ float redf[32];
    for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * n;
        float m = -INFINITY;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x)
            m = fmaxf(m, xr[i]);
        m = emu2d_block_max(m, redf);
        double s = 0.0;
        for (size_t i = threadIdx.x; i < n; i += blockDim.x)
            s += log_form ? exp((double)xr[i] - (double)m) : (double)expf(xr[i] - m);
        s = emu2d_block_sum_d(s, red);
        __syncthreads();
        float *yr = y + r * n;
        if (log_form) {
            /* all -inf (or an inf) rows: IEEE arithmetic gives -inf/NaN, as torch and the CPU do */
            float lse = isinf(m) ? m : (float)((double)m + log(s));
            for (size_t i = threadIdx.x; i < n; i += blockDim.x)
                yr[i] = xr[i] - lse;
        } else {
            float inv = (float)(1.0 / s);
            for (size_t i = threadIdx.x; i < n; i += blockDim.x)
                yr[i] = expf(xr[i] - m) * inv;
        }
        __syncthreads();
    }
}

static unsigned row_blocks(size_t rows)
{
    return rows > 65535u * 8u ? 65535u * 8u : (unsigned)rows;
}

extern "C" cudaError_t emu2k_layernorm(cudaStream_t s, size_t rows, size_t n, const float *x, const void *w,
                                       int w_dtype, const void *b, int b_dtype, float eps, float *y)
{
    layernorm_kernel<<<row_blocks(rows), ROW_THREADS, 0, s>>>(rows, n, x, w, w_dtype, b, b_dtype, eps, y);
    return cudaGetLastError();
}

extern "C" cudaError_t emu2k_rmsnorm(cudaStream_t s, size_t rows, size_t n, const float *x, const void *w,
                                     int w_dtype, float eps, float *y)
{
    rmsnorm_kernel<<<row_blocks(rows), ROW_THREADS, 0, s>>>(rows, n, x, w, w_dtype, eps, y);
    return cudaGetLastError();
}

extern "C" cudaError_t emu2k_softmax(cudaStream_t s, size_t rows, size_t n, const float *x, float *y, int log_form)
{
    softmax_kernel<<<row_blocks(rows), ROW_THREADS, 0, s>>>(rows, n, x, y, log_form);
    return cudaGetLastError();
}
