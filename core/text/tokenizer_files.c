/* tokenizer_files.c: see tokenizer_files.h. */
#include "text/tokenizer_files.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"

#define MAX_JSON_BYTES ((long long)8 << 20)
#define MAX_TOKEN_BYTES 1024
#define MAX_ADDED_TOKENS 1000000

static const char *const named_keys[EMU2_SPECIAL_NAMED] = {"bos_token", "eos_token", "unk_token",
                                                            "pad_token"};

/* Loads dir/name into *out (NULL when the file does not exist). flags: extra jansson flags. */
static emu2_status load_json(const char *dir, const char *name, size_t flags, json_t **out,
                             emu2_error *err)
{
    char path[4096];
    *out = NULL;
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return EMU2_OK;
        return emu2_fail(err, EMU2_ERR_IO, "%s: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return emu2_fail(err, EMU2_ERR_IO, "%s: not a regular file", path);
    if ((long long)st.st_size > MAX_JSON_BYTES)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %lld bytes, more than the %lld allowed", path,
                         (long long)st.st_size, MAX_JSON_BYTES);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES | flags, &jerr);
    if (!root)
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: line %d: %s", path, jerr.line, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: expected a JSON object", path);
    }
    *out = root;
    return EMU2_OK;
}

static void spec_clear(emu2_special_spec *spec)
{
    free(spec->text);
    memset(spec, 0, sizeof *spec);
}

static emu2_status check_token_text(const char *text, const char *what, emu2_error *err)
{
    size_t len = strlen(text);
    if (len == 0)
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: empty token", what);
    if (len > MAX_TOKEN_BYTES)
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: token of %zu bytes (at most %d)", what, len,
                         MAX_TOKEN_BYTES);
    return EMU2_OK;
}

emu2_status emu2_special_spec_set_string(emu2_special_spec *spec, const char *text, emu2_error *err)
{
    char *copy = strdup(text);
    if (!copy)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    spec_clear(spec);
    spec->text = copy;
    return EMU2_OK;
}

/* value: a string, an AddedToken-like object {"content", "lstrip", "rstrip", ...} or null.
 * wrap_strings: LlamaTokenizer.__init__ turns plain strings into AddedTokens (no stripping);
 * special_tokens_map.json strings stay plain strings. */
static emu2_status parse_spec(const json_t *value, bool wrap_strings, const char *what,
                              emu2_special_spec *spec, emu2_error *err)
{
    spec_clear(spec);
    if (json_is_null(value))
        return EMU2_OK;
    const char *text;
    bool added = false, lstrip = false, rstrip = false;
    if (json_is_string(value)) {
        text = json_string_value(value);
        added = wrap_strings;
    } else if (json_is_object(value)) {
        const json_t *content = json_object_get(value, "content");
        if (!json_is_string(content))
            return emu2_fail(err, EMU2_ERR_FORMAT, "%s: token object without a \"content\" string",
                             what);
        text = json_string_value(content);
        const json_t *l = json_object_get(value, "lstrip"), *r = json_object_get(value, "rstrip");
        if ((l && !json_is_boolean(l)) || (r && !json_is_boolean(r)))
            return emu2_fail(err, EMU2_ERR_FORMAT, "%s: lstrip/rstrip must be booleans", what);
        added = true;
        lstrip = l && json_is_true(l);
        rstrip = r && json_is_true(r);
    } else {
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: expected a string, a token object or null", what);
    }
    emu2_status st = check_token_text(text, what, err);
    if (st != EMU2_OK)
        return st;
    if (!(spec->text = strdup(text)))
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    spec->added_token = added;
    spec->lstrip = lstrip;
    spec->rstrip = rstrip;
    return EMU2_OK;
}

static emu2_status parse_additional(const json_t *list, bool wrap_strings, const char *file,
                                    emu2_tokenizer_files *files, emu2_error *err)
{
    for (size_t i = 0; i < files->n_additional; i++)
        spec_clear(&files->additional[i]);
    free(files->additional);
    files->additional = NULL;
    files->n_additional = 0;
    if (json_is_null(list))
        return EMU2_OK;
    if (!json_is_array(list))
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: additional_special_tokens must be a list", file);
    size_t n = json_array_size(list);
    if (n > MAX_ADDED_TOKENS)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %zu additional special tokens", file, n);
    if (n == 0)
        return EMU2_OK;
    files->additional = calloc(n, sizeof *files->additional);
    if (!files->additional)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char what[256];
        snprintf(what, sizeof what, "%s: additional_special_tokens[%zu]", file, i);
        const json_t *v = json_array_get(list, i);
        emu2_status st = json_is_null(v) ? emu2_fail(err, EMU2_ERR_FORMAT, "%s: null", what)
                                         : parse_spec(v, wrap_strings, what, &files->additional[i], err);
        files->n_additional = i + 1;
        if (st != EMU2_OK)
            return st;
    }
    return EMU2_OK;
}

/* Special tokens from one file: tokenizer_config.json (wrap_strings) or special_tokens_map.json. */
static emu2_status read_specials(const json_t *root, bool wrap_strings, const char *file,
                                 emu2_tokenizer_files *files, emu2_error *err)
{
    for (int k = 0; k < EMU2_SPECIAL_NAMED; k++) {
        const json_t *v = json_object_get(root, named_keys[k]);
        if (!v)
            continue;
        char what[256];
        snprintf(what, sizeof what, "%s: %s", file, named_keys[k]);
        emu2_status st = parse_spec(v, wrap_strings, what, &files->named[k], err);
        if (st != EMU2_OK)
            return st;
    }
    const json_t *add = json_object_get(root, "additional_special_tokens");
    if (add)
        return parse_additional(add, false, file, files, err); /* lists are never wrapped */
    return EMU2_OK;
}

static emu2_status read_bool(const json_t *root, const char *key, const char *file, bool *out,
                             emu2_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return EMU2_OK;
    if (!json_is_boolean(v))
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: %s must be a boolean", file, key);
    *out = json_is_true(v);
    return EMU2_OK;
}

typedef struct added_pair {
    const char *text;
    long long id;
} added_pair;

static int cmp_added(const void *a, const void *b)
{
    long long x = ((const added_pair *)a)->id, y = ((const added_pair *)b)->id;
    return x < y ? -1 : x > y;
}

static emu2_status read_added(const json_t *root, emu2_tokenizer_files *files, emu2_error *err)
{
    size_t n = json_object_size(root);
    if (n > MAX_ADDED_TOKENS)
        return emu2_fail(err, EMU2_ERR_LIMIT, "added_tokens.json: %zu tokens", n);
    files->has_added_tokens = true;
    if (n == 0)
        return EMU2_OK;
    added_pair *pairs = calloc(n, sizeof *pairs);
    files->added = calloc(n, sizeof *files->added);
    files->added_ids = calloc(n, sizeof *files->added_ids);
    emu2_status st = EMU2_OK;
    if (!pairs || !files->added || !files->added_ids) {
        st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t i = 0;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)root, key, value) {
        char what[128];
        snprintf(what, sizeof what, "added_tokens.json: entry %zu", i);
        if (!json_is_integer(value)) {
            st = emu2_fail(err, EMU2_ERR_FORMAT, "%s: the id of a token must be an integer", what);
            goto done;
        }
        if ((st = check_token_text(key, what, err)) != EMU2_OK)
            goto done;
        pairs[i].text = key;
        pairs[i].id = json_integer_value(value);
        i++;
    }
    qsort(pairs, n, sizeof *pairs, cmp_added);
    for (i = 0; i < n; i++) {
        if (!(files->added[i] = strdup(pairs[i].text))) {
            st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
            goto done;
        }
        files->added_ids[i] = pairs[i].id;
        files->n_added = i + 1;
    }
done:
    free(pairs);
    return st;
}

emu2_status emu2_tokenizer_files_read(const char *dir, emu2_tokenizer_files *files, emu2_error *err)
{
    memset(files, 0, sizeof *files);
    files->add_bos = true;
    /* LlamaTokenizer's defaults: AddedTokens that keep the whitespace around them. */
    static const char *const defaults[EMU2_SPECIAL_NAMED] = {"<s>", "</s>", "<unk>", NULL};
    for (int k = 0; k < EMU2_SPECIAL_NAMED; k++) {
        if (!defaults[k])
            continue;
        if (!(files->named[k].text = strdup(defaults[k])))
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
        files->named[k].added_token = true;
    }
    json_t *cfg = NULL, *stm = NULL, *added = NULL;
    /* Integers there may be huge (model_max_length = 1e30): read them as reals, they are unused. */
    emu2_status st = load_json(dir, "tokenizer_config.json", JSON_DECODE_INT_AS_REAL, &cfg, err);
    if (st == EMU2_OK && cfg) {
        st = read_specials(cfg, true, "tokenizer_config.json", files, err);
        if (st == EMU2_OK)
            st = read_bool(cfg, "add_bos_token", "tokenizer_config.json", &files->add_bos, err);
        if (st == EMU2_OK)
            st = read_bool(cfg, "add_eos_token", "tokenizer_config.json", &files->add_eos, err);
        if (st == EMU2_OK)
            st = read_bool(cfg, "clean_up_tokenization_spaces", "tokenizer_config.json",
                           &files->clean_up_spaces, err);
    }
    if (st == EMU2_OK)
        st = load_json(dir, "special_tokens_map.json", JSON_DECODE_INT_AS_REAL, &stm, err);
    if (st == EMU2_OK && stm)
        st = read_specials(stm, false, "special_tokens_map.json", files, err);
    if (st == EMU2_OK)
        st = load_json(dir, "added_tokens.json", 0, &added, err);
    if (st == EMU2_OK && added)
        st = read_added(added, files, err);
    json_decref(cfg);
    json_decref(stm);
    json_decref(added);
    if (st != EMU2_OK)
        emu2_tokenizer_files_free(files);
    return st;
}

void emu2_tokenizer_files_free(emu2_tokenizer_files *files)
{
    if (!files)
        return;
    for (int k = 0; k < EMU2_SPECIAL_NAMED; k++)
        spec_clear(&files->named[k]);
    for (size_t i = 0; i < files->n_additional; i++)
        spec_clear(&files->additional[i]);
    free(files->additional);
    for (size_t i = 0; i < files->n_added; i++)
        free(files->added[i]);
    free(files->added);
    free(files->added_ids);
    memset(files, 0, sizeof *files);
}
