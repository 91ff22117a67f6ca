/* denoise.h: the Euler sampling loop with classifier-free guidance (EMU2-SPEC.md §6.2, §6.5), as the
 * published pipeline runs it:
 *   x = noise * init_noise_sigma; for each step i:
 *     x_in = x / sqrt(sigma_i^2 + 1); eps = eps_u + g * (eps_c - eps_u)  (just eps_c when g <= 1);
 *     x = x + (sigma_{i+1} - sigma_i) * eps  (written as diffusers' step: pred, derivative, dt).
 * The UNet sees text_embeds = mean of each condition's tokens and the 6 time_ids. */
#ifndef EMU2_DIFFUSION_DENOISE_H
#define EMU2_DIFFUSION_DENOISE_H

#include <stddef.h>

#include "diffusion/scheduler.h"
#include "diffusion/unet.h"

typedef struct dif_denoise_args {
    const dif_schedule *schedule;
    size_t h, w;            /* latent size */
    const float *noise;     /* host [in_ch, h, w], N(0, 1) */
    const float *cond;      /* host [n_cond, cross_dim] */
    const float *uncond;    /* host [n_cond, cross_dim] (unused when guidance <= 1) */
    size_t n_cond;
    float guidance;
    float time_ids[6];      /* original size, crop, target size */
    emu2_progress_fn progress; /* "denoise", step, steps; non-zero cancels */
    void *progress_user;
    float *trace;           /* host [steps, in_ch, h, w] or NULL: latents after each step */
} dif_denoise_args;

/* latents: host [in_ch, h, w], the final latents. */
emu2_status dif_denoise(emu2_backend *be, const dif_unet *u, const dif_denoise_args *a, float *latents,
                        emu2_error *err);

#endif
