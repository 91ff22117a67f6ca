/* tokenizer_decode.c: ids -> text, as the slow tokenizer's decode() in transformers 4.31:
 *   - skip_special drops every id of all_special_ids (bos, eos, unk, pad, additional specials)
 *     before anything else;
 *   - added tokens become sub-texts of their own; the runs of SentencePiece ids between them are
 *     converted by LlamaTokenizer.convert_tokens_to_string; the sub-texts are joined with " "
 *     (spaces_between_special_tokens=True);
 *   - clean_up_tokenization_spaces (false for LLaMA unless the config says true) removes the space
 *     before some punctuation and English contractions;
 *   - convert_tokens_to_string keeps special pieces (<s>, </s>, <unk>) out of SentencePiece: a
 *     special piece after ordinary ones gets a " " before it (unless it is first), and each
 *     stretch of ordinary pieces is SentencePiece-decoded alone (so its leading "▁" is dropped). */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "text/tokenizer_internal.h"

/* LlamaTokenizer.convert_tokens_to_string of the SentencePiece ids run[0..n). */
static emu2_status convert_run(const emu2_tokenizer *tok, const int32_t *run, size_t n,
                               emu2_text_buf *out, emu2_error *err)
{
    bool prev_special = false;
    size_t cur = 0; /* start of the pending ordinary pieces */
    for (size_t i = 0; i < n; i++) {
        if (!(tok->flags[run[i]] & EMU2_TOKF_STRING)) {
            prev_special = false;
            continue;
        }
        emu2_status st = EMU2_OK;
        if (!prev_special && i != 0)
            st = emu2_text_buf_append(out, " ", 1, err);
        if (st == EMU2_OK)
            st = emu2_sp_decode_append(tok->sp, run + cur, i - cur, out, err);
        const char *piece = emu2_sp_id_to_piece(tok->sp, run[i]);
        if (st == EMU2_OK)
            st = emu2_text_buf_append(out, piece, strlen(piece), err);
        if (st != EMU2_OK)
            return st;
        prev_special = true;
        cur = i + 1;
    }
    return emu2_sp_decode_append(tok->sp, run + cur, n - cur, out, err);
}

/* str.replace(from, to) in place (to is never longer than from). */
static void replace_all(emu2_text_buf *b, const char *from, const char *to)
{
    const size_t nf = strlen(from), nt = strlen(to);
    size_t r = 0, w = 0;
    while (r < b->len) {
        if (b->len - r >= nf && !memcmp(b->data + r, from, nf)) {
            memmove(b->data + w, to, nt);
            w += nt;
            r += nf;
        } else {
            b->data[w++] = b->data[r++];
        }
    }
    b->len = w;
    b->data[w] = '\0';
}

/* PreTrainedTokenizerBase.clean_up_tokenization, the same replacements in the same order. */
static void clean_up_spaces(emu2_text_buf *b)
{
    static const char *const pairs[][2] = {
        {" .", "."},     {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},   {" 've", "'ve"}, {" 're", "'re"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        replace_all(b, pairs[i][0], pairs[i][1]);
}

emu2_status emu2_tokenizer_decode(const emu2_tokenizer *tok, const int32_t *ids, size_t n_ids,
                                  int skip_special, char **text, emu2_error *err)
{
    if (!tok || (!ids && n_ids) || !text)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "detokenize: missing tokenizer, ids or output");
    *text = NULL;
    const int32_t vocab = emu2_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= vocab)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                             "detokenize: id %d at position %zu is outside the vocabulary (0..%d)",
                             ids[i], i, vocab - 1);
    /* The kept SentencePiece ids of the current run are copied here. */
    int32_t *run = malloc((n_ids ? n_ids : 1) * sizeof *run);
    if (!run)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory while decoding");
    emu2_text_buf out = {0};
    size_t n_run = 0;
    bool first = true; /* no " " before the first sub-text */
    emu2_status st = emu2_text_buf_append(&out, "", 0, err);
    for (size_t i = 0; i <= n_ids && st == EMU2_OK; i++) {
        const bool end = i == n_ids;
        if (!end && skip_special && (tok->flags[ids[i]] & EMU2_TOKF_SKIP))
            continue;
        if (!end && ids[i] < tok->sp_size) {
            run[n_run++] = ids[i];
            continue;
        }
        /* an added token or the end: flush the run, then the token as its own sub-text */
        if (n_run) {
            if (!first)
                st = emu2_text_buf_append(&out, " ", 1, err);
            if (st == EMU2_OK)
                st = convert_run(tok, run, n_run, &out, err);
            n_run = 0;
            first = false;
        }
        if (!end && st == EMU2_OK) {
            const char *piece = emu2_tokenizer_piece(tok, ids[i]);
            if (!first)
                st = emu2_text_buf_append(&out, " ", 1, err);
            if (st == EMU2_OK)
                st = emu2_text_buf_append(&out, piece, strlen(piece), err);
            first = false;
        }
    }
    free(run);
    if (st == EMU2_OK && tok->clean_up_spaces)
        clean_up_spaces(&out);
    if (st != EMU2_OK) {
        free(out.data);
        return st;
    }
    *text = out.data;
    return EMU2_OK;
}
