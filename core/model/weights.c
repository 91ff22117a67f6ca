/* weights.c: binding canonical tensor names to the network structs, with shape checks. */
#include "model/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "quant/quant_bind.h"

typedef struct binder {
    const emu2_checkpoint *ck;
    emu2_model_weights *w;
    emu2_error *err;
    emu2_quant_spec quant; /* LLM linears: quantize at load (FLOAT: as stored) */
} binder;

static int is_float(emu2_dtype dt)
{
    return dt == EMU2_DT_F32 || dt == EMU2_DT_F16 || dt == EMU2_DT_BF16;
}

static void shape_text(const int64_t *shape, int ndim, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? ", " : "[", (long long)shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, ndim ? "]" : "[]");
}

/* Finds NAME, checks it is a float tensor of exactly `ndim` dims `shape`. */
static emu2_status find_checked(binder *b, const char *name, int ndim, const int64_t *shape, emu2_tensor_view *out)
{
    const emu2_ckpt_tensor *t = emu2_checkpoint_find(b->ck, name);
    if (!t)
        return emu2_fail(b->err, EMU2_ERR_MISMATCH, "the checkpoint has no tensor %s", name);
    if (!is_float(t->view.dtype))
        return emu2_fail(b->err, EMU2_ERR_FORMAT, "tensor %s has dtype %s; expected F32, F16 or BF16", name,
                         emu2_dtype_name(t->view.dtype));
    int same = t->view.ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->view.shape[i] == shape[i];
    if (!same) {
        char want[128], got[128];
        shape_text(shape, ndim, want, sizeof want);
        shape_text(t->view.shape, t->view.ndim, got, sizeof got);
        return emu2_fail(b->err, EMU2_ERR_MISMATCH, "tensor %s has shape %s; the config implies %s", name, got,
                         want);
    }
    *out = t->view;
    return EMU2_OK;
}

/* Hands a view to the backend and remembers it for release. */
static emu2_status prepare(binder *b, emu2_tensor_view *v, const char *name)
{
    emu2_model_weights *w = b->w;
    if (w->n_prepared == w->cap_prepared) {
        size_t cap = w->cap_prepared ? 2 * w->cap_prepared : 64;
        emu2_tensor_view **p = realloc(w->prepared, cap * sizeof *p);
        if (!p)
            return emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory binding weights");
        w->prepared = p;
        w->cap_prepared = cap;
    }
    emu2_tensor_view host = *v;
    emu2_status st = w->be->ops->prepare_weight(w->be, &host, v, b->err);
    if (st != EMU2_OK)
        return emu2_fail_prefix(b->err, "%s: ", name);
    w->prepared[w->n_prepared++] = v;
    return EMU2_OK;
}

/* find_checked + reshape to `as_ndim`/`as_shape` (same element count) + prepare. */
static emu2_status bind_as(binder *b, emu2_tensor_view *out, int ndim, const int64_t *shape, int as_ndim,
                           const int64_t *as_shape, const char *fmt, ...) EMU2_PRINTF(7, 8);
static emu2_status bind_as(binder *b, emu2_tensor_view *out, int ndim, const int64_t *shape, int as_ndim,
                           const int64_t *as_shape, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    emu2_status st = find_checked(b, name, ndim, shape, out);
    if (st != EMU2_OK)
        return st;
    if (as_ndim) {
        out->ndim = as_ndim;
        for (int i = 0; i < as_ndim; i++)
            out->shape[i] = as_shape[i];
    }
    return prepare(b, out, name);
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
/* Vectors and matrices kept in their stored shape; the name is a printf format. */
#define BIND_VEC(b, out, n, ...) bind_as(b, out, 1, SHAPE(n), 0, NULL, __VA_ARGS__)
#define BIND_MAT(b, out, r, c, ...) bind_as(b, out, 2, SHAPE(r, c), 0, NULL, __VA_ARGS__)

/* Rows [row0, row0 + rows) of a prepared-later matrix view: a zero-copy slice. */
static emu2_tensor_view row_slice(const emu2_tensor_view *m, int64_t row0, int64_t rows)
{
    emu2_tensor_view s = *m;
    size_t row_bytes = (size_t)m->shape[1] * emu2_dtype_size(m->dtype);
    s.shape[0] = rows;
    s.data = (const char *)m->data + (size_t)row0 * row_bytes;
    s.nbytes = (uint64_t)rows * row_bytes;
    return s;
}

/* Host threads for quantizing at load: the CPU backend's own; a device backend (CUDA: threads 1)
 * uses the machine's cores, or the 37B model's int4 search takes half an hour on one. */
static int quant_threads(const emu2_backend *be)
{
    if (!strcmp(be->ops->name, "cpu"))
        return be->threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

/* An LLM linear `base`.weight [n, k]: float as stored, quantized as stored (`base`.qweight), or
 * quantized now when the binder asks for it (core/quant/quant_bind.c). */
static emu2_status bind_linear(binder *b, emu2_op_weight *out, int64_t n, int64_t k, const char *fmt, ...)
    EMU2_PRINTF(5, 6);
static emu2_status bind_linear(binder *b, emu2_op_weight *out, int64_t n, int64_t k, const char *fmt, ...)
{
    char base[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(base, sizeof base, fmt, ap);
    va_end(ap);
    if (b->quant.format == EMU2_WEIGHT_FLOAT && !emu2_quant_has_stored(b->ck, base))
        return BIND_MAT(b, &out->w, n, k, "%s.weight", base);
    emu2_model_weights *w = b->w;
    if (w->n_owned == w->cap_owned) {
        size_t cap = w->cap_owned ? 2 * w->cap_owned : 64;
        void **p = realloc(w->owned, cap * sizeof *p);
        if (!p)
            return emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory binding weights");
        w->owned = p;
        w->cap_owned = cap;
    }
    void *owned = NULL;
    emu2_status st = emu2_quant_bind_linear(b->ck, base, (size_t)n, (size_t)k, b->quant, quant_threads(w->be), out,
                                            &owned, b->err);
    if (owned)
        w->owned[w->n_owned++] = owned;
    if (st == EMU2_OK)
        st = prepare(b, &out->w, base);
    if (st == EMU2_OK)
        st = prepare(b, &out->scales, base);
    return st;
}

static emu2_status bind_vision_block(binder *b, const emu2_config *cfg, size_t i, emu2_vision_block_weights *k)
{
    const int64_t W = cfg->vision.width, I = cfg->vision.intermediate_size;
    const char *p = "visual.blocks";
    emu2_status st;
    if ((st = BIND_VEC(b, &k->norm1_w, W, "%s.%zu.norm1.weight", p, i)) ||
        (st = BIND_VEC(b, &k->norm1_b, W, "%s.%zu.norm1.bias", p, i)) ||
        (st = BIND_VEC(b, &k->norm2_w, W, "%s.%zu.norm2.weight", p, i)) ||
        (st = BIND_VEC(b, &k->norm2_b, W, "%s.%zu.norm2.bias", p, i)) ||
        (st = BIND_MAT(b, &k->proj.w, W, W, "%s.%zu.attn.proj.weight", p, i)) ||
        (st = BIND_VEC(b, &k->proj_b, W, "%s.%zu.attn.proj.bias", p, i)) ||
        (st = BIND_MAT(b, &k->fc1.w, I, W, "%s.%zu.mlp.fc1.weight", p, i)) ||
        (st = BIND_VEC(b, &k->fc1_b, I, "%s.%zu.mlp.fc1.bias", p, i)) ||
        (st = BIND_MAT(b, &k->fc2.w, W, I, "%s.%zu.mlp.fc2.weight", p, i)) ||
        (st = BIND_VEC(b, &k->fc2_b, W, "%s.%zu.mlp.fc2.bias", p, i)) ||
        (st = BIND_VEC(b, &k->q_bias, W, "%s.%zu.attn.q_bias", p, i)) ||
        (st = BIND_VEC(b, &k->v_bias, W, "%s.%zu.attn.v_bias", p, i)))
        return st;
    char name[256];
    snprintf(name, sizeof name, "%s.%zu.attn.k_bias", p, i);
    if (emu2_checkpoint_find(b->ck, name)) {
        k->k_bias.present = 1;
        if ((st = BIND_VEC(b, &k->k_bias.v, W, "%s", name)))
            return st;
    }
    snprintf(name, sizeof name, "%s.%zu.attn.qkv.weight", p, i);
    emu2_tensor_view qkv;
    if ((st = find_checked(b, name, 2, SHAPE(3 * W, W), &qkv)))
        return st;
    k->q.w = row_slice(&qkv, 0, W);
    k->k.w = row_slice(&qkv, W, W);
    k->v.w = row_slice(&qkv, 2 * W, W);
    if ((st = prepare(b, &k->q.w, name)) || (st = prepare(b, &k->k.w, name)) || (st = prepare(b, &k->v.w, name)))
        return st;
    return EMU2_OK;
}

/* Tells a layer-split backend where the next weights belong (ops.h set_layer; -1: before the
 * decoder layers, n_layers: after them); nothing on a single device. */
static emu2_status place(binder *b, long layer, int64_t n_layers)
{
    return emu2_backend_set_layer(b->w->be, layer, (size_t)n_layers, b->err);
}

static emu2_status bind_vision(binder *b, const emu2_config *cfg, emu2_vision_weights *v)
{
    const emu2_vision_config *vc = &cfg->vision;
    const int64_t W = vc->width, P = vc->patch_size, N = vc->n_tokens;
    emu2_status st;
    if ((st = place(b, -1, cfg->num_hidden_layers)) ||
        (st = bind_as(b, &v->patch.w, 4, SHAPE(W, 3, P, P), 2, SHAPE(W, 3 * P * P),
                      "visual.patch_embed.proj.weight")) ||
        (st = BIND_VEC(b, &v->patch_b, W, "visual.patch_embed.proj.bias")) ||
        (st = bind_as(b, &v->cls, 3, SHAPE(1, 1, W), 2, SHAPE(1, W), "visual.cls_token")) ||
        (st = bind_as(b, &v->pos, 3, SHAPE(1, N, W), 2, SHAPE(N, W), "visual.pos_embed")) ||
        (st = BIND_MAT(b, &v->project_up.w, cfg->hidden_size, W, "project_up.weight")))
        return st;
    v->n_blocks = (size_t)vc->layers;
    v->blocks = calloc(v->n_blocks ? v->n_blocks : 1, sizeof *v->blocks);
    if (!v->blocks)
        return emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory binding weights");
    for (size_t i = 0; i < v->n_blocks; i++)
        if ((st = bind_vision_block(b, cfg, i, &v->blocks[i])))
            return st;
    return EMU2_OK;
}

static emu2_status bind_decoder(binder *b, const emu2_config *cfg, emu2_decoder_weights *d)
{
    const int64_t D = cfg->hidden_size, I = cfg->intermediate_size, V = cfg->vocab_size;
    const char *p = "decoder.lm.model.layers";
    emu2_status st;
    if (cfg->num_key_value_heads != cfg->num_attention_heads)
        return emu2_fail(b->err, EMU2_ERR_UNSUPPORTED,
                         "grouped-query attention (%d kv heads for %d heads) is not supported",
                         cfg->num_key_value_heads, cfg->num_attention_heads);
    const int64_t L = cfg->num_hidden_layers;
    if ((st = place(b, -1, L)) || (st = BIND_MAT(b, &d->embed, V, D, "decoder.lm.model.embed_tokens.weight")) ||
        (st = place(b, L, L)) || (st = BIND_VEC(b, &d->final_norm, D, "decoder.lm.model.norm.weight")) ||
        (st = bind_linear(b, &d->lm_head, V, D, "decoder.lm.lm_head")) || (st = place(b, -1, L)))
        return st;
    if (emu2_checkpoint_find(b->ck, "project_down.weight")) {
        d->has_project_down = 1;
        if ((st = BIND_MAT(b, &d->project_down.w, cfg->vision.width, D, "project_down.weight")))
            return st;
    }
    d->n_layers = (size_t)cfg->num_hidden_layers;
    d->layers = calloc(d->n_layers ? d->n_layers : 1, sizeof *d->layers);
    if (!d->layers)
        return emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory binding weights");
    for (size_t i = 0; i < d->n_layers; i++) {
        emu2_decoder_layer_weights *l = &d->layers[i];
        if ((st = place(b, (long)i, L)) || (st = BIND_VEC(b, &l->input_norm, D, "%s.%zu.input_layernorm.weight", p, i)) ||
            (st = BIND_VEC(b, &l->post_norm, D, "%s.%zu.post_attention_layernorm.weight", p, i)) ||
            (st = bind_linear(b, &l->q, D, D, "%s.%zu.self_attn.q_proj", p, i)) ||
            (st = bind_linear(b, &l->k, D, D, "%s.%zu.self_attn.k_proj", p, i)) ||
            (st = bind_linear(b, &l->v, D, D, "%s.%zu.self_attn.v_proj", p, i)) ||
            (st = bind_linear(b, &l->o, D, D, "%s.%zu.self_attn.o_proj", p, i)) ||
            (st = bind_linear(b, &l->gate, I, D, "%s.%zu.mlp.gate_proj", p, i)) ||
            (st = bind_linear(b, &l->up, I, D, "%s.%zu.mlp.up_proj", p, i)) ||
            (st = bind_linear(b, &l->down, D, I, "%s.%zu.mlp.down_proj", p, i)))
            return st;
    }
    return EMU2_OK;
}

emu2_status emu2_model_weights_bind(emu2_backend *be, const emu2_checkpoint *ck, const emu2_config *cfg,
                                    emu2_model_weights **out, emu2_error *err)
{
    return emu2_model_weights_bind_quant(be, ck, cfg, NULL, out, err);
}

emu2_status emu2_model_weights_bind_quant(emu2_backend *be, const emu2_checkpoint *ck, const emu2_config *cfg,
                                          const char *quant, emu2_model_weights **out, emu2_error *err)
{
    if (!be || !ck || !cfg || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_model_weights_bind: NULL argument");
    *out = NULL;
    emu2_quant_spec spec;
    emu2_status qst = emu2_quant_parse(quant, &spec, err);
    if (qst != EMU2_OK)
        return qst;
    /* quantizing reads the stored weights on the host: CUDA then uploads the quantized bytes, but
     * random weights built on the device cannot be quantized there */
    int host_weights = strcmp(be->ops->name, "cpu") == 0 || !ck->format || strcmp(ck->format, "random") != 0;
    if (spec.format != EMU2_WEIGHT_FLOAT &&
        ((strcmp(be->ops->name, "cpu") && strcmp(be->ops->name, "cuda")) || !host_weights))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "quantization at load (%s) runs on the CPU and CUDA backends from stored weights, not %s%s",
                         quant, be->ops->name, host_weights ? "" : " with random weights");
    emu2_model_weights *w = calloc(1, sizeof *w);
    if (!w)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory binding weights");
    w->be = be;
    binder b = {ck, w, err, spec};
    emu2_status st = bind_vision(&b, cfg, &w->vision);
    if (st == EMU2_OK)
        st = bind_decoder(&b, cfg, &w->decoder);
    if (st != EMU2_OK) {
        emu2_model_weights_free(w);
        return st;
    }
    *out = w;
    return EMU2_OK;
}

void emu2_model_weights_free(emu2_model_weights *w)
{
    if (!w)
        return;
    for (size_t i = w->n_prepared; i-- > 0;)
        w->be->ops->release_weight(w->be, w->prepared[i]);
    free(w->prepared);
    for (size_t i = 0; i < w->n_owned; i++)
        free(w->owned[i]);
    free(w->owned);
    free(w->vision.blocks);
    free(w->decoder.layers);
    free(w);
}
