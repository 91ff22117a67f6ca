/* cuda_gather.c: argument checks and launches of the ops that move rows: embedding, copy_rows,
 * avgpool2d, patchify. Index arrays are checked on the host, then staged to the device. */
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "cuda_internal.h"

emu2_status cuda_embedding(emu2_backend *be, size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                           float *out, emu2_error *err)
{
    static const char op[] = "embedding";
    if (n_ids == 0 || !ids || !table || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no ids, or NULL ids, table or out", op);
    if (!cuda_is_float_dtype(table->dtype))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: table dtype %s (want F32, F16 or BF16)", op,
                         emu2_dtype_name(table->dtype));
    if (table->ndim != 2 || table->shape[0] <= 0 || table->shape[1] <= 0)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: table must be a non-empty [V, D] matrix", op);
    size_t v = (size_t)table->shape[0], d = (size_t)table->shape[1], bytes, outn;
    if (!emu2_mul_size(v, d, &bytes) || !emu2_mul_size(bytes, emu2_dtype_size(table->dtype), &bytes) ||
        !table->data || table->nbytes < bytes)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: table data is smaller than [%zu, %zu]", op, v, d);
    if (!cuda_is_device_ptr(table->data))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: table is host memory: pass it through prepare_weight",
                         op);
    if (!emu2_mul_size(n_ids, d, &outn) || outn > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: output of %zu x %zu is too large", op, n_ids, d);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= v)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: id %d at %zu is outside the table of %zu rows", op,
                             (int)ids[i], i, v);
    cuda_backend *cb = cuda_of(be);
    const int32_t *dids = cuda_stage(cb, ids, n_ids * sizeof *ids, err);
    if (!dids)
        return err ? err->status : EMU2_ERR_INTERNAL;
    return cuda_launched(err, emu2k_embedding(cb->stream, n_ids, dids, table->data, (int)table->dtype, d, out), op);
}

static emu2_status check_index(const char *side, const int32_t *rows, size_t n_rows, size_t limit, emu2_error *err)
{
    if (!rows && n_rows > limit)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "copy_rows: %zu rows but the %s has only %zu", n_rows, side,
                         limit);
    for (size_t i = 0; rows && i < n_rows; i++)
        if (rows[i] < 0 || (size_t)rows[i] >= limit)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "copy_rows: %s row %d (entry %zu) is outside 0..%zu", side,
                             (int)rows[i], i, limit ? limit - 1 : 0);
    return EMU2_OK;
}

emu2_status cuda_copy_rows(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                           size_t src_n_rows, const int32_t *src_rows, float *dst, size_t dst_stride,
                           size_t dst_n_rows, const int32_t *dst_rows, emu2_error *err)
{
    static const char op[] = "copy_rows";
    if (n_rows == 0 || cols == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape rows=%zu cols=%zu", op, n_rows, cols);
    if (!src || !dst)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL buffer", op);
    if (src_stride < cols || dst_stride < cols)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: strides %zu/%zu are narrower than %zu columns", op,
                         src_stride, dst_stride, cols);
    emu2_status st = check_index("destination", dst_rows, n_rows, dst_n_rows, err);
    if (st == EMU2_OK)
        st = check_index("source", src_rows, n_rows, src_n_rows, err);
    if (st != EMU2_OK)
        return st;
    size_t src_n, dst_n;
    if (!emu2_mul_size(src_n_rows - 1, src_stride, &src_n) || !emu2_add_size(src_n, cols, &src_n) ||
        !emu2_mul_size(dst_n_rows - 1, dst_stride, &dst_n) || !emu2_add_size(dst_n, cols, &dst_n) ||
        src_n > SIZE_MAX / 4 || dst_n > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (cuda_overlaps(src, src_n, dst, dst_n))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: source and destination overlap", op);
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
    if (!C || !H || !W || !k || !x || !y)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape or NULL buffer", op);
    if (k > H || k > W)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: kernel %zu is larger than the %zu x %zu grid", op, k, H,
                         W);
    size_t n;
    if (!emu2_mul_size(C, H, &n) || !emu2_mul_size(n, W, &n) || n > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: grid is too large", op);
    if (layout != EMU2_GRID_TOKEN_MAJOR && layout != EMU2_GRID_CHANNEL_MAJOR)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: unknown layout %d", op, (int)layout);
    size_t out_n = C * (H / k) * (W / k);
    if (cuda_overlaps(x, n, y, out_n))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps input", op);
    return cuda_launched(
        err, emu2k_avgpool2d(cuda_stream_of(be), layout == EMU2_GRID_CHANNEL_MAJOR, C, H, W, k, x, y), op);
}

emu2_status cuda_patchify(emu2_backend *be, size_t C, size_t H, size_t W, size_t p, const float *img, float *out,
                          emu2_error *err)
{
    static const char op[] = "patchify";
    if (!C || !H || !W || !p || !img || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape or NULL buffer", op);
    if (p > H || p > W)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: patch %zu is larger than the %zu x %zu image", op, p, H, W);
    size_t n, patch;
    if (!emu2_mul_size(C, H, &n) || !emu2_mul_size(n, W, &n) || n > SIZE_MAX / 4 || !emu2_mul_size(C, p * p, &patch))
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: image is too large", op);
    size_t rows = (H / p) * (W / p), out_n = rows * patch;
    if (cuda_overlaps(img, n, out, out_n))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps the image", op);
    return cuda_launched(err, emu2k_patchify(cuda_stream_of(be), C, H, W, p, img, out), op);
}
