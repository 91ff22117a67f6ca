/* cuda_topk.c: the top_k op's host side: the shared checks (core/ops/topk_check.h), the kernel
 * (topk.cu) into device scratch, then only rows x k values and ids copied to the host. The
 * scratch slot is the GroupNorm statistics' one: both are used within a single op call. */
#include "common/error.h"
#include "cuda_topk.h"
#include "ops/topk_check.h"

emu2_status cuda_top_k(emu2_backend *be, size_t rows, size_t n, const float *x, size_t k, unsigned flags,
                       float *values, int32_t *ids, emu2_error *err)
{
    emu2_status st = emu2_check_top_k_args(rows, n, x, k, flags, values, ids, err);
    if (st != EMU2_OK || rows == 0)
        return st;
    cuda_backend *cb = cuda_of(be);
    cudaStream_t s = cuda_stream_of(be);
    size_t vbytes = rows * k * sizeof(float); /* bounded by the check; ids are as large */
    char *d = cuda_scratch(cb, CUDA_SCRATCH_STATS, 2 * vbytes, err);
    if (!d)
        return err ? err->status : EMU2_ERR_NOMEM;
    float *dv = (float *)d;
    int32_t *di = (int32_t *)(d + vbytes);
    st = cuda_launched(err, emu2k_top_k(s, rows, n, x, k, (flags & EMU2_TOPK_LOG_SOFTMAX) != 0, dv, di), "top_k");
    if (st != EMU2_OK)
        return st;
    cudaError_t e = cudaMemcpyAsync(values, dv, vbytes, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(ids, di, vbytes, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s);
    return e == cudaSuccess ? EMU2_OK : cuda_fail(err, e, "top_k download");
}
