/* vae.h: the AutoencoderKL decoder (EMU2-SPEC.md §6.4): z / scaling_factor -> post_quant_conv ->
 * conv_in -> mid (resnet, single-head attention, resnet) -> up blocks (layers_per_block + 1 resnets,
 * nearest x2 + conv between them) -> GroupNorm -> SiLU -> conv_out; every GroupNorm eps 1e-6.
 * Optional tiled decoding as diffusers' tiled_decode (overlapping tiles blended linearly). */
#ifndef EMU2_DIFFUSION_VAE_H
#define EMU2_DIFFUSION_VAE_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/blocks.h"
#include "diffusion/component.h"

typedef struct dif_vae_level {
    size_t n_res;
    dif_resnet_w *res;
    int has_up;
    emu2_op_weight up;
    emu2_tensor_view up_b;
} dif_vae_level;

typedef struct dif_vae {
    dif_component comp;
    dif_views views;
    size_t latent_ch, out_ch, groups, sample_size, scale; /* scale: pixels per latent (2^(levels-1)) */
    float scaling_factor;
    emu2_op_weight post_quant, conv_in, conv_out;
    emu2_tensor_view post_quant_b, conv_in_b, conv_out_b, norm_out_w, norm_out_b;
    dif_resnet_w mid_res[2];
    dif_vae_attn_w mid_attn;
    size_t n_levels;
    dif_vae_level *up;
} dif_vae;

emu2_status dif_vae_load(const char *dir, emu2_backend *be, dif_vae **out, emu2_error *err);
void dif_vae_free(dif_vae *v, emu2_backend *be);

/* latents [latent_ch, h, w] (host, NCHW, the scaled space the UNet works in) -> image
 * [out_ch, h*scale, w*scale] (host, NCHW, about [-1, 1]). tiled: diffusers' tiled decoding (tiles
 * of sample_size/scale latents, 25% overlap) when the latents are larger than one tile. */
emu2_status dif_vae_decode(emu2_backend *be, const dif_vae *v, size_t h, size_t w, const float *latents, int tiled,
                           float *image, emu2_error *err);

/* The published post-processing: round(clamp(x / 2 + 0.5, 0, 1) * 255) as HWC RGB bytes. */
void dif_image_to_rgb8(const float *nchw, size_t H, size_t W, uint8_t *rgb);

#endif
