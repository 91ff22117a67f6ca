/* op_checks.c: argument checks shared by the backends (see op_checks.h). The order of the checks
 * is part of the contract: a call with several faults reports the first one listed here. */
#include <math.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/op_checks.h"

int emu2_is_float_dtype(emu2_dtype dt)
{
    return dt == EMU2_DT_F32 || dt == EMU2_DT_F16 || dt == EMU2_DT_BF16;
}

int emu2_floats_overlap(const float *a, size_t an, const float *b, size_t bn)
{
    return a < b + bn && b < a + an;
}

/* Weight-side data a device backend cannot read in place. */
static emu2_status check_backend_memory(const char *op, const char *what, const void *p,
                                        emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err)
{
    if (is_backend_ptr && !is_backend_ptr(p))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: %s is host memory: pass it through prepare_weight", op,
                         what);
    return EMU2_OK;
}

emu2_status emu2_check_vector(const char *op, const char *what, const emu2_tensor_view *v, size_t n, int required,
                              emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err)
{
    if (!v) {
        if (required)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: %s is missing", op, what);
        return EMU2_OK;
    }
    if (!emu2_is_float_dtype(v->dtype))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: %s has dtype %s (want F32, F16 or BF16)", op, what,
                         emu2_dtype_name(v->dtype));
    if (v->ndim != 1 || v->shape[0] < 0 || (uint64_t)v->shape[0] != (uint64_t)n)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: %s must have shape [%zu] (has %d dims, first %lld)", op, what, n,
                         v->ndim, v->ndim > 0 ? (long long)v->shape[0] : -1LL);
    if (!v->data || v->nbytes < (uint64_t)n * emu2_dtype_size(v->dtype))
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: %s holds %llu bytes, fewer than its shape needs", op, what,
                         (unsigned long long)v->nbytes);
    return check_backend_memory(op, what, v->data, is_backend_ptr, err);
}

/* A norm's affine part: weight [n] (required) and bias [n] (optional). */
static emu2_status check_affine(const char *op, const emu2_tensor_view *weight, const emu2_tensor_view *bias, size_t n,
                                emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err)
{
    emu2_status st = emu2_check_vector(op, "weight", weight, n, 1, is_backend_ptr, err);
    if (st == EMU2_OK)
        st = emu2_check_vector(op, "bias", bias, n, 0, is_backend_ptr, err);
    return st;
}

/* ---------------------------------------------------------------- linear */

emu2_status emu2_check_linear_head(size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                                   const emu2_op_weight *W, const float *y, size_t y_stride, emu2_error *err)
{
    static const char op[] = "linear";
    if (M == 0 || K == 0 || N == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape M=%zu K=%zu N=%zu", op, M, K, N);
    if (!x || !y || !W)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL x, y or weight", op);
    if (x_stride < K || y_stride < N)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: row strides x=%zu y=%zu are narrower than K=%zu N=%zu",
                         op, x_stride, y_stride, K, N);
    return EMU2_OK;
}

emu2_status emu2_check_linear_float_weight(const emu2_tensor_view *w, size_t N, size_t K,
                                           emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err)
{
    static const char op[] = "linear";
    if (!emu2_is_float_dtype(w->dtype))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: weight dtype %s (want F32, F16 or BF16)", op,
                         emu2_dtype_name(w->dtype));
    if (w->ndim != 2 || w->shape[0] < 0 || w->shape[1] < 0 || (uint64_t)w->shape[0] != N ||
        (uint64_t)w->shape[1] != K)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: weight must be [%zu, %zu] (N, K); it has %d dims [%lld, %lld]",
                         op, N, K, w->ndim, w->ndim > 0 ? (long long)w->shape[0] : -1LL,
                         w->ndim > 1 ? (long long)w->shape[1] : -1LL);
    size_t wbytes;
    if (!emu2_mul_size(N, K, &wbytes) || !emu2_mul_size(wbytes, emu2_dtype_size(w->dtype), &wbytes) || !w->data ||
        w->nbytes < wbytes)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: weight data (%llu bytes) is smaller than [%zu, %zu]", op,
                         (unsigned long long)w->nbytes, N, K);
    return check_backend_memory(op, "weight", w->data, is_backend_ptr, err);
}

int emu2_linear_extents(size_t M, size_t K, size_t N, size_t x_stride, size_t y_stride, size_t *x_span,
                        size_t *y_span)
{
    size_t xs, ys;
    if (!emu2_mul_size(M - 1, x_stride, &xs) || !emu2_add_size(xs, K, &xs) || !emu2_mul_size(M - 1, y_stride, &ys) ||
        !emu2_add_size(ys, N, &ys) || xs > SIZE_MAX / 4 || ys > SIZE_MAX / 4) {
        *x_span = *y_span = 0;
        return 0;
    }
    *x_span = xs;
    *y_span = ys;
    return 1;
}

/* ---------------------------------------------------------------- row ops */

/* n elements of a, b and y, at most max_n. */
static emu2_status check_buffers(const char *op, size_t n, const void *a, const void *b, const void *y, size_t max_n,
                                 emu2_error *err)
{
    if (n == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no elements", op);
    if (!a || !b || !y)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL buffer", op);
    if (n > max_n)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu elements is too many", op, n);
    return EMU2_OK;
}

emu2_status emu2_check_elementwise_args(const char *op, size_t n, const void *a, const void *b, const void *y,
                                        emu2_error *err)
{
    return check_buffers(op, n, a, b, y, SIZE_MAX / 4, err);
}

emu2_status emu2_check_softmax_args(const char *op, size_t rows, size_t n, const float *x, const float *y,
                                    emu2_error *err)
{
    if (rows == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no rows", op);
    emu2_status st = emu2_check_elementwise_args(op, n, x, x, y, err);
    if (st != EMU2_OK)
        return st;
    if (rows > SIZE_MAX / 4 / n)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu x %zu is too large", op, rows, n);
    return EMU2_OK;
}

emu2_status emu2_check_norm_args(const char *op, size_t rows, size_t n, const float *x, const float *y, float eps,
                                 const emu2_tensor_view *weight, const emu2_tensor_view *bias,
                                 emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err)
{
    if (rows == 0 || n == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape rows=%zu n=%zu", op, rows, n);
    if (!x || !y)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL x or y", op);
    if (!(eps >= 0) || isinf(eps))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: eps must be a finite value >= 0", op);
    if (rows > SIZE_MAX / 4 / n)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu x %zu is too large", op, rows, n);
    return check_affine(op, weight, bias, n, is_backend_ptr, err);
}

emu2_status emu2_check_rope_args(size_t rows, size_t n_heads, size_t head_dim, const float *x, size_t stride,
                                 const int32_t *positions, float theta, unsigned flags, emu2_error *err)
{
    static const char op[] = "rope";
    if (rows == 0 || n_heads == 0 || head_dim == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape", op);
    if (!x || !positions)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL x or positions", op);
    if (head_dim % 2 || head_dim / 2 > EMU2_ROPE_MAX_HALF)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: head_dim %zu must be even and at most %d", op, head_dim,
                         2 * EMU2_ROPE_MAX_HALF);
    if (n_heads > SIZE_MAX / head_dim || stride < n_heads * head_dim)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: row stride %zu is narrower than %zu heads x %zu", op,
                         stride, n_heads, head_dim);
    if (rows - 1 > (SIZE_MAX / 4 - n_heads * head_dim) / stride)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (!(theta > 1.0f) || isinf(theta))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: theta must be finite and > 1", op);
    if (flags & ~EMU2_ROPE_TABLE_BF16)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", op, flags);
    for (size_t r = 0; r < rows; r++)
        if (positions[r] < 0)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: position %d of row %zu is negative", op,
                             (int)positions[r], r);
    return EMU2_OK;
}

void emu2_rope_inv_freq(float theta, size_t head_dim, float *inv_freq)
{
    for (size_t i = 0; i < head_dim / 2; i++)
        inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
}

/* ---------------------------------------------------------------- attention */

/* Last float index touched by rows [0, rows) of width w, batches [0, batch). */
static int extent(size_t batch, size_t bstride, size_t rows, size_t rstride, size_t w, size_t *out)
{
    size_t e1, e2;
    return emu2_mul_size(batch - 1, bstride, &e1) && emu2_mul_size(rows - 1, rstride, &e2) &&
           emu2_add_size(e1, e2, &e1) && emu2_add_size(e1, w, out) && *out <= SIZE_MAX / 4;
}

emu2_status emu2_check_attention_args(const emu2_attention_args *a, size_t *items, emu2_error *err)
{
    static const char op[] = "attention";
    if (!a)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL arguments", op);
    if (!a->batch || !a->n_heads || !a->head_dim || !a->q_len || !a->kv_len)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "%s: empty shape batch=%zu heads=%zu head_dim=%zu q_len=%zu kv_len=%zu", op, a->batch,
                         a->n_heads, a->head_dim, a->q_len, a->kv_len);
    if (!a->q || !a->k || !a->v || !a->out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL q, k, v or out", op);
    size_t width;
    if (!emu2_mul_size(a->n_heads, a->head_dim, &width))
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: heads x head_dim overflows", op);
    if (a->q_stride < width || a->k_stride < width || a->v_stride < width || a->out_stride < width)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: a row stride is narrower than heads x head_dim = %zu",
                         op, width);
    if (a->causal && (a->q_offset > a->kv_len || a->q_len > a->kv_len - a->q_offset))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: causal queries at %zu..%zu run past the %zu keys", op,
                         a->q_offset, a->q_offset + a->q_len, a->kv_len);
    if (!(a->scale == a->scale) || isinf(a->scale))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: scale is not finite", op);
    size_t qn, kn, vn, on, mask_n, n_items;
    if (!extent(a->batch, a->q_batch_stride, a->q_len, a->q_stride, width, &qn) ||
        !extent(a->batch, a->kv_batch_stride, a->kv_len, a->k_stride, width, &kn) ||
        !extent(a->batch, a->kv_batch_stride, a->kv_len, a->v_stride, width, &vn) ||
        !extent(a->batch, a->out_batch_stride, a->q_len, a->out_stride, width, &on) ||
        a->batch > SIZE_MAX / a->n_heads || !emu2_mul_size(a->batch * a->n_heads, a->q_len, &n_items) ||
        !emu2_mul_size(a->batch, a->kv_len, &mask_n))
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (emu2_floats_overlap(a->out, on, a->q, qn) || emu2_floats_overlap(a->out, on, a->k, kn) ||
        emu2_floats_overlap(a->out, on, a->v, vn))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: out overlaps q, k or v", op);
    if (items)
        *items = n_items;
    return EMU2_OK;
}

/* ---------------------------------------------------------------- row movers */

emu2_status emu2_check_embedding_args(size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                                      const float *out, emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err)
{
    static const char op[] = "embedding";
    if (n_ids == 0 || !ids || !table || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no ids, or NULL ids, table or out", op);
    if (!emu2_is_float_dtype(table->dtype))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: table dtype %s (want F32, F16 or BF16)", op,
                         emu2_dtype_name(table->dtype));
    if (table->ndim != 2 || table->shape[0] <= 0 || table->shape[1] <= 0)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: table must be a non-empty [V, D] matrix", op);
    size_t v = (size_t)table->shape[0], d = (size_t)table->shape[1], bytes, outn;
    if (!emu2_mul_size(v, d, &bytes) || !emu2_mul_size(bytes, emu2_dtype_size(table->dtype), &bytes) ||
        !table->data || table->nbytes < bytes)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: table data is smaller than [%zu, %zu]", op, v, d);
    emu2_status st = check_backend_memory(op, "table", table->data, is_backend_ptr, err);
    if (st != EMU2_OK)
        return st;
    if (!emu2_mul_size(n_ids, d, &outn) || outn > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: output of %zu x %zu is too large", op, n_ids, d);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= v)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: id %d at %zu is outside the table of %zu rows", op,
                             (int)ids[i], i, v);
    return EMU2_OK;
}

/* One side of copy_rows: its index array (or the identity) against its row count. */
static emu2_status check_row_index(const char *side, const int32_t *rows, size_t n_rows, size_t limit,
                                   emu2_error *err)
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

emu2_status emu2_check_copy_rows_args(size_t n_rows, size_t cols, const float *src, size_t src_stride,
                                      size_t src_n_rows, const int32_t *src_rows, const float *dst, size_t dst_stride,
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
    emu2_status st = check_row_index("destination", dst_rows, n_rows, dst_n_rows, err);
    if (st == EMU2_OK)
        st = check_row_index("source", src_rows, n_rows, src_n_rows, err);
    if (st != EMU2_OK)
        return st;
    size_t src_n, dst_n; /* extents in floats, for the overlap check */
    if (!emu2_mul_size(src_n_rows - 1, src_stride, &src_n) || !emu2_add_size(src_n, cols, &src_n) ||
        !emu2_mul_size(dst_n_rows - 1, dst_stride, &dst_n) || !emu2_add_size(dst_n, cols, &dst_n) ||
        src_n > SIZE_MAX / 4 || dst_n > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (emu2_floats_overlap(src, src_n, dst, dst_n))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: source and destination overlap", op);
    return EMU2_OK;
}

emu2_status emu2_check_avgpool2d_args(emu2_grid_layout layout, size_t C, size_t H, size_t W, size_t k,
                                      const float *x, const float *y, emu2_error *err)
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
    if (emu2_floats_overlap(x, n, y, C * (H / k) * (W / k))) /* every output reads k*k inputs: no in-place */
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps input", op);
    return EMU2_OK;
}

emu2_status emu2_check_patchify_args(size_t C, size_t H, size_t W, size_t p, const float *img, const float *out,
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
    if (emu2_floats_overlap(img, n, out, (H / p) * (W / p) * patch))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps the image", op);
    return EMU2_OK;
}

/* ---------------------------------------------------------------- diffusion ops */

emu2_status emu2_check_conv2d_args(size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt, size_t k,
                                   size_t stride, size_t pad, const float *y, emu2_conv2d_geometry *geo,
                                   emu2_op_weight *mat, emu2_error *err)
{
    if (!x || !y || !Wt)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "conv2d: NULL x, y or weight");
    if (!C || !H || !W || !k || !stride || k > 64 || pad > 64)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "conv2d: bad geometry C=%zu H=%zu W=%zu k=%zu stride=%zu pad=%zu",
                         C, H, W, k, stride, pad);
    if (H + 2 * pad < k || W + 2 * pad < k)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "conv2d: kernel %zu is larger than the padded %zux%zu input", k,
                         H, W);
    const emu2_tensor_view *w4 = &Wt->w;
    if (Wt->format != EMU2_WEIGHT_FLOAT || w4->ndim != 4 || w4->shape[1] != (int64_t)C || w4->shape[2] != (int64_t)k ||
        w4->shape[3] != (int64_t)k || w4->shape[0] <= 0)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "conv2d: weight must be a float [O, %zu, %zu, %zu] tensor", C, k, k);
    emu2_conv2d_geometry g = {.O = (size_t)w4->shape[0], .Ho = (H + 2 * pad - k) / stride + 1,
                              .Wo = (W + 2 * pad - k) / stride + 1};
    size_t in_n;
    if (!emu2_mul_size(C, k * k, &g.K) || !emu2_mul_size(g.Ho, g.Wo, &g.n_out) || g.K > EMU2_CONV2D_MAX_K ||
        !emu2_mul_size(H * W, C, &in_n) || in_n > SIZE_MAX / 8)
        return emu2_fail(err, EMU2_ERR_LIMIT, "conv2d: %zu input channels x %zux%zu kernel is too large", C, k, k);
    *geo = g;
    *mat = (emu2_op_weight){.w = *w4};
    mat->w.ndim = 2;
    mat->w.shape[1] = (int64_t)g.K;
    mat->w.shape[2] = mat->w.shape[3] = 0;
    return EMU2_OK;
}

emu2_status emu2_check_group_norm_args(size_t rows, size_t C, size_t groups, const float *x, const float *y,
                                       float eps, const emu2_tensor_view *weight, const emu2_tensor_view *bias,
                                       emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err)
{
    static const char op[] = "group_norm";
    if (!x || !y)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL buffer", op);
    if (!rows || !C || !groups || C % groups)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: %zu channels do not split into %zu groups", op, C,
                         groups);
    if (!(eps >= 0.0f))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: eps must be >= 0", op);
    if (rows > SIZE_MAX / 8 / C)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu rows of %zu is too large", op, rows, C);
    return check_affine(op, weight, bias, C, is_backend_ptr, err);
}

emu2_status emu2_check_diffusion_elementwise_args(const char *op, size_t n, const void *a, const void *b,
                                                  const void *y, emu2_error *err)
{
    return check_buffers(op, n, a, b, y, SIZE_MAX / 8, err);
}

emu2_status emu2_check_add_row_vector_args(size_t rows, size_t n, const float *x, const float *v, const float *y,
                                           emu2_error *err)
{
    emu2_status st = emu2_check_diffusion_elementwise_args("add_row_vector", n, x, v, y, err);
    if (st == EMU2_OK && (!rows || rows > SIZE_MAX / 8 / n))
        st = emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "add_row_vector: %zu rows of %zu", rows, n);
    return st;
}

emu2_status emu2_check_upsample_args(size_t C, size_t H, size_t W, size_t Ho, size_t Wo, const float *x,
                                     const float *y, emu2_error *err)
{
    if (!C || !H || !W || !Ho || !Wo || Ho > SIZE_MAX / Wo || Ho * Wo > SIZE_MAX / 8 / C)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "upsample_nearest: bad sizes %zux%zu -> %zux%zu x %zu", H, W,
                         Ho, Wo, C);
    return emu2_check_diffusion_elementwise_args("upsample_nearest", C, x, x, y, err);
}

emu2_status emu2_check_quant_weight(const char *op, const char *name, const emu2_op_weight *w, size_t N, size_t K,
                                    size_t max_dim, emu2_error *err)
{
    const char *pre = op ? op : "", *sep = op ? ": " : "";
    if (w->format == EMU2_WEIGHT_Q4 && w->group != 32 && w->group != 64 && w->group != 128)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s%sint4 weight with group size %d (want 32, 64 or 128)", pre, sep,
                         w->group);
    if (w->format != EMU2_WEIGHT_Q8 && w->format != EMU2_WEIGHT_Q4)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s%sweight format %d is not a quantized one", pre, sep,
                         (int)w->format);
    emu2_dtype qdt = w->format == EMU2_WEIGHT_Q8 ? EMU2_DT_I8 : EMU2_DT_U8;
    emu2_dtype sdt = w->format == EMU2_WEIGHT_Q8 ? EMU2_DT_F32 : EMU2_DT_F16;
    size_t G = w->format == EMU2_WEIGHT_Q8 ? K : (size_t)w->group; /* Q8: one "group" per row */
    size_t sc = w->format == EMU2_WEIGHT_Q8 ? 1 : K / G + (K % G != 0);
    size_t rb = w->format == EMU2_WEIGHT_Q8 ? K : sc * (G / 2);
    size_t qbytes, sbytes;
    if (!emu2_mul_size(N, rb, &qbytes) || !emu2_mul_size(N, sc, &sbytes) ||
        !emu2_mul_size(sbytes, emu2_dtype_size(sdt), &sbytes) || N > max_dim || K > max_dim)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s%squantized weight [%zu, %zu] is too large", pre, sep, N, K);
    const emu2_tensor_view *q = &w->w, *s = &w->scales;
    int q_ok = q->dtype == qdt && q->ndim == 2 && q->shape[0] == (int64_t)N && q->shape[1] == (int64_t)rb &&
               q->data && q->nbytes >= qbytes;
    int s_ok = s->dtype == sdt && s->data && s->nbytes >= sbytes &&
               ((s->ndim == 1 && sc == 1 && s->shape[0] == (int64_t)N) ||
                (s->ndim == 2 && s->shape[0] == (int64_t)N && s->shape[1] == (int64_t)sc));
    if (!q_ok)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s%s%s weight values must be %s [%zu, %zu] for a [%zu, %zu] matrix",
                         pre, sep, name, emu2_dtype_name(qdt), N, rb, N, K);
    if (!s_ok)
        return emu2_fail(err, EMU2_ERR_MISMATCH,
                         "%s%s%s weight scales must be %s [%zu] (int8) or [%zu, %zu] (int4) for a [%zu, %zu] matrix",
                         pre, sep, name, emu2_dtype_name(sdt), N, N, sc, N, K);
    return EMU2_OK;
}
