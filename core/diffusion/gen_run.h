/* gen_run.h: conditions in, RGB pixels out: seeded noise, the Euler + CFG loop, the VAE decode and
 * the published uint8 conversion (EMU2-SPEC.md §6.2 - §6.5). */
#ifndef EMU2_DIFFUSION_GEN_RUN_H
#define EMU2_DIFFUSION_GEN_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "diffusion/gen_model.h"

typedef struct dif_gen_request {
    size_t width, height, steps; /* pixels (multiples of the VAE scale), Euler steps */
    float guidance;
    uint64_t seed;
    int vae_tiling;
    emu2_progress_fn progress; /* "denoise" per step, "decode" before and after the VAE */
    void *progress_user;
} dif_gen_request;

/* cond / uncond: host [n_cond, cross_dim]. *rgb: malloc'd width*height*3 bytes. */
emu2_status dif_generate_rgb(emu2_backend *be, const emu2_gen_model *g, const float *cond, const float *uncond,
                             size_t n_cond, const dif_gen_request *r, uint8_t **rgb, emu2_error *err);

/* n standard normal floats from seed (xoshiro256** + Box-Muller; the same on every platform). */
void dif_gaussian_noise(uint64_t seed, size_t n, float *out);

#endif
