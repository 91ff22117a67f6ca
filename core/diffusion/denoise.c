/* denoise.c: the Euler + CFG loop (denoise.h). Scheduler arithmetic in f32, as diffusers does it. */
#include "diffusion/denoise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Mean over the n tokens of a [n, d] condition (double sums). */
static void token_mean(const float *c, size_t n, size_t d, float *out)
{
    for (size_t j = 0; j < d; j++) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += c[i * d + j];
        out[j] = (float)(s / (double)n);
    }
}

emu2_status dif_denoise(emu2_backend *be, const dif_unet *u, const dif_denoise_args *a, float *latents,
                        emu2_error *err)
{
    if (!u || !a || !a->schedule || !a->noise || !a->cond || (a->guidance > 1.0f && !a->uncond) || !latents)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "denoise: NULL argument");
    const int cfg = a->guidance > 1.0f;
    const size_t n = u->in_ch * a->h * a->w, E = u->temb_dim, D = u->cross_dim;
    if (u->out_ch != u->in_ch)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "denoise: the UNet maps %zu channels to %zu", u->in_ch, u->out_ch);
    float *x_in = malloc(n * sizeof *x_in), *e_c = malloc(n * sizeof *e_c), *e_u = malloc(n * sizeof *e_u);
    float *emb = malloc(2 * E * sizeof *emb), *te = malloc(2 * D * sizeof *te);
    emu2_status st = x_in && e_c && e_u && emb && te ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    if (st == EMU2_OK) {
        token_mean(a->cond, a->n_cond, D, te);
        if (cfg)
            token_mean(a->uncond, a->n_cond, D, te + D);
        const float init = a->schedule->init_noise_sigma;
        for (size_t i = 0; i < n; i++)
            latents[i] = a->noise[i] * init;
    }
    const dif_schedule *s = a->schedule;
    for (size_t k = 0; k < s->steps && st == EMU2_OK; k++) {
        if (a->progress && a->progress(a->progress_user, "denoise", k, s->steps)) {
            st = emu2_fail(err, EMU2_ERR_CANCELLED, "image generation cancelled at step %zu of %zu", k, s->steps);
            break;
        }
        const float sigma = s->sigmas[k], t = s->timesteps[k];
        const float scale = sqrtf(sigma * sigma + 1.0f);
        for (size_t i = 0; i < n; i++)
            x_in[i] = latents[i] / scale;
        st = dif_unet_embedding(be, u, t, te, a->time_ids, emb, err);
        if (st == EMU2_OK)
            st = dif_unet_forward(be, u, a->h, a->w, x_in, a->cond, a->n_cond, emb, e_c, err);
        if (st == EMU2_OK && cfg) {
            st = dif_unet_embedding(be, u, t, te + D, a->time_ids, emb + E, err);
            if (st == EMU2_OK)
                st = dif_unet_forward(be, u, a->h, a->w, x_in, a->uncond, a->n_cond, emb + E, e_u, err);
        }
        if (st != EMU2_OK)
            break;
        const float dt = s->sigmas[k + 1] - sigma;
        for (size_t i = 0; i < n; i++) {
            float eps = cfg ? e_u[i] + a->guidance * (e_c[i] - e_u[i]) : e_c[i];
            float pred = latents[i] - sigma * eps;
            float deriv = (latents[i] - pred) / sigma;
            latents[i] = latents[i] + deriv * dt;
        }
        if (a->trace)
            memcpy(a->trace + k * n, latents, n * sizeof *latents);
    }
    if (st == EMU2_OK && a->progress && a->progress(a->progress_user, "denoise", s->steps, s->steps))
        st = emu2_fail(err, EMU2_ERR_CANCELLED, "image generation cancelled");
    free(x_in);
    free(e_c);
    free(e_u);
    free(emb);
    free(te);
    return st;
}
