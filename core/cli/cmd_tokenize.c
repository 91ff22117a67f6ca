/* cmd_tokenize.c: `emu2 tokenize -m DIR [options] TEXT`: the token ids of a prompt, one per line or as
 * a JSON array. Uses the tokenizer directly (no weights are read): DIR's config.json gives
 * model_version and vision_config.n_query unless the options do. Exit 0 on success, 1 when the
 * folder or the prompt cannot be used, 2 on a usage error. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "emu2.h"
#include "text/tokenizer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: emu2 tokenize -m MODEL_DIR [--no-bos] [--json] [--no-placeholders]\n"
            "                     [--n-query N] [--model-version base|chat] TEXT\n"
            "  Prints the token ids of TEXT (\"-\" reads standard input, byte for byte) as the slow\n"
            "  transformers 4.31 LlamaTokenizer with Emu2's added tokens gives them. Image placeholders\n"
            "  \"[]\" and \"[<IMG_PLH>]\" become [IMG] + <image> x N + [/IMG].\n"
            "  -m DIR              folder with tokenizer.model (+ tokenizer_config.json, added_tokens.json)\n"
            "  --no-bos            no BOS id first\n"
            "  --json              print a JSON array instead of one id per line\n"
            "  --no-placeholders   keep \"[]\" and \"[<IMG_PLH>]\" as text\n"
            "  --n-query N         <image> slots per placeholder (default: config.json's\n"
            "                      vision_config.n_query, else 64)\n"
            "  --model-version V   base or chat (default: config.json's model_version, else base)\n");
}

/* model_version and n_query from DIR/config.json, when it exists. */
static int read_config(const char *dir, char *version, size_t version_size, int *n_query)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path) {
        fprintf(stderr, "emu2 tokenize: %s: path too long\n", dir);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? 0 : (fprintf(stderr, "emu2 tokenize: %s: %s\n", path, strerror(errno)), -1);
    fclose(f);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!root || !json_is_object(root)) {
        fprintf(stderr, "emu2 tokenize: %s: line %d: %s\n", path, jerr.line,
                root ? "expected a JSON object" : jerr.text);
        json_decref(root);
        return -1;
    }
    int rc = 0;
    const json_t *mv = json_object_get(root, "model_version");
    if (json_is_string(mv))
        snprintf(version, version_size, "%s", json_string_value(mv));
    const json_t *nq = json_object_get(json_object_get(root, "vision_config"), "n_query");
    if (nq) {
        double v = json_number_value(nq);
        if (!json_is_number(nq) || !(v >= 0 && v <= EMU2_TOKENIZER_MAX_N_QUERY) || v != (double)(int)v) {
            fprintf(stderr, "emu2 tokenize: %s: vision_config.n_query must be an integer in 0..%d\n", path,
                    EMU2_TOKENIZER_MAX_N_QUERY);
            rc = -1;
        } else {
            *n_query = (int)v;
        }
    }
    json_decref(root);
    return rc;
}

/* All of stdin, NUL-terminated; NULL (message printed) on error or when it is too long. */
static char *read_stdin(void)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            if (cap > EMU2_TOKENIZER_MAX_TEXT_BYTES) {
                fprintf(stderr, "emu2 tokenize: standard input is longer than %zu bytes\n",
                        EMU2_TOKENIZER_MAX_TEXT_BYTES);
                free(buf);
                return NULL;
            }
            char *p = realloc(buf, cap * 2);
            if (!p)
                break;
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, stdin);
        len += got;
        if (got == 0) {
            if (ferror(stdin)) {
                fprintf(stderr, "emu2 tokenize: cannot read standard input\n");
                free(buf);
                return NULL;
            }
            buf[len] = '\0';
            if (strlen(buf) != len) {
                fprintf(stderr, "emu2 tokenize: standard input holds a NUL byte\n");
                free(buf);
                return NULL;
            }
            return buf;
        }
    }
    fprintf(stderr, "emu2 tokenize: out of memory\n");
    free(buf);
    return NULL;
}

static int parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > EMU2_TOKENIZER_MAX_N_QUERY)
        return -1;
    *out = (int)v;
    return 0;
}

int emu2_cmd_tokenize(int argc, char **argv)
{
    const char *dir = NULL, *text_arg = NULL, *version_opt = NULL;
    unsigned flags = EMU2_TOK_DEFAULT;
    int json = 0, n_query_opt = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(a, "--no-bos")) {
            flags |= EMU2_TOK_NO_BOS;
        } else if (!strcmp(a, "--no-placeholders")) {
            flags |= EMU2_TOK_NO_PLACEHOLDERS;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--n-query") && i + 1 < argc) {
            if (parse_int(argv[++i], &n_query_opt)) {
                fprintf(stderr, "emu2 tokenize: --n-query wants an integer in 0..%d\n",
                        EMU2_TOKENIZER_MAX_N_QUERY);
                return 2;
            }
        } else if (!strcmp(a, "--model-version") && i + 1 < argc) {
            version_opt = argv[++i];
        } else if ((a[0] == '-' && a[1] != '\0') || text_arg) {
            fprintf(stderr, "emu2 tokenize: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            text_arg = a;
        }
    }
    if (!dir || !text_arg) {
        fprintf(stderr, "emu2 tokenize: %s\n", !dir ? "-m MODEL_DIR is required" : "TEXT is required");
        usage(stderr);
        return 2;
    }
    char version[32] = "base";
    int n_query = 64;
    if (read_config(dir, version, sizeof version, &n_query) != 0)
        return 1;
    if (version_opt)
        snprintf(version, sizeof version, "%s", version_opt);
    if (n_query_opt >= 0)
        n_query = n_query_opt;

    char *stdin_text = NULL;
    if (!strcmp(text_arg, "-") && !(stdin_text = read_stdin()))
        return 1;
    const char *text = stdin_text ? stdin_text : text_arg;

    emu2_error err = {0};
    emu2_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = 1;
    if (emu2_tokenizer_load(dir, version, &tok, &err) != EMU2_OK ||
        emu2_tokenizer_encode(tok, text, flags, n_query, &ids, &n, &err) != EMU2_OK) {
        fprintf(stderr, "emu2 tokenize: %s\n", err.message);
    } else {
        if (json) {
            putchar('[');
            for (size_t i = 0; i < n; i++)
                printf(i ? ",%d" : "%d", ids[i]);
            puts("]");
        } else {
            for (size_t i = 0; i < n; i++)
                printf("%d\n", ids[i]);
        }
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
    emu2_free(ids);
    emu2_tokenizer_free(tok);
    free(stdin_text);
    return rc;
}
