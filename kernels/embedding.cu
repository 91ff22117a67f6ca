/* embedding.cu: rows that move: embedding lookup (any float dtype to f32), copy_rows (scatter /
 * gather by host-checked index arrays, staged to the device), patchify. Indices were checked on
 * the host before the launch. */
#include "device_util.cuh"

__global__ void embedding_kernel(size_t n_ids, const int32_t *ids, const void *table, int dt, size_t d, float *out)
{
    for (size_t i = blockIdx.x; i < n_ids; i += gridDim.x) {
        size_t base = (size_t)ids[i] * d;
        for (size_t c = threadIdx.x; c < d; c += blockDim.x)
            out[i * d + c] = emu2d_load(table, dt, base + c);
    }
}

__global__ void copy_rows_kernel(size_t n_rows, size_t cols, const float *src, size_t src_stride,
                                 const int32_t *src_rows, float *dst, size_t dst_stride, const int32_t *dst_rows)
{
    for (size_t i = blockIdx.x; i < n_rows; i += gridDim.x) {
        const float *s = src + (src_rows ? (size_t)src_rows[i] : i) * src_stride;
        float *d = dst + (dst_rows ? (size_t)dst_rows[i] : i) * dst_stride;
        for (size_t c = threadIdx.x; c < cols; c += blockDim.x)
            d[c] = s[c];
    }
}

/* out[(py*PW + px), c*p*p + ky*p + kx] = img[c, py*p + ky, px*p + kx]; one thread per output value. */
__global__ void patchify_kernel(size_t C, size_t H, size_t W, size_t p, size_t PW, size_t total, const float *img,
                                float *out)
{
    size_t row_len = C * p * p;
    for (size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t r = t / row_len, e = t - r * row_len;
        size_t c = e / (p * p), kk = e - c * p * p, ky = kk / p, kx = kk - ky * p;
        size_t py = r / PW, px = r - py * PW;
        out[t] = img[(c * H + py * p + ky) * W + px * p + kx];
    }
}

static unsigned row_grid(size_t rows)
{
    return rows > 65535u * 8u ? 65535u * 8u : (unsigned)rows;
}

static unsigned row_threads(size_t cols)
{
    return cols >= 256 ? 256u : cols > 32 ? 128u : 32u;
}

extern "C" cudaError_t emu2k_embedding(cudaStream_t s, size_t n_ids, const int32_t *ids, const void *table, int dtype,
                                       size_t d, float *out)
{
    embedding_kernel<<<row_grid(n_ids), row_threads(d), 0, s>>>(n_ids, ids, table, dtype, d, out);
    return cudaGetLastError();
}

extern "C" cudaError_t emu2k_copy_rows(cudaStream_t s, size_t n_rows, size_t cols, const float *src,
                                       size_t src_stride, const int32_t *src_rows, float *dst, size_t dst_stride,
                                       const int32_t *dst_rows)
{
    copy_rows_kernel<<<row_grid(n_rows), row_threads(cols), 0, s>>>(n_rows, cols, src, src_stride, src_rows, dst,
                                                                    dst_stride, dst_rows);
    return cudaGetLastError();
}

extern "C" cudaError_t emu2k_patchify(cudaStream_t s, size_t C, size_t H, size_t W, size_t p, const float *img,
                                      float *out)
{
    size_t total = (H / p) * (W / p) * C * p * p;
    patchify_kernel<<<emu2d_blocks(total, 256), 256, 0, s>>>(C, H, W, p, W / p, total, img, out);
    return cudaGetLastError();
}
