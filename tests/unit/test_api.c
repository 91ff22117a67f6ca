/* test_api.c: the public API glue (emu2.h) on the shipped tiny model. */
#include <stdint.h>

#include "check.h"
#include "emu2.h"

static const char *tiny(void)
{
    return ROOT_PATH("models/emu2-tiny-digits");
}

static int read_file(const char *path, unsigned char **data, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(*data, 1, (size_t)len, f);
    fclose(f);
    return *n == (size_t)len ? 0 : -1;
}

TEST(load_reports_missing_folder)
{
    emu2_model *m = (emu2_model *)1;
    emu2_error err;
    CHECK(emu2_model_load("/nonexistent/model", NULL, &m, &err) != EMU2_OK);
    CHECK(m == NULL);
    CHECKF(strstr(err.message, "/nonexistent/model") != NULL, "message: %s", err.message);
    CHECK(emu2_model_load(NULL, NULL, &m, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_model_load(tiny(), NULL, NULL, &err) == EMU2_ERR_INVALID_ARGUMENT);
}

TEST(load_rejects_bad_options)
{
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.threads = -3;
    emu2_model *m;
    emu2_error err;
    CHECK(emu2_model_load(tiny(), &o, &m, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(err.message, "threads") != NULL, "message: %s", err.message);
    emu2_load_options_init(&o);
    o.device = "tpu:7";
    CHECK(emu2_model_load(tiny(), &o, &m, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(err.message, "tpu:7") != NULL, "message: %s", err.message);
    emu2_load_options_init(&o);
    o.struct_size = 3;
    CHECK(emu2_model_load(tiny(), &o, &m, &err) == EMU2_ERR_INVALID_ARGUMENT);
}

static int cancel_at_weights(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)done;
    (void)total;
    ++*(int *)user;
    return strcmp(stage, "weights") == 0;
}

TEST(load_can_be_cancelled_from_progress)
{
    emu2_load_options o;
    emu2_load_options_init(&o);
    int calls = 0;
    o.progress = cancel_at_weights;
    o.progress_user = &calls;
    emu2_model *m;
    emu2_error err;
    CHECK(emu2_model_load(tiny(), &o, &m, &err) == EMU2_ERR_CANCELLED);
    CHECK(m == NULL);
    CHECK(calls == 3);
}

TEST(info_matches_config_and_checkpoint)
{
    emu2_model *m;
    emu2_error err;
    CHECKF(emu2_model_load(tiny(), NULL, &m, &err) == EMU2_OK, "%s", err.message);
    emu2_model_info info;
    CHECK(emu2_model_get_info(m, &info) == EMU2_OK);
    CHECK(strcmp(info.model_version, "base") == 0);
    CHECK(info.n_query > 0 && info.image_size % info.patch_size == 0);
    CHECK(info.n_params > 0);
    CHECK(info.bos_id == 1 && info.eos_id == 2);
    CHECK(info.image_token_id == info.pad_id + 3); /* [PAD] [IMG] [/IMG] <image> */
    emu2_model_free(m);
}

TEST(tokenize_expands_placeholders_and_detokenizes)
{
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.flags = EMU2_LOAD_NO_WEIGHTS;
    emu2_model *m;
    emu2_error err;
    CHECKF(emu2_model_load(tiny(), &o, &m, &err) == EMU2_OK, "%s", err.message);
    emu2_model_info info;
    emu2_model_get_info(m, &info);
    CHECK(info.n_params == 0);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECKF(emu2_tokenize(m, "[]Describe the image in details:", EMU2_TOK_DEFAULT, &ids, &n) == EMU2_OK, "%s",
           emu2_model_last_error(m));
    CHECK(n > (size_t)info.n_query + 3);
    CHECK(ids[0] == info.bos_id);
    size_t images = 0;
    for (size_t i = 0; i < n; i++)
        images += ids[i] == info.image_token_id;
    CHECK(images == (size_t)info.n_query);
    char *text = NULL;
    CHECK(emu2_detokenize(m, ids + 1 + info.n_query + 2, n - (1 + (size_t)info.n_query + 2), 1, &text) == EMU2_OK);
    CHECKF(strcmp(text, "Describe the image in details:") == 0, "got '%s'", text);
    emu2_free(text);
    emu2_free(ids);
    CHECK(emu2_tokenize(m, NULL, 0, &ids, &n) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(strlen(emu2_model_last_error(m)) > 0);
    emu2_model_free(m);
}

TEST(preprocess_and_generate_checks)
{
    unsigned char *jpg;
    size_t n;
    if (read_file(ROOT_PATH("models/emu2-tiny-digits/examples/blue_black_1_top_left.jpg"), &jpg, &n) != 0)
        SKIP("example image missing");
    emu2_model *m;
    emu2_error err;
    CHECKF(emu2_model_load(tiny(), NULL, &m, &err) == EMU2_OK, "%s", err.message);
    emu2_model_info info;
    emu2_model_get_info(m, &info);
    float *px = NULL;
    size_t npx = 0;
    CHECKF(emu2_preprocess(m, jpg, n, NULL, &px, &npx) == EMU2_OK, "%s", emu2_model_last_error(m));
    CHECK(npx == (size_t)3 * info.image_size * info.image_size);
    /* background is light grey: normalized values well above 0 in every channel at the centre top */
    CHECK(px[info.image_size / 2] > 1.0f);
    emu2_free(px);
    CHECK(emu2_preprocess(m, jpg, n / 3, NULL, &px, &npx) != EMU2_OK);
    CHECK(strlen(emu2_model_last_error(m)) > 0);

    char *text = NULL;
    emu2_image_bytes img = {jpg, n};
    CHECK(emu2_generate(m, "[][]two placeholders", &img, 1, NULL, &text) == EMU2_ERR_MISMATCH);
    CHECKF(strstr(emu2_model_last_error(m), "2 image placeholders") != NULL, "%s", emu2_model_last_error(m));
    emu2_model_free(m);
    free(jpg);
}

TEST(count_placeholders)
{
    size_t n = 99;
    CHECK(emu2_count_placeholders("[][red].[<IMG_PLH>]x[]", &n) == EMU2_OK);
    CHECK(n == 3);
    CHECK(emu2_count_placeholders("no images [ ] [<IMG>]", &n) == EMU2_OK);
    CHECK(n == 0);
}

TEST(status_names_and_version)
{
    CHECK(strcmp(emu2_status_name(EMU2_OK), "ok") == 0);
    CHECK(strlen(emu2_status_name(EMU2_ERR_FORMAT)) > 0);
    CHECK(strcmp(emu2_version(), EMU2_VERSION_STRING) == 0);
    emu2_free(NULL);
}

int main(void)
{
    RUN(load_reports_missing_folder);
    RUN(load_rejects_bad_options);
    RUN(load_can_be_cancelled_from_progress);
    RUN(info_matches_config_and_checkpoint);
    RUN(tokenize_expands_placeholders_and_detokenizes);
    RUN(preprocess_and_generate_checks);
    RUN(count_placeholders);
    RUN(status_names_and_version);
    return check_finish();
}
