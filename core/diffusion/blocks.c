/* blocks.c: ResnetBlock2D, attention, Transformer2DModel and the VAE mid attention (see blocks.h). */
#include "diffusion/blocks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DIF_MAX_TRANSFORMER_BLOCKS 64

/* ---------------------------------------------------------------- binding */

int dif_bind_resnet(dif_binder *b, dif_resnet_w *r, size_t temb_dim, const char *p)
{
    memset(r, 0, sizeof *r);
    if (!dif_bind_conv(b, &r->conv1, 0, 0, 3, "%s.conv1.weight", p))
        return 0;
    r->cout = (size_t)r->conv1.w.shape[0];
    r->cin = (size_t)r->conv1.w.shape[1];
    dif_bind_vec(b, &r->conv1_b, r->cout, "%s.conv1.bias", p);
    dif_bind_vec(b, &r->norm1_w, r->cin, "%s.norm1.weight", p);
    dif_bind_vec(b, &r->norm1_b, r->cin, "%s.norm1.bias", p);
    dif_bind_vec(b, &r->norm2_w, r->cout, "%s.norm2.weight", p);
    dif_bind_vec(b, &r->norm2_b, r->cout, "%s.norm2.bias", p);
    dif_bind_conv(b, &r->conv2, r->cout, r->cout, 3, "%s.conv2.weight", p);
    dif_bind_vec(b, &r->conv2_b, r->cout, "%s.conv2.bias", p);
    if (temb_dim) {
        r->has_temb = 1;
        dif_bind_mat(b, &r->temb, r->cout, temb_dim, "%s.time_emb_proj.weight", p);
        dif_bind_vec(b, &r->temb_b, r->cout, "%s.time_emb_proj.bias", p);
    }
    if (r->cin != r->cout || dif_has(b, "%s.conv_shortcut.weight", p)) {
        r->has_shortcut = 1;
        dif_bind_mat(b, &r->shortcut, r->cout, r->cin, "%s.conv_shortcut.weight", p);
        dif_bind_vec(b, &r->shortcut_b, r->cout, "%s.conv_shortcut.bias", p);
    }
    return b->st == EMU2_OK;
}

static int bind_attn(dif_binder *b, dif_attn_w *a, size_t dim, size_t kv_dim, size_t heads, int biases,
                     const char *p)
{
    memset(a, 0, sizeof *a);
    if (!heads || dim % heads) {
        b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s: %s: %zu channels do not split into %zu heads", b->c->dir, p,
                          dim, heads);
        return 0;
    }
    a->dim = dim;
    a->kv_dim = kv_dim;
    a->heads = heads;
    a->has_qkv_bias = biases;
    dif_bind_mat(b, &a->q, dim, dim, "%s.to_q.weight", p);
    dif_bind_mat(b, &a->k, dim, kv_dim, "%s.to_k.weight", p);
    dif_bind_mat(b, &a->v, dim, kv_dim, "%s.to_v.weight", p);
    dif_bind_mat(b, &a->out, dim, dim, "%s.to_out.0.weight", p);
    dif_bind_vec(b, &a->out_b, dim, "%s.to_out.0.bias", p);
    if (biases) {
        dif_bind_vec(b, &a->q_b, dim, "%s.to_q.bias", p);
        dif_bind_vec(b, &a->k_b, dim, "%s.to_k.bias", p);
        dif_bind_vec(b, &a->v_b, dim, "%s.to_v.bias", p);
    }
    return b->st == EMU2_OK;
}

/* Rows [row0, row0 + rows) of a bound [N, K] matrix (and of its bias), as zero-copy views. */
static void slice_rows(emu2_op_weight *w, emu2_tensor_view *bias, size_t row0, size_t rows)
{
    size_t K = (size_t)w->w.shape[1], es = emu2_dtype_size(w->w.dtype), bs = emu2_dtype_size(bias->dtype);
    w->w.data = (const char *)w->w.data + row0 * K * es;
    w->w.shape[0] = (int64_t)rows;
    w->w.nbytes = rows * K * es;
    bias->data = (const char *)bias->data + row0 * bs;
    bias->shape[0] = (int64_t)rows;
    bias->nbytes = rows * bs;
}

static int bind_tblock(dif_binder *b, dif_tblock_w *k, size_t C, size_t heads, size_t cross_dim, const char *p)
{
    char q[400];
    dif_bind_vec(b, &k->n1_w, C, "%s.norm1.weight", p);
    dif_bind_vec(b, &k->n1_b, C, "%s.norm1.bias", p);
    dif_bind_vec(b, &k->n2_w, C, "%s.norm2.weight", p);
    dif_bind_vec(b, &k->n2_b, C, "%s.norm2.bias", p);
    dif_bind_vec(b, &k->n3_w, C, "%s.norm3.weight", p);
    dif_bind_vec(b, &k->n3_b, C, "%s.norm3.bias", p);
    snprintf(q, sizeof q, "%.300s.attn1", p);
    bind_attn(b, &k->self_attn, C, C, heads, 0, q);
    snprintf(q, sizeof q, "%.300s.attn2", p);
    bind_attn(b, &k->cross_attn, C, cross_dim, heads, 0, q);
    if (!dif_bind_mat(b, &k->ff_val, 0, C, "%s.ff.net.0.proj.weight", p))
        return 0;
    size_t two_inner = (size_t)k->ff_val.w.shape[0];
    if (two_inner % 2) {
        b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s: %s.ff.net.0.proj.weight has an odd row count %zu (GEGLU)",
                          b->c->dir, p, two_inner);
        return 0;
    }
    k->inner = two_inner / 2;
    if (!dif_bind_vec(b, &k->ff_val_b, two_inner, "%s.ff.net.0.proj.bias", p))
        return 0;
    /* GEGLU: the first half of the projection is the value, the second the gate */
    if (!dif_bind_mat(b, &k->ff_gate, two_inner, C, "%s.ff.net.0.proj.weight", p) ||
        !dif_bind_vec(b, &k->ff_gate_b, two_inner, "%s.ff.net.0.proj.bias", p))
        return 0;
    slice_rows(&k->ff_val, &k->ff_val_b, 0, k->inner);
    slice_rows(&k->ff_gate, &k->ff_gate_b, k->inner, k->inner);
    dif_bind_mat(b, &k->ff_out, C, k->inner, "%s.ff.net.2.weight", p);
    dif_bind_vec(b, &k->ff_out_b, C, "%s.ff.net.2.bias", p);
    return b->st == EMU2_OK;
}

int dif_bind_transformer(dif_binder *b, dif_transformer_w *t, size_t heads, size_t cross_dim, const char *p)
{
    memset(t, 0, sizeof *t);
    size_t C = dif_bind_vec(b, &t->norm_w, 0, "%s.norm.weight", p);
    if (!C)
        return 0;
    t->C = C;
    dif_bind_vec(b, &t->norm_b, C, "%s.norm.bias", p);
    dif_bind_mat(b, &t->proj_in, C, C, "%s.proj_in.weight", p);
    dif_bind_vec(b, &t->proj_in_b, C, "%s.proj_in.bias", p);
    dif_bind_mat(b, &t->proj_out, C, C, "%s.proj_out.weight", p);
    dif_bind_vec(b, &t->proj_out_b, C, "%s.proj_out.bias", p);
    size_t n = 0;
    while (n < DIF_MAX_TRANSFORMER_BLOCKS && dif_has(b, "%s.transformer_blocks.%zu.norm1.weight", p, n))
        n++;
    if (b->st != EMU2_OK)
        return 0;
    if (n == 0) {
        b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s: %s has no transformer_blocks", b->c->dir, p);
        return 0;
    }
    t->blocks = calloc(n, sizeof *t->blocks);
    if (!t->blocks) {
        b->st = emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory");
        return 0;
    }
    t->n_blocks = n;
    for (size_t i = 0; i < n && b->st == EMU2_OK; i++) {
        char q[256];
        snprintf(q, sizeof q, "%.200s.transformer_blocks.%zu", p, i);
        bind_tblock(b, &t->blocks[i], C, heads, cross_dim, q);
    }
    return b->st == EMU2_OK;
}

void dif_transformer_free(dif_transformer_w *t)
{
    if (t) {
        free(t->blocks);
        t->blocks = NULL;
        t->n_blocks = 0;
    }
}

int dif_bind_vae_attn(dif_binder *b, dif_vae_attn_w *a, size_t C, const char *p)
{
    dif_bind_vec(b, &a->norm_w, C, "%s.group_norm.weight", p);
    dif_bind_vec(b, &a->norm_b, C, "%s.group_norm.bias", p);
    return bind_attn(b, &a->attn, C, C, 1, 1, p);
}

/* ---------------------------------------------------------------- running */

emu2_status dif_check_ops(emu2_backend *be, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    const struct {
        const char *name;
        int present;
    } need[] = {{"conv2d", o->conv2d != NULL},
                {"group_norm", o->group_norm != NULL},
                {"upsample_nearest", o->upsample_nearest != NULL},
                {"silu", o->silu != NULL},
                {"mul", o->mul != NULL},
                {"add_row_vector", o->add_row_vector != NULL},
                {"linear", o->linear != NULL},
                {"layernorm", o->layernorm != NULL},
                {"attention", o->attention != NULL},
                {"gelu", o->gelu != NULL},
                {"add", o->add != NULL},
                {"copy_rows", o->copy_rows != NULL}};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++)
        if (!need[i].present)
            return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "op %s not available on backend %s (Emu2-Gen needs it)",
                             need[i].name, o->name);
    return EMU2_OK;
}

float *dif_alloc(emu2_backend *be, size_t n, emu2_error *err)
{
    float *p = be->ops->alloc(be, n ? n : 1, err);
    if (!p && err && err->status == EMU2_OK)
        emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for %zu floats", n);
    return p;
}

void dif_free(emu2_backend *be, float *p)
{
    if (p)
        be->ops->free(be, p);
}

emu2_status dif_hand_over(emu2_backend *be, emu2_status st, float *out, float **y)
{
    if (st != EMU2_OK) {
        dif_free(be, out);
        return st;
    }
    *y = out;
    return EMU2_OK;
}

emu2_status dif_resnet_forward(emu2_backend *be, const dif_resnet_w *r, size_t groups, float eps, size_t H, size_t W,
                               const float *x, const float *semb, float **y, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    const size_t HW = H * W;
    *y = NULL;
    float *t1 = dif_alloc(be, HW * r->cin, err), *t2 = t1 ? dif_alloc(be, HW * r->cout, err) : NULL;
    float *out = t2 ? dif_alloc(be, HW * r->cout, err) : NULL, *tv = NULL;
    emu2_status st = out ? EMU2_OK : EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = o->group_norm(be, HW, r->cin, groups, x, &r->norm1_w, &r->norm1_b, eps, 1, t1, err);
    if (st == EMU2_OK)
        st = o->conv2d(be, r->cin, H, W, t1, &r->conv1, &r->conv1_b, 3, 1, 1, t2, err);
    if (st == EMU2_OK && r->has_temb) {
        if (!semb)
            st = emu2_fail(err, EMU2_ERR_INTERNAL, "resnet: no time embedding given");
        else if (!(tv = dif_alloc(be, r->cout, err)))
            st = EMU2_ERR_NOMEM;
        else if ((st = o->linear(be, 1, r->temb.w.shape[1], r->cout, semb, r->temb.w.shape[1], &r->temb, &r->temb_b,
                                 tv, r->cout, err)) == EMU2_OK)
            st = o->add_row_vector(be, HW, r->cout, t2, tv, t2, err);
    }
    /* t1 is free again: it holds GN2 (its size is >= HW * cout only when cin >= cout) */
    float *t3 = t1;
    if (st == EMU2_OK && r->cin < r->cout) {
        dif_free(be, t1);
        t1 = NULL;
        if (!(t3 = dif_alloc(be, HW * r->cout, err)))
            st = EMU2_ERR_NOMEM;
    }
    if (st == EMU2_OK)
        st = o->group_norm(be, HW, r->cout, groups, t2, &r->norm2_w, &r->norm2_b, eps, 1, t3, err);
    if (st == EMU2_OK)
        st = o->conv2d(be, r->cout, H, W, t3, &r->conv2, &r->conv2_b, 3, 1, 1, out, err);
    if (st == EMU2_OK && r->has_shortcut) {
        st = o->linear(be, HW, r->cin, r->cout, x, r->cin, &r->shortcut, &r->shortcut_b, t2, r->cout, err);
        if (st == EMU2_OK)
            st = o->add(be, HW * r->cout, t2, out, out, err);
    } else if (st == EMU2_OK) {
        st = o->add(be, HW * r->cout, x, out, out, err);
    }
    if (t3 != t1)
        dif_free(be, t3);
    dif_free(be, t1);
    dif_free(be, t2);
    dif_free(be, tv);
    return dif_hand_over(be, st, out, y);
}

/* out [n_q, dim] = to_out(attention(q(xq), k(xkv), v(xkv))) + out bias. */
static emu2_status attention_forward(emu2_backend *be, const dif_attn_w *a, size_t n_q, const float *xq,
                                     size_t n_kv, const float *xkv, float *out, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    const size_t D = a->dim;
    float *q = dif_alloc(be, n_q * D, err), *k = q ? dif_alloc(be, n_kv * D, err) : NULL;
    float *v = k ? dif_alloc(be, n_kv * D, err) : NULL, *att = v ? dif_alloc(be, n_q * D, err) : NULL;
    emu2_status st = att ? EMU2_OK : EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = o->linear(be, n_q, D, D, xq, D, &a->q, a->has_qkv_bias ? &a->q_b : NULL, q, D, err);
    if (st == EMU2_OK)
        st = o->linear(be, n_kv, a->kv_dim, D, xkv, a->kv_dim, &a->k, a->has_qkv_bias ? &a->k_b : NULL, k, D, err);
    if (st == EMU2_OK)
        st = o->linear(be, n_kv, a->kv_dim, D, xkv, a->kv_dim, &a->v, a->has_qkv_bias ? &a->v_b : NULL, v, D, err);
    if (st == EMU2_OK) {
        const size_t hd = D / a->heads;
        emu2_attention_args args = {
            .batch = 1, .n_heads = a->heads, .head_dim = hd, .q_len = n_q, .kv_len = n_kv, .q_offset = 0,
            .causal = 0, .scale = (float)(1.0 / sqrt((double)hd)), .q = q, .k = k, .v = v, .out = att,
            .q_stride = D, .k_stride = D, .v_stride = D, .out_stride = D,
            .q_batch_stride = n_q * D, .kv_batch_stride = n_kv * D, .out_batch_stride = n_q * D, .key_mask = NULL};
        st = o->attention(be, &args, err);
    }
    if (st == EMU2_OK)
        st = o->linear(be, n_q, D, D, att, D, &a->out, &a->out_b, out, D, err);
    dif_free(be, q);
    dif_free(be, k);
    dif_free(be, v);
    dif_free(be, att);
    return st;
}

#define DIF_TBLOCK_LN_EPS 1e-5f

/* t += attention(layernorm(t), kv): an attention sub-layer of a BasicTransformerBlock; self: the
 * normalized t is its own kv (n_kv, kv unused). a and o_buf are [HW, C] scratch. */
static emu2_status attn_sublayer(emu2_backend *be, const dif_attn_w *w, const emu2_tensor_view *norm_w,
                                 const emu2_tensor_view *norm_b, size_t HW, size_t C, float *t, int self,
                                 size_t n_kv, const float *kv, float *a, float *o_buf, emu2_error *err)
{
    emu2_status st = be->ops->layernorm(be, HW, C, t, norm_w, norm_b, DIF_TBLOCK_LN_EPS, a, err);
    if (st == EMU2_OK)
        st = attention_forward(be, w, HW, a, self ? HW : n_kv, self ? a : kv, o_buf, err);
    return st == EMU2_OK ? be->ops->add(be, HW * C, t, o_buf, t, err) : st;
}

/* t += block(t): the three residual sub-layers of a BasicTransformerBlock. */
static emu2_status tblock_forward(emu2_backend *be, const dif_tblock_w *k, size_t HW, size_t C, float *t,
                                  const float *cond, size_t n_cond, float *a, float *o_buf, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    emu2_status st = attn_sublayer(be, &k->self_attn, &k->n1_w, &k->n1_b, HW, C, t, 1, 0, NULL, a, o_buf, err);
    if (st == EMU2_OK)
        st = attn_sublayer(be, &k->cross_attn, &k->n2_w, &k->n2_b, HW, C, t, 0, n_cond, cond, a, o_buf, err);
    if (st == EMU2_OK)
        st = o->layernorm(be, HW, C, t, &k->n3_w, &k->n3_b, DIF_TBLOCK_LN_EPS, a, err);
    if (st != EMU2_OK)
        return st;
    const size_t I = k->inner;
    float *val = dif_alloc(be, HW * I, err), *gate = val ? dif_alloc(be, HW * I, err) : NULL;
    st = gate ? EMU2_OK : EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = o->linear(be, HW, C, I, a, C, &k->ff_val, &k->ff_val_b, val, I, err);
    if (st == EMU2_OK)
        st = o->linear(be, HW, C, I, a, C, &k->ff_gate, &k->ff_gate_b, gate, I, err);
    if (st == EMU2_OK)
        st = o->gelu(be, HW * I, gate, gate, err);
    if (st == EMU2_OK)
        st = o->mul(be, HW * I, val, gate, val, err);
    if (st == EMU2_OK)
        st = o->linear(be, HW, I, C, val, I, &k->ff_out, &k->ff_out_b, o_buf, C, err);
    if (st == EMU2_OK)
        st = o->add(be, HW * C, t, o_buf, t, err);
    dif_free(be, val);
    dif_free(be, gate);
    return st;
}

emu2_status dif_transformer_forward(emu2_backend *be, const dif_transformer_w *t, size_t groups, size_t HW,
                                    const float *x, const float *cond, size_t n_cond, float **y, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    const size_t C = t->C;
    *y = NULL;
    float *n = dif_alloc(be, HW * C, err), *h = n ? dif_alloc(be, HW * C, err) : NULL;
    float *ob = h ? dif_alloc(be, HW * C, err) : NULL;
    emu2_status st = ob ? EMU2_OK : EMU2_ERR_NOMEM;
    if (st == EMU2_OK) /* Transformer2DModel's GroupNorm has eps 1e-6 whatever the UNet's norm_eps */
        st = o->group_norm(be, HW, C, groups, x, &t->norm_w, &t->norm_b, 1e-6f, 0, n, err);
    if (st == EMU2_OK)
        st = o->linear(be, HW, C, C, n, C, &t->proj_in, &t->proj_in_b, h, C, err);
    for (size_t i = 0; i < t->n_blocks && st == EMU2_OK; i++)
        st = tblock_forward(be, &t->blocks[i], HW, C, h, cond, n_cond, n, ob, err);
    if (st == EMU2_OK)
        st = o->linear(be, HW, C, C, h, C, &t->proj_out, &t->proj_out_b, ob, C, err);
    if (st == EMU2_OK)
        st = o->add(be, HW * C, ob, x, ob, err);
    dif_free(be, n);
    dif_free(be, h);
    return dif_hand_over(be, st, ob, y);
}

emu2_status dif_vae_attn_forward(emu2_backend *be, const dif_vae_attn_w *a, size_t groups, float eps, size_t HW,
                                 const float *x, float **y, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    const size_t C = a->attn.dim;
    *y = NULL;
    float *n = dif_alloc(be, HW * C, err), *out = n ? dif_alloc(be, HW * C, err) : NULL;
    emu2_status st = out ? EMU2_OK : EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = o->group_norm(be, HW, C, groups, x, &a->norm_w, &a->norm_b, eps, 0, n, err);
    if (st == EMU2_OK)
        st = attention_forward(be, &a->attn, HW, n, HW, n, out, err);
    if (st == EMU2_OK)
        st = o->add(be, HW * C, out, x, out, err);
    dif_free(be, n);
    return dif_hand_over(be, st, out, y);
}
