/* tokenizer_load.c: building an emu2_tokenizer from a folder (see tokenizer.h for the rules). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "text/tokenizer_files.h"
#include "text/tokenizer_internal.h"

#define MAX_MODEL_BYTES ((long long)256 << 20)

/* EMU2-SPEC §4.2, in the order the native code adds them (after [PAD]). */
static const char *const emu2_fixed_tokens[] = {
    "[IMG]", "[/IMG]", "<image>", "[gIMG]", "[/gIMG]", "[EOC]", "[VIDEO]", "<grounding>",
    "<phrase>", "</phrase>", "<object>", "</object>", "</delimiter_of_multi_objects/>", "<REC>",
};
#define EMU2_PATCH_INDEX_TOKENS 257

/* The split entry of an exact token string, or -1. */
static int32_t find_split(const emu2_tokenizer *tok, const char *s, size_t len)
{
    int32_t v = -1;
    if (!len || emu2_token_matcher_longest(tok->matcher, s, len, 0, &v) != len)
        return -1;
    return v;
}

typedef struct builder {
    emu2_tokenizer *tok;
    size_t split_cap, added_cap;
} builder;

static emu2_status push_split(builder *b, const char *s, size_t len, int32_t id, emu2_error *err)
{
    emu2_tokenizer *tok = b->tok;
    if (tok->n_split == b->split_cap) {
        size_t c = b->split_cap ? b->split_cap * 2 : 512;
        emu2_split_token *p = realloc(tok->split, c * sizeof *p);
        if (!p)
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for added tokens");
        tok->split = p;
        b->split_cap = c;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for added tokens");
    memcpy(copy, s, len);
    copy[len] = '\0';
    tok->split[tok->n_split] =
        (emu2_split_token){.text = copy, .len = len, .id = id, .lstrip = true, .rstrip = true};
    emu2_status st = emu2_token_matcher_add(tok->matcher, copy, len, (int32_t)tok->n_split, err);
    if (st != EMU2_OK) {
        free(copy);
        return st;
    }
    tok->n_split++;
    return EMU2_OK;
}

/* add_tokens(..., special_tokens=True) for one token: a new id unless the text is already a
 * SentencePiece piece or an added token; either way the text becomes a split token. */
static emu2_status add_token(builder *b, const char *text, emu2_error *err)
{
    emu2_tokenizer *tok = b->tok;
    size_t len = strlen(text);
    if (find_split(tok, text, len) >= 0)
        return EMU2_OK;
    int32_t id = emu2_sp_piece_to_id(tok->sp, text, len);
    if (id < 0) {
        if (tok->n_added >= (size_t)(INT32_MAX - tok->sp_size))
            return emu2_fail(err, EMU2_ERR_LIMIT, "too many added tokens");
        if (tok->n_added == b->added_cap) {
            size_t c = b->added_cap ? b->added_cap * 2 : 512;
            int32_t *p = realloc(tok->added_split, c * sizeof *p);
            if (!p)
                return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for added tokens");
            tok->added_split = p;
            b->added_cap = c;
        }
        id = tok->sp_size + (int32_t)tok->n_added;
        tok->added_split[tok->n_added++] = (int32_t)tok->n_split;
    }
    return push_split(b, text, len, id, err);
}

/* all_special_tokens_extended of transformers: bos, eos, unk, pad, then the additional ones;
 * NULL for a named token that is not set. */
static const emu2_special_spec *special_at(const emu2_tokenizer_files *f, size_t i)
{
    if (i < EMU2_SPECIAL_NAMED)
        return f->named[i].text ? &f->named[i] : NULL;
    return &f->additional[i - EMU2_SPECIAL_NAMED];
}

/* sanitize_special_tokens(): every special token becomes a split token (and an id if new). */
static emu2_status add_specials(builder *b, const emu2_tokenizer_files *f, emu2_error *err)
{
    for (int k = 0; k < EMU2_SPECIAL_NAMED; k++)
        if (f->named[k].text) {
            emu2_status st = add_token(b, f->named[k].text, err);
            if (st != EMU2_OK)
                return st;
        }
    for (size_t i = 0; i < f->n_additional; i++) {
        emu2_status st = add_token(b, f->additional[i].text, err);
        if (st != EMU2_OK)
            return st;
    }
    return EMU2_OK;
}

/* LlamaTokenizer.from_pretrained(dir) with added_tokens.json: ids must continue the vocab. */
static emu2_status add_saved_tokens(builder *b, const emu2_tokenizer_files *f, emu2_error *err)
{
    emu2_tokenizer *tok = b->tok;
    for (size_t i = 0; i < f->n_added; i++) {
        long long want = (long long)tok->sp_size + (long long)tok->n_added;
        const char *t = f->added[i];
        if (f->added_ids[i] != want)
            return emu2_fail(err, EMU2_ERR_FORMAT,
                             "added_tokens.json: token '%.64s' has id %lld, expected %lld (ids must "
                             "continue the %d SentencePiece ids without gaps or repeats)",
                             t, f->added_ids[i], want, (int)tok->sp_size);
        if (emu2_sp_piece_to_id(tok->sp, t, strlen(t)) >= 0)
            return emu2_fail(err, EMU2_ERR_FORMAT,
                             "added_tokens.json: token '%.64s' is already a SentencePiece piece", t);
        emu2_status st = add_token(b, t, err);
        if (st != EMU2_OK)
            return st;
    }
    return EMU2_OK;
}

/* What Emu2's native code does on top of the LLaMA tokenizer (EMU2-SPEC §4.2):
 * add_special_tokens(pad="[PAD]", bos="<s>", eos="</s>", additional=[...]) with plain strings. */
static emu2_status add_emu2_tokens(builder *b, emu2_tokenizer_files *f, const char *version,
                                   emu2_error *err)
{
    const size_t n_fixed = sizeof emu2_fixed_tokens / sizeof emu2_fixed_tokens[0];
    const bool chat = !strcmp(version, "chat");
    size_t n = n_fixed + EMU2_PATCH_INDEX_TOKENS + (chat ? 2 : 0);
    for (size_t i = 0; i < f->n_additional; i++)
        free(f->additional[i].text);
    free(f->additional);
    f->n_additional = 0;
    if (!(f->additional = calloc(n, sizeof *f->additional)))
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    emu2_status st = EMU2_OK;
    for (size_t i = 0; i < n && st == EMU2_OK; i++) {
        char name[32];
        const char *text = name;
        if (i < n_fixed)
            text = emu2_fixed_tokens[i];
        else if (i < n_fixed + EMU2_PATCH_INDEX_TOKENS)
            snprintf(name, sizeof name, "<patch_index_%04zu>", i - n_fixed);
        else
            text = i == n - 2 ? "[USER]" : "[ASSISTANT]";
        st = emu2_special_spec_set_string(&f->additional[i], text, err);
        f->n_additional = i + 1;
    }
    if (st == EMU2_OK)
        st = emu2_special_spec_set_string(&f->named[EMU2_SPECIAL_PAD], "[PAD]", err);
    if (st == EMU2_OK)
        st = emu2_special_spec_set_string(&f->named[EMU2_SPECIAL_BOS], "<s>", err);
    if (st == EMU2_OK)
        st = emu2_special_spec_set_string(&f->named[EMU2_SPECIAL_EOS], "</s>", err);
    /* add_tokens([pad, bos, eos, *additional]) */
    static const int order[] = {EMU2_SPECIAL_PAD, EMU2_SPECIAL_BOS, EMU2_SPECIAL_EOS};
    for (size_t k = 0; k < 3 && st == EMU2_OK; k++)
        st = add_token(b, f->named[order[k]].text, err);
    for (size_t i = 0; i < f->n_additional && st == EMU2_OK; i++)
        st = add_token(b, f->additional[i].text, err);
    return st;
}

/* The split is "leftmost, then longest", equal to transformers' Trie.split only when no token occurs
 * inside another at an offset > 0; such token sets are refused rather than split differently. */
static emu2_status check_no_infix(const emu2_tokenizer *tok, emu2_error *err)
{
    for (size_t i = 0; i < tok->n_split; i++) {
        const emu2_split_token *t = &tok->split[i];
        for (size_t k = 1; k < t->len; k++) {
            int32_t other = -1;
            if (emu2_token_matcher_longest(tok->matcher, t->text, t->len, k, &other))
                return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                                 "added token '%.64s' contains added token '%.64s': transformers' "
                                 "splitting of such tokens is not reproduced",
                                 t->text, tok->split[other].text);
        }
    }
    return EMU2_OK;
}

/* Strip rules and decode flags, once all tokens are known. */
static emu2_status finish(emu2_tokenizer *tok, const emu2_tokenizer_files *f, emu2_error *err)
{
    const size_t n_specials = EMU2_SPECIAL_NAMED + f->n_additional;
    size_t vocab = (size_t)tok->sp_size + tok->n_added;
    if (!(tok->flags = calloc(vocab, 1)))
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n_specials; i++) {
        const emu2_special_spec *sp = special_at(f, i);
        if (!sp)
            continue;
        int32_t s = find_split(tok, sp->text, strlen(sp->text));
        if (s < 0)
            return emu2_fail(err, EMU2_ERR_INTERNAL, "special token '%.64s' was not registered",
                             sp->text);
        tok->flags[tok->split[s].id] |= EMU2_TOKF_SKIP | EMU2_TOKF_STRING;
        /* Only AddedToken specials keep their own lstrip/rstrip; strings and plain added tokens
         * strip both sides (PreTrainedTokenizer.tokenize). The last AddedToken of a text wins, as
         * in Python's dict. */
        if (sp->added_token) {
            tok->split[s].lstrip = sp->lstrip;
            tok->split[s].rstrip = sp->rstrip;
        }
    }
    tok->add_bos = f->add_bos;
    tok->add_eos = f->add_eos;
    tok->clean_up_spaces = f->clean_up_spaces;
    const emu2_special_spec *bos = &f->named[EMU2_SPECIAL_BOS], *eos = &f->named[EMU2_SPECIAL_EOS],
                            *pad = &f->named[EMU2_SPECIAL_PAD];
    tok->bos_id = bos->text ? emu2_tokenizer_token_id(tok, bos->text) : -1;
    tok->eos_id = eos->text ? emu2_tokenizer_token_id(tok, eos->text) : -1;
    tok->pad_id = pad->text ? emu2_tokenizer_token_id(tok, pad->text) : -1;
    tok->img_id = emu2_tokenizer_token_id(tok, "[IMG]");
    tok->img_end_id = emu2_tokenizer_token_id(tok, "[/IMG]");
    tok->image_id = emu2_tokenizer_token_id(tok, "<image>");
    return EMU2_OK;
}

static emu2_status load_sp(const char *dir, emu2_sp **sp, emu2_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/tokenizer.model", dir) >= (int)sizeof path)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return emu2_fail(err, EMU2_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return emu2_fail(err, EMU2_ERR_IO, "%s: not a regular file", path);
    if ((long long)st.st_size > MAX_MODEL_BYTES)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %lld bytes, more than the %lld allowed", path,
                         (long long)st.st_size, MAX_MODEL_BYTES);
    return emu2_sp_load_file(path, sp, err);
}

emu2_status emu2_tokenizer_load(const char *dir, const char *model_version, emu2_tokenizer **out,
                                emu2_error *err)
{
    if (!dir || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "tokenizer: no folder or no output handle");
    *out = NULL;
    if (!model_version)
        model_version = "base";
    if (strcmp(model_version, "base") && strcmp(model_version, "chat"))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "tokenizer: model_version '%.32s' is neither \"base\" nor \"chat\"",
                         model_version);
    emu2_error local;
    if (!err)
        err = &local; /* the message is composed in err before it is prefixed */
    emu2_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    emu2_tokenizer_files files;
    emu2_status st = emu2_tokenizer_files_read(dir, &files, err);
    if (st != EMU2_OK) { /* the message names the file */
        free(tok);
        return st;
    }
    builder b = {.tok = tok};
    st = load_sp(dir, &tok->sp, err);
    if (st == EMU2_OK) {
        tok->sp_size = emu2_sp_piece_size(tok->sp);
        st = emu2_token_matcher_new(&tok->matcher, err);
    }
    if (st == EMU2_OK && files.has_added_tokens) {
        st = add_saved_tokens(&b, &files, err);
        if (st == EMU2_OK)
            st = add_specials(&b, &files, err);
    } else if (st == EMU2_OK) {
        st = add_specials(&b, &files, err);
        if (st == EMU2_OK)
            st = add_emu2_tokens(&b, &files, model_version, err);
    }
    if (st == EMU2_OK)
        st = check_no_infix(tok, err);
    if (st == EMU2_OK)
        st = finish(tok, &files, err);
    emu2_tokenizer_files_free(&files);
    if (st != EMU2_OK) {
        emu2_tokenizer_free(tok);
        if (!strstr(err->message, dir))
            emu2_fail_prefix(err, "%s: ", dir);
        return st;
    }
    *out = tok;
    return EMU2_OK;
}

void emu2_tokenizer_free(emu2_tokenizer *tok)
{
    if (!tok)
        return;
    emu2_sp_free(tok->sp);
    for (size_t i = 0; i < tok->n_split; i++)
        free(tok->split[i].text);
    free(tok->split);
    free(tok->added_split);
    free(tok->flags);
    emu2_token_matcher_free(tok->matcher);
    free(tok);
}
