/* cuda_gather.c: launches of the ops that move rows: embedding, copy_rows, avgpool2d, patchify.
 * Index arrays are checked on the host (ops/op_checks.c), then staged to the device. */
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "cuda_internal.h"

emu2_status cuda_embedding(emu2_backend *be, size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                           float *out, emu2_error *err)
{
    static const char op[] = "embedding";
    emu2_status st = emu2_check_embedding_args(n_ids, ids, table, out, cuda_is_device_ptr, err);
    if (st != EMU2_OK)
        return st;
    size_t d = (size_t)table->shape[1];
    cuda_backend *cb = cuda_of(be);
    const int32_t *dids = cuda_stage(cb, ids, n_ids * sizeof *ids, err);
    if (!dids)
        return err ? err->status : EMU2_ERR_INTERNAL;
    return cuda_launched(err, emu2k_embedding(cb->stream, n_ids, dids, table->data, (int)table->dtype, d, out), op);
}

emu2_status cuda_copy_rows(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                           size_t src_n_rows, const int32_t *src_rows, float *dst, size_t dst_stride,
                           size_t dst_n_rows, const int32_t *dst_rows, emu2_error *err)
{
    static const char op[] = "copy_rows";
    emu2_status st = emu2_check_copy_rows_args(n_rows, cols, src, src_stride, src_n_rows, src_rows, dst, dst_stride,
                                               dst_n_rows, dst_rows, err);
    if (st != EMU2_OK)
        return st;
    cuda_backend *cb = cuda_of(be);
    cuda_use(cb);
    const int32_t *ds = NULL, *dd = NULL;
    if (src_rows && !(ds = cuda_stage(cb, src_rows, n_rows * sizeof *src_rows, err)))
        return err ? err->status : EMU2_ERR_INTERNAL;
    if (dst_rows && !(dd = cuda_stage(cb, dst_rows, n_rows * sizeof *dst_rows, err)))
        return err ? err->status : EMU2_ERR_INTERNAL;
    return cuda_launched(err, emu2k_copy_rows(cb->stream, n_rows, cols, src, src_stride, ds, dst, dst_stride, dd), op);
}

emu2_status cuda_avgpool2d(emu2_backend *be, emu2_grid_layout layout, size_t C, size_t H, size_t W, size_t k,
                           const float *x, float *y, emu2_error *err)
{
    static const char op[] = "avgpool2d";
    emu2_status st = emu2_check_avgpool2d_args(layout, C, H, W, k, x, y, err);
    if (st != EMU2_OK)
        return st;
    return cuda_launched(
        err, emu2k_avgpool2d(cuda_stream_of(be), layout == EMU2_GRID_CHANNEL_MAJOR, C, H, W, k, x, y), op);
}

emu2_status cuda_patchify(emu2_backend *be, size_t C, size_t H, size_t W, size_t p, const float *img, float *out,
                          emu2_error *err)
{
    static const char op[] = "patchify";
    emu2_status st = emu2_check_patchify_args(C, H, W, p, img, out, err);
    if (st != EMU2_OK)
        return st;
    return cuda_launched(err, emu2k_patchify(cuda_stream_of(be), C, H, W, p, img, out), op);
}
