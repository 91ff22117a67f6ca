/* text_stream.c: ids -> text pieces for streaming (see text_stream.h). */
#include "generate/text_stream.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/search_internal.h"

void emu2_text_stream_init(emu2_text_stream *s, emu2_decode_fn decode, void *decode_user, emu2_token_fn on_token,
                           void *on_token_user)
{
    memset(s, 0, sizeof *s);
    s->decode = decode;
    s->decode_user = decode_user;
    s->on_token = on_token;
    s->on_token_user = on_token_user;
}

void emu2_text_stream_free(emu2_text_stream *s)
{
    if (!s)
        return;
    free(s->ids);
    free(s->shown);
    memset(s, 0, sizeof *s);
}

static int ends_unfinished(const char *text, size_t len)
{
    /* the decoder renders an incomplete byte sequence as U+FFFD (EF BF BD) */
    return len >= 3 && memcmp(text + len - 3, "\xEF\xBF\xBD", 3) == 0;
}

/* The part of the current decode that can be handed out now ("" if none); appends it to shown. */
static emu2_status new_text(emu2_text_stream *s, int final, char **text, const char **piece, emu2_error *err)
{
    *piece = "";
    *text = NULL;
    emu2_status st = s->decode(s->decode_user, s->ids, s->n_ids, text, err);
    if (st != EMU2_OK)
        return st;
    if (!*text)
        return emu2_fail(err, EMU2_ERR_INTERNAL, "text stream: the decoder returned no text");
    size_t len = strlen(*text);
    if (len <= s->shown_len || (s->shown_len && memcmp(*text, s->shown, s->shown_len) != 0))
        return EMU2_OK; /* nothing new, or the text changed behind us: wait */
    if (!final && ends_unfinished(*text, len))
        return EMU2_OK;
    if (len + 1 > s->shown_cap) {
        char *p = realloc(s->shown, len + 1);
        if (!p)
            return emu2_fail(err, EMU2_ERR_NOMEM, "text stream: out of memory for %zu bytes", len + 1);
        s->shown = p;
        s->shown_cap = len + 1;
    }
    memcpy(s->shown + s->shown_len, *text + s->shown_len, len - s->shown_len + 1);
    *piece = *text + s->shown_len;
    s->shown_len = len;
    return EMU2_OK;
}

emu2_status emu2_text_stream_token(void *user, size_t item, int32_t id, int *stop, emu2_error *err)
{
    emu2_text_stream *s = user;
    if (item != 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "text stream: only one item can be streamed (got item %zu)",
                         item);
    emu2_status st = emu2_ids_push(&s->ids, &s->n_ids, &s->cap, id, err);
    if (st != EMU2_OK || !s->on_token)
        return st;
    char *text;
    const char *piece;
    st = new_text(s, 0, &text, &piece, err);
    if (st == EMU2_OK && s->on_token(s->on_token_user, id, piece)) {
        s->stopped = 1;
        *stop = 1;
    }
    emu2_free(text);
    return st;
}

emu2_status emu2_text_stream_finish(emu2_text_stream *s, emu2_error *err)
{
    if (s->stopped || !s->on_token || s->n_ids == 0)
        return EMU2_OK;
    char *text;
    const char *piece;
    emu2_status st = new_text(s, 1, &text, &piece, err);
    if (st == EMU2_OK && piece[0] && s->on_token(s->on_token_user, -1, piece))
        s->stopped = 1;
    emu2_free(text);
    return st;
}
