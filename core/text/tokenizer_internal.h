/* tokenizer_internal.h: the emu2_tokenizer struct, shared by tokenizer_load.c (building it),
 * tokenizer_encode.c and tokenizer_decode.c. Not part of the API. */
#ifndef EMU2_TEXT_TOKENIZER_INTERNAL_H
#define EMU2_TEXT_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "text/sentencepiece_shim.h"
#include "text/token_matcher.h"
#include "text/tokenizer.h"

/* One token the text is split on before SentencePiece sees it (an added token, or a special token
 * that is a SentencePiece piece such as <s>). */
typedef struct emu2_split_token {
    char *text;
    size_t len;
    int32_t id;
    bool lstrip; /* eats the whitespace at the end of the text before it */
    bool rstrip; /* eats the whitespace at the start of the text after it */
} emu2_split_token;

/* Per-id decode flags. */
enum {
    EMU2_TOKF_SKIP = 1,   /* in all_special_ids: dropped by decode(skip_special) */
    EMU2_TOKF_STRING = 2, /* a special token string: kept out of SentencePiece decoding */
};

struct emu2_tokenizer {
    emu2_sp *sp;
    int32_t sp_size;
    size_t n_added;        /* added tokens: ids sp_size .. sp_size + n_added - 1 */
    int32_t *added_split;  /* split entry of each added id */
    emu2_split_token *split; /* the matcher's values index this array */
    size_t n_split;
    emu2_token_matcher *matcher;
    unsigned char *flags;  /* EMU2_TOKF_* per id, sp_size + n_added entries */
    int32_t bos_id, eos_id, pad_id;
    bool add_bos, add_eos;
    bool clean_up_spaces; /* decode: clean_up_tokenization_spaces */
    int32_t img_id, img_end_id, image_id; /* [IMG], [/IMG], <image>; -1 if absent */
};

#endif
