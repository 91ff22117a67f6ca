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
    emu2_status st = emu2_check_embedding_args(n_ids, ids, table, out, NULL, err);
    if (st != EMU2_OK)
        return st;
    size_t d = (size_t)table->shape[1];
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

emu2_status cpu_copy_rows(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                          size_t src_n_rows, const int32_t *src_rows, float *dst, size_t dst_stride, size_t dst_n_rows,
                          const int32_t *dst_rows, emu2_error *err)
{
    (void)be;
    emu2_status st = emu2_check_copy_rows_args(n_rows, cols, src, src_stride, src_n_rows, src_rows, dst, dst_stride,
                                               dst_n_rows, dst_rows, err);
    if (st != EMU2_OK)
        return st;
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
    emu2_status st = emu2_check_avgpool2d_args(layout, C, H, W, k, x, y, err);
    if (st != EMU2_OK)
        return st;
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
    emu2_status st = emu2_check_patchify_args(C, H, W, p, img, out, err);
    if (st != EMU2_OK)
        return st;
    size_t rows = (H / p) * (W / p), patch = C * p * p;
    struct patch_job j = {C, H, W, p, W / p, img, out};
    cpu_parallel_for(cpu_of(be), rows, 1 + 4096 / patch, patch_rows, &j);
    return EMU2_OK;
}
