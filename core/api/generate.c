/* generate.c: describe / generate: prompt template, tokenizing, image preprocessing, then the
 * networks and the token search (core/model/pipeline.h), then text. */
#include <stdlib.h>
#include <string.h>

#include "api/generate_internal.h"
#include "api/model_internal.h"
#include "common/checked.h"
#include "common/error.h"
#include "image/image.h"
#include "generate/text_stream.h"
#include "model/pipeline.h"
#include "text/chat_template.h"

#define MAX_NEW_TOKENS_LIMIT 8192
#define MAX_BEAMS 64

void emu2_gen_options_init(emu2_gen_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->max_new_tokens = 64;
    o->num_beams = 5;
    o->length_penalty = -1.0f;
    o->min_length = 1;
    o->temperature = 1.0f;
    o->top_p = 1.0f;
    o->top_k = 50; /* transformers' GenerationConfig default, which Emu2's wrapper keeps */
    o->repetition_penalty = 1.0f;
}

/* Copies and checks the caller's options (NULL = defaults). */
emu2_status emu2_read_gen_options(const emu2_gen_options *in, emu2_gen_options *o, emu2_error *err)
{
    emu2_gen_options_init(o);
    if (in) {
        if (in->struct_size < offsetof(emu2_gen_options, on_token) || in->struct_size > sizeof *o)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                             "emu2_gen_options.struct_size is %zu: call emu2_gen_options_init first", in->struct_size);
        memcpy(o, in, in->struct_size);
    }
    if (o->max_new_tokens < 1 || o->max_new_tokens > MAX_NEW_TOKENS_LIMIT)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "max_new_tokens must be in 1..%d, got %d",
                         MAX_NEW_TOKENS_LIMIT, o->max_new_tokens);
    if (o->num_beams < 1 || o->num_beams > MAX_BEAMS)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "num_beams must be in 1..%d, got %d", MAX_BEAMS,
                         o->num_beams);
    if (o->min_length < 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "min_length must be >= 0, got %d", o->min_length);
    if (!(o->temperature > 0.0f))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "temperature must be > 0, got %g", (double)o->temperature);
    if (!(o->top_p > 0.0f && o->top_p <= 1.0f))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "top_p must be in (0, 1], got %g", (double)o->top_p);
    if (o->top_k < 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "top_k must be >= 0, got %d", o->top_k);
    if (!(o->repetition_penalty > 0.0f))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "repetition_penalty must be > 0, got %g",
                         (double)o->repetition_penalty);
    if (o->length_penalty != o->length_penalty)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "length_penalty is NaN");
    return EMU2_OK;
}

/* Decodes and preprocesses every image, in prompt order, into one host buffer n x [3, S, S]. */
emu2_status emu2_api_preprocess_images(const emu2_model *m, const emu2_image_bytes *images, size_t n, float **out,
                                       emu2_error *err)
{
    size_t s = (size_t)m->cfg.vision.image_size, per = 3 * s * s, total;
    *out = NULL;
    if (n == 0)
        return EMU2_OK;
    if (!emu2_mul_size(per, n, &total) || !emu2_mul_size(total, sizeof(float), &total))
        return emu2_fail(err, EMU2_ERR_LIMIT, "too many images (%zu)", n);
    float *px = malloc(total);
    if (!px)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for %zu images", n);
    for (size_t i = 0; i < n; i++) {
        float *one = NULL;
        emu2_status st = images[i].data ? emu2_image_preprocess(images[i].data, images[i].size, NULL, (int)s, &one, err)
                                        : emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "no bytes");
        if (st != EMU2_OK) {
            emu2_fail_prefix(err, "image %zu: ", i + 1);
            free(px);
            return st;
        }
        memcpy(px + i * per, one, per * sizeof(float));
        free(one);
    }
    *out = px;
    return EMU2_OK;
}

/* Streaming: pieces of decoded text (core/generate/text_stream.h) from the model's tokenizer. */
emu2_status emu2_api_decode_for_stream(void *user, const int32_t *ids, size_t n, char **text, emu2_error *err)
{
    return emu2_tokenizer_decode(user, ids, n, 1, text, err);
}

emu2_status emu2_api_prepare_prompt(const emu2_model *m, const char *prompt, size_t n_images, int32_t **ids,
                                    size_t *n_ids, emu2_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!*prompt && n_images == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "the prompt is empty and there are no images");
    size_t n_ph = 0;
    emu2_status st = emu2_count_placeholders(prompt, &n_ph);
    if (st != EMU2_OK)
        return emu2_fail(err, st, "could not scan the prompt for image placeholders");
    if (n_ph != n_images)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "the prompt has %zu image placeholder%s but %zu image%s given",
                         n_ph, n_ph == 1 ? "" : "s", n_images, n_images == 1 ? " was" : "s were");
    if (!m->w)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "the model was loaded without weights (EMU2_LOAD_NO_WEIGHTS)");
    char *full = NULL;
    if ((st = emu2_chat_apply_template(m->cfg.model_version, prompt, &full, err)) != EMU2_OK)
        return st;
    st = emu2_tokenizer_encode(m->tok, full, EMU2_TOK_DEFAULT, m->cfg.vision.n_query, ids, n_ids, err);
    free(full);
    if (st != EMU2_OK)
        return st;
    if (*n_ids > (size_t)m->cfg.max_position_embeddings) {
        st = emu2_fail(err, EMU2_ERR_LIMIT,
                       "the prompt is %zu tokens (each image counts %d) but the model's context is %d positions",
                       *n_ids, m->cfg.vision.n_query + 2, m->cfg.max_position_embeddings);
        free(*ids);
        *ids = NULL;
        *n_ids = 0;
    }
    return st;
}

static emu2_status generate_text(emu2_model *m, const char *prompt, const emu2_image_bytes *images, size_t n_images,
                                 const emu2_gen_options *opts_in, char **text, emu2_error *err)
{
    emu2_gen_options opts;
    emu2_status st = emu2_read_gen_options(opts_in, &opts, err);
    if (st != EMU2_OK)
        return st;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    float *pixels = NULL;
    emu2_search_result res = {0};
    if ((st = emu2_api_prepare_prompt(m, prompt, n_images, &ids, &n_ids, err)) != EMU2_OK)
        goto done;
    if ((st = emu2_api_preprocess_images(m, images, n_images, &pixels, err)) != EMU2_OK)
        goto done;
    emu2_prompt_batch p = {.ids = ids,
                           .mask = NULL,
                           .rows = 1,
                           .T = n_ids,
                           .image_token_id = m->image_token_id,
                           .pixels = pixels,
                           .n_images = n_images};
    emu2_search_ids sid = {m->cfg.bos_token_id, m->cfg.eos_token_id, m->cfg.pad_token_id};
    emu2_text_stream ts;
    emu2_text_stream_init(&ts, emu2_api_decode_for_stream, m->tok, opts.on_token, opts.on_token_user);
    st = emu2_generate_tokens(m->be, m->w, &m->cfg, &p, &opts, sid, opts.on_token ? emu2_text_stream_token : NULL,
                              &ts, &res, err);
    if (st == EMU2_OK && opts.on_token)
        st = emu2_text_stream_finish(&ts, err);
    emu2_text_stream_free(&ts);
    if (st != EMU2_OK)
        goto done;
    st = emu2_tokenizer_decode(m->tok, res.items[0].ids, res.items[0].n_ids, 1, text, err);
done:
    emu2_search_result_free(&res);
    free(pixels);
    free(ids);
    return st;
}

emu2_status emu2_generate(emu2_model *m, const char *prompt, const emu2_image_bytes *images, size_t n_images,
                          const emu2_gen_options *opts, char **text)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    emu2_error e;
    emu2_error_clear(&e);
    if (!prompt || !text || (n_images && !images))
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT, "emu2_generate: NULL argument"});
    *text = NULL;
    emu2_status st = generate_text(m, prompt, images, n_images, opts, text, &e);
    if (st != EMU2_OK)
        return emu2_model_fail(m, &e);
    m->last_error[0] = '\0';
    return EMU2_OK;
}

char *emu2_api_describe_prompt(const char *question)
{
    const char *q = question ? question : "Describe the image in details:";
    size_t n = strlen(q) + sizeof "[<IMG_PLH>]";
    char *full = malloc(n);
    if (full)
        snprintf(full, n, "[<IMG_PLH>]%s", q);
    return full;
}

emu2_status emu2_describe(emu2_model *m, const void *image, size_t image_size, const char *prompt,
                          const emu2_gen_options *opts, char **text)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    char *full = emu2_api_describe_prompt(prompt);
    if (!full)
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_NOMEM, "out of memory"});
    emu2_image_bytes img = {image, image_size};
    emu2_status st = emu2_generate(m, full, &img, 1, opts, text);
    free(full);
    return st;
}
