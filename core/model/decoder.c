/* decoder.c: LLaMA forward passes over a KV cache (prefill in chunks, one-token steps). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "model/decoder_internal.h"

#define DEFAULT_PREFILL_CHUNK 256

static float *alloc_floats(emu2_decoder_session *s, size_t a, size_t b, emu2_error *err)
{
    size_t n;
    if (!emu2_mul_size(a, b, &n)) {
        emu2_fail(err, EMU2_ERR_LIMIT, "decoder buffer size overflows");
        return NULL;
    }
    return s->be->ops->alloc(s->be, n ? n : 1, err);
}

void emu2_decoder_session_free(emu2_decoder_session *s)
{
    if (!s)
        return;
    emu2_backend *be = s->be;
    for (size_t l = 0; l < s->n_layers; l++) {
        if (s->k_cache && s->k_cache[l])
            be->ops->free(be, s->k_cache[l]);
        if (s->v_cache && s->v_cache[l])
            be->ops->free(be, s->v_cache[l]);
    }
    float *bufs[] = {s->spare, s->x, s->n, s->qkv, s->att, s->gate, s->up, s->last, s->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->ops->free(be, bufs[i]);
    free(s->k_cache);
    free(s->v_cache);
    free(s->mask);
    free(s->n_real);
    free(s->positions);
    free(s->rows_a);
    free(s->key_mask);
    free(s);
}

static emu2_status alloc_all(emu2_decoder_session *s, emu2_error *err)
{
    size_t cache_floats, tokens = s->max_rows * s->chunk;
    if (!emu2_mul_size(s->max_rows, s->max_len, &cache_floats) || !emu2_mul_size(cache_floats, s->D, &cache_floats))
        return emu2_fail(err, EMU2_ERR_LIMIT, "KV cache of %zu rows x %zu positions is too large", s->max_rows,
                         s->max_len);
    s->k_cache = calloc(s->n_layers, sizeof *s->k_cache);
    s->v_cache = calloc(s->n_layers, sizeof *s->v_cache);
    s->mask = calloc(s->max_rows * s->max_len, 1);
    s->key_mask = calloc(s->max_rows * s->max_len, 1);
    s->n_real = calloc(s->max_rows, sizeof *s->n_real);
    s->positions = calloc(tokens, sizeof *s->positions);
    s->rows_a = calloc(tokens, sizeof *s->rows_a);
    if (!s->k_cache || !s->v_cache || !s->mask || !s->key_mask || !s->n_real || !s->positions || !s->rows_a)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the decoder session");
    for (size_t l = 0; l < s->n_layers; l++) /* each layer's KV cache on its device (layer split) */
        if (emu2_backend_set_layer(s->be, (long)l, s->n_layers, err) != EMU2_OK ||
            !(s->k_cache[l] = alloc_floats(s, cache_floats, 1, err)) ||
            !(s->v_cache[l] = alloc_floats(s, cache_floats, 1, err)))
            return emu2_fail_prefix(err, "KV cache: ");
    if (emu2_backend_set_layer(s->be, (long)s->n_layers, s->n_layers, err) != EMU2_OK)
        return err ? err->status : EMU2_ERR_INTERNAL;
    if (!(s->spare = alloc_floats(s, cache_floats, 1, err)) || !(s->x = alloc_floats(s, tokens, s->D, err)) ||
        !(s->n = alloc_floats(s, tokens, s->D, err)) || !(s->qkv = alloc_floats(s, tokens, 3 * s->D, err)) ||
        !(s->att = alloc_floats(s, tokens, s->D, err)) || !(s->gate = alloc_floats(s, tokens, s->I, err)) ||
        !(s->up = alloc_floats(s, tokens, s->I, err)) || !(s->last = alloc_floats(s, s->max_rows, s->D, err)) ||
        !(s->logits = alloc_floats(s, s->max_rows, s->V, err)))
        return emu2_fail_prefix(err, "decoder scratch: ");
    return EMU2_OK;
}

emu2_status emu2_decoder_session_create(emu2_backend *be, const emu2_decoder_weights *w, const emu2_config *cfg,
                                        const emu2_decoder_limits *limits, emu2_decoder_session **out,
                                        emu2_error *err)
{
    if (!be || !w || !cfg || !limits || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_decoder_session_create: NULL argument");
    *out = NULL;
    if (limits->max_rows == 0 || limits->max_len == 0 || limits->max_rows > INT32_MAX ||
        limits->max_len > INT32_MAX)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "decoder session: max_rows %zu and max_len %zu must be in 1..2^31-1",
                         limits->max_rows, limits->max_len);
    if (cfg->num_attention_heads <= 0 || cfg->head_dim <= 0 || cfg->head_dim % 2 ||
        (size_t)cfg->num_attention_heads * (size_t)cfg->head_dim != (size_t)cfg->hidden_size)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "hidden_size %d is not %d heads x an even head size",
                         cfg->hidden_size, cfg->num_attention_heads);
    if (w->n_layers != (size_t)cfg->num_hidden_layers)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "weights hold %zu layers, config says %d", w->n_layers,
                         cfg->num_hidden_layers);
    emu2_decoder_session *s = calloc(1, sizeof *s);
    if (!s)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the decoder session");
    s->be = be;
    s->w = w;
    s->D = (size_t)cfg->hidden_size;
    s->I = (size_t)cfg->intermediate_size;
    s->V = (size_t)cfg->vocab_size;
    s->n_layers = w->n_layers;
    s->heads = (size_t)cfg->num_attention_heads;
    s->head_dim = (size_t)cfg->head_dim;
    s->eps = (float)cfg->rms_norm_eps;
    s->theta = (float)cfg->rope_theta;
    s->max_rows = limits->max_rows;
    s->max_len = limits->max_len;
    s->chunk = limits->prefill_chunk ? limits->prefill_chunk : DEFAULT_PREFILL_CHUNK;
    if (s->chunk > s->max_len)
        s->chunk = s->max_len;
    emu2_status st = alloc_all(s, err);
    if (st != EMU2_OK) {
        emu2_decoder_session_free(s);
        return st;
    }
    *out = s;
    return EMU2_OK;
}

/* A pass of the layers over c new positions per row (t0 = positions already cached): the
 * attention arguments, with the key mask and KV-cache rows packed in s->key_mask / s->rows_a. */
typedef struct layer_pass {
    size_t c, M;
    emu2_attention_args a;
} layer_pass;

static void pass_prepare(emu2_decoder_session *s, size_t c, size_t t0, layer_pass *p)
{
    const size_t D = s->D, rows = s->rows, kv_len = t0 + c;
    for (size_t b = 0; b < rows; b++) {
        memcpy(s->key_mask + b * kv_len, s->mask + b * s->max_len, kv_len);
        for (size_t i = 0; i < c; i++)
            s->rows_a[b * c + i] = (int32_t)(b * s->max_len + t0 + i);
    }
    p->c = c;
    p->M = rows * c;
    p->a = (emu2_attention_args){
        .batch = rows, .n_heads = s->heads, .head_dim = s->head_dim, .q_len = c, .kv_len = kv_len, .q_offset = t0,
        .causal = 1, .scale = 1.0f / sqrtf((float)s->head_dim), .q = s->qkv, .out = s->att,
        .q_stride = 3 * D, .k_stride = D, .v_stride = D, .out_stride = D, .q_batch_stride = c * 3 * D,
        .kv_batch_stride = s->max_len * D, .out_batch_stride = c * D, .key_mask = s->key_mask};
}

/* Layer l of a pass: x (the residual stream, [rows][c][D]) in place, positions in s->positions. */
static emu2_status layer_forward(emu2_decoder_session *s, const layer_pass *p, size_t l, emu2_error *err)
{
    emu2_backend *be = s->be;
    const emu2_ops *o = be->ops;
    const size_t D = s->D, I = s->I, M = p->M, cache_rows = s->max_rows * s->max_len;
    const emu2_decoder_layer_weights *w = &s->w->layers[l];
    float *kc = s->k_cache[l], *vc = s->v_cache[l];
    emu2_attention_args a = p->a;
    a.k = kc;
    a.v = vc;
    emu2_status st;
    if ((st = o->rmsnorm(be, M, D, s->x, &w->input_norm, s->eps, s->n, err)) ||
        (st = o->linear(be, M, D, D, s->n, D, &w->q, NULL, s->qkv, 3 * D, err)) ||
        (st = o->linear(be, M, D, D, s->n, D, &w->k, NULL, s->qkv + D, 3 * D, err)) ||
        (st = o->linear(be, M, D, D, s->n, D, &w->v, NULL, s->qkv + 2 * D, 3 * D, err)) ||
        (st = o->rope(be, M, s->heads, s->head_dim, s->qkv, 3 * D, s->positions, s->theta, 0, err)) ||
        (st = o->rope(be, M, s->heads, s->head_dim, s->qkv + D, 3 * D, s->positions, s->theta, 0, err)) ||
        (st = o->copy_rows(be, M, D, s->qkv + D, 3 * D, M, NULL, kc, D, cache_rows, s->rows_a, err)) ||
        (st = o->copy_rows(be, M, D, s->qkv + 2 * D, 3 * D, M, NULL, vc, D, cache_rows, s->rows_a, err)) ||
        (st = o->attention(be, &a, err)) ||
        (st = o->linear(be, M, D, D, s->att, D, &w->o, NULL, s->n, D, err)) ||
        (st = o->add(be, M * D, s->x, s->n, s->x, err)) ||
        (st = o->rmsnorm(be, M, D, s->x, &w->post_norm, s->eps, s->n, err)) ||
        (st = o->linear(be, M, D, I, s->n, D, &w->gate, NULL, s->gate, I, err)) ||
        (st = o->linear(be, M, D, I, s->n, D, &w->up, NULL, s->up, I, err)) ||
        (st = o->silu_mul(be, M * I, s->gate, s->up, s->gate, err)) ||
        (st = o->linear(be, M, I, D, s->gate, I, &w->down, NULL, s->n, D, err)) ||
        (st = o->add(be, M * D, s->x, s->n, s->x, err)))
        return emu2_fail_prefix(err, "decoder layer %zu: ", l);
    return EMU2_OK;
}

/* One pass of every layer over c new positions per row (t0 = positions already cached), x holding
 * their embeddings as [rows][c][D] and s->positions their position ids. Leaves the last layer's
 * output in x. */
static emu2_status layers_forward(emu2_decoder_session *s, size_t c, size_t t0, emu2_error *err)
{
    layer_pass p;
    pass_prepare(s, c, t0, &p);
    for (size_t l = 0; l < s->n_layers; l++) {
        emu2_status st = layer_forward(s, &p, l, err);
        if (st != EMU2_OK)
            return st;
    }
    return EMU2_OK;
}

/* Final norm (into s->last) + lm_head (into s->logits, when want_logits) on the last of the c
 * positions of each row in x. */
static emu2_status head_compute(emu2_decoder_session *s, size_t c, int want_logits, emu2_error *err)
{
    emu2_backend *be = s->be;
    const emu2_ops *o = be->ops;
    const size_t rows = s->rows, D = s->D;
    const int32_t *last_rows = NULL; /* one position per row: row b itself (s->rows_a keeps the KV rows) */
    if (c > 1) {
        for (size_t b = 0; b < rows; b++)
            s->rows_a[b] = (int32_t)(b * c + c - 1);
        last_rows = s->rows_a;
    }
    emu2_status st;
    if ((st = o->copy_rows(be, rows, D, s->x, D, rows * c, last_rows, s->n, D, rows, NULL, err)) ||
        (st = o->rmsnorm(be, rows, D, s->n, &s->w->final_norm, s->eps, s->last, err)))
        return st;
    if (want_logits && (st = o->linear(be, rows, D, s->V, s->last, D, &s->w->lm_head, NULL, s->logits, s->V, err)))
        return st;
    return EMU2_OK;
}

/* What head_compute left, copied to the host (NULL: not wanted). */
static emu2_status head_download(emu2_decoder_session *s, float *logits, float *hidden, emu2_error *err)
{
    emu2_backend *be = s->be;
    emu2_status st;
    if (hidden && (st = be->ops->download(be, hidden, s->last, s->rows * s->D, err)))
        return st;
    if (logits && (st = be->ops->download(be, logits, s->logits, s->rows * s->V, err)))
        return st;
    return EMU2_OK;
}

static emu2_status head_forward(emu2_decoder_session *s, size_t c, float *logits, float *hidden, emu2_error *err)
{
    emu2_status st = head_compute(s, c, logits != NULL, err);
    return st ? st : head_download(s, logits, hidden, err);
}

emu2_status emu2_decoder_prefill(emu2_decoder_session *s, size_t rows, size_t T, const float *embeds,
                                 const uint8_t *mask, float *logits, float *hidden, emu2_error *err)
{
    if (!s || (rows && T && !embeds))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_decoder_prefill: NULL argument");
    if (rows == 0 || rows > s->max_rows || T == 0 || T > s->max_len)
        return emu2_fail(err, EMU2_ERR_LIMIT,
                         "prefill of %zu rows x %zu positions does not fit the session (1..%zu rows, 1..%zu positions)",
                         rows, T, s->max_rows, s->max_len);
    s->rows = rows;
    s->len = 0;
    memset(s->mask, 0, s->max_rows * s->max_len);
    for (size_t b = 0; b < rows; b++) {
        int32_t real = 0;
        for (size_t t = 0; t < T; t++) {
            uint8_t m = mask ? mask[b * T + t] != 0 : 1;
            s->mask[b * s->max_len + t] = m;
            real += m;
        }
        if (real == 0) {
            s->rows = 0;
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "prefill row %zu has no real (unmasked) position", b);
        }
        s->n_real[b] = real;
    }
    const emu2_ops *o = s->be->ops;
    size_t c = 0;
    for (size_t t0 = 0; t0 < T; t0 += c) {
        c = T - t0 < s->chunk ? T - t0 : s->chunk;
        /* positions: cumsum(mask) - 1, padded slots 1 (transformers 4.31 prepare_inputs_for_generation) */
        for (size_t b = 0; b < rows; b++) {
            int32_t seen = 0;
            const uint8_t *m = s->mask + b * s->max_len;
            for (size_t t = 0; t < t0; t++)
                seen += m[t];
            for (size_t i = 0; i < c; i++) {
                seen += m[t0 + i];
                s->positions[b * c + i] = m[t0 + i] ? seen - 1 : 1;
                s->rows_a[b * c + i] = (int32_t)(b * T + t0 + i);
            }
        }
        emu2_status st = o->copy_rows(s->be, rows * c, s->D, embeds, s->D, rows * T, s->rows_a, s->x, s->D,
                                      rows * c, NULL, err);
        if (st == EMU2_OK)
            st = layers_forward(s, c, t0, err);
        if (st != EMU2_OK) {
            s->rows = 0;
            return st;
        }
        s->len = t0 + c;
    }
    return head_forward(s, c, logits, hidden, err);
}

/* The shape of a step for the backend's step graphs: equal keys, same ops and launch shapes. */
static uint64_t step_key(const emu2_decoder_session *s, const int32_t *ids, int want_logits)
{
    return (uint64_t)s->rows << 2 | (uint64_t)(ids != NULL) << 1 | (uint64_t)(want_logits != 0);
}

/* The new tokens (ids, HOST) or embeddings (BACKEND) of a step and whether it wants logits. */
typedef struct step_in {
    const int32_t *ids;
    const float *embeds;
    int want_logits;
} step_in;

/* The ops of layers [l0, l1) of a step, with the input's (l0 == 0) and the head's (l1 == n_layers):
 * from the new tokens to s->last and s->logits. Issues no sync, allocation or host copy, so a
 * backend may record them. */
static emu2_status step_part(emu2_decoder_session *s, const step_in *in, const layer_pass *p, size_t l0, size_t l1,
                             emu2_error *err)
{
    const emu2_ops *o = s->be->ops;
    emu2_status st = EMU2_OK;
    if (l0 == 0)
        st = in->ids ? o->embedding(s->be, s->rows, in->ids, &s->w->embed, s->x, err)
                     : o->copy_rows(s->be, s->rows, s->D, in->embeds, s->D, s->rows, NULL, s->x, s->D, s->rows, NULL,
                                    err);
    for (size_t l = l0; st == EMU2_OK && l < l1; l++)
        st = layer_forward(s, p, l, err);
    if (st == EMU2_OK && l1 == s->n_layers)
        st = head_compute(s, 1, in->want_logits, err);
    return st;
}

/* Where a recorded part of a step ends: after layers 1, 3, 7, 15, ... (parts double), so the
 * device starts on the first part early and the host records each next part while it runs. */
static size_t part_end(size_t from, size_t n_layers)
{
    size_t e = 1;
    while (e <= from)
        e = 2 * e + 1;
    return e < n_layers ? e : n_layers;
}

/* The step's ops, recorded in parts where the backend records (a part that cannot be launched is
 * issued again op by op, with the rest of the step). */
static emu2_status step_ops(emu2_decoder_session *s, const step_in *in, emu2_error *err)
{
    emu2_backend *be = s->be;
    const emu2_ops *o = be->ops;
    const size_t L = s->n_layers;
    layer_pass p;
    pass_prepare(s, 1, s->len, &p);
    int recording = o->step_begin && o->step_end && o->step_begin(be, step_key(s, in->ids, in->want_logits));
    size_t from = 0, part_from = 0; /* the next layer to issue; where the part being recorded began */
    emu2_status st;
    do {
        size_t to = recording && o->step_cut ? part_end(from, L) : L;
        if ((st = step_part(s, in, &p, from, to, err)) != EMU2_OK)
            break;
        if (recording && to < L) {
            int r = o->step_cut(be);
            if (!(r & EMU2_STEP_CUT_LAUNCHED) && !(r & EMU2_STEP_CUT_RECORDING)) /* the part did not run */
                st = step_part(s, in, &p, part_from, to, err);
            if ((r & EMU2_STEP_CUT_LAUNCHED) || !(r & EMU2_STEP_CUT_RECORDING))
                part_from = to;
            recording = (r & EMU2_STEP_CUT_RECORDING) != 0;
            if (st != EMU2_OK)
                break;
        }
        from = to;
    } while (from < L);
    if (recording && !o->step_end(be, st == EMU2_OK)) /* the last part did not run: p still holds */
        st = step_part(s, in, &p, part_from, L, err);
    return st;
}

/* One position per row: step_ops, then the downloads. */
static emu2_status step_forward(emu2_decoder_session *s, const int32_t *ids, const float *embeds, int want_logits,
                                float *logits, float *hidden, emu2_error *err)
{
    for (size_t b = 0; b < s->rows; b++) {
        s->positions[b] = s->n_real[b];
        s->mask[b * s->max_len + s->len] = 1;
    }
    step_in in = {ids, embeds, want_logits};
    emu2_status st = step_ops(s, &in, err);
    if (st != EMU2_OK) {
        for (size_t b = 0; b < s->rows; b++)
            s->mask[b * s->max_len + s->len] = 0;
        return st;
    }
    s->len++;
    for (size_t b = 0; b < s->rows; b++)
        s->n_real[b]++;
    return head_download(s, logits, hidden, err);
}

static emu2_status step_check(const emu2_decoder_session *s, const void *in, emu2_error *err)
{
    if (!s || !in)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "decoder step: NULL argument");
    if (s->rows == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "decoder step before a successful prefill");
    if (s->len >= s->max_len)
        return emu2_fail(err, EMU2_ERR_LIMIT, "the decoder session is full (%zu positions)", s->max_len);
    return EMU2_OK;
}

emu2_status emu2_decoder_step(emu2_decoder_session *s, const int32_t *ids, float *logits, float *hidden,
                              emu2_error *err)
{
    emu2_status st = step_check(s, ids, err);
    return st ? st : step_forward(s, ids, NULL, logits != NULL, logits, hidden, err);
}

emu2_status emu2_decoder_step_embeds(emu2_decoder_session *s, const float *embeds, float *logits, float *hidden,
                                     emu2_error *err)
{
    emu2_status st = step_check(s, embeds, err);
    return st ? st : step_forward(s, NULL, embeds, logits != NULL, logits, hidden, err);
}

emu2_status emu2_decoder_step_resident(emu2_decoder_session *s, const int32_t *ids, emu2_error *err)
{
    emu2_status st = step_check(s, ids, err);
    return st ? st : step_forward(s, ids, NULL, 1, NULL, NULL, err);
}
