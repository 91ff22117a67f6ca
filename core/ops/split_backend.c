/* split_backend.c: one backend over several child backends of the same kind (the GPUs of
 * "cuda:0,1"), each holding a contiguous range of decoder layers (docs/CUDA.md).
 *
 * Placement: the weight binder and the decoder call set_layer before preparing a layer's weights
 * and allocating its KV cache; prepare_weight and alloc go to that layer's child. The plan
 * (device_split.c) is made once layer 0's weights are known: every decoder layer weighs what
 * layer 0 weighs, the first child also holds what was prepared before layer 0 (vision tower,
 * embeddings), the last what came after (final norm, lm_head).
 *
 * Running: an op that reads a weight runs on the child that holds it; other ops run on the
 * current child. Changing child makes the new one wait for the old (wait_for), so the current
 * child's queue always comes after all earlier work, and download / sync on it see everything.
 * Activations live where they were allocated and are read across devices (peer access, enabled
 * between every pair at creation). free and release_weight go to the child that owns the memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ops/device_split.h"
#include "ops/ops.h"

typedef struct split_range {
    uintptr_t lo, hi; /* [lo, hi) */
    int child;
} split_range;

typedef struct split_backend {
    emu2_backend base; /* first */
    emu2_ops ops;      /* this instance's table (the children's name, their optional ops) */
    emu2_backend *child[EMU2_SPLIT_MAX_DEVICES];
    int n, cur;
    /* placement */
    long layer;      /* the last set_layer */
    size_t n_layers; /* of the plan (0: no plan yet) */
    uint64_t bytes_before, bytes_layer0, bytes_after;
    emu2_split_plan plan;
    /* what each child owns, sorted by lo */
    split_range *ranges;
    size_t n_ranges, cap_ranges;
} split_backend;

static split_backend *split_of(emu2_backend *be)
{
    return (split_backend *)be;
}

/* ---------------------------------------------------------------- ownership */

/* Index of the first range with lo > p. */
static size_t upper(const split_backend *sb, uintptr_t p)
{
    size_t a = 0, b = sb->n_ranges;
    while (a < b) {
        size_t m = a + (b - a) / 2;
        if (sb->ranges[m].lo <= p)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* The child owning p, or -1. */
static int owner(const split_backend *sb, const void *p)
{
    uintptr_t u = (uintptr_t)p;
    size_t i = upper(sb, u);
    /* ranges do not overlap, so only the last one starting at or before p can hold it */
    if (!p || i == 0 || u >= sb->ranges[i - 1].hi)
        return -1;
    return sb->ranges[i - 1].child;
}

static int remember(split_backend *sb, const void *p, uint64_t bytes, int child)
{
    if (!p || !bytes)
        return 1;
    if (sb->n_ranges == sb->cap_ranges) {
        size_t cap = sb->cap_ranges ? 2 * sb->cap_ranges : 256;
        split_range *r = realloc(sb->ranges, cap * sizeof *r);
        if (!r)
            return 0;
        sb->ranges = r;
        sb->cap_ranges = cap;
    }
    uintptr_t lo = (uintptr_t)p;
    size_t i = upper(sb, lo);
    memmove(sb->ranges + i + 1, sb->ranges + i, (sb->n_ranges - i) * sizeof *sb->ranges);
    sb->ranges[i] = (split_range){lo, lo + (uintptr_t)bytes, child};
    sb->n_ranges++;
    return 1;
}

static void forget(split_backend *sb, const void *p)
{
    uintptr_t lo = (uintptr_t)p;
    size_t i = upper(sb, lo);
    if (!p || i == 0 || sb->ranges[i - 1].lo != lo)
        return;
    memmove(sb->ranges + i - 1, sb->ranges + i, (sb->n_ranges - i) * sizeof *sb->ranges);
    sb->n_ranges--;
}

/* ---------------------------------------------------------------- switching */

static emu2_status switch_to(split_backend *sb, int c, emu2_error *err)
{
    if (c < 0 || c == sb->cur)
        return EMU2_OK;
    emu2_backend *to = sb->child[c], *from = sb->child[sb->cur];
    if (to->ops->wait_for) {
        emu2_status st = to->ops->wait_for(to, from, err);
        if (st != EMU2_OK)
            return st;
    }
    sb->cur = c;
    return EMU2_OK;
}

/* Runs on the child holding `weight` (if it is a known weight), else on the current one. */
static emu2_backend *route(split_backend *sb, const void *weight, emu2_error *err, emu2_status *st)
{
    *st = switch_to(sb, owner(sb, weight), err);
    return sb->child[sb->cur];
}

/* The child a layer belongs to; makes the plan when layer 1 is first asked for. */
static emu2_status child_of_layer(split_backend *sb, long layer, size_t n_layers, int *out, emu2_error *err)
{
    if (layer < 0) {
        *out = 0;
        return EMU2_OK;
    }
    if ((size_t)layer >= n_layers) {
        *out = sb->n - 1;
        return EMU2_OK;
    }
    if (sb->n_layers != n_layers) {
        if (layer == 0) { /* layer 0 always goes first; its size decides the plan */
            *out = 0;
            return EMU2_OK;
        }
        emu2_device_list devs = {.n = sb->n};
        for (int i = 0; i < sb->n; i++)
            devs.index[i] = i;
        uint64_t *sizes = malloc(n_layers * sizeof *sizes);
        if (!sizes)
            return emu2_fail(err, EMU2_ERR_NOMEM, "layer split: out of memory");
        for (size_t i = 0; i < n_layers; i++)
            sizes[i] = sb->bytes_layer0 ? sb->bytes_layer0 : 1;
        emu2_status st =
            emu2_split_plan_make(sizes, n_layers, sb->bytes_before, sb->bytes_after, &devs, NULL, &sb->plan, err);
        free(sizes);
        if (st != EMU2_OK)
            return st;
        sb->n_layers = n_layers;
    }
    for (int s = 0; s < sb->plan.n_stages; s++)
        if ((size_t)layer < sb->plan.stage[s].first_layer + sb->plan.stage[s].n_layers) {
            *out = s;
            return EMU2_OK;
        }
    *out = sb->n - 1;
    return EMU2_OK;
}

static emu2_status sp_set_layer(emu2_backend *be, long layer, size_t n_layers, emu2_error *err)
{
    split_backend *sb = split_of(be);
    int c;
    emu2_status st = child_of_layer(sb, layer, n_layers, &c, err);
    if (st != EMU2_OK)
        return st;
    sb->layer = layer < 0 ? -1 : (size_t)layer >= n_layers ? (long)n_layers : layer;
    return switch_to(sb, c, err);
}

/* ---------------------------------------------------------------- memory */

static void sp_destroy(emu2_backend *be)
{
    split_backend *sb = split_of(be);
    for (int i = 0; i < sb->n; i++)
        emu2_backend_close(sb->child[i]);
    free(sb->ranges);
    free(sb);
}

static float *sp_alloc(emu2_backend *be, size_t n, emu2_error *err)
{
    split_backend *sb = split_of(be);
    emu2_backend *c = sb->child[sb->cur];
    float *p = c->ops->alloc(c, n, err);
    if (p && !remember(sb, p, (uint64_t)(n ? n : 1) * sizeof(float), sb->cur)) {
        c->ops->free(c, p);
        emu2_fail(err, EMU2_ERR_NOMEM, "layer split: out of memory");
        return NULL;
    }
    return p;
}

static void sp_free(emu2_backend *be, float *p)
{
    split_backend *sb = split_of(be);
    if (!p)
        return;
    int o = owner(sb, p);
    emu2_backend *cur = sb->child[sb->cur];
    if (cur->ops->wait_for && o >= 0 && o != sb->cur) { /* another device may still read it: finish first */
        emu2_error ignored;
        cur->ops->sync(cur, &ignored);
    }
    emu2_backend *c = sb->child[o >= 0 ? o : sb->cur];
    forget(sb, p);
    c->ops->free(c, p);
}

static emu2_status sp_upload(emu2_backend *be, float *dst, const float *src, size_t n, emu2_error *err)
{
    emu2_backend *c = split_of(be)->child[split_of(be)->cur];
    return c->ops->upload(c, dst, src, n, err);
}

static emu2_status sp_download(emu2_backend *be, float *dst, const float *src, size_t n, emu2_error *err)
{
    emu2_backend *c = split_of(be)->child[split_of(be)->cur];
    return c->ops->download(c, dst, src, n, err);
}

static emu2_status sp_sync(emu2_backend *be, emu2_error *err)
{
    emu2_backend *c = split_of(be)->child[split_of(be)->cur];
    return c->ops->sync(c, err);
}

static emu2_status sp_prepare_weight(emu2_backend *be, const emu2_tensor_view *host, emu2_tensor_view *out,
                                     emu2_error *err)
{
    split_backend *sb = split_of(be);
    emu2_backend *c = sb->child[sb->cur];
    emu2_status st = c->ops->prepare_weight(c, host, out, err);
    if (st != EMU2_OK)
        return st;
    if (!remember(sb, out->data, out->nbytes, sb->cur)) {
        c->ops->release_weight(c, out);
        return emu2_fail(err, EMU2_ERR_NOMEM, "layer split: out of memory");
    }
    if (sb->layer < 0)
        sb->bytes_before += out->nbytes;
    else if (sb->layer == 0)
        sb->bytes_layer0 += out->nbytes;
    else if (sb->n_layers == 0 || (size_t)sb->layer >= sb->n_layers)
        sb->bytes_after += out->nbytes; /* before the plan, only the "after" part is bound past layer 0 */
    return EMU2_OK;
}

static void sp_release_weight(emu2_backend *be, emu2_tensor_view *prepared)
{
    split_backend *sb = split_of(be);
    if (!prepared || !prepared->data)
        return;
    int o = owner(sb, prepared->data);
    emu2_backend *c = sb->child[o >= 0 ? o : sb->cur];
    forget(sb, prepared->data);
    c->ops->release_weight(c, prepared);
}

/* ---------------------------------------------------------------- ops */

#define ON(weight)                                                                                                     \
    split_backend *sb = split_of(be);                                                                                  \
    emu2_status st_;                                                                                                   \
    emu2_backend *c = route(sb, (weight), err, &st_);                                                                  \
    if (st_ != EMU2_OK)                                                                                                \
        return st_

static emu2_status sp_linear(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                             const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                             emu2_error *err)
{
    ON(W ? W->w.data : NULL);
    return c->ops->linear(c, M, K, N, x, x_stride, W, bias, y, y_stride, err);
}

static emu2_status sp_matmul_nt(emu2_backend *be, size_t M, size_t K, size_t N, const float *A, const float *B,
                                float *C, emu2_error *err)
{
    ON(NULL);
    return c->ops->matmul_nt(c, M, K, N, A, B, C, err);
}

static emu2_status sp_layernorm(emu2_backend *be, size_t rows, size_t n, const float *x,
                                const emu2_tensor_view *weight, const emu2_tensor_view *bias, float eps, float *y,
                                emu2_error *err)
{
    ON(weight ? weight->data : NULL);
    return c->ops->layernorm(c, rows, n, x, weight, bias, eps, y, err);
}

static emu2_status sp_rmsnorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                              float eps, float *y, emu2_error *err)
{
    ON(weight ? weight->data : NULL);
    return c->ops->rmsnorm(c, rows, n, x, weight, eps, y, err);
}

static emu2_status sp_rope(emu2_backend *be, size_t rows, size_t n_heads, size_t head_dim, float *x, size_t stride,
                           const int32_t *positions, float theta, unsigned flags, emu2_error *err)
{
    ON(NULL);
    return c->ops->rope(c, rows, n_heads, head_dim, x, stride, positions, theta, flags, err);
}

static emu2_status sp_attention(emu2_backend *be, const emu2_attention_args *args, emu2_error *err)
{
    ON(NULL);
    return c->ops->attention(c, args, err);
}

static emu2_status sp_gelu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->gelu(c, n, x, y, err);
}

static emu2_status sp_silu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->silu_mul(c, n, a, b, y, err);
}

static emu2_status sp_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->softmax(c, rows, n, x, y, err);
}

static emu2_status sp_log_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->log_softmax(c, rows, n, x, y, err);
}

/* The logits live on the child that ran lm_head (the current one). */
static emu2_status sp_top_k(emu2_backend *be, size_t rows, size_t n, const float *x, size_t k, unsigned flags,
                            float *values, int32_t *ids, emu2_error *err)
{
    ON(NULL);
    return c->ops->top_k(c, rows, n, x, k, flags, values, ids, err);
}

static emu2_status sp_embedding(emu2_backend *be, size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                                float *out, emu2_error *err)
{
    ON(table ? table->data : NULL);
    return c->ops->embedding(c, n_ids, ids, table, out, err);
}

static emu2_status sp_avgpool2d(emu2_backend *be, emu2_grid_layout layout, size_t C, size_t H, size_t W, size_t k,
                                const float *x, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->avgpool2d(c, layout, C, H, W, k, x, y, err);
}

static emu2_status sp_patchify(emu2_backend *be, size_t C, size_t H, size_t W, size_t p, const float *img, float *out,
                               emu2_error *err)
{
    ON(NULL);
    return c->ops->patchify(c, C, H, W, p, img, out, err);
}

static emu2_status sp_add(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->add(c, n, a, b, y, err);
}

static emu2_status sp_copy_rows(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                                size_t src_n_rows, const int32_t *src_rows, float *dst, size_t dst_stride,
                                size_t dst_n_rows, const int32_t *dst_rows, emu2_error *err)
{
    ON(NULL);
    return c->ops->copy_rows(c, n_rows, cols, src, src_stride, src_n_rows, src_rows, dst, dst_stride, dst_n_rows,
                             dst_rows, err);
}

static emu2_status sp_conv2d(emu2_backend *be, size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt,
                             const emu2_tensor_view *bias, size_t k, size_t stride, size_t pad, float *y,
                             emu2_error *err)
{
    ON(Wt ? Wt->w.data : NULL);
    return c->ops->conv2d(c, C, H, W, x, Wt, bias, k, stride, pad, y, err);
}

static emu2_status sp_group_norm(emu2_backend *be, size_t rows, size_t C, size_t groups, const float *x,
                                 const emu2_tensor_view *weight, const emu2_tensor_view *bias, float eps,
                                 int apply_silu, float *y, emu2_error *err)
{
    ON(weight ? weight->data : NULL);
    return c->ops->group_norm(c, rows, C, groups, x, weight, bias, eps, apply_silu, y, err);
}

static emu2_status sp_upsample_nearest(emu2_backend *be, size_t C, size_t H, size_t W, size_t Ho, size_t Wo,
                                       const float *x, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->upsample_nearest(c, C, H, W, Ho, Wo, x, y, err);
}

static emu2_status sp_silu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->silu(c, n, x, y, err);
}

static emu2_status sp_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    ON(NULL);
    return c->ops->mul(c, n, a, b, y, err);
}

static emu2_status sp_add_row_vector(emu2_backend *be, size_t rows, size_t n, const float *x, const float *v, float *y,
                                     emu2_error *err)
{
    ON(NULL);
    return c->ops->add_row_vector(c, rows, n, x, v, y, err);
}

#undef ON

static const emu2_ops split_template = {
    .destroy = sp_destroy,
    .alloc = sp_alloc,
    .free = sp_free,
    .upload = sp_upload,
    .download = sp_download,
    .sync = sp_sync,
    .prepare_weight = sp_prepare_weight,
    .release_weight = sp_release_weight,
    .linear = sp_linear,
    .matmul_nt = sp_matmul_nt,
    .layernorm = sp_layernorm,
    .rmsnorm = sp_rmsnorm,
    .rope = sp_rope,
    .attention = sp_attention,
    .gelu = sp_gelu,
    .silu_mul = sp_silu_mul,
    .softmax = sp_softmax,
    .log_softmax = sp_log_softmax,
    .top_k = sp_top_k,
    .embedding = sp_embedding,
    .avgpool2d = sp_avgpool2d,
    .patchify = sp_patchify,
    .add = sp_add,
    .copy_rows = sp_copy_rows,
    .conv2d = sp_conv2d,
    .group_norm = sp_group_norm,
    .upsample_nearest = sp_upsample_nearest,
    .silu = sp_silu,
    .mul = sp_mul,
    .add_row_vector = sp_add_row_vector,
    .set_layer = sp_set_layer,
};

emu2_status emu2_split_backend_create(emu2_backend **children, int n, emu2_backend **out, emu2_error *err)
{
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "layer split: NULL output pointer");
    *out = NULL;
    if (!children || n < 1 || n > EMU2_SPLIT_MAX_DEVICES)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "layer split: %d backends (want 1 to %d)", n,
                         EMU2_SPLIT_MAX_DEVICES);
    for (int i = 0; i < n; i++)
        if (!children[i] || children[i]->ops != children[0]->ops || children[i]->ops->set_layer)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                             "layer split: backend %d is missing, of another kind, or a split itself", i);
    /* every pair of devices may touch each other's memory (activations, migrated KV caches) */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (i != j && children[i]->ops->wait_for) {
                emu2_status st = children[i]->ops->wait_for(children[i], children[j], err);
                if (st != EMU2_OK)
                    return emu2_fail_prefix(err, "layer split: ");
            }
    split_backend *sb = calloc(1, sizeof *sb);
    if (!sb)
        return emu2_fail(err, EMU2_ERR_NOMEM, "layer split: out of memory");
    sb->ops = split_template;
    const emu2_ops *co = children[0]->ops;
    sb->ops.name = co->name; /* what the rest of the engine asks about ("cuda": quantizes on the host) */
    /* optional ops: only where the children have them */
    if (!co->conv2d)
        sb->ops.conv2d = NULL;
    if (!co->group_norm)
        sb->ops.group_norm = NULL;
    if (!co->upsample_nearest)
        sb->ops.upsample_nearest = NULL;
    if (!co->silu)
        sb->ops.silu = NULL;
    if (!co->mul)
        sb->ops.mul = NULL;
    if (!co->add_row_vector)
        sb->ops.add_row_vector = NULL;
    if (!co->top_k)
        sb->ops.top_k = NULL;
    sb->base.ops = &sb->ops;
    sb->base.threads = children[0]->threads;
    sb->base.isa = children[0]->isa;
    for (int i = 0; i < n; i++)
        sb->child[i] = children[i];
    sb->n = n;
    sb->layer = -1;
    snprintf(sb->base.device, sizeof sb->base.device, "%d-way layer split: %.150s", n, children[0]->device);
    *out = &sb->base;
    return EMU2_OK;
}
