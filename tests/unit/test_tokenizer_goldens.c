/* test_tokenizer_goldens.c: the tokenizer against transformers 4.31's slow LlamaTokenizer.
 *
 * Goldens: tests/data/tokenizer/goldens.json (tests/reference/gen_tokenizer_goldens.py). Each set names
 * its tokenizer folder ("shared:..." under EMU2_SHARED, "repo:..." under EMU2_ROOT) and holds, for every
 * text, the ids with BOS and placeholders expanded, the raw ids of texts with placeholders, and decode
 * cases. Every mismatch counts; the first ones are printed with context. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "test_io_util.h"
#include "emu2.h"
#include "text/placeholders.h"
#include "text/tokenizer.h"

#define SHOW_MAX 6

static json_t *goldens;

static void show_text(const char *label, const char *s)
{
    printf("      %s \"", label);
    size_t n = strlen(s);
    for (size_t i = 0; i < n && i < 160; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            printf("\\n");
        else if (c == '\t')
            printf("\\t");
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf("%s\"\n", n > 160 ? "..." : "");
}

static void show_ids(const char *label, const int32_t *ids, size_t n, size_t around)
{
    size_t from = around > 4 ? around - 4 : 0, to = around + 6 < n ? around + 6 : n;
    printf("      %s (%zu ids) [%zu..]:", label, n, from);
    for (size_t i = from; i < to; i++)
        printf(" %d", ids[i]);
    printf("\n");
}

/* Compares got with a JSON array of ints without its first `skip` and last `trim` entries. */
static int ids_equal(const json_t *want, size_t skip, size_t trim, const int32_t *got, size_t n,
                     size_t *first_diff)
{
    size_t wn = json_array_size(want) - skip - trim;
    size_t i = 0;
    for (; i < wn && i < n; i++)
        if (json_integer_value(json_array_get(want, i + skip)) != got[i])
            break;
    *first_diff = i;
    return i == wn && i == n;
}

static void json_ids(const json_t *want, size_t skip, size_t trim, int32_t *buf, size_t cap, size_t *n)
{
    size_t wn = json_array_size(want) - skip - trim;
    *n = wn < cap ? wn : cap;
    for (size_t i = 0; i < *n; i++)
        buf[i] = (int32_t)json_integer_value(json_array_get(want, i + skip));
}

/* Sets with "files": a fresh folder with the source's tokenizer.model, the files named in "copy" and
 * the "files" written verbatim (as the generator built it). Returns the folder or NULL. */
static char variant_dir[256];
static const char *build_variant(const json_t *set, const char *src)
{
    snprintf(variant_dir, sizeof variant_dir, "/tmp/emu2_tok_gold_XXXXXX");
    if (!mkdtemp(variant_dir))
        return NULL;
    char from[1200], to[1200];
    const json_t *copy = json_object_get(set, "copy");
    for (size_t i = 0; i <= json_array_size(copy); i++) {
        const char *name = i == 0 ? "tokenizer.model" : json_string_value(json_array_get(copy, i - 1));
        snprintf(from, sizeof from, "%s/%s", src, name);
        snprintf(to, sizeof to, "%s/%s", variant_dir, name);
        if (!io_copy_file(from, to))
            return NULL;
    }
    const char *name;
    const json_t *text;
    json_object_foreach((json_t *)json_object_get(set, "files"), name, text) {
        snprintf(to, sizeof to, "%s/%s", variant_dir, name);
        FILE *f = fopen(to, "wb");
        if (!f)
            return NULL;
        size_t len = json_string_length(text);
        size_t w = fwrite(json_string_value(text), 1, len, f);
        if (fclose(f) != 0 || w != len)
            return NULL;
    }
    return variant_dir;
}

static void remove_variant(const json_t *set)
{
    char path[1200];
    const json_t *copy = json_object_get(set, "copy");
    for (size_t i = 0; i <= json_array_size(copy); i++) {
        snprintf(path, sizeof path, "%s/%s", variant_dir,
                 i == 0 ? "tokenizer.model" : json_string_value(json_array_get(copy, i - 1)));
        unlink(path);
    }
    const char *name;
    const json_t *text;
    json_object_foreach((json_t *)json_object_get(set, "files"), name, text) {
        snprintf(path, sizeof path, "%s/%s", variant_dir, name);
        unlink(path);
    }
    rmdir(variant_dir);
}

typedef struct counts {
    size_t checked, mismatches, shown;
} counts;

static void check_encoding(const emu2_tokenizer *tok, const char *set, size_t idx, const char *text,
                           unsigned flags, int n_query, const json_t *want, size_t skip, size_t trim,
                           counts *c)
{
    int32_t *ids = NULL;
    size_t n = 0;
    emu2_error err = {0};
    emu2_status st = emu2_tokenizer_encode(tok, text, flags, n_query, &ids, &n, &err);
    size_t diff = 0;
    c->checked++;
    if (st == EMU2_OK && ids_equal(want, skip, trim, ids, n, &diff)) {
        emu2_free(ids);
        return;
    }
    c->mismatches++;
    if (c->shown++ < SHOW_MAX) {
        printf("    mismatch: set %s text #%zu flags %u\n", set, idx, flags);
        show_text("text", text);
        if (st != EMU2_OK) {
            printf("      error: %s\n", err.message);
        } else {
            static int32_t buf[8192];
            size_t wn;
            json_ids(want, skip, trim, buf, 8192, &wn);
            show_ids("want", buf, wn, diff);
            show_ids("got ", ids, n, diff);
        }
    }
    emu2_free(ids);
}

static void check_decoding(const emu2_tokenizer *tok, const char *set, size_t idx, const json_t *ids_json,
                           int skip_special, const char *want, counts *c)
{
    size_t n = json_array_size(ids_json);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return;
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(ids_json, i));
    char *text = NULL;
    emu2_error err = {0};
    emu2_status st = emu2_tokenizer_decode(tok, ids, n, skip_special, &text, &err);
    c->checked++;
    if (st != EMU2_OK || strcmp(text, want) != 0) {
        c->mismatches++;
        if (c->shown++ < SHOW_MAX) {
            printf("    decode mismatch: set %s case #%zu skip_special=%d\n", set, idx, skip_special);
            show_ids("ids", ids, n, 0);
            show_text("want", want);
            if (st != EMU2_OK)
                printf("      error: %s\n", err.message);
            else
                show_text("got ", text);
        }
    }
    emu2_free(text);
    free(ids);
}

static void run_set(const json_t *set)
{
    const char *name = json_string_value(json_object_get(set, "name"));
    const char *model = json_string_value(json_object_get(set, "model"));
    const char *version = json_string_value(json_object_get(set, "model_version"));
    int n_query = (int)json_integer_value(json_object_get(set, "n_query"));
    CHECK(name && model);
    const char *dir = !strncmp(model, "shared:", 7) ? SHARED_PATH(model + 7) : ROOT_PATH(model + 5);
    char probe[1200];
    snprintf(probe, sizeof probe, "%s/tokenizer.model", dir);
    FILE *f = fopen(probe, "rb");
    if (!f)
        SKIP("set %s: no %.200s", name, probe);
    fclose(f);

    const int variant = json_object_get(set, "files") != NULL;
    if (variant) {
        const char *d = build_variant(set, dir);
        if (!d)
            remove_variant(set);
        CHECKF(d, "set %s: cannot build its folder from %s", name, dir);
        dir = d;
    }
    emu2_tokenizer *tok = NULL;
    emu2_error err = {0};
    emu2_status st = emu2_tokenizer_load(dir, version, &tok, &err);
    if (variant)
        remove_variant(set);
    CHECKF(st == EMU2_OK, "set %s: load %s: %s", name, dir, err.message);

    /* vocabulary */
    const json_t *added = json_object_get(set, "added_tokens");
    int32_t sp_size = (int32_t)json_integer_value(json_object_get(set, "sp_size"));
    int32_t vocab = (int32_t)json_integer_value(json_object_get(set, "vocab_size"));
    size_t bad_vocab = 0;
    if (emu2_tokenizer_vocab_size(tok) != vocab) {
        printf("    set %s: vocab size %d, want %d\n", name, emu2_tokenizer_vocab_size(tok), vocab);
        bad_vocab++;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const char *want = json_string_value(json_array_get(added, i));
        int32_t id = sp_size + (int32_t)i;
        const char *got = emu2_tokenizer_piece(tok, id);
        if (!got || strcmp(got, want) || emu2_tokenizer_token_id(tok, want) != id) {
            if (bad_vocab++ < SHOW_MAX)
                printf("    set %s: added id %d: want '%s', got '%s' (token_id %d)\n", name, id, want,
                       got ? got : "(null)", emu2_tokenizer_token_id(tok, want));
        }
    }
    const char *id_keys[] = {"bos_id", "eos_id", "pad_id"};
    int32_t (*id_fns[])(const emu2_tokenizer *) = {emu2_tokenizer_bos_id, emu2_tokenizer_eos_id,
                                                  emu2_tokenizer_pad_id};
    for (int k = 0; k < 3; k++) {
        const json_t *v = json_object_get(set, id_keys[k]);
        int32_t want = json_is_integer(v) ? (int32_t)json_integer_value(v) : -1;
        if (id_fns[k](tok) != want) {
            printf("    set %s: %s %d, want %d\n", name, id_keys[k], id_fns[k](tok), want);
            bad_vocab++;
        }
    }

    /* encodings: default flags, NO_BOS, NO_BOS|NO_PLACEHOLDERS */
    const json_t *texts = json_object_get(goldens, "texts");
    const json_t *ids = json_object_get(set, "ids");
    const json_t *raw = json_object_get(set, "raw");
    /* NO_BOS is add_special_tokens=False: without BOS, and without EOS where the config adds one */
    const size_t bos = json_is_true(json_object_get(set, "add_bos")),
                 eos = json_is_true(json_object_get(set, "add_eos"));
    counts enc = {0}, dec = {0};
    size_t bad_count = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        const char *text = json_string_value(json_array_get(texts, i));
        const json_t *want = json_array_get(ids, i);
        check_encoding(tok, name, i, text, EMU2_TOK_DEFAULT, n_query, want, 0, 0, &enc);
        check_encoding(tok, name, i, text, EMU2_TOK_NO_BOS, n_query, want, bos, eos, &enc);
        char key[32];
        snprintf(key, sizeof key, "%zu", i);
        const json_t *r = json_object_get(raw, key);
        check_encoding(tok, name, i, text, EMU2_TOK_NO_BOS | EMU2_TOK_NO_PLACEHOLDERS, n_query,
                       r ? r : want, r ? 0 : bos, r ? 0 : eos, &enc);
        size_t count = 0;
        if (emu2_count_placeholders(text, &count) != EMU2_OK || (count > 0) != (r != NULL))
            bad_count++;
    }
    const json_t *cases = json_object_get(set, "decode");
    for (size_t i = 0; i < json_array_size(cases); i++) {
        const json_t *c = json_array_get(cases, i);
        check_decoding(tok, name, i, json_array_get(c, 0), 1, json_string_value(json_array_get(c, 1)), &dec);
        check_decoding(tok, name, i, json_array_get(c, 0), 0, json_string_value(json_array_get(c, 2)), &dec);
    }
    printf("    set %s: %zu encodings, %zu mismatches; %zu decodings, %zu mismatches; vocab problems %zu; "
           "placeholder count problems %zu\n",
           name, enc.checked, enc.mismatches, dec.checked, dec.mismatches, bad_vocab, bad_count);
    emu2_tokenizer_free(tok);
    CHECK(json_array_size(texts) >= 500);
    CHECK(enc.checked > 0 && dec.checked > 0);
    CHECK(enc.mismatches == 0);
    CHECK(dec.mismatches == 0);
    CHECK(bad_vocab == 0);
    CHECK(bad_count == 0);
}

static const json_t *set_named(const char *name)
{
    const json_t *sets = json_object_get(goldens, "sets");
    for (size_t i = 0; i < json_array_size(sets); i++) {
        const json_t *s = json_array_get(sets, i);
        if (!strcmp(json_string_value(json_object_get(s, "name")), name))
            return s;
    }
    return NULL;
}

TEST(llama_base)
{
    const json_t *s = set_named("llama-base");
    CHECK(s);
    run_set(s);
}

TEST(llama_chat)
{
    const json_t *s = set_named("llama-chat");
    CHECK(s);
    run_set(s);
}

TEST(tiny_model)
{
    const json_t *s = set_named("tiny");
    if (!s)
        SKIP("the goldens have no set for models/emu2-tiny-digits");
    run_set(s);
}

TEST(tiny_native_chat)
{
    const json_t *s = set_named("tiny-native-chat");
    if (!s)
        SKIP("the goldens have no tiny-native-chat set");
    run_set(s);
}

TEST(tiny_variant_config)
{
    const json_t *s = set_named("tiny-variant");
    if (!s)
        SKIP("the goldens have no tiny-variant set");
    run_set(s);
}

int main(void)
{
    json_error_t jerr;
    const char *path = ROOT_PATH("tests/data/tokenizer/goldens.json");
    goldens = json_load_file(path, 0, &jerr);
    if (!goldens) {
        printf("  FAIL load goldens: %s: %s\n", path, jerr.text);
        printf("RESULT passed=0 failed=1 skipped=0\n");
        return 1;
    }
    RUN(llama_base);
    RUN(llama_chat);
    RUN(tiny_model);
    RUN(tiny_native_chat);
    RUN(tiny_variant_config);
    json_decref(goldens);
    return check_finish();
}
