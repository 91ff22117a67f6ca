/* test_gen_regression.c: Emu2-Gen's conditions against the goldens (tests/reference/goldens/gen):
 * the LLM visual regression in its KV-cache form (text prompt, empty prompt, image + text prompt)
 * vs the published 64-full-forward loop, the prompt ids (prompt + [IMG] through the public
 * tokenizer), and the autoencoding condition and negative (pooled EVA features); 1 and 3 threads. */
#include "check.h"
#include "diffusion/regression.h"
#include "io/mapped_file.h"
#include "text/tokenizer.h"
#include "test_model_support.h"

#define GEN_DIR "tests/models/gen-tiny"

static golden G;
static int have_golden;

static const char *setting(const char *key)
{
    return json_string_value(json_object_get(json_object_get(G.manifest, "settings"), key));
}

/* Golden ids (stored as F32) as int32 (malloc'd). */
static int32_t *golden_ids(const char *name, size_t *n)
{
    const emu2_tensor_view *t = golden_tensor(&G, name);
    if (!t || t->dtype != EMU2_DT_F32)
        return NULL;
    *n = (size_t)emu2_tensor_numel(t);
    int32_t *ids = malloc(*n * sizeof *ids);
    for (size_t i = 0; ids && i < *n; i++)
        ids[i] = (int32_t)((const float *)t->data)[i];
    return ids;
}

static float *input_pixels(int size)
{
    emu2_mapped_file f;
    emu2_error err;
    float *chw = NULL;
    if (emu2_mapped_file_open(ROOT_PATH("tests/reference/goldens/gen/input_448.png"), &f, &err) != EMU2_OK)
        return NULL;
    if (emu2_image_preprocess(f.data, f.size, NULL, size, &chw, &err) != EMU2_OK)
        printf("    %s\n", err.message);
    emu2_mapped_file_close(&f);
    return chw;
}

TEST(prompt_ids_match)
{
    if (!have_golden)
        SKIP("no gen goldens");
    emu2_model *m = NULL;
    emu2_error err;
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.flags = EMU2_LOAD_NO_WEIGHTS;
    CHECKF(emu2_model_load(ROOT_PATH(GEN_DIR), &o, &m, &err) == EMU2_OK, "%s", err.message);
    const char *keys[3] = {"text", "empty", "image"};
    const char *prompts[3] = {setting("prompt"), "", setting("image_prompt")};
    int ok = prompts[0] && prompts[2];
    for (int k = 0; k < 3 && ok; k++) {
        char text[512], name[64];
        snprintf(text, sizeof text, "%s[IMG]", prompts[k]);
        snprintf(name, sizeof name, "regress.%s.input_ids", keys[k]);
        size_t n_want = 0, n_got = 0;
        int32_t *want = golden_ids(name, &n_want), *got = NULL;
        ok = want && emu2_tokenize(m, text, EMU2_TOK_DEFAULT, &got, &n_got) == EMU2_OK && n_got == n_want &&
             !memcmp(got, want, n_got * sizeof *got);
        if (!ok)
            printf("    %s: %zu ids, want %zu\n", name, n_got, n_want);
        free(want);
        emu2_free(got);
    }
    emu2_model_free(m);
    CHECK(ok);
}

static void regression_case(int threads)
{
    test_model tm;
    CHECK(test_model_open(GEN_DIR "/multimodal_encoder", threads, &tm));
    const emu2_config *c = &tm.cfg;
    const size_t n = (size_t)c->vision.n_query * (size_t)c->vision.width;
    float *v = malloc(n * sizeof *v), *px = input_pixels(c->vision.image_size);
    emu2_error err;
    emu2_tokenizer *tok = NULL;
    int ok = v && px && emu2_tokenizer_load(ROOT_PATH(GEN_DIR "/tokenizer"), "base", &tok, &err) == EMU2_OK;
    const int32_t image_id = ok ? emu2_tokenizer_token_id(tok, "<image>") : -1;
    emu2_tokenizer_free(tok);
    ok = ok && image_id > 0;
    const char *keys[3] = {"text", "empty", "image"};
    for (int k = 0; k < 3 && ok; k++) {
        char name[64];
        snprintf(name, sizeof name, "regress.%s.input_ids", keys[k]);
        size_t n_ids = 0;
        int32_t *ids = golden_ids(name, &n_ids);
        int with_image = k == 2;
        emu2_prompt_batch p = {.ids = ids, .rows = 1, .T = n_ids, .image_token_id = image_id,
                               .pixels = with_image ? px : NULL, .n_images = with_image ? 1 : 0};
        ok = ids && dif_visual_regression(tm.be, tm.w, c, &p, v, &err) == EMU2_OK;
        if (!ok)
            printf("    %s: %s\n", keys[k], err.message);
        snprintf(name, sizeof name, "regress.%s.v", keys[k]);
        ok = ok && golden_compare(&G, name, v, n, NULL);
        free(ids);
    }
    ok = ok && dif_autoencode_condition(tm.be, tm.w, c, px, v, &err) == EMU2_OK &&
         golden_compare(&G, "autoenc.cond", v, n, NULL);
    ok = ok && dif_autoencode_condition(tm.be, tm.w, c, NULL, v, &err) == EMU2_OK &&
         golden_compare(&G, "autoenc.neg", v, n, NULL);
    free(v);
    free(px);
    test_model_close(&tm);
    CHECK(ok);
}

TEST(regression_matches_full_forward_loop)
{
    if (!have_golden)
        SKIP("no gen goldens");
    run_per_thread_count(regression_case);
}

TEST(regression_needs_project_down_and_one_row)
{
    if (!have_golden)
        SKIP("no gen goldens");
    test_model tm;
    CHECK(test_model_open(GEN_DIR "/multimodal_encoder", 1, &tm));
    int32_t ids[2] = {1, 2};
    float v[1];
    emu2_error err;
    emu2_prompt_batch two = {.ids = ids, .rows = 2, .T = 1};
    int ok = dif_visual_regression(tm.be, tm.w, &tm.cfg, &two, v, &err) == EMU2_ERR_INVALID_ARGUMENT;
    tm.w->decoder.has_project_down = 0;
    emu2_prompt_batch one = {.ids = ids, .rows = 1, .T = 2};
    ok = ok && dif_visual_regression(tm.be, tm.w, &tm.cfg, &one, v, &err) == EMU2_ERR_UNSUPPORTED &&
         strstr(err.message, "project_down");
    tm.w->decoder.has_project_down = 1;
    test_model_close(&tm);
    CHECK(ok);
}

int main(void)
{
    have_golden = golden_open("gen", &G);
    RUN(prompt_ids_match);
    RUN(regression_matches_full_forward_loop);
    RUN(regression_needs_project_down_and_one_row);
    if (have_golden)
        golden_close(&G);
    return check_finish();
}
