/* tokenizer_encode.c: text -> ids, as PreTrainedTokenizer.tokenize (transformers 4.31) with the
 * slow LlamaTokenizer does it:
 *   1. split the text on added/special tokens (Trie.split: leftmost, longest);
 *   2. each token strips the Python whitespace of its neighbouring text (both sides for plain
 *      strings and added tokens; an AddedToken only where its lstrip/rstrip says so);
 *   3. drop text chunks that became empty, encode every other chunk with SentencePiece alone
 *      (so each gets the dummy "▁" prefix);
 *   4. BOS first (and EOS last when the config says add_eos_token).
 * Placeholders are expanded at the id level: Python substitutes the text first, and since the
 * expansion starts with [IMG] and ends with [/IMG] (which strip both sides), a placeholder acts as
 * one token whose left side strips like [IMG] and right side like [/IMG]. */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "text/placeholders.h"
#include "text/tokenizer_internal.h"
#include "text/utf8.h"

typedef enum { ITEM_TEXT, ITEM_TOKEN, ITEM_PLACEHOLDER } item_kind;

typedef struct item {
    item_kind kind;
    size_t start, len; /* ITEM_TEXT: bytes of the prompt */
    int32_t split;     /* ITEM_TOKEN: entry of tok->split */
} item;

typedef struct item_vec {
    item *data;
    size_t len, cap;
} item_vec;

static emu2_status push_item(item_vec *v, item it, emu2_error *err)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 32;
        item *p = realloc(v->data, cap * sizeof *p);
        if (!p)
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory while tokenizing");
        v->data = p;
        v->cap = cap;
    }
    v->data[v->len++] = it;
    return EMU2_OK;
}

/* Trie.split of text[a..b): text chunks and tokens, no empty chunks. */
static emu2_status split_segment(const emu2_tokenizer *tok, const char *text, size_t a, size_t b,
                                 item_vec *items, emu2_error *err)
{
    size_t p = a;
    while (p < b) {
        size_t len = 0;
        int32_t split = -1;
        size_t s = emu2_token_matcher_find(tok->matcher, text, b, p, &len, &split);
        emu2_status st = EMU2_OK;
        if (s > p)
            st = push_item(items, (item){.kind = ITEM_TEXT, .start = p, .len = s - p}, err);
        if (st == EMU2_OK && s < b)
            st = push_item(items, (item){.kind = ITEM_TOKEN, .split = split}, err);
        if (st != EMU2_OK)
            return st;
        if (s >= b)
            break;
        p = s + len;
    }
    return EMU2_OK;
}

static emu2_status split_text(const emu2_tokenizer *tok, const char *text, size_t n,
                              bool placeholders, item_vec *items, emu2_error *err)
{
    size_t seg = 0;
    for (size_t pos = 0; placeholders && pos < n;) {
        const char *open = memchr(text + pos, '[', n - pos);
        if (!open)
            break;
        pos = (size_t)(open - text);
        size_t len = emu2_placeholder_at(text, n, pos);
        if (!len) {
            pos++;
            continue;
        }
        emu2_status st = split_segment(tok, text, seg, pos, items, err);
        if (st == EMU2_OK)
            st = push_item(items, (item){.kind = ITEM_PLACEHOLDER}, err);
        if (st != EMU2_OK)
            return st;
        pos += len;
        seg = pos;
    }
    return split_segment(tok, text, seg, n, items, err);
}

static const emu2_split_token *split_of_id(const emu2_tokenizer *tok, int32_t id)
{
    if (id < tok->sp_size || (size_t)(id - tok->sp_size) >= tok->n_added)
        return NULL;
    return &tok->split[tok->added_split[id - tok->sp_size]];
}

/* Step 2: whitespace next to tokens. */
static void strip_around_tokens(const emu2_tokenizer *tok, const char *text, item_vec *items)
{
    const emu2_split_token *img = split_of_id(tok, tok->img_id);
    const emu2_split_token *img_end = split_of_id(tok, tok->img_end_id);
    for (size_t i = 0; i < items->len; i++) {
        const item *it = &items->data[i];
        bool eats_left, eats_right;
        if (it->kind == ITEM_TOKEN) {
            eats_left = tok->split[it->split].lstrip;
            eats_right = tok->split[it->split].rstrip;
        } else if (it->kind == ITEM_PLACEHOLDER) {
            eats_left = img ? img->lstrip : true;
            eats_right = img_end ? img_end->rstrip : true;
        } else {
            continue;
        }
        if (eats_right && i + 1 < items->len && items->data[i + 1].kind == ITEM_TEXT) {
            item *r = &items->data[i + 1];
            size_t k = emu2_py_lstrip_len(text + r->start, r->len);
            r->start += k;
            r->len -= k;
        }
        if (eats_left && i > 0 && items->data[i - 1].kind == ITEM_TEXT) {
            item *l = &items->data[i - 1];
            l->len -= emu2_py_rstrip_len(text + l->start, l->len);
        }
    }
}

static emu2_status emit(const emu2_tokenizer *tok, const char *text, const item_vec *items,
                        int n_query, emu2_id_vec *out, emu2_error *err)
{
    for (size_t i = 0; i < items->len; i++) {
        const item *it = &items->data[i];
        emu2_status st = EMU2_OK;
        if (it->kind == ITEM_TEXT) {
            if (it->len)
                st = emu2_sp_encode_append(tok->sp, text + it->start, it->len, out, err);
        } else if (it->kind == ITEM_TOKEN) {
            st = emu2_id_vec_push(out, tok->split[it->split].id, err);
        } else {
            if (tok->img_id < 0 || tok->img_end_id < 0 || tok->image_id < 0)
                return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                                 "the prompt has an image placeholder but the tokenizer lacks one "
                                 "of [IMG], [/IMG], <image>");
            st = emu2_id_vec_push(out, tok->img_id, err);
            if (st == EMU2_OK)
                st = emu2_id_vec_push_n(out, tok->image_id, (size_t)n_query, err);
            if (st == EMU2_OK)
                st = emu2_id_vec_push(out, tok->img_end_id, err);
        }
        if (st != EMU2_OK)
            return st;
    }
    return EMU2_OK;
}

emu2_status emu2_tokenizer_encode(const emu2_tokenizer *tok, const char *text, unsigned flags,
                                  int n_query, int32_t **ids, size_t *n_ids, emu2_error *err)
{
    if (!tok || !text || !ids || !n_ids)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "tokenize: missing tokenizer, text or output");
    *ids = NULL;
    *n_ids = 0;
    if (flags & ~(unsigned)(EMU2_TOK_NO_BOS | EMU2_TOK_NO_PLACEHOLDERS))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "tokenize: unknown flags 0x%x", flags);
    if (n_query < 0 || n_query > EMU2_TOKENIZER_MAX_N_QUERY)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "tokenize: n_query %d is outside 0..%d",
                         n_query, EMU2_TOKENIZER_MAX_N_QUERY);
    size_t n = strnlen(text, EMU2_TOKENIZER_MAX_TEXT_BYTES + 1);
    if (n > EMU2_TOKENIZER_MAX_TEXT_BYTES)
        return emu2_fail(err, EMU2_ERR_LIMIT, "tokenize: the prompt is longer than %zu bytes",
                         EMU2_TOKENIZER_MAX_TEXT_BYTES);
    size_t bad;
    if (!emu2_utf8_valid(text, n, &bad))
        return emu2_fail(err, EMU2_ERR_FORMAT, "tokenize: the prompt is not valid UTF-8 (byte %zu)",
                         bad);
    const bool special = !(flags & EMU2_TOK_NO_BOS);
    if (special && tok->add_bos && tok->bos_id < 0)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "tokenize: the tokenizer has no BOS token");
    if (special && tok->add_eos && tok->eos_id < 0)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "tokenize: the tokenizer has no EOS token");

    item_vec items = {0};
    emu2_id_vec out = {.max = EMU2_TOKENIZER_MAX_IDS};
    emu2_status st = split_text(tok, text, n, !(flags & EMU2_TOK_NO_PLACEHOLDERS), &items, err);
    if (st == EMU2_OK) {
        strip_around_tokens(tok, text, &items);
        if (special && tok->add_bos)
            st = emu2_id_vec_push(&out, tok->bos_id, err);
    }
    if (st == EMU2_OK)
        st = emit(tok, text, &items, n_query, &out, err);
    if (st == EMU2_OK && special && tok->add_eos)
        st = emu2_id_vec_push(&out, tok->eos_id, err);
    /* zero ids (NO_BOS and an empty prompt): still hand out a buffer */
    if (st == EMU2_OK && !out.data && !(out.data = malloc(sizeof *out.data)))
        st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    free(items.data);
    if (st != EMU2_OK) {
        free(out.data);
        return st;
    }
    *ids = out.data;
    *n_ids = out.len;
    return EMU2_OK;
}
