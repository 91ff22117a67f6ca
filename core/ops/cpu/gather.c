/* gather.c: ops that move rows: embedding lookup, splicing rows in, average pooling a grid, cutting
 * an image into patch rows. */
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/cpu_internal.h"

struct emb_job {
    const cpu_kernels *k;
    const int32_t *ids;
    const char *table;
    emu2_dtype dt;
    size_t row_bytes, d;
    float *out;
};

static void emb_range(void *p, size_t i0, size_t i1, int thread)
{
    (void)thread;
    const struct emb_job *j = p;
    for (size_t i = i0; i < i1; i++)
        j->k->to_f32(j->table + (size_t)j->ids[i] * j->row_bytes, j->dt, j->out + i * j->d, j->d);
}

emu2_status cpu_embedding(emu2_backend *be, size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                          float *out, emu2_error *err)
{
    static const char op[] = "embedding";
    if (n_ids == 0 || !ids || !table || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no ids, or NULL ids, table or out", op);
    if (!cpu_is_float_dtype(table->dtype))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: table dtype %s (want F32, F16 or BF16)", op,
                         emu2_dtype_name(table->dtype));
    if (table->ndim != 2 || table->shape[0] <= 0 || table->shape[1] <= 0)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: table must be a non-empty [V, D] matrix", op);
    size_t v = (size_t)table->shape[0], d = (size_t)table->shape[1], bytes, outn;
    if (!emu2_mul_size(v, d, &bytes) || !emu2_mul_size(bytes, emu2_dtype_size(table->dtype), &bytes) ||
        !table->data || table->nbytes < bytes)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: table data is smaller than [%zu, %zu]", op, v, d);
    if (!emu2_mul_size(n_ids, d, &outn) || outn > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: output of %zu x %zu is too large", op, n_ids, d);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= v)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: id %d at %zu is outside the table of %zu rows", op,
                             (int)ids[i], i, v);
    cpu_backend *cb = cpu_of(be);
    struct emb_job j = {cb->k, ids, table->data, table->dtype, d * emu2_dtype_size(table->dtype), d, out};
    cpu_parallel_for(cb, n_ids, 1 + 16384 / d, emb_range, &j);
    return EMU2_OK;
}

/* Row index i of one side: the index array's entry, or i itself. */
static size_t row_at(const int32_t *rows, size_t i)
{
    return rows ? (size_t)rows[i] : i;
}

static emu2_status check_rows(const char *side, const int32_t *rows, size_t n_rows, size_t limit, emu2_error *err)
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

emu2_status cpu_copy_rows(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                          size_t src_n_rows, const int32_t *src_rows, float *dst, size_t dst_stride, size_t dst_n_rows,
                          const int32_t *dst_rows, emu2_error *err)
{
    static const char op[] = "copy_rows";
    (void)be;
    if (n_rows == 0 || cols == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape rows=%zu cols=%zu", op, n_rows, cols);
    if (!src || !dst)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL buffer", op);
    if (src_stride < cols || dst_stride < cols)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: strides %zu/%zu are narrower than %zu columns", op,
                         src_stride, dst_stride, cols);
    emu2_status st = check_rows("destination", dst_rows, n_rows, dst_n_rows, err);
    if (st == EMU2_OK)
        st = check_rows("source", src_rows, n_rows, src_n_rows, err);
    if (st != EMU2_OK)
        return st;
    size_t src_n, dst_n; /* extents in floats, for the overlap check */
    if (!emu2_mul_size(src_n_rows - 1, src_stride, &src_n) || !emu2_add_size(src_n, cols, &src_n) ||
        !emu2_mul_size(dst_n_rows - 1, dst_stride, &dst_n) || !emu2_add_size(dst_n, cols, &dst_n) ||
        src_n > SIZE_MAX / 4 || dst_n > SIZE_MAX / 4)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (src < dst + dst_n && dst < src + src_n)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: source and destination overlap", op);
    for (size_t i = 0; i < n_rows; i++)
        memcpy(dst + row_at(dst_rows, i) * dst_stride, src + row_at(src_rows, i) * src_stride, cols * sizeof(float));
    return EMU2_OK;
}

struct pool_job {
    emu2_grid_layout layout;
    size_t C, H, W, k, OH, OW;
    const float *x;
    float *y;
};

/* Token-major: one item per output cell; all C channels of a cell at once (rows are contiguous). */
static void pool_cells(void *p, size_t c0, size_t c1, int thread)
{
    (void)thread;
    const struct pool_job *j = p;
    float inv = 1.0f / (float)(j->k * j->k);
    for (size_t cell = c0; cell < c1; cell++) {
        size_t oy = cell / j->OW, ox = cell % j->OW;
        float *out = j->y + cell * j->C;
        memset(out, 0, j->C * sizeof(float));
        for (size_t dy = 0; dy < j->k; dy++)
            for (size_t dx = 0; dx < j->k; dx++) {
                const float *in = j->x + ((oy * j->k + dy) * j->W + ox * j->k + dx) * j->C;
                for (size_t c = 0; c < j->C; c++)
                    out[c] += in[c];
            }
        for (size_t c = 0; c < j->C; c++)
            out[c] *= inv;
    }
}

/* Channel-major: one item per channel plane. */
static void pool_planes(void *p, size_t c0, size_t c1, int thread)
{
    (void)thread;
    const struct pool_job *j = p;
    float inv = 1.0f / (float)(j->k * j->k);
    for (size_t c = c0; c < c1; c++) {
        const float *plane = j->x + c * j->H * j->W;
        float *out = j->y + c * j->OH * j->OW;
        for (size_t oy = 0; oy < j->OH; oy++)
            for (size_t ox = 0; ox < j->OW; ox++) {
                float s = 0;
                for (size_t dy = 0; dy < j->k; dy++)
                    for (size_t dx = 0; dx < j->k; dx++)
                        s += plane[(oy * j->k + dy) * j->W + ox * j->k + dx];
                out[oy * j->OW + ox] = s * inv;
            }
    }
}

emu2_status cpu_avgpool2d(emu2_backend *be, emu2_grid_layout layout, size_t C, size_t H, size_t W, size_t k,
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
    if (x < y + out_n && y < x + n) /* every output cell reads k*k inputs: no in-place */
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps input", op);
    struct pool_job j = {layout, C, H, W, k, H / k, W / k, x, y};
    if (layout == EMU2_GRID_TOKEN_MAJOR)
        cpu_parallel_for(cpu_of(be), j.OH * j.OW, 1 + 8192 / (C * k * k), pool_cells, &j);
    else
        cpu_parallel_for(cpu_of(be), C, 1 + 8192 / (H * W), pool_planes, &j);
    return EMU2_OK;
}

struct patch_job {
    size_t C, H, W, p, PW;
    const float *img;
    float *out;
};

static void patch_rows(void *ctx, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct patch_job *j = ctx;
    size_t p = j->p, row_len = j->C * p * p;
    for (size_t r = r0; r < r1; r++) {
        size_t py = r / j->PW, px = r % j->PW;
        float *dst = j->out + r * row_len;
        for (size_t c = 0; c < j->C; c++)
            for (size_t ky = 0; ky < p; ky++)
                memcpy(dst + (c * p + ky) * p, j->img + (c * j->H + py * p + ky) * j->W + px * p, p * sizeof(float));
    }
}

emu2_status cpu_patchify(emu2_backend *be, size_t C, size_t H, size_t W, size_t p, const float *img, float *out,
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
    if (img < out + out_n && out < img + n)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: output overlaps the image", op);
    struct patch_job j = {C, H, W, p, W / p, img, out};
    cpu_parallel_for(cpu_of(be), rows, 1 + 4096 / patch, patch_rows, &j);
    return EMU2_OK;
}
