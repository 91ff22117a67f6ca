/* vae.c: the AutoencoderKL decoder (vae.h). */
#include "diffusion/vae.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffusion/unet.h"

#define VAE_MAX_LEVELS 8
#define VAE_NORM_EPS 1e-6f

static emu2_status bind_all(void *obj, dif_binder *b)
{
    dif_vae *v = obj;
    const dif_component *c = &v->comp;
    long layers;
    emu2_status st = dif_config_int(c, "layers_per_block", 1, 2, 1, 8, &layers, b->err);
    if (st != EMU2_OK)
        return b->st = st;
    v->n_levels = dif_config_list_len(c, "block_out_channels");
    if (v->n_levels < 1 || v->n_levels > VAE_MAX_LEVELS)
        return b->st = emu2_fail(b->err, EMU2_ERR_FORMAT, "%s/config.json: block_out_channels must list 1..%d values",
                                 c->dir, VAE_MAX_LEVELS);
    long top;
    if ((st = dif_config_int_at(c, "block_out_channels", v->n_levels - 1, &top, b->err)) != EMU2_OK)
        return b->st = st;
    const size_t C = (size_t)top;
    dif_bind_mat(b, &v->post_quant, v->latent_ch, v->latent_ch, "post_quant_conv.weight");
    dif_bind_vec(b, &v->post_quant_b, v->latent_ch, "post_quant_conv.bias");
    dif_bind_conv(b, &v->conv_in, C, v->latent_ch, 3, "decoder.conv_in.weight");
    dif_bind_vec(b, &v->conv_in_b, C, "decoder.conv_in.bias");
    dif_bind_resnet(b, &v->mid_res[0], 0, "decoder.mid_block.resnets.0");
    dif_bind_vae_attn(b, &v->mid_attn, C, "decoder.mid_block.attentions.0");
    dif_bind_resnet(b, &v->mid_res[1], 0, "decoder.mid_block.resnets.1");
    if (b->st != EMU2_OK)
        return b->st;
    for (int i = 0; i < 2; i++)
        if (v->mid_res[i].cin != C || v->mid_res[i].cout != C)
            return b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s: decoder.mid_block.resnets.%d is %zu -> %zu "
                                     "channels, expected %zu", c->dir, i, v->mid_res[i].cin, v->mid_res[i].cout, C);
    v->up = calloc(v->n_levels, sizeof *v->up);
    if (!v->up)
        return b->st = emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory");
    size_t ch = C, ups = 0;
    for (size_t i = 0; i < v->n_levels && b->st == EMU2_OK; i++) {
        dif_vae_level *L = &v->up[i];
        L->n_res = (size_t)layers + 1;
        L->res = calloc(L->n_res, sizeof *L->res);
        if (!L->res)
            return b->st = emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory");
        for (size_t j = 0; j < L->n_res && b->st == EMU2_OK; j++) {
            char p[96];
            snprintf(p, sizeof p, "decoder.up_blocks.%zu.resnets.%zu", i, j);
            if (dif_bind_resnet(b, &L->res[j], 0, p) && L->res[j].cin != ch)
                b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s: %s expects %zu channels, gets %zu", c->dir, p,
                                  L->res[j].cin, ch);
            if (b->st == EMU2_OK)
                ch = L->res[j].cout;
        }
        if (b->st == EMU2_OK && dif_has(b, "decoder.up_blocks.%zu.upsamplers.0.conv.weight", i)) {
            L->has_up = 1;
            ups++;
            dif_bind_conv(b, &L->up, ch, ch, 3, "decoder.up_blocks.%zu.upsamplers.0.conv.weight", i);
            dif_bind_vec(b, &L->up_b, ch, "decoder.up_blocks.%zu.upsamplers.0.conv.bias", i);
        }
    }
    dif_bind_vec(b, &v->norm_out_w, ch, "decoder.conv_norm_out.weight");
    dif_bind_vec(b, &v->norm_out_b, ch, "decoder.conv_norm_out.bias");
    dif_bind_conv(b, &v->conv_out, v->out_ch, ch, 3, "decoder.conv_out.weight");
    dif_bind_vec(b, &v->conv_out_b, v->out_ch, "decoder.conv_out.bias");
    v->scale = (size_t)1 << ups;
    return b->st;
}

emu2_status dif_vae_load(const char *dir, emu2_backend *be, dif_vae **out, emu2_error *err)
{
    *out = NULL;
    dif_vae *v = calloc(1, sizeof *v);
    if (!v)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    long x;
    double sf;
    emu2_status st = dif_component_open(dir, &v->comp, err);
    if (st == EMU2_OK && (st = dif_config_int(&v->comp, "latent_channels", 1, 4, 1, 64, &x, err)) == EMU2_OK)
        v->latent_ch = (size_t)x;
    if (st == EMU2_OK && (st = dif_config_int(&v->comp, "out_channels", 1, 3, 3, 3, &x, err)) == EMU2_OK)
        v->out_ch = (size_t)x;
    if (st == EMU2_OK && (st = dif_config_int(&v->comp, "norm_num_groups", 1, 32, 1, 4096, &x, err)) == EMU2_OK)
        v->groups = (size_t)x;
    if (st == EMU2_OK && (st = dif_config_int(&v->comp, "sample_size", 1, 1024, 8, 1 << 14, &x, err)) == EMU2_OK)
        v->sample_size = (size_t)x;
    if (st == EMU2_OK && (st = dif_config_num(&v->comp, "scaling_factor", 1, 0.18215, &sf, err)) == EMU2_OK) {
        if (!(sf > 0))
            st = emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: scaling_factor must be > 0", dir);
        v->scaling_factor = (float)sf;
    }
    if (st == EMU2_OK)
        st = dif_bind_and_prepare(&v->comp, &v->views, be, bind_all, v, err);
    if (st != EMU2_OK) {
        dif_vae_free(v, be);
        return st;
    }
    *out = v;
    return EMU2_OK;
}

void dif_vae_free(dif_vae *v, emu2_backend *be)
{
    if (!v)
        return;
    dif_views_release(be, &v->views);
    if (v->up)
        for (size_t i = 0; i < v->n_levels; i++)
            free(v->up[i].res);
    free(v->up);
    dif_component_close(&v->comp);
    free(v);
}

/* h <- f(h) helpers over a backend map of C channels. */
static emu2_status replace(emu2_backend *be, float **h, float *y, emu2_status st)
{
    if (st == EMU2_OK) {
        dif_free(be, *h);
        *h = y;
    }
    return st;
}

/* One whole decode of an h x w latent tile (host NCHW) into image (host NCHW). */
static emu2_status decode_tile(emu2_backend *be, const dif_vae *v, size_t h, size_t w, const float *latents,
                               float *image, emu2_error *err)
{
    const emu2_ops *o = be->ops;
    size_t HW = h * w, C = v->conv_in.w.shape[0], H = h, W = w;
    float *tok = malloc(HW * v->latent_ch * sizeof *tok), *z = dif_alloc(be, HW * v->latent_ch, err);
    float *zq = z ? dif_alloc(be, HW * v->latent_ch, err) : NULL, *x = zq ? dif_alloc(be, HW * C, err) : NULL;
    float *y = NULL;
    emu2_status st = x && tok ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    if (st == EMU2_OK) {
        dif_nchw_to_tokens(latents, v->latent_ch, HW, tok);
        for (size_t i = 0; i < HW * v->latent_ch; i++)
            tok[i] = tok[i] / v->scaling_factor;
        st = o->upload(be, z, tok, HW * v->latent_ch, err);
    }
    if (st == EMU2_OK)
        st = o->linear(be, HW, v->latent_ch, v->latent_ch, z, v->latent_ch, &v->post_quant, &v->post_quant_b, zq,
                       v->latent_ch, err);
    if (st == EMU2_OK)
        st = o->conv2d(be, v->latent_ch, H, W, zq, &v->conv_in, &v->conv_in_b, 3, 1, 1, x, err);
    dif_free(be, z);
    dif_free(be, zq);
    if (st == EMU2_OK)
        st = replace(be, &x, y, dif_resnet_forward(be, &v->mid_res[0], v->groups, VAE_NORM_EPS, H, W, x, NULL, &y, err));
    if (st == EMU2_OK)
        st = replace(be, &x, y, dif_vae_attn_forward(be, &v->mid_attn, v->groups, VAE_NORM_EPS, H * W, x, &y, err));
    if (st == EMU2_OK)
        st = replace(be, &x, y, dif_resnet_forward(be, &v->mid_res[1], v->groups, VAE_NORM_EPS, H, W, x, NULL, &y, err));
    for (size_t i = 0; i < v->n_levels && st == EMU2_OK; i++) {
        const dif_vae_level *L = &v->up[i];
        for (size_t j = 0; j < L->n_res && st == EMU2_OK; j++) {
            st = replace(be, &x, y, dif_resnet_forward(be, &L->res[j], v->groups, VAE_NORM_EPS, H, W, x, NULL, &y, err));
            C = L->res[j].cout;
        }
        if (st == EMU2_OK && L->has_up) {
            float *u = dif_alloc(be, 4 * H * W * C, err), *c = u ? dif_alloc(be, 4 * H * W * C, err) : NULL;
            st = c ? o->upsample_nearest(be, C, H, W, 2 * H, 2 * W, x, u, err) : EMU2_ERR_NOMEM;
            if (st == EMU2_OK)
                st = o->conv2d(be, C, 2 * H, 2 * W, u, &L->up, &L->up_b, 3, 1, 1, c, err);
            dif_free(be, u);
            st = replace(be, &x, c, st);
            if (st != EMU2_OK)
                dif_free(be, c);
            H *= 2;
            W *= 2;
        }
    }
    float *img = NULL, *host = NULL;
    if (st == EMU2_OK)
        st = o->group_norm(be, H * W, C, v->groups, x, &v->norm_out_w, &v->norm_out_b, VAE_NORM_EPS, 1, x, err);
    if (st == EMU2_OK && (!(img = dif_alloc(be, H * W * v->out_ch, err)) ||
                          !(host = malloc(H * W * v->out_ch * sizeof *host))))
        st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the image");
    if (st == EMU2_OK)
        st = o->conv2d(be, C, H, W, x, &v->conv_out, &v->conv_out_b, 3, 1, 1, img, err);
    if (st == EMU2_OK)
        st = o->download(be, host, img, H * W * v->out_ch, err);
    if (st == EMU2_OK)
        dif_tokens_to_nchw(host, v->out_ch, H * W, image);
    free(host);
    free(tok);
    dif_free(be, img);
    dif_free(be, x);
    return st;
}

/* diffusers' tiled_decode: latent tiles of T = sample_size/scale every T*3/4, decoded, each blended
 * with its upper and left neighbours over sample_size/4 pixels, cropped to the first 3/4 and pasted. */
static emu2_status decode_tiled(emu2_backend *be, const dif_vae *v, size_t h, size_t w, const float *lat,
                                float *image, emu2_error *err)
{
    const size_t T = v->sample_size / v->scale, S = v->sample_size, step = (size_t)(T * 0.75),
                 blend = (size_t)(S * 0.25), keep = S - blend, nc = v->out_ch, lc = v->latent_ch;
    const size_t ny = (h + step - 1) / step, nx = (w + step - 1) / step, Ho = h * v->scale, Wo = w * v->scale;
    if (!T || !step)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "vae tiling: sample_size %zu is too small", S);
    float **tiles = calloc(ny * nx, sizeof *tiles);
    size_t *th = calloc(ny * nx, sizeof *th), *tw = calloc(ny * nx, sizeof *tw);
    float *in = malloc(lc * T * T * sizeof *in);
    emu2_status st = tiles && th && tw && in ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    for (size_t ty = 0; ty < ny && st == EMU2_OK; ty++)
        for (size_t tx = 0; tx < nx && st == EMU2_OK; tx++) {
            size_t y0 = ty * step, x0 = tx * step, hh = h - y0 < T ? h - y0 : T, ww = w - x0 < T ? w - x0 : T;
            for (size_t c = 0; c < lc; c++)
                for (size_t y = 0; y < hh; y++)
                    memcpy(in + (c * hh + y) * ww, lat + (c * h + y0 + y) * w + x0, ww * sizeof *in);
            size_t k = ty * nx + tx, oh = hh * v->scale, ow = ww * v->scale;
            th[k] = oh;
            tw[k] = ow;
            if (!(tiles[k] = malloc(nc * oh * ow * sizeof(float))))
                st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for a tile");
            else
                st = decode_tile(be, v, hh, ww, in, tiles[k], err);
        }
    for (size_t ty = 0; ty < ny && st == EMU2_OK; ty++)
        for (size_t tx = 0; tx < nx; tx++) {
            size_t k = ty * nx + tx, oh = th[k], ow = tw[k];
            float *t = tiles[k];
            if (ty > 0) { /* blend_v with the tile above (already blended itself, as diffusers does) */
                const float *a = tiles[k - nx];
                size_t ah = th[k - nx], ext = blend < ah && blend < oh ? blend : (ah < oh ? ah : oh);
                for (size_t c = 0; c < nc; c++)
                    for (size_t y = 0; y < ext; y++)
                        for (size_t x = 0; x < ow && x < tw[k - nx]; x++) {
                            float f = (float)y / (float)ext;
                            float *d = t + (c * oh + y) * ow + x;
                            *d = a[(c * ah + ah - ext + y) * tw[k - nx] + x] * (1 - f) + *d * f;
                        }
            }
            if (tx > 0) {
                const float *a = tiles[k - 1];
                size_t aw = tw[k - 1], ext = blend < aw && blend < ow ? blend : (aw < ow ? aw : ow);
                for (size_t c = 0; c < nc; c++)
                    for (size_t y = 0; y < oh && y < th[k - 1]; y++)
                        for (size_t x = 0; x < ext; x++) {
                            float f = (float)x / (float)ext;
                            float *d = t + (c * oh + y) * ow + x;
                            *d = a[(c * th[k - 1] + y) * aw + aw - ext + x] * (1 - f) + *d * f;
                        }
            }
        }
    for (size_t ty = 0; ty < ny && st == EMU2_OK; ty++)
        for (size_t tx = 0; tx < nx; tx++) {
            size_t k = ty * nx + tx, y0 = ty * keep, x0 = tx * keep;
            for (size_t c = 0; c < nc; c++)
                for (size_t y = 0; y < keep && y < th[k] && y0 + y < Ho; y++)
                    for (size_t x = 0; x < keep && x < tw[k] && x0 + x < Wo; x++)
                        image[(c * Ho + y0 + y) * Wo + x0 + x] = tiles[k][(c * th[k] + y) * tw[k] + x];
        }
    if (tiles)
        for (size_t k = 0; k < ny * nx; k++)
            free(tiles[k]);
    free(tiles);
    free(th);
    free(tw);
    free(in);
    return st;
}

emu2_status dif_vae_decode(emu2_backend *be, const dif_vae *v, size_t h, size_t w, const float *latents, int tiled,
                           float *image, emu2_error *err)
{
    emu2_status st = dif_check_ops(be, err);
    if (st != EMU2_OK)
        return st;
    if (!h || !w || h > 4096 || w > 4096)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "vae: bad latent size %zux%zu", h, w);
    const size_t T = v->sample_size / v->scale;
    if (tiled && (h > T || w > T))
        return decode_tiled(be, v, h, w, latents, image, err);
    return decode_tile(be, v, h, w, latents, image, err);
}

void dif_image_to_rgb8(const float *nchw, size_t H, size_t W, uint8_t *rgb)
{
    const size_t HW = H * W;
    for (size_t p = 0; p < HW; p++)
        for (size_t c = 0; c < 3; c++) {
            float x = nchw[c * HW + p] / 2.0f + 0.5f;
            x = x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
            rgb[p * 3 + c] = (uint8_t)nearbyintf(x * 255.0f); /* numpy round: half to even */
        }
}
