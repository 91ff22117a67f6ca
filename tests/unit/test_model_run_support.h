/* test_model_run_support.h: building a golden run's decoder input (ids, mask, the images of the run
 * through emu2_prompt_embeds: vision tower, embedding, splice) for the decoder tests. Test-only code. */
#ifndef EMU2_TEST_MODEL_RUN_SUPPORT_H
#define EMU2_TEST_MODEL_RUN_SUPPORT_H

#include "model/embed_splice.h"
#include "model/pipeline.h"
#include "test_model_support.h"
#include "text/tokenizer.h"

typedef struct run_input {
    size_t B, T;
    int32_t *ids;  /* host [B*T] */
    uint8_t *mask; /* host [B*T] */
    float *embeds; /* backend [B*T, D] */
    float *pixels; /* host: the run's images in splice order, [n_images, 3, S, S] */
    size_t n_images;
} run_input;

static inline void run_input_free(test_model *m, run_input *r)
{
    free(r->ids);
    free(r->mask);
    free(r->pixels);
    if (r->embeds)
        m->be->ops->free(m->be, r->embeds);
    memset(r, 0, sizeof *r);
}

/* The id of <image> in the model's tokenizer, or -1. */
static inline int32_t image_token_id(const char *rel_dir, const emu2_config *cfg)
{
    emu2_tokenizer *tok;
    emu2_error err;
    if (emu2_tokenizer_load(ROOT_PATH(rel_dir), cfg->model_version, &tok, &err) != EMU2_OK) {
        printf("    %s: %s\n", rel_dir, err.message);
        return -1;
    }
    int32_t id = emu2_tokenizer_token_id(tok, "<image>");
    emu2_tokenizer_free(tok);
    return id;
}

/* Reads run `run` of a golden case and builds its decoder input; 0 (with a message) on failure. */
static inline int run_input_build(test_model *m, const golden *g, const golden *px, json_t *run, int32_t image_id,
                                  run_input *r)
{
    memset(r, 0, sizeof *r);
    json_t *ids = json_object_get(run, "input_ids"), *mask = json_object_get(run, "attention_mask");
    json_t *names = json_object_get(run, "images_flat"), *images = json_object_get(g->manifest, "images");
    r->B = json_array_size(ids);
    r->T = json_array_size(json_array_get(ids, 0));
    const size_t D = (size_t)m->cfg.hidden_size, S = (size_t)m->cfg.vision.image_size;
    const size_t n_img = json_array_size(names);
    emu2_error err;
    memset(&err, 0, sizeof err);
    if (!r->B || !r->T || json_array_size(mask) != r->B) {
        printf("    run without input_ids/attention_mask\n");
        return 0;
    }
    r->ids = malloc(r->B * r->T * sizeof *r->ids);
    r->mask = malloc(r->B * r->T);
    r->embeds = m->be->ops->alloc(m->be, r->B * r->T * D, &err);
    float *pixels = r->pixels = malloc((n_img ? n_img : 1) * 3 * S * S * sizeof(float));
    r->n_images = n_img;
    int ok = r->ids && r->mask && r->embeds && pixels;
    for (size_t b = 0; ok && b < r->B; b++) {
        json_t *row = json_array_get(ids, b), *mrow = json_array_get(mask, b);
        ok = json_array_size(row) == r->T && json_array_size(mrow) == r->T;
        for (size_t t = 0; ok && t < r->T; t++) {
            r->ids[b * r->T + t] = (int32_t)json_integer_value(json_array_get(row, t));
            r->mask[b * r->T + t] = (uint8_t)json_integer_value(json_array_get(mrow, t));
        }
    }
    for (size_t i = 0; ok && i < n_img; i++) {
        json_t *img = json_object_get(images, json_string_value(json_array_get(names, i)));
        const char *u8 = json_string_value(json_object_get(json_object_get(img, "pixels"), "u8"));
        float *chw = u8 ? golden_pixels(px, u8, (int)S) : NULL;
        ok = chw != NULL;
        if (ok)
            memcpy(pixels + i * 3 * S * S, chw, 3 * S * S * sizeof(float));
        free(chw);
    }
    emu2_prompt_batch p = {.ids = r->ids, .mask = r->mask, .rows = r->B, .T = r->T, .image_token_id = image_id,
                           .pixels = pixels, .n_images = n_img};
    if (ok && emu2_prompt_embeds(m->be, m->w, &m->cfg, &p, r->embeds, &err) != EMU2_OK)
        ok = 0;
    if (!ok)
        printf("    building the run's input failed: %s\n", err.message);
    if (!ok)
        run_input_free(m, r);
    return ok;
}

/* The generation options and ids of one golden "generations" entry (greedy or beam, no sampling). */
static inline void golden_gen_options(json_t *gen, int32_t bos, emu2_gen_options *o, emu2_search_ids *ids)
{
    emu2_gen_options_init(o);
    o->max_new_tokens = (int)json_integer_value(json_object_get(gen, "max_new_tokens"));
    o->num_beams = (int)json_integer_value(json_object_get(gen, "num_beams"));
    o->length_penalty = (float)json_number_value(json_object_get(gen, "length_penalty"));
    o->min_length = (int)json_integer_value(json_object_get(gen, "min_length"));
    o->repetition_penalty = (float)json_number_value(json_object_get(gen, "repetition_penalty"));
    o->do_sample = 0;
    *ids = (emu2_search_ids){bos, (int32_t)json_integer_value(json_object_get(gen, "eos_token_id")),
                             (int32_t)json_integer_value(json_object_get(gen, "pad_token_id"))};
}

/* fn(ctx, model, run input, image id, the run's "generations", run index, run id) for every run of
 * the golden case `name`; stops at the first 0. 1 when the case opened and every call gave 1. */
typedef int (*golden_run_fn)(void *ctx, test_model *m, const run_input *r, int32_t image_id, json_t *gens, size_t i,
                             const char *run_id);
static inline int golden_each_run(const char *name, int threads, golden_run_fn fn, void *ctx)
{
    golden_case gc;
    if (!golden_case_open(name, threads, &gc))
        return 0;
    int32_t image_id = image_token_id(gc.dir, &gc.m.cfg);
    json_t *runs = json_object_get(gc.g.manifest, "runs");
    int ok = image_id >= 0;
    for (size_t i = 0; ok && i < json_array_size(runs); i++) {
        json_t *run = json_array_get(runs, i);
        const char *run_id = json_string_value(json_object_get(run, "id"));
        run_input r;
        if (!run_input_build(&gc.m, &gc.g, &gc.px, run, image_id, &r))
            ok = 0;
        else {
            ok = fn(ctx, &gc.m, &r, image_id, json_object_get(run, "generations"), i, run_id ? run_id : "?");
            run_input_free(&gc.m, &r);
        }
    }
    golden_case_close(&gc);
    return ok;
}

#endif
