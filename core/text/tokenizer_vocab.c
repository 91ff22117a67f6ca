/* tokenizer_vocab.c: id <-> token lookups of a loaded tokenizer. */
#include <string.h>

#include "text/tokenizer_internal.h"

int32_t emu2_tokenizer_token_id(const emu2_tokenizer *tok, const char *token)
{
    if (!tok || !token || !*token)
        return -1;
    size_t len = strlen(token);
    int32_t v = -1;
    /* convert_tokens_to_ids: added tokens first, then the SentencePiece vocabulary. */
    if (emu2_token_matcher_longest(tok->matcher, token, len, 0, &v) == len)
        return tok->split[v].id;
    return emu2_sp_piece_to_id(tok->sp, token, len);
}

int32_t emu2_tokenizer_vocab_size(const emu2_tokenizer *tok)
{
    return tok ? tok->sp_size + (int32_t)tok->n_added : 0;
}

const char *emu2_tokenizer_piece(const emu2_tokenizer *tok, int32_t id)
{
    if (!tok || id < 0)
        return NULL;
    if (id < tok->sp_size)
        return emu2_sp_id_to_piece(tok->sp, id);
    if ((size_t)(id - tok->sp_size) < tok->n_added)
        return tok->split[tok->added_split[id - tok->sp_size]].text;
    return NULL;
}

int32_t emu2_tokenizer_bos_id(const emu2_tokenizer *tok)
{
    return tok ? tok->bos_id : -1;
}

int32_t emu2_tokenizer_eos_id(const emu2_tokenizer *tok)
{
    return tok ? tok->eos_id : -1;
}

int32_t emu2_tokenizer_pad_id(const emu2_tokenizer *tok)
{
    return tok ? tok->pad_id : -1;
}

size_t emu2_tokenizer_added_count(const emu2_tokenizer *tok)
{
    return tok ? tok->n_added : 0;
}
