/* diffusion.cu: the Emu2-Gen ops on token-major feature maps [H*W, C]: im2col for conv2d (the
 * product is a linear), GroupNorm (statistics in double, two passes like the CPU, then the affine
 * map with optional SiLU), nearest upsampling, SiLU, products and the per-row vector add. */
#include "device_util.cuh"

#define D_THREADS 256

/* cols[r, c*k*k + ky*k + kx] = x[(oy*s - pad + ky), (ox*s - pad + kx), c] (0 outside), for output
 * pixels first .. first + rows - 1 (the flattening order of a Conv2d weight [O, C, k, k]). */
__global__ void im2col_kernel(size_t C, size_t H, size_t W, size_t Wo, size_t k, size_t stride, size_t pad,
                              size_t first, size_t rows, const float *x, float *cols)
{
    size_t kk = k * k, K = C * kk, total = rows * K;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t r = t / K, e = t - r * K, c = e / kk, at = e - c * kk, ky = at / k, kx = at - ky * k;
        size_t o = first + r, oy = o / Wo, ox = o - oy * Wo;
        long iy = (long)(oy * stride + ky) - (long)pad, ix = (long)(ox * stride + kx) - (long)pad;
        cols[t] = (iy < 0 || ix < 0 || iy >= (long)H || ix >= (long)W) ? 0.0f : x[((size_t)iy * W + (size_t)ix) * C + c];
    }
}

extern "C" cudaError_t emu2k_im2col(cudaStream_t s, size_t C, size_t H, size_t W, size_t Wo, size_t k, size_t stride,
                                    size_t pad, size_t first, size_t rows, const float *x, float *cols)
{
    im2col_kernel<<<emu2d_blocks(rows * C * k * k, D_THREADS), D_THREADS, 0, s>>>(C, H, W, Wo, k, stride, pad, first,
                                                                                 rows, x, cols);
    return cudaGetLastError();
}

/* One block per group. pass 0: mean[g] (double); pass 1: sum of squared deviations, then the f32
 * mean and 1/sqrt(var + eps) the apply kernel uses. stats: [G] double mean, [G] f32 mean, [G] f32 inv. */
__global__ void __launch_bounds__(D_THREADS) group_stats_kernel(size_t rows, size_t C, size_t G, const float *x,
                                                                float eps, int pass, void *stats)
{
    __shared__ double red[32];
    double *mean = (double *)stats;
    float *fmean = (float *)(mean + G), *inv = fmean + G;
    size_t g = blockIdx.x, cg = C / G, n = rows * cg;
    double m = pass ? mean[g] : 0.0, acc = 0.0;
    for (size_t t = threadIdx.x; t < n; t += blockDim.x) {
        size_t r = t / cg, c = g * cg + (t - r * cg);
        double v = x[r * C + c];
        acc += pass ? (v - m) * (v - m) : v;
    }
    acc = emu2d_block_sum_d(acc, red);
    if (threadIdx.x == 0) {
        if (!pass) {
            mean[g] = acc / (double)n;
        } else {
            fmean[g] = (float)m;
            inv[g] = (float)(1.0 / sqrt(acc / (double)n + (double)eps));
        }
    }
}

extern "C" cudaError_t emu2k_group_stats(cudaStream_t s, size_t rows, size_t C, size_t groups, const float *x,
                                         float eps, void *stats)
{
    for (int pass = 0; pass < 2; pass++) {
        group_stats_kernel<<<(unsigned)groups, D_THREADS, 0, s>>>(rows, C, groups, x, eps, pass, stats);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess)
            return e;
    }
    return cudaSuccess;
}

__global__ void group_apply_kernel(size_t rows, size_t C, size_t G, const float *x, const void *stats, const void *w,
                                   int w_dt, const void *b, int b_dt, int apply_silu, float *y)
{
    const float *fmean = (const float *)((const double *)stats + G), *inv = fmean + G;
    size_t cg = C / G, total = rows * C;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t c = t % C, g = c / cg;
        float v = (x[t] - fmean[g]) * inv[g] * emu2d_load(w, w_dt, c) + (b ? emu2d_load(b, b_dt, c) : 0.0f);
        y[t] = apply_silu ? v / (1.0f + expf(-v)) : v;
    }
}

extern "C" cudaError_t emu2k_group_apply(cudaStream_t s, size_t rows, size_t C, size_t groups, const float *x,
                                         const void *stats, const void *w, int w_dtype, const void *b, int b_dtype,
                                         int apply_silu, float *y)
{
    group_apply_kernel<<<emu2d_blocks(rows * C, D_THREADS), D_THREADS, 0, s>>>(rows, C, groups, x, stats, w, w_dtype,
                                                                              b, b_dtype, apply_silu, y);
    return cudaGetLastError();
}

__global__ void upsample_kernel(size_t C, size_t H, size_t W, size_t Ho, size_t Wo, const float *x, float *y)
{
    size_t total = Ho * Wo * C;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t r = t / C, c = t - r * C, oy = r / Wo, ox = r - oy * Wo;
        size_t iy = oy * H / Ho, ix = ox * W / Wo;
        y[t] = x[(iy * W + ix) * C + c];
    }
}

extern "C" cudaError_t emu2k_upsample_nearest(cudaStream_t s, size_t C, size_t H, size_t W, size_t Ho, size_t Wo,
                                              const float *x, float *y)
{
    upsample_kernel<<<emu2d_blocks(Ho * Wo * C, D_THREADS), D_THREADS, 0, s>>>(C, H, W, Ho, Wo, x, y);
    return cudaGetLastError();
}

__global__ void silu_kernel(size_t n, const float *x, float *y)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i];
        y[i] = v / (1.0f + expf(-v));
    }
}

__global__ void mul_kernel(size_t n, const float *a, const float *b, float *y)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = a[i] * b[i];
}

__global__ void add_row_vector_kernel(size_t rows, size_t n, const float *x, const float *v, float *y)
{
    size_t total = rows * n;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x)
        y[i] = x[i] + v[i % n];
}

extern "C" cudaError_t emu2k_silu(cudaStream_t s, size_t n, const float *x, float *y)
{
    silu_kernel<<<emu2d_blocks(n, D_THREADS), D_THREADS, 0, s>>>(n, x, y);
    return cudaGetLastError();
}

extern "C" cudaError_t emu2k_mul(cudaStream_t s, size_t n, const float *a, const float *b, float *y)
{
    mul_kernel<<<emu2d_blocks(n, D_THREADS), D_THREADS, 0, s>>>(n, a, b, y);
    return cudaGetLastError();
}

extern "C" cudaError_t emu2k_add_row_vector(cudaStream_t s, size_t rows, size_t n, const float *x, const float *v,
                                            float *y)
{
    add_row_vector_kernel<<<emu2d_blocks(rows * n, D_THREADS), D_THREADS, 0, s>>>(rows, n, x, v, y);
    return cudaGetLastError();
}
