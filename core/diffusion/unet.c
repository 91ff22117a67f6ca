/* unet.c: the UNet forward pass (unet.h), one sample at a time (classifier-free guidance runs the
 * condition and the negative as two passes: same numbers as one batch of two). */
#include "diffusion/unet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dif_sinusoid(float x, size_t dim, int flip_sin_to_cos, double shift, float *out)
{
    const size_t half = dim / 2;
    const float neg_log = (float)-log(10000.0), denom = (float)((double)half - shift);
    for (size_t i = 0; i < half; i++) {
        /* as torch: exponent = -ln(1e4) * i in f32, / (half - shift), exp, times x, all f32 */
        float e = neg_log * (float)i;
        e = e / denom;
        float a = x * expf(e);
        float s = (float)sin((double)a), c = (float)cos((double)a);
        out[i] = flip_sin_to_cos ? c : s;
        out[half + i] = flip_sin_to_cos ? s : c;
    }
    if (dim % 2)
        out[dim - 1] = 0.0f;
}

void dif_nchw_to_tokens(const float *src, size_t C, size_t HW, float *dst)
{
    for (size_t c = 0; c < C; c++)
        for (size_t p = 0; p < HW; p++)
            dst[p * C + c] = src[c * HW + p];
}

void dif_tokens_to_nchw(const float *src, size_t C, size_t HW, float *dst)
{
    for (size_t p = 0; p < HW; p++)
        for (size_t c = 0; c < C; c++)
            dst[c * HW + p] = src[p * C + c];
}

/* out (host [E]) = l2(SiLU(l1(in))), in host [n_in]. */
static emu2_status mlp2(emu2_backend *be, const emu2_op_weight *l1, const emu2_tensor_view *b1,
                        const emu2_op_weight *l2, const emu2_tensor_view *b2, const float *in, size_t n_in, size_t E,
                        float *out, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    float *x = dif_alloc(be, n_in, err), *h = x ? dif_alloc(be, E, err) : NULL, *y = h ? dif_alloc(be, E, err) : NULL;
    emu2_status st = y ? EMU2_OK : EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = o->upload(be, x, in, n_in, err);
    if (st == EMU2_OK)
        st = o->linear(be, 1, n_in, E, x, n_in, l1, b1, h, E, err);
    if (st == EMU2_OK)
        st = o->silu(be, E, h, h, err);
    if (st == EMU2_OK)
        st = o->linear(be, 1, E, E, h, E, l2, b2, y, E, err);
    if (st == EMU2_OK)
        st = o->download(be, out, y, E, err);
    dif_free(be, x);
    dif_free(be, h);
    dif_free(be, y);
    return st;
}

emu2_status dif_unet_embedding(emu2_backend *be, const dif_unet *u, float t, const float *text_embeds,
                               const float time_ids[6], float *emb, emu2_error *err)
{
    emu2_status st = dif_check_ops(be, err);
    if (st != EMU2_OK)
        return st;
    const size_t E = u->temb_dim, A = u->add_time_dim;
    float *tproj = malloc(u->c0 * sizeof *tproj), *aug_in = malloc(u->add_in_dim * sizeof *aug_in);
    float *aug = malloc(E * sizeof *aug);
    if (!tproj || !aug_in || !aug)
        st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    if (st == EMU2_OK) {
        dif_sinusoid(t, u->c0, u->flip_sin_to_cos, u->freq_shift, tproj);
        memcpy(aug_in, text_embeds, u->cross_dim * sizeof *aug_in);
        for (size_t i = 0; i < 6; i++)
            dif_sinusoid(time_ids[i], A, u->flip_sin_to_cos, u->freq_shift, aug_in + u->cross_dim + i * A);
        st = mlp2(be, &u->time_l1, &u->time_l1_b, &u->time_l2, &u->time_l2_b, tproj, u->c0, E, emb, err);
    }
    if (st == EMU2_OK)
        st = mlp2(be, &u->add_l1, &u->add_l1_b, &u->add_l2, &u->add_l2_b, aug_in, u->add_in_dim, E, aug, err);
    if (st == EMU2_OK)
        for (size_t i = 0; i < E; i++)
            emb[i] += aug[i];
    free(tproj);
    free(aug_in);
    free(aug);
    return st;
}

/* A feature map on the skip stack. */
typedef struct fmap {
    float *x;
    size_t H, W, C;
} fmap;

typedef struct unet_run {
    emu2_backend *be;
    const dif_unet *u;
    const float *semb, *cond;
    size_t n_cond;
    fmap *stack;
    size_t n_stack;
    emu2_error *err;
} unet_run;

/* Ends a step h <- f(h) that computed y: on success y replaces the current map (the old one is freed;
 * the caller then sets the new size), on failure y is freed. Returns st. */
static emu2_status take_map(unet_run *r, fmap *h, float *y, emu2_status st)
{
    if (st != EMU2_OK) {
        dif_free(r->be, y);
        return st;
    }
    dif_free(r->be, h->x);
    h->x = y;
    return EMU2_OK;
}

/* h <- f(h): replaces the current map (frees the old one). */
static emu2_status resnet_step(unet_run *r, const dif_resnet_w *w, fmap *h)
{
    if (w->cin != h->C)
        return emu2_fail(r->err, EMU2_ERR_MISMATCH, "unet: a resnet expects %zu channels, the feature map has %zu",
                         w->cin, h->C);
    float *y = NULL;
    emu2_status st = dif_resnet_forward(r->be, w, r->u->groups, r->u->norm_eps, h->H, h->W, h->x, r->semb, &y, r->err);
    if ((st = take_map(r, h, y, st)) == EMU2_OK)
        h->C = w->cout;
    return st;
}

static emu2_status attn_step(unet_run *r, const dif_transformer_w *t, fmap *h)
{
    if (t->C != h->C)
        return emu2_fail(r->err, EMU2_ERR_MISMATCH, "unet: a transformer expects %zu channels, the feature map has %zu",
                         t->C, h->C);
    float *y = NULL;
    emu2_status st = dif_transformer_forward(r->be, t, r->u->groups, h->H * h->W, h->x, r->cond, r->n_cond, &y, r->err);
    return take_map(r, h, y, st);
}

/* Pushes a copy of h onto the skip stack. */
static emu2_status push_skip(unet_run *r, const fmap *h)
{
    size_t n = h->H * h->W * h->C;
    float *c = dif_alloc(r->be, n, r->err);
    if (!c)
        return EMU2_ERR_NOMEM;
    emu2_status st = r->be->ops->copy_rows(r->be, 1, n, h->x, n, 1, NULL, c, n, 1, NULL, r->err);
    if (st != EMU2_OK) {
        dif_free(r->be, c);
        return st;
    }
    r->stack[r->n_stack++] = (fmap){c, h->H, h->W, h->C};
    return EMU2_OK;
}

/* h <- [h, skip] along channels (torch.cat(dim=1) in NCHW = per-pixel concatenation here). */
static emu2_status concat_skip(unet_run *r, fmap *h)
{
    if (r->n_stack == 0)
        return emu2_fail(r->err, EMU2_ERR_INTERNAL, "unet: skip stack is empty");
    fmap s = r->stack[--r->n_stack];
    emu2_status st = EMU2_OK;
    if (s.H != h->H || s.W != h->W)
        st = emu2_fail(r->err, EMU2_ERR_MISMATCH, "unet: skip map %zux%zu does not match %zux%zu", s.H, s.W, h->H,
                       h->W);
    const size_t HW = h->H * h->W, C = h->C + s.C;
    float *cat = st == EMU2_OK ? dif_alloc(r->be, HW * C, r->err) : NULL;
    if (st == EMU2_OK && !cat)
        st = EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = r->be->ops->copy_rows(r->be, HW, h->C, h->x, h->C, HW, NULL, cat, C, HW, NULL, r->err);
    if (st == EMU2_OK)
        st = r->be->ops->copy_rows(r->be, HW, s.C, s.x, s.C, HW, NULL, cat + h->C, C, HW, NULL, r->err);
    dif_free(r->be, s.x);
    if ((st = take_map(r, h, cat, st)) == EMU2_OK)
        h->C = C;
    return st;
}

/* Stride-2 conv (downsampler) or nearest resize to (Ho, Wo) + conv (upsampler). */
static emu2_status sample_step(unet_run *r, const dif_unet_level *L, fmap *h, int up, size_t Ho, size_t Wo)
{
    const emu2_ops *o = r->be->ops;
    float *src = h->x, *tmp = NULL, *y = NULL;
    size_t H = h->H, W = h->W;
    emu2_status st = EMU2_OK;
    if (up) {
        if (!(tmp = dif_alloc(r->be, Ho * Wo * h->C, r->err)))
            return EMU2_ERR_NOMEM;
        st = o->upsample_nearest(r->be, h->C, H, W, Ho, Wo, h->x, tmp, r->err);
        src = tmp;
        H = Ho;
        W = Wo;
    }
    size_t oh = up ? H : (H + 2 - 3) / 2 + 1, ow = up ? W : (W + 2 - 3) / 2 + 1;
    if (st == EMU2_OK && !(y = dif_alloc(r->be, oh * ow * h->C, r->err)))
        st = EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = o->conv2d(r->be, h->C, H, W, src, &L->sampler, &L->sampler_b, 3, up ? 1 : 2, 1, y, r->err);
    dif_free(r->be, tmp);
    if ((st = take_map(r, h, y, st)) == EMU2_OK) {
        h->H = oh;
        h->W = ow;
    }
    return st;
}

static emu2_status run_levels(unet_run *r, fmap *h)
{
    const dif_unet *u = r->u;
    emu2_status st = push_skip(r, h);
    for (size_t i = 0; i < u->n_levels && st == EMU2_OK; i++) {
        const dif_unet_level *L = &u->down[i];
        for (size_t j = 0; j < L->n_res && st == EMU2_OK; j++) {
            st = resnet_step(r, &L->res[j], h);
            if (st == EMU2_OK && L->attn)
                st = attn_step(r, &L->attn[j], h);
            if (st == EMU2_OK)
                st = push_skip(r, h);
        }
        if (st == EMU2_OK && L->has_sampler) {
            st = sample_step(r, L, h, 0, 0, 0);
            if (st == EMU2_OK)
                st = push_skip(r, h);
        }
    }
    if (st == EMU2_OK)
        st = resnet_step(r, &u->mid.res[0], h);
    if (st == EMU2_OK)
        st = attn_step(r, &u->mid.attn[0], h);
    if (st == EMU2_OK)
        st = resnet_step(r, &u->mid.res[1], h);
    for (size_t i = 0; i < u->n_levels && st == EMU2_OK; i++) {
        const dif_unet_level *L = &u->up[i];
        for (size_t j = 0; j < L->n_res && st == EMU2_OK; j++) {
            st = concat_skip(r, h);
            if (st == EMU2_OK)
                st = resnet_step(r, &L->res[j], h);
            if (st == EMU2_OK && L->attn)
                st = attn_step(r, &L->attn[j], h);
        }
        if (st == EMU2_OK && L->has_sampler) {
            /* diffusers upsamples to the next skip's size (2x when the sizes divide evenly) */
            size_t Ho = r->n_stack ? r->stack[r->n_stack - 1].H : 2 * h->H;
            size_t Wo = r->n_stack ? r->stack[r->n_stack - 1].W : 2 * h->W;
            st = sample_step(r, L, h, 1, Ho, Wo);
        }
    }
    if (st == EMU2_OK && r->n_stack)
        st = emu2_fail(r->err, EMU2_ERR_MISMATCH, "unet: %zu skip connections left unused (config and weights disagree)",
                       r->n_stack);
    return st;
}

emu2_status dif_unet_forward(emu2_backend *be, const dif_unet *u, size_t h, size_t w, const float *sample,
                             const float *cond, size_t n_cond, const float *emb, float *eps, emu2_error *err)
{
    emu2_status st = dif_check_ops(be, err);
    if (st != EMU2_OK)
        return st;
    if (!h || !w || h > 4096 || w > 4096 || !n_cond)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "unet: bad latent size %zux%zu or no condition", h, w);
    const emu2_ops *o = be->ops;
    const size_t HW = h * w, max_skips = 1 + u->n_levels * 16;
    unet_run r = {be, u, NULL, NULL, n_cond, calloc(max_skips, sizeof(fmap)), 0, err};
    float *tok = malloc(HW * (u->in_ch > u->out_ch ? u->in_ch : u->out_ch) * sizeof *tok);
    float *x = dif_alloc(be, HW * u->in_ch, err), *semb = x ? dif_alloc(be, u->temb_dim, err) : NULL;
    float *cnd = semb ? dif_alloc(be, n_cond * u->cross_dim, err) : NULL, *out = NULL;
    fmap hm = {NULL, h, w, u->c0};
    if (!r.stack || !tok)
        st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    else if (!cnd)
        st = EMU2_ERR_NOMEM;
    if (st == EMU2_OK) {
        dif_nchw_to_tokens(sample, u->in_ch, HW, tok);
        st = o->upload(be, x, tok, HW * u->in_ch, err);
    }
    if (st == EMU2_OK)
        st = o->upload(be, semb, emb, u->temb_dim, err);
    if (st == EMU2_OK)
        st = o->silu(be, u->temb_dim, semb, semb, err);
    if (st == EMU2_OK)
        st = o->upload(be, cnd, cond, n_cond * u->cross_dim, err);
    if (st == EMU2_OK && !(hm.x = dif_alloc(be, HW * u->c0, err)))
        st = EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = o->conv2d(be, u->in_ch, h, w, x, &u->conv_in, &u->conv_in_b, 3, 1, 1, hm.x, err);
    r.semb = semb;
    r.cond = cnd;
    if (st == EMU2_OK)
        st = run_levels(&r, &hm);
    if (st == EMU2_OK && hm.C != u->c0)
        st = emu2_fail(err, EMU2_ERR_MISMATCH, "unet: %zu channels reach conv_norm_out (want %zu)", hm.C, u->c0);
    if (st == EMU2_OK)
        st = o->group_norm(be, HW, u->c0, u->groups, hm.x, &u->norm_out_w, &u->norm_out_b, u->norm_eps, 1, hm.x, err);
    if (st == EMU2_OK && !(out = dif_alloc(be, HW * u->out_ch, err)))
        st = EMU2_ERR_NOMEM;
    if (st == EMU2_OK)
        st = o->conv2d(be, u->c0, h, w, hm.x, &u->conv_out, &u->conv_out_b, 3, 1, 1, out, err);
    if (st == EMU2_OK)
        st = o->download(be, tok, out, HW * u->out_ch, err);
    if (st == EMU2_OK)
        dif_tokens_to_nchw(tok, u->out_ch, HW, eps);
    for (size_t i = 0; i < r.n_stack; i++)
        dif_free(be, r.stack[i].x);
    free(r.stack);
    free(tok);
    dif_free(be, hm.x);
    dif_free(be, x);
    dif_free(be, semb);
    dif_free(be, cnd);
    dif_free(be, out);
    return st;
}
