/* fuzz_tokenize.c: arbitrary bytes as a prompt (invalid UTF-8 included) through encode and decode.
 *
 * Input layout: byte 0 = flags (low 2 bits) and skip_special (bit 2); byte 1 = n_query (0..255);
 * the rest is the prompt (cut at the first NUL, as a C string would be). The ids are decoded back
 * and the raw input is also decoded as ids (in range or not). Invariants: no crash, errors only of
 * the documented kinds, ids inside the vocabulary, every placeholder expanded.
 * The tokenizer comes from $EMU2_FUZZ_TOKENIZER (default ../shared/fixtures/llama-tokenizer), else
 * models/emu2-tiny-digits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu2.h"
#include "text/placeholders.h"
#include "text/tokenizer.h"

static emu2_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("EMU2_FUZZ_TOKENIZER");
    const char *tries[] = {dir && *dir ? dir : "../shared/fixtures/llama-tokenizer", "models/emu2-tiny-digits"};
    emu2_error err = {0};
    for (size_t i = 0; i < 2 && !tok; i++)
        if (emu2_tokenizer_load(tries[i], "chat", &tok, &err) != EMU2_OK)
            fprintf(stderr, "fuzz_tokenize: %s\n", err.message);
    if (!tok) {
        fprintf(stderr, "fuzz_tokenize: no tokenizer (set EMU2_FUZZ_TOKENIZER)\n");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned flags = data[0] & 3u;
    int skip_special = (data[0] >> 2) & 1;
    int n_query = data[1];
    char *text = malloc(size - 1);
    if (!text)
        return 0;
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';

    int32_t *ids = NULL;
    size_t n = 0;
    emu2_error err = {0};
    emu2_status st = emu2_tokenizer_encode(tok, text, flags, n_query, &ids, &n, &err);
    if (st == EMU2_OK) {
        const int32_t vocab = emu2_tokenizer_vocab_size(tok);
        const int32_t image = emu2_tokenizer_token_id(tok, "<image>");
        size_t images = 0;
        for (size_t i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= vocab)
                __builtin_trap();
            images += ids[i] == image;
        }
        size_t plh = 0;
        if (emu2_count_placeholders(text, &plh) != EMU2_OK)
            __builtin_trap();
        if (!(flags & EMU2_TOK_NO_PLACEHOLDERS) && images < plh * (size_t)n_query)
            __builtin_trap();
        char *back = NULL;
        if (emu2_tokenizer_decode(tok, ids, n, skip_special, &back, &err) != EMU2_OK)
            __builtin_trap();
        emu2_free(back);
    } else if (st != EMU2_ERR_FORMAT && st != EMU2_ERR_LIMIT) {
        __builtin_trap();
    }
    emu2_free(ids);
    free(text);

    /* the raw bytes as ids: out-of-range ones must be refused, never read */
    size_t n_raw = size / sizeof(int32_t);
    int32_t *raw = malloc((n_raw ? n_raw : 1) * sizeof *raw);
    if (raw) {
        memcpy(raw, data, n_raw * sizeof *raw);
        char *out = NULL;
        st = emu2_tokenizer_decode(tok, raw, n_raw, skip_special, &out, &err);
        if (st != EMU2_OK && st != EMU2_ERR_INVALID_ARGUMENT)
            __builtin_trap();
        emu2_free(out);
        /* the same ids folded into the vocabulary must decode */
        const uint32_t vocab = (uint32_t)emu2_tokenizer_vocab_size(tok);
        for (size_t i = 0; i < n_raw; i++)
            raw[i] = (int32_t)((uint32_t)raw[i] % vocab);
        if (emu2_tokenizer_decode(tok, raw, n_raw, skip_special, &out, &err) != EMU2_OK)
            __builtin_trap();
        emu2_free(out);
        free(raw);
    }
    return 0;
}
