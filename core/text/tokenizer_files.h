/* tokenizer_files.h: reading the optional JSON files of a tokenizer folder (tokenizer_config.json,
 * special_tokens_map.json, added_tokens.json) into plain C values. */
#ifndef EMU2_TEXT_TOKENIZER_FILES_H
#define EMU2_TEXT_TOKENIZER_FILES_H

#include <stdbool.h>
#include <stddef.h>

#include "emu2.h"

/* A special token as transformers holds it: a plain string (whitespace stripped on both sides) or
 * an AddedToken with its own lstrip/rstrip. */
typedef struct emu2_special_spec {
    char *text; /* NULL: not set */
    bool added_token;
    bool lstrip, rstrip;
} emu2_special_spec;

enum { EMU2_SPECIAL_BOS, EMU2_SPECIAL_EOS, EMU2_SPECIAL_UNK, EMU2_SPECIAL_PAD, EMU2_SPECIAL_NAMED };

typedef struct emu2_tokenizer_files {
    emu2_special_spec named[EMU2_SPECIAL_NAMED]; /* bos, eos, unk, pad */
    emu2_special_spec *additional;               /* additional_special_tokens */
    size_t n_additional;
    bool add_bos, add_eos;
    bool clean_up_spaces;    /* clean_up_tokenization_spaces (LlamaTokenizer default: false) */
    bool has_added_tokens;   /* added_tokens.json exists */
    char **added;            /* its tokens sorted by id */
    long long *added_ids;
    size_t n_added;
} emu2_tokenizer_files;

/* Reads dir's files as LlamaTokenizer.from_pretrained resolves them (special_tokens_map.json over
 * tokenizer_config.json over the class defaults). Missing files are fine; malformed ones are not. */
emu2_status emu2_tokenizer_files_read(const char *dir, emu2_tokenizer_files *files, emu2_error *err);
void emu2_tokenizer_files_free(emu2_tokenizer_files *files);
/* Replaces a spec by a plain string (what add_special_tokens with str values does). */
emu2_status emu2_special_spec_set_string(emu2_special_spec *spec, const char *text, emu2_error *err);

#endif
