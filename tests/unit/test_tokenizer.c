/* test_tokenizer.c: the tokenizer's pieces and its behaviour on bad input (the goldens of
 * test_tokenizer_goldens.c cover the Python-exact ids and texts). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_io_util.h"
#include "emu2.h"
#include "text/placeholders.h"
#include "text/sentencepiece_shim.h"
#include "text/token_matcher.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

#define TINY "models/emu2-tiny-digits"

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1))) {
            *n = fread(buf, 1, (size_t)len, f);
            buf[*n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static int write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* A fresh folder holding a copy of the tiny model's tokenizer.model (NULL if it is absent). */
static char tmp_dir[256];
static const char *tiny_copy(void)
{
    size_t n = 0;
    char *model = read_file(ROOT_PATH(TINY "/tokenizer.model"), &n);
    if (!model)
        return NULL;
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/emu2_tok_test_XXXXXX");
    if (!mkdtemp(tmp_dir) || write_file(tmp_dir, "tokenizer.model", model, n)) {
        free(model);
        return NULL;
    }
    free(model);
    return tmp_dir;
}

static emu2_tokenizer *load_or_null(const char *dir, const char *version)
{
    emu2_tokenizer *tok = NULL;
    emu2_error err = {0};
    if (emu2_tokenizer_load(dir, version, &tok, &err) != EMU2_OK)
        printf("    load %s: %s\n", dir, err.message);
    return tok;
}

TEST(utf8_validation)
{
    size_t bad = 99;
    CHECK(emu2_utf8_valid("", 0, &bad));
    CHECK(emu2_utf8_valid("a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80", 10, &bad));
    CHECK(!emu2_utf8_valid("ab\xff", 3, &bad) && bad == 2);
    CHECK(!emu2_utf8_valid("\xc0\x80", 2, &bad) && bad == 0);          /* overlong NUL */
    CHECK(!emu2_utf8_valid("\xe0\x80\xaf", 3, &bad));                  /* overlong '/' */
    CHECK(!emu2_utf8_valid("x\xed\xa0\x80", 4, &bad) && bad == 1);     /* surrogate */
    CHECK(!emu2_utf8_valid("\xf4\x90\x80\x80", 4, &bad));              /* > U+10FFFF */
    CHECK(!emu2_utf8_valid("\xe4\xb8", 2, &bad) && bad == 0);          /* truncated */
    CHECK(!emu2_utf8_valid("\x80", 1, &bad));                          /* lone continuation */
}

TEST(python_whitespace)
{
    CHECK(emu2_py_isspace(' ') && emu2_py_isspace('\t') && emu2_py_isspace(0x1c) && emu2_py_isspace(0x85));
    CHECK(emu2_py_isspace(0x3000) && emu2_py_isspace(0x2028) && emu2_py_isspace(0xa0));
    CHECK(!emu2_py_isspace(0x200b) && !emu2_py_isspace(0xfeff) && !emu2_py_isspace('x'));
    const char *s = "\xe3\x80\x80 \tab c\xc2\xa0\n"; /* U+3000, space, tab, "ab c", NBSP, \n */
    size_t n = strlen(s);
    CHECK(emu2_py_lstrip_len(s, n) == 5);
    CHECK(emu2_py_rstrip_len(s, n) == 3);
    CHECK(emu2_py_lstrip_len("   ", 3) == 3 && emu2_py_rstrip_len("   ", 3) == 3);
    CHECK(emu2_py_rstrip_len("\xe4\xb8\xad", 3) == 0);
}

TEST(placeholder_counting)
{
    size_t c = 0;
    CHECK(emu2_count_placeholders("", &c) == EMU2_OK && c == 0);
    CHECK(emu2_count_placeholders("[][<IMG_PLH>] x [[]] [<IMG_PLH>", &c) == EMU2_OK && c == 3);
    CHECK(emu2_count_placeholders("[ ] [<img_plh>] <IMG_PLH>]", &c) == EMU2_OK && c == 0);
    CHECK(emu2_count_placeholders(NULL, &c) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_count_placeholders("[]", NULL) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_placeholder_at("a[<IMG_PLH>]", 12, 1) == 11);
    CHECK(emu2_placeholder_at("a[<IMG_PLH>", 11, 1) == 0);
}

TEST(matcher_leftmost_longest)
{
    emu2_token_matcher *m = NULL;
    CHECK(emu2_token_matcher_new(&m, NULL) == EMU2_OK);
    CHECK(emu2_token_matcher_add(m, "ab", 2, 1, NULL) == EMU2_OK);
    CHECK(emu2_token_matcher_add(m, "abcd", 4, 2, NULL) == EMU2_OK);
    CHECK(emu2_token_matcher_add(m, "bc", 2, 3, NULL) == EMU2_OK);
    CHECK(emu2_token_matcher_add(m, "ab", 2, 9, NULL) == EMU2_OK); /* duplicate keeps 1 */
    int32_t v = -1;
    size_t len = 0;
    CHECK(emu2_token_matcher_find(m, "xabcx", 5, 0, &len, &v) == 1 && len == 2 && v == 1);
    CHECK(emu2_token_matcher_find(m, "xabcd", 5, 0, &len, &v) == 1 && len == 4 && v == 2);
    CHECK(emu2_token_matcher_find(m, "xabc", 4, 2, &len, &v) == 2 && len == 2 && v == 3);
    CHECK(emu2_token_matcher_find(m, "xyz", 3, 0, &len, &v) == 3 && len == 0);
    CHECK(emu2_token_matcher_longest(m, "abcd", 3, 0, &v) == 2); /* bounded by n */
    emu2_token_matcher_free(m);
}

TEST(shim_from_memory)
{
    size_t n = 0;
    char *bytes = read_file(ROOT_PATH(TINY "/tokenizer.model"), &n);
    if (!bytes)
        SKIP("no " TINY "/tokenizer.model");
    emu2_sp *a = NULL, *b = NULL;
    emu2_error err = {0};
    CHECKF(emu2_sp_load_memory(bytes, n, &a, &err) == EMU2_OK, "%s", err.message);
    CHECKF(emu2_sp_load_file(ROOT_PATH(TINY "/tokenizer.model"), &b, &err) == EMU2_OK, "%s", err.message);
    CHECK(emu2_sp_piece_size(a) == emu2_sp_piece_size(b) && emu2_sp_piece_size(a) > 3);
    emu2_id_vec va = {.max = 1000}, vb = {.max = 1000};
    CHECK(emu2_sp_encode_append(a, "hello world", 11, &va, &err) == EMU2_OK);
    CHECK(emu2_sp_encode_append(b, "hello world", 11, &vb, &err) == EMU2_OK);
    CHECK(va.len == vb.len && va.len > 0 && !memcmp(va.data, vb.data, va.len * sizeof *va.data));
    emu2_text_buf t = {0};
    CHECK(emu2_sp_decode_append(a, va.data, va.len, &t, &err) == EMU2_OK && !strcmp(t.data, "hello world"));
    CHECK(emu2_sp_is_unknown(a, emu2_sp_unk_id(a)) && emu2_sp_is_control(a, emu2_sp_bos_id(a)));
    CHECK(emu2_sp_is_byte(a, emu2_sp_piece_to_id(a, "<0x41>", 6)));
    CHECK(emu2_sp_piece_to_id(a, "no such piece", 13) == -1);
    CHECK(emu2_sp_piece_to_id(a, "<unk>", 5) == emu2_sp_unk_id(a));
    CHECK(emu2_sp_id_to_piece(a, -1) == NULL && emu2_sp_id_to_piece(a, emu2_sp_piece_size(a)) == NULL);
    int32_t bad_id = 1 << 30;
    CHECK(emu2_sp_decode_append(a, &bad_id, 1, &t, &err) == EMU2_ERR_INVALID_ARGUMENT);
    va.len = 0;
    va.max = 3;
    CHECK(emu2_sp_encode_append(a, "hello world hello world", 23, &va, &err) == EMU2_ERR_LIMIT);
    free(va.data);
    free(vb.data);
    free(t.data);
    emu2_sp_free(a);
    emu2_sp_free(b);
    /* garbage, truncated and empty models fail cleanly */
    CHECK(emu2_sp_load_memory("not a model", 11, &a, &err) != EMU2_OK && a == NULL);
    CHECK(emu2_sp_load_memory(bytes, n / 2, &a, &err) != EMU2_OK && a == NULL);
    CHECK(emu2_sp_load_memory("", 0, &a, &err) != EMU2_OK && a == NULL);
    free(bytes);
}

TEST(encode_rejects_bad_input)
{
    emu2_tokenizer *tok = load_or_null(ROOT_PATH(TINY), NULL);
    if (!tok)
        SKIP("no tokenizer at " TINY);
    int32_t *ids = NULL;
    size_t n = 0;
    emu2_error err = {0};
    CHECK(emu2_tokenizer_encode(tok, "a\xff", 0, 4, &ids, &n, &err) == EMU2_ERR_FORMAT && ids == NULL);
    CHECK(strstr(err.message, "UTF-8"));
    CHECK(emu2_tokenizer_encode(tok, "a", 0, -1, &ids, &n, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_tokenizer_encode(tok, "a", 0, EMU2_TOKENIZER_MAX_N_QUERY + 1, &ids, &n, &err) ==
          EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_tokenizer_encode(tok, "a", 1u << 7, 4, &ids, &n, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_tokenizer_encode(tok, NULL, 0, 4, &ids, &n, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_tokenizer_encode(NULL, "a", 0, 4, &ids, &n, &err) == EMU2_ERR_INVALID_ARGUMENT);
    /* too long a prompt */
    char *big = malloc(EMU2_TOKENIZER_MAX_TEXT_BYTES + 2);
    CHECK(big);
    memset(big, 'a', EMU2_TOKENIZER_MAX_TEXT_BYTES + 1);
    big[EMU2_TOKENIZER_MAX_TEXT_BYTES + 1] = '\0';
    emu2_status st = emu2_tokenizer_encode(tok, big, 0, 4, &ids, &n, &err);
    /* placeholders x n_query past the id limit: refused before anything that large is allocated */
    size_t n_plh = 2100;
    for (size_t i = 0; i < n_plh; i++)
        memcpy(big + 2 * i, "[]", 2);
    big[2 * n_plh] = '\0';
    emu2_status st2 = emu2_tokenizer_encode(tok, big, 0, EMU2_TOKENIZER_MAX_N_QUERY, &ids, &n, &err);
    emu2_status st3 = emu2_tokenizer_encode(tok, big, EMU2_TOK_NO_PLACEHOLDERS, EMU2_TOKENIZER_MAX_N_QUERY,
                                            &ids, &n, &err);
    free(big);
    CHECK(st == EMU2_ERR_LIMIT);
    CHECK(st2 == EMU2_ERR_LIMIT);
    CHECKF(st3 == EMU2_OK && n > 0, "%s", err.message);
    emu2_free(ids);
    /* zero ids is still a buffer */
    CHECK(emu2_tokenizer_encode(tok, "", EMU2_TOK_NO_BOS, 4, &ids, &n, &err) == EMU2_OK && ids && n == 0);
    emu2_free(ids);
    emu2_tokenizer_free(tok);
}

TEST(vocab_lookups_and_decode_errors)
{
    emu2_tokenizer *tok = load_or_null(ROOT_PATH(TINY), NULL);
    if (!tok)
        SKIP("no tokenizer at " TINY);
    int32_t v = emu2_tokenizer_vocab_size(tok);
    CHECK(v > 300);
    CHECK(emu2_tokenizer_piece(tok, -1) == NULL && emu2_tokenizer_piece(tok, v) == NULL);
    CHECK(emu2_tokenizer_piece(tok, v - 1) != NULL);
    CHECK(emu2_tokenizer_token_id(tok, "<patch_index_0256>") == v - 1);
    CHECK(emu2_tokenizer_token_id(tok, "no such token") == -1 && emu2_tokenizer_token_id(tok, "") == -1);
    CHECK(emu2_tokenizer_token_id(tok, "<unk>") == 0 && emu2_tokenizer_token_id(tok, "<s>") == 1);
    CHECK(emu2_tokenizer_bos_id(tok) == 1 && emu2_tokenizer_eos_id(tok) == 2);
    CHECK(emu2_tokenizer_pad_id(tok) == emu2_tokenizer_token_id(tok, "[PAD]"));
    char *text = NULL;
    emu2_error err = {0};
    int32_t bad[] = {1, v};
    CHECK(emu2_tokenizer_decode(tok, bad, 2, 1, &text, &err) == EMU2_ERR_INVALID_ARGUMENT && !text);
    CHECK(strstr(err.message, "position 1"));
    int32_t neg[] = {-5};
    CHECK(emu2_tokenizer_decode(tok, neg, 1, 0, &text, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_tokenizer_decode(tok, NULL, 0, 1, &text, &err) == EMU2_OK && text && !strcmp(text, ""));
    emu2_free(text);
    emu2_tokenizer_free(tok);
}

TEST(load_errors)
{
    emu2_tokenizer *tok = NULL;
    emu2_error err = {0};
    CHECK(emu2_tokenizer_load(NULL, NULL, &tok, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_tokenizer_load("/nonexistent/dir", NULL, &tok, &err) == EMU2_ERR_IO && !tok);
    CHECK(emu2_tokenizer_load(ROOT_PATH(TINY), "large", &tok, &err) == EMU2_ERR_INVALID_ARGUMENT);
    const char *dir = tiny_copy();
    if (!dir)
        SKIP("no " TINY "/tokenizer.model to copy");
    struct {
        const char *file, *json, *want; /* want: a word the message must hold */
    } cases[] = {
        {"added_tokens.json", "{\"[PAD]\": 385}", "expected 384"},
        {"added_tokens.json", "{\"[PAD]\": 384, \"[IMG]\": 386}", "expected 385"},
        {"added_tokens.json", "{\"[PAD]\": 384, \"[IMG]\": 384}", "expected 385"},
        {"added_tokens.json", "{\"[PAD]\": 384, \"[PAD]\": 385}", "duplicate"},
        {"added_tokens.json", "{\"[PAD]\": \"384\"}", "integer"},
        {"added_tokens.json", "{\"\": 384}", "empty"},
        {"added_tokens.json", "{\"<s>\": 384}", "already"},
        {"added_tokens.json", "[1, 2]", "object"},
        {"added_tokens.json", "{\"[PAD]\": 38", "line"},
        {"added_tokens.json", "{\"[PAD]\": 384, \"x[PAD]\": 385}", "contains"},
        {"special_tokens_map.json", "{\"bos_token\": 5}", "bos_token"},
        {"special_tokens_map.json", "{\"pad_token\": {\"lstrip\": true}}", "content"},
        {"special_tokens_map.json", "{\"additional_special_tokens\": \"x\"}", "list"},
        {"tokenizer_config.json", "{\"add_bos_token\": \"yes\"}", "boolean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *files[] = {"added_tokens.json", "tokenizer_config.json", "special_tokens_map.json"};
        for (size_t k = 0; k < 3; k++) {
            char path[1200];
            snprintf(path, sizeof path, "%s/%s", dir, files[k]);
            unlink(path);
        }
        write_file(dir, cases[i].file, cases[i].json, strlen(cases[i].json));
        emu2_status st = emu2_tokenizer_load(dir, NULL, &tok, &err);
        if (st == EMU2_OK || tok || !strstr(err.message, cases[i].want)) {
            emu2_tokenizer_free(tok);
            io_rm_tree(dir);
            CHECKF(0, "case %zu (%s): status %d, message '%s'", i, cases[i].json, (int)st, err.message);
        }
    }
    io_rm_tree(dir);
}

TEST(folder_variants)
{
    const char *dir = tiny_copy();
    if (!dir)
        SKIP("no " TINY "/tokenizer.model to copy");
    /* No added_tokens.json: Emu2's own tokens after the SentencePiece vocab. */
    emu2_tokenizer *base = load_or_null(dir, "base"), *chat = load_or_null(dir, "chat");
    int ok_counts = base && chat && emu2_tokenizer_vocab_size(chat) == emu2_tokenizer_vocab_size(base) + 2 &&
                    emu2_tokenizer_added_count(base) == 272;
    int32_t sp = base ? emu2_tokenizer_vocab_size(base) - 272 : 0;
    int ok_ids = ok_counts && emu2_tokenizer_token_id(base, "[PAD]") == sp &&
                 emu2_tokenizer_token_id(base, "<image>") == sp + 3 &&
                 emu2_tokenizer_token_id(chat, "[ASSISTANT]") == sp + 273 &&
                 emu2_tokenizer_token_id(base, "[USER]") == -1;
    emu2_tokenizer_free(base);
    emu2_tokenizer_free(chat);
    /* add_bos_token false; a plain-string bos (strips whitespace) vs the AddedToken default (keeps it). */
    const char *cfg = "{\"add_bos_token\": false}";
    write_file(dir, "tokenizer_config.json", cfg, strlen(cfg));
    emu2_tokenizer *nobos = load_or_null(dir, NULL);
    int32_t *ids = NULL, *ids2 = NULL;
    size_t n = 0, n2 = 0;
    int ok_nobos = nobos && emu2_tokenizer_encode(nobos, "hi", 0, 4, &ids, &n, NULL) == EMU2_OK && n > 0 &&
                   ids[0] != 1;
    emu2_free(ids);
    emu2_tokenizer_free(nobos);
    const char *added = "{\"[PAD]\": 384}";
    write_file(dir, "added_tokens.json", added, strlen(added));
    emu2_tokenizer *keep = load_or_null(dir, NULL);
    const char *stm = "{\"bos_token\": \"<s>\", \"pad_token\": \"[PAD]\"}";
    write_file(dir, "special_tokens_map.json", stm, strlen(stm));
    emu2_tokenizer *strip = load_or_null(dir, NULL);
    int ok_strip = keep && strip &&
                   emu2_tokenizer_encode(keep, "a <s> b", EMU2_TOK_NO_BOS, 4, &ids, &n, NULL) == EMU2_OK &&
                   emu2_tokenizer_encode(strip, "a <s> b", EMU2_TOK_NO_BOS, 4, &ids2, &n2, NULL) == EMU2_OK &&
                   n2 < n && emu2_tokenizer_vocab_size(keep) == 385;
    emu2_free(ids);
    emu2_free(ids2);
    emu2_tokenizer_free(keep);
    emu2_tokenizer_free(strip);
    io_rm_tree(dir);
    CHECK(ok_counts);
    CHECK(ok_ids);
    CHECK(ok_nobos);
    CHECK(ok_strip);
}

int main(void)
{
    RUN(utf8_validation);
    RUN(python_whitespace);
    RUN(placeholder_counting);
    RUN(matcher_leftmost_longest);
    RUN(shim_from_memory);
    RUN(encode_rejects_bad_input);
    RUN(vocab_lookups_and_decode_errors);
    RUN(load_errors);
    RUN(folder_variants);
    return check_finish();
}
