/* unet.h: UNet2DConditionModel of the SDXL family (EMU2-SPEC.md §6.3), any config of it: levels of
 * DownBlock2D / CrossAttnDownBlock2D, a UNetMidBlock2DCrossAttn, the mirrored up blocks with skip
 * concatenation, "positional" time embedding and the "text_time" added conditioning. The structure
 * (transformer depth per block, channels, shortcuts, samplers) is read from the tensors present and
 * checked against config.json; heads come from num_attention_heads (or, the diffusers quirk,
 * attention_head_dim when that is null). */
#ifndef EMU2_DIFFUSION_UNET_H
#define EMU2_DIFFUSION_UNET_H

#include <stddef.h>

#include "diffusion/blocks.h"
#include "diffusion/component.h"

typedef struct dif_unet_level {
    size_t n_res;
    dif_resnet_w *res;
    dif_transformer_w *attn; /* [n_attn] or NULL (DownBlock2D / UpBlock2D) */
    size_t n_attn;           /* n_res in cross-attention blocks, 1 in the mid block */
    int has_sampler;         /* downsampler (stride-2 conv) / upsampler (nearest x2 + conv) */
    emu2_op_weight sampler;
    emu2_tensor_view sampler_b;
} dif_unet_level;

typedef struct dif_unet {
    dif_component comp;
    dif_views views;
    size_t in_ch, out_ch, c0, temb_dim, groups, cross_dim, add_time_dim, add_in_dim, sample_size;
    float norm_eps;
    int flip_sin_to_cos;
    double freq_shift;
    emu2_op_weight time_l1, time_l2, add_l1, add_l2, conv_in, conv_out;
    emu2_tensor_view time_l1_b, time_l2_b, add_l1_b, add_l2_b, conv_in_b, conv_out_b, norm_out_w, norm_out_b;
    size_t n_levels;
    dif_unet_level *down, *up;
    dif_unet_level mid; /* res[n+1], attn[n] */
} dif_unet;

/* Opens DIR (unet/) and binds its weights for be. */
emu2_status dif_unet_load(const char *dir, emu2_backend *be, dif_unet **out, emu2_error *err);
void dif_unet_free(dif_unet *u, emu2_backend *be);

/* The conditioning vector emb [temb_dim] (HOST) = time_embedding(sinusoid(t)) +
 * add_embedding([text_embeds, sinusoids of the 6 time_ids]); text_embeds [cross_dim] (host). */
emu2_status dif_unet_embedding(emu2_backend *be, const dif_unet *u, float t, const float *text_embeds,
                               const float time_ids[6], float *emb, emu2_error *err);

/* eps [4, h, w] (HOST, NCHW like diffusers) for one sample [in_ch, h, w] (host, NCHW), one condition
 * cond [n_cond, cross_dim] (host) and emb from dif_unet_embedding. */
emu2_status dif_unet_forward(emu2_backend *be, const dif_unet *u, size_t h, size_t w, const float *sample,
                             const float *cond, size_t n_cond, const float *emb, float *eps, emu2_error *err);

/* diffusers' get_timestep_embedding for one value: dim sinusoids, frequencies
 * exp(-ln(1e4) * i / (dim/2 - shift)) in f32, [sin, cos] or [cos, sin] (flip). */
void dif_sinusoid(float x, size_t dim, int flip_sin_to_cos, double shift, float *out);

/* NCHW <-> token-major [h*w, C] on the host. */
void dif_nchw_to_tokens(const float *src, size_t C, size_t HW, float *dst);
void dif_tokens_to_nchw(const float *src, size_t C, size_t HW, float *dst);

#endif
