/* vision_tower.c: the EVA-CLIP forward (post-norm blocks), pooling and project_up. */
#include "model/vision_tower.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/error.h"

/* Activation buffers for one image, in backend memory. */
typedef struct vision_buffers {
    float *img, *patches, *x, *qkv, *att, *tmp, *hidden, *pooled;
    int32_t *token_ids; /* host: 0..n_tokens-1, to read pos_embed rows */
} vision_buffers;

typedef struct vision_dims {
    size_t S, P, G, N, W, I, H, heads, head_dim, k, nq;
} vision_dims;

static void buffers_free(emu2_backend *be, vision_buffers *b)
{
    float **all[] = {&b->img, &b->patches, &b->x, &b->qkv, &b->att, &b->tmp, &b->hidden, &b->pooled};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (*all[i]) {
            be->ops->free(be, *all[i]);
            *all[i] = NULL;
        }
    free(b->token_ids);
    b->token_ids = NULL;
}

static emu2_status buffers_alloc(emu2_backend *be, const vision_dims *d, vision_buffers *b, emu2_error *err)
{
    size_t sizes[8] = {3 * d->S * d->S, d->G * d->G * 3 * d->P * d->P, d->N * d->W, d->N * 3 * d->W,
                       d->N * d->W,     d->N * d->W,                    d->N * d->I, d->nq * d->W};
    float **all[8] = {&b->img, &b->patches, &b->x, &b->qkv, &b->att, &b->tmp, &b->hidden, &b->pooled};
    for (size_t i = 0; i < 8; i++)
        if (!(*all[i] = be->ops->alloc(be, sizes[i], err)))
            return err ? err->status : EMU2_ERR_NOMEM;
    b->token_ids = malloc(d->N * sizeof *b->token_ids);
    if (!b->token_ids)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the vision tower");
    for (size_t i = 0; i < d->N; i++)
        b->token_ids[i] = (int32_t)i;
    return EMU2_OK;
}

/* x = x + LN1(attn(x)); x = x + LN2(fc2(gelu(fc1(x)))) : EVA-CLIP-E's post-norm block. */
static emu2_status block_forward(emu2_backend *be, const emu2_vision_block_weights *k, const vision_dims *d,
                                 float eps, vision_buffers *b, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    const size_t N = d->N, W = d->W;
    emu2_status st;
    if ((st = o->linear(be, N, W, W, b->x, W, &k->q, &k->q_bias, b->qkv, 3 * W, err)) ||
        (st = o->linear(be, N, W, W, b->x, W, &k->k, k->k_bias.present ? &k->k_bias.v : NULL, b->qkv + W, 3 * W,
                        err)) ||
        (st = o->linear(be, N, W, W, b->x, W, &k->v, &k->v_bias, b->qkv + 2 * W, 3 * W, err)))
        return st;
    emu2_attention_args a = {
        .batch = 1, .n_heads = d->heads, .head_dim = d->head_dim, .q_len = N, .kv_len = N, .q_offset = 0,
        .causal = 0, .scale = (float)(1.0 / sqrt((double)d->head_dim)),
        .q = b->qkv, .k = b->qkv + W, .v = b->qkv + 2 * W, .out = b->att,
        .q_stride = 3 * W, .k_stride = 3 * W, .v_stride = 3 * W, .out_stride = W,
        .q_batch_stride = N * 3 * W, .kv_batch_stride = N * 3 * W, .out_batch_stride = N * W, .key_mask = NULL};
    if ((st = o->attention(be, &a, err)) ||
        (st = o->linear(be, N, W, W, b->att, W, &k->proj, &k->proj_b, b->tmp, W, err)) ||
        (st = o->layernorm(be, N, W, b->tmp, &k->norm1_w, &k->norm1_b, eps, b->tmp, err)) ||
        (st = o->add(be, N * W, b->x, b->tmp, b->x, err)) ||
        (st = o->linear(be, N, W, d->I, b->x, W, &k->fc1, &k->fc1_b, b->hidden, d->I, err)) ||
        (st = o->gelu(be, N * d->I, b->hidden, b->hidden, err)) ||
        (st = o->linear(be, N, d->I, W, b->hidden, d->I, &k->fc2, &k->fc2_b, b->tmp, W, err)) ||
        (st = o->layernorm(be, N, W, b->tmp, &k->norm2_w, &k->norm2_b, eps, b->tmp, err)) ||
        (st = o->add(be, N * W, b->x, b->tmp, b->x, err)))
        return st;
    return EMU2_OK;
}

static emu2_status tap(emu2_backend *be, float *host, const float *src, size_t n, emu2_error *err)
{
    return host ? be->ops->download(be, host, src, n, err) : EMU2_OK;
}

static emu2_status encode_one(emu2_backend *be, const emu2_vision_weights *w, const vision_dims *d, float eps,
                              const float *pixels, float *out, const emu2_vision_taps *taps, vision_buffers *b,
                              emu2_error *err)
{
    const emu2_ops *o = be->ops;
    const size_t W = d->W, N = d->N;
    emu2_status st;
    /* patch embedding (a stride-p conv = patchify + linear) into rows 1..; CLS into row 0; + pos_embed */
    if ((st = o->upload(be, b->img, pixels, 3 * d->S * d->S, err)) ||
        (st = o->patchify(be, 3, d->S, d->S, d->P, b->img, b->patches, err)) ||
        (st = o->linear(be, d->G * d->G, 3 * d->P * d->P, W, b->patches, 3 * d->P * d->P, &w->patch, &w->patch_b,
                        b->x + W, W, err)) ||
        (st = o->embedding(be, 1, b->token_ids, &w->cls, b->x, err)) ||
        (st = o->embedding(be, N, b->token_ids, &w->pos, b->tmp, err)) ||
        (st = o->add(be, N * W, b->x, b->tmp, b->x, err)))
        return st;
    for (size_t i = 0; i < w->n_blocks; i++) {
        if ((st = block_forward(be, &w->blocks[i], d, eps, b, err)))
            return emu2_fail_prefix(err, "vision block %zu: ", i);
        if (taps && i == 0 && (st = tap(be, taps->block_first, b->x, N * W, err)))
            return st;
    }
    if (taps && (st = tap(be, taps->block_last, b->x, N * W, err)))
        return st;
    /* drop CLS; pool the token-major [G*G, W] grid per channel; project up */
    if ((st = o->avgpool2d(be, EMU2_GRID_TOKEN_MAJOR, W, d->G, d->G, d->k, b->x + W, b->pooled, err)) ||
        (taps && (st = tap(be, taps->pooled, b->pooled, d->nq * W, err))) ||
        (st = o->linear(be, d->nq, W, d->H, b->pooled, W, &w->project_up, NULL, out, d->H, err)))
        return st;
    return EMU2_OK;
}

/* Pool kernel for n_query tokens on a G x G grid: k = G / sqrt(n_query), exact. */
static emu2_status pool_kernel(size_t G, int n_query, size_t *k, emu2_error *err)
{
    size_t r = 0;
    while (n_query > 0 && (r + 1) * (r + 1) <= (size_t)n_query)
        r++;
    if (n_query <= 0 || r * r != (size_t)n_query || G % r != 0)
        return emu2_fail(err, EMU2_ERR_MISMATCH,
                         "n_query %d is not the square of a divisor of the %zu x %zu patch grid", n_query, G, G);
    *k = G / r;
    return EMU2_OK;
}

emu2_status emu2_vision_encode(emu2_backend *be, const emu2_vision_weights *w, const emu2_config *cfg,
                               const float *pixels, size_t n_images, int n_query, float *out,
                               const emu2_vision_taps *taps, emu2_error *err)
{
    if (!be || !w || !cfg || (!pixels && n_images) || (!out && n_images))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_vision_encode: NULL argument");
    const emu2_vision_config *vc = &cfg->vision;
    vision_dims d = {.S = (size_t)vc->image_size, .P = (size_t)vc->patch_size, .G = (size_t)vc->grid,
                     .N = (size_t)vc->n_tokens, .W = (size_t)vc->width, .I = (size_t)vc->intermediate_size,
                     .H = (size_t)cfg->hidden_size, .heads = (size_t)vc->heads, .head_dim = (size_t)vc->head_width,
                     .nq = (size_t)(n_query > 0 ? n_query : 0)};
    if (d.heads * d.head_dim != d.W || d.G * d.P > d.S || d.N != d.G * d.G + 1)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "inconsistent vision config (width %zu, heads %zu x %zu, grid %zu)",
                         d.W, d.heads, d.head_dim, d.G);
    emu2_status st = pool_kernel(d.G, n_query, &d.k, err);
    if (st != EMU2_OK || n_images == 0)
        return st;
    vision_buffers b = {0};
    st = buffers_alloc(be, &d, &b, err);
    for (size_t i = 0; st == EMU2_OK && i < n_images; i++) {
        const emu2_vision_taps *t = taps && taps->image_index == i ? taps : NULL;
        st = encode_one(be, w, &d, (float)vc->layer_norm_eps, pixels + i * 3 * d.S * d.S, out + i * d.nq * d.H, t,
                        &b, err);
        if (st != EMU2_OK && n_images > 1)
            emu2_fail_prefix(err, "image %zu: ", i);
    }
    buffers_free(be, &b);
    return st;
}
