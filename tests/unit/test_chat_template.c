/* test_chat_template.c: Emu2-Chat's native template through the public tokenizer gives exactly the
 * input ids of the chat goldens (tests/reference/goldens/chat, made with the Python reference). */
#include <jansson.h>

#include "check.h"
#include "emu2.h"
#include "text/chat_template.h"

/* The user prompts behind the golden runs (the goldens store the templated text). */
static const struct {
    const char *run, *user_prompt;
} cases[] = {
    {"native_describe", "[<IMG_PLH>]describe the image in details:"},
    {"native_two_images", "[<IMG_PLH>][<IMG_PLH>]What is the difference between these two images?"},
};

static json_t *find_run(json_t *manifest, const char *id)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(manifest, "runs"), i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "id")), id) == 0)
            return r;
    }
    return NULL;
}

TEST(native_template_matches_golden_ids)
{
    json_error_t jerr;
    json_t *man = json_load_file(ROOT_PATH("tests/reference/goldens/chat/manifest.json"), 0, &jerr);
    CHECKF(man != NULL, "manifest: %s", jerr.text);
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.flags = EMU2_LOAD_NO_WEIGHTS;
    emu2_model *m;
    emu2_error err;
    CHECKF(emu2_model_load(ROOT_PATH("tests/models/rand-chat"), &o, &m, &err) == EMU2_OK, "%s", err.message);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        json_t *run = find_run(man, cases[c].run);
        CHECKF(run != NULL, "no run %s", cases[c].run);
        char *text = NULL;
        CHECK(emu2_chat_apply_template("chat", cases[c].user_prompt, &text, &err) == EMU2_OK);
        const char *want_text = json_string_value(json_array_get(json_object_get(run, "prompts"), 0));
        CHECKF(want_text && strcmp(text, want_text) == 0, "%s: template gives '%s', golden '%s'", cases[c].run, text,
               want_text);
        int32_t *ids = NULL;
        size_t n = 0;
        CHECKF(emu2_tokenize(m, text, EMU2_TOK_DEFAULT, &ids, &n) == EMU2_OK, "%s", emu2_model_last_error(m));
        json_t *want = json_array_get(json_object_get(run, "input_ids"), 0);
        CHECKF(json_array_size(want) == n, "%s: %zu ids, golden %zu", cases[c].run, n, json_array_size(want));
        for (size_t i = 0; i < n; i++)
            CHECKF(ids[i] == json_integer_value(json_array_get(want, i)), "%s: id %zu is %d, golden %d", cases[c].run,
                   i, ids[i], (int)json_integer_value(json_array_get(want, i)));
        emu2_free(ids);
        free(text);
    }
    emu2_model_free(m);
    json_decref(man);
}

TEST(base_template_is_the_prompt)
{
    char *text = NULL;
    CHECK(emu2_chat_apply_template("base", "[]Describe:", &text, NULL) == EMU2_OK);
    CHECK(strcmp(text, "[]Describe:") == 0);
    free(text);
}

int main(void)
{
    RUN(native_template_matches_golden_ids);
    RUN(base_template_is_the_prompt);
    return check_finish();
}
