/* gen_image.c: emu2_generate_image, Emu2-Gen's "images out" (EMU2-SPEC.md §1.3, §6):
 *   prompt given (text and/or placeholders): generation mode: the LLM's visual regression of
 *     BOS + prompt + [IMG] is the condition, the empty prompt's regression the negative;
 *   prompt NULL and one image: autoencoding mode: pool(EVA(image)) is the condition, the same of an
 *     all-zero normalized image the negative.
 * Both negatives are computed once per model and cached. Then noise, Euler + CFG, VAE, PNG. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/generate_internal.h"
#include "api/model_internal.h"
#include "common/error.h"
#include "diffusion/gen_model.h"
#include "diffusion/gen_run.h"
#include "diffusion/regression.h"
#include "image/image.h"

#define GEN_MAX_SIDE 4096 /* pixels per side */

void emu2_image_options_init(emu2_image_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->steps = 50;
    opts->guidance = 3.0f;
}

static emu2_status read_options(const emu2_image_options *in, const emu2_gen_model *g, dif_gen_request *r,
                                emu2_error *err)
{
    emu2_image_options o;
    emu2_image_options_init(&o);
    if (in) {
        if (in->struct_size < offsetof(emu2_image_options, progress) || in->struct_size > sizeof o)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                             "emu2_image_options.struct_size is %zu: call emu2_image_options_init first",
                             in->struct_size);
        memcpy(&o, in, in->struct_size);
    }
    const int sc = (int)g->vae->scale;
    if (o.width < 0 || o.height < 0 || o.width > GEN_MAX_SIDE || o.height > GEN_MAX_SIDE)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "width and height must be in 0..%d (0 = the default %zu), got %dx%d",
                         GEN_MAX_SIDE, g->default_size, o.width, o.height);
    if (o.width % sc || o.height % sc)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "width and height must be multiples of %d, got %dx%d", sc,
                         o.width, o.height);
    if (o.steps < 1 || o.steps > g->sched.num_train_timesteps)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "steps must be in 1..%d, got %d", g->sched.num_train_timesteps,
                         o.steps);
    if (!(o.guidance >= 0.0f) || !isfinite(o.guidance))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "guidance must be a finite number >= 0, got %g",
                         (double)o.guidance);
    r->width = o.width ? (size_t)o.width : g->default_size;
    r->height = o.height ? (size_t)o.height : g->default_size;
    r->steps = (size_t)o.steps;
    r->guidance = o.guidance;
    r->seed = o.seed;
    r->vae_tiling = o.vae_tiling;
    r->progress = o.progress;
    r->progress_user = o.progress_user;
    return EMU2_OK;
}

/* v [n_query, width] for BOS + prompt (placeholders expanded) + [IMG], with the prompt's images. */
static emu2_status regress_prompt(emu2_model *m, const char *prompt, const float *pixels, size_t n_images, float *v,
                                  emu2_error *err)
{
    size_t n_ph = 0, len = strlen(prompt);
    emu2_status st = emu2_count_placeholders(prompt, &n_ph);
    if (st != EMU2_OK)
        return emu2_fail(err, st, "could not scan the prompt for image placeholders");
    if (n_ph != n_images)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "the prompt has %zu image placeholder%s but %zu image%s given", n_ph,
                         n_ph == 1 ? "" : "s", n_images, n_images == 1 ? " was" : "s were");
    const int32_t boi = emu2_tokenizer_token_id(m->tok, "[IMG]");
    if (boi < 0)
        return emu2_fail(err, EMU2_ERR_FORMAT, "the tokenizer has no [IMG] token");
    char *text = malloc(len + 6);
    if (!text)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    memcpy(text, prompt, len);
    memcpy(text + len, "[IMG]", 6);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    st = emu2_tokenizer_encode(m->tok, text, EMU2_TOK_DEFAULT, m->cfg.vision.n_query, &ids, &n_ids, err);
    free(text);
    if (st == EMU2_OK && (n_ids == 0 || ids[n_ids - 1] != boi))
        st = emu2_fail(err, EMU2_ERR_INTERNAL, "the prompt does not end with [IMG] after tokenizing");
    if (st == EMU2_OK && n_ids + (size_t)m->cfg.vision.n_query > (size_t)m->cfg.max_position_embeddings)
        st = emu2_fail(err, EMU2_ERR_LIMIT, "the prompt is %zu tokens; with %d visual tokens it passes the %d positions",
                       n_ids, m->cfg.vision.n_query, m->cfg.max_position_embeddings);
    if (st == EMU2_OK) {
        emu2_prompt_batch p = {.ids = ids, .rows = 1, .T = n_ids, .image_token_id = m->image_token_id,
                               .pixels = pixels, .n_images = n_images};
        st = dif_visual_regression(m->be, m->w, &m->cfg, &p, v, err);
    }
    free(ids);
    return st;
}

/* The cached negative of a mode (computed on first use). */
static emu2_status negative(emu2_model *m, int autoencode, const float **out, emu2_error *err)
{
    emu2_gen_model *g = m->gen;
    float **slot = autoencode ? &g->neg_autoenc : &g->neg_text;
    if (!*slot) {
        const size_t n = (size_t)m->cfg.vision.n_query * (size_t)m->cfg.vision.width;
        float *v = malloc(n * sizeof *v);
        if (!v)
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
        emu2_status st = autoencode ? dif_autoencode_condition(m->be, m->w, &m->cfg, NULL, v, err)
                                    : regress_prompt(m, "", NULL, 0, v, err);
        if (st != EMU2_OK) {
            free(v);
            return st;
        }
        *slot = v;
    }
    *out = *slot;
    return EMU2_OK;
}

static emu2_status generate_image(emu2_model *m, const char *prompt, const emu2_image_bytes *images, size_t n_images,
                                  const emu2_image_options *opts, void **png, size_t *png_size, emu2_error *err)
{
    if (!m->gen)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "this model has no image generator (an Emu2-Gen folder has model_index.json, unet/ and vae/)");
    if (!m->w)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "the model was loaded without weights");
    if ((n_images && !images) || !png || !png_size)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_generate_image: NULL argument");
    const int autoencode = prompt == NULL;
    if (autoencode && n_images != 1)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "without a prompt (autoencoding mode) exactly one image is needed, got %zu", n_images);
    dif_gen_request r;
    emu2_status st = read_options(opts, m->gen, &r, err);
    if (st != EMU2_OK)
        return st;
    float *pixels = NULL, *cond = NULL;
    uint8_t *rgb = NULL;
    const float *uncond = NULL;
    const size_t n = (size_t)m->cfg.vision.n_query * (size_t)m->cfg.vision.width;
    st = emu2_api_preprocess_images(m, images, n_images, &pixels, err);
    if (st == EMU2_OK && !(cond = malloc(n * sizeof *cond)))
        st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    if (st == EMU2_OK)
        st = autoencode ? dif_autoencode_condition(m->be, m->w, &m->cfg, pixels, cond, err)
                        : regress_prompt(m, prompt, pixels, n_images, cond, err);
    if (st == EMU2_OK && r.guidance > 1.0f) /* the negative only matters with guidance on */
        st = negative(m, autoencode, &uncond, err);
    if (st == EMU2_OK)
        st = dif_generate_rgb(m->gen->be, m->gen, cond, uncond, (size_t)m->cfg.vision.n_query, &r, &rgb, err);
    if (st == EMU2_OK) {
        emu2_rgb_image img = {(int)r.width, (int)r.height, rgb};
        st = emu2_image_encode_png(&img, png, png_size, err);
    }
    free(pixels);
    free(cond);
    free(rgb);
    return st;
}

emu2_status emu2_generate_image(emu2_model *m, const char *prompt, const emu2_image_bytes *images, size_t n_images,
                                const emu2_image_options *opts, void **png, size_t *png_size)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    if (png)
        *png = NULL;
    if (png_size)
        *png_size = 0;
    emu2_error e;
    emu2_error_clear(&e);
    emu2_status st = generate_image(m, prompt, images, n_images, opts, png, png_size, &e);
    if (st != EMU2_OK)
        return emu2_model_fail(m, &e);
    m->last_error[0] = '\0';
    return EMU2_OK;
}
