/* text_stream.h: turns generated ids into the text pieces of emu2_gen_options.on_token.
 *
 * A SentencePiece id is not a piece of text on its own: a leading "▁" becomes a space except at the
 * start, and byte-fallback ids (<0xE3>...) only make a character together. So the stream decodes
 * all ids of the item so far and hands out the new suffix of the text; while the text ends in
 * U+FFFD (an unfinished UTF-8 character) or no longer extends what was handed out, it waits. At the
 * end, emu2_text_stream_finish hands out what is left. The concatenated pieces then equal the final
 * decode whenever the decode of a prefix is a prefix of the decode (true for this tokenizer apart
 * from unfinished characters).
 *
 *   emu2_text_stream ts;  emu2_text_stream_init(&ts, decode, tok, opts->on_token, opts->on_token_user, err);
 *   emu2_search(lm, logits, 1, opts, ids, emu2_text_stream_token, &ts, &res, err);
 *   emu2_text_stream_finish(&ts, err);  emu2_text_stream_free(&ts);
 * One item (batch 1): the public callback has no item index. */
#ifndef EMU2_GENERATE_TEXT_STREAM_H
#define EMU2_GENERATE_TEXT_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

/* Decodes ids to UTF-8 text (e.g. emu2_tokenizer_decode with skip_special); *text: emu2_free. */
typedef emu2_status (*emu2_decode_fn)(void *user, const int32_t *ids, size_t n_ids, char **text, emu2_error *err);

typedef struct emu2_text_stream {
    emu2_decode_fn decode;
    void *decode_user;
    emu2_token_fn on_token;
    void *on_token_user;
    int32_t *ids;
    size_t n_ids, cap;
    char *shown;     /* the text handed out so far */
    size_t shown_len, shown_cap;
    int stopped;     /* on_token returned non-zero */
} emu2_text_stream;

void emu2_text_stream_init(emu2_text_stream *s, emu2_decode_fn decode, void *decode_user, emu2_token_fn on_token,
                           void *on_token_user);
void emu2_text_stream_free(emu2_text_stream *s);
/* An emu2_search_token_fn (user = the stream): records id and calls on_token(user, id, piece) with
 * the new text ("" while it waits); a non-zero return sets *stop. Item must be 0. */
emu2_status emu2_text_stream_token(void *user, size_t item, int32_t id, int *stop, emu2_error *err);
/* Hands out the text still held back (a trailing unfinished character) as on_token(user, -1,
 * piece); nothing when there is none or after a stop. */
emu2_status emu2_text_stream_finish(emu2_text_stream *s, emu2_error *err);

#endif
