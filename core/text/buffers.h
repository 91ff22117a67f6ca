/* buffers.h: growable id arrays and text buffers for the tokenizer (malloc'd, so the final arrays can
 * be handed to callers and released with emu2_free). */
#ifndef EMU2_TEXT_BUFFERS_H
#define EMU2_TEXT_BUFFERS_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Token ids; max bounds len so untrusted prompts cannot grow it without limit. */
typedef struct emu2_id_vec {
    int32_t *data;
    size_t len, cap, max;
} emu2_id_vec;

/* Fails with EMU2_ERR_LIMIT past v->max ids, EMU2_ERR_NOMEM when allocation fails. */
emu2_status emu2_id_vec_push(emu2_id_vec *v, int32_t id, emu2_error *err);
emu2_status emu2_id_vec_push_n(emu2_id_vec *v, int32_t id, size_t count, emu2_error *err);

/* Bytes, always NUL-terminated once anything was appended. */
typedef struct emu2_text_buf {
    char *data;
    size_t len, cap;
} emu2_text_buf;

emu2_status emu2_text_buf_append(emu2_text_buf *b, const char *s, size_t n, emu2_error *err);

#ifdef __cplusplus
}
#endif
#endif
