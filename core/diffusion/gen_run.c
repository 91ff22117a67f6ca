/* gen_run.c: noise -> denoise -> decode -> RGB bytes (gen_run.h). */
#include "diffusion/gen_run.h"

#include <math.h>
#include <stdlib.h>

#include "common/error.h"
#include "diffusion/denoise.h"
#include "generate/rng.h"

void dif_gaussian_noise(uint64_t seed, size_t n, float *out)
{
    emu2_rng rng;
    emu2_rng_seed(&rng, seed);
    const double two_pi = 6.283185307179586476925;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = 1.0 - emu2_rng_uniform(&rng), u2 = emu2_rng_uniform(&rng); /* u1 in (0, 1] */
        double r = sqrt(-2.0 * log(u1));
        out[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n)
            out[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

emu2_status dif_generate_rgb(emu2_backend *be, const emu2_gen_model *g, const float *cond, const float *uncond,
                             size_t n_cond, const dif_gen_request *r, uint8_t **rgb, emu2_error *err)
{
    *rgb = NULL;
    const size_t sc = g->vae->scale, h = r->height / sc, w = r->width / sc, C = g->unet->in_ch;
    if (!h || !w || r->height % sc || r->width % sc)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "image size %zux%zu is not a positive multiple of %zu",
                         r->width, r->height, sc);
    dif_schedule s;
    emu2_status st = dif_schedule_make(&g->sched, r->steps, &s, err);
    if (st != EMU2_OK)
        return st;
    float *noise = malloc(C * h * w * sizeof *noise), *lat = malloc(C * h * w * sizeof *lat);
    float *img = malloc(3 * r->width * r->height * sizeof *img);
    uint8_t *out = malloc(3 * r->width * r->height);
    if (!noise || !lat || !img || !out)
        st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for a %zux%zu image", r->width, r->height);
    if (st == EMU2_OK) {
        dif_gaussian_noise(r->seed, C * h * w, noise);
        dif_denoise_args a = {.schedule = &s, .h = h, .w = w, .noise = noise, .cond = cond, .uncond = uncond,
                              .n_cond = n_cond, .guidance = r->guidance,
                              /* published defaults: original_size 1024x1024, crop (0, 0), target = the request */
                              .time_ids = {1024, 1024, 0, 0, (float)r->height, (float)r->width},
                              .progress = r->progress, .progress_user = r->progress_user};
        st = dif_denoise(be, g->unet, &a, lat, err);
    }
    if (st == EMU2_OK && r->progress && r->progress(r->progress_user, "decode", 0, 1))
        st = emu2_fail(err, EMU2_ERR_CANCELLED, "image generation cancelled before decoding");
    if (st == EMU2_OK)
        st = dif_vae_decode(be, g->vae, h, w, lat, r->vae_tiling, img, err);
    if (st == EMU2_OK) {
        dif_image_to_rgb8(img, r->height, r->width, out);
        if (r->progress)
            r->progress(r->progress_user, "decode", 1, 1);
    }
    dif_schedule_free(&s);
    free(noise);
    free(lat);
    free(img);
    if (st != EMU2_OK) {
        free(out);
        return st;
    }
    *rgb = out;
    return EMU2_OK;
}
