/* layout.c: see layout.h. */
#include "io/layout.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

typedef struct builder {
    emu2_expected_tensor *t;
    size_t n, cap;
    int failed;
} builder;

static void add(builder *b, emu2_component comp, int optional, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (b->failed)
        return;
    if (b->n == b->cap) {
        size_t c = b->cap ? b->cap * 2 : 1024;
        emu2_expected_tensor *t = realloc(b->t, c * sizeof *t);
        if (!t) {
            b->failed = 1;
            return;
        }
        b->t = t;
        b->cap = c;
    }
    emu2_expected_tensor *e = &b->t[b->n++];
    memset(e, 0, sizeof *e);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof *shape);
    e->component = comp;
    e->optional = optional;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define ADD(comp, opt, shape_list, ...) add(&b, comp, opt, NDIM shape_list, SHAPE shape_list, __VA_ARGS__)

static int by_name(const void *a, const void *b)
{
    return strcmp(((const emu2_expected_tensor *)a)->name, ((const emu2_expected_tensor *)b)->name);
}

emu2_status emu2_expected_layout(const emu2_config *c, emu2_expected_tensor **out, size_t *n, emu2_error *err)
{
    builder b = {0};
    const emu2_vision_config *v = &c->vision;
    int64_t W = v->width, I = v->intermediate_size, P = v->patch_size;
    int64_t H = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int64_t KV = (int64_t)c->num_key_value_heads * c->head_dim;
    const emu2_component VIS = EMU2_COMP_VISUAL, DEC = EMU2_COMP_DECODER, PROJ = EMU2_COMP_PROJECTION;

    ADD(PROJ, 0, (H, W), "project_up.weight");
    ADD(PROJ, 0, (W, H), "project_down.weight");
    ADD(VIS, 0, (1, 1, W), "visual.cls_token");
    ADD(VIS, 0, (1, v->n_tokens, W), "visual.pos_embed");
    ADD(VIS, 0, (W, 3, P, P), "visual.patch_embed.proj.weight");
    ADD(VIS, 0, (W), "visual.patch_embed.proj.bias");
    for (int i = 0; i < v->layers; i++) {
        ADD(VIS, 0, (W), "visual.blocks.%d.norm1.weight", i);
        ADD(VIS, 0, (W), "visual.blocks.%d.norm1.bias", i);
        ADD(VIS, 0, (3 * W, W), "visual.blocks.%d.attn.qkv.weight", i);
        ADD(VIS, 0, (W), "visual.blocks.%d.attn.q_bias", i);
        ADD(VIS, 1, (W), "visual.blocks.%d.attn.k_bias", i);
        ADD(VIS, 0, (W), "visual.blocks.%d.attn.v_bias", i);
        ADD(VIS, 0, (W, W), "visual.blocks.%d.attn.proj.weight", i);
        ADD(VIS, 0, (W), "visual.blocks.%d.attn.proj.bias", i);
        ADD(VIS, 0, (W), "visual.blocks.%d.norm2.weight", i);
        ADD(VIS, 0, (W), "visual.blocks.%d.norm2.bias", i);
        ADD(VIS, 0, (I, W), "visual.blocks.%d.mlp.fc1.weight", i);
        ADD(VIS, 0, (I), "visual.blocks.%d.mlp.fc1.bias", i);
        ADD(VIS, 0, (W, I), "visual.blocks.%d.mlp.fc2.weight", i);
        ADD(VIS, 0, (W), "visual.blocks.%d.mlp.fc2.bias", i);
    }
    ADD(DEC, 0, (V, H), "decoder.lm.model.embed_tokens.weight");
    for (int j = 0; j < c->num_hidden_layers; j++) {
        ADD(DEC, 0, (H), "decoder.lm.model.layers.%d.input_layernorm.weight", j);
        ADD(DEC, 0, (H, H), "decoder.lm.model.layers.%d.self_attn.q_proj.weight", j);
        ADD(DEC, 0, (KV, H), "decoder.lm.model.layers.%d.self_attn.k_proj.weight", j);
        ADD(DEC, 0, (KV, H), "decoder.lm.model.layers.%d.self_attn.v_proj.weight", j);
        ADD(DEC, 0, (H, H), "decoder.lm.model.layers.%d.self_attn.o_proj.weight", j);
        ADD(DEC, 0, (H), "decoder.lm.model.layers.%d.post_attention_layernorm.weight", j);
        ADD(DEC, 0, (F, H), "decoder.lm.model.layers.%d.mlp.gate_proj.weight", j);
        ADD(DEC, 0, (F, H), "decoder.lm.model.layers.%d.mlp.up_proj.weight", j);
        ADD(DEC, 0, (H, F), "decoder.lm.model.layers.%d.mlp.down_proj.weight", j);
    }
    ADD(DEC, 0, (H), "decoder.lm.model.norm.weight");
    if (!c->tie_word_embeddings)
        ADD(DEC, 0, (V, H), "decoder.lm.lm_head.weight");
    if (b.failed) {
        free(b.t);
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the expected layout");
    }
    qsort(b.t, b.n, sizeof *b.t, by_name);
    *out = b.t;
    *n = b.n;
    return EMU2_OK;
}

emu2_component emu2_component_of(const char *name)
{
    if (!strncmp(name, "visual.", 7))
        return EMU2_COMP_VISUAL;
    if (!strncmp(name, "decoder.", 8))
        return EMU2_COMP_DECODER;
    if (!strncmp(name, "project_up.", 11) || !strncmp(name, "project_down.", 13))
        return EMU2_COMP_PROJECTION;
    return EMU2_COMP_OTHER;
}

const char *emu2_component_name(emu2_component c)
{
    switch (c) {
    case EMU2_COMP_VISUAL: return "visual";
    case EMU2_COMP_DECODER: return "decoder";
    case EMU2_COMP_PROJECTION: return "projections";
    default: return "other";
    }
}
