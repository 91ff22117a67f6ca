/* decoder_stepper.h: a decoder session seen as the token search's emu2_lm_stepper (core/generate):
 * step = emu2_decoder_step, reorder = emu2_decoder_select_rows, and step_topk / last_logits where
 * the backend has the top_k op (only k candidates per row leave the device). */
#ifndef EMU2_MODEL_DECODER_STEPPER_H
#define EMU2_MODEL_DECODER_STEPPER_H

#include "generate/generate.h"
#include "generate/search_item.h"
#include "model/decoder.h"

/* Fills *out for session s (which must outlive it). Prefill s first: emu2_search starts from the
 * rows the session holds and the logits of that prefill. */
void emu2_decoder_stepper(emu2_decoder_session *s, emu2_lm_stepper *out);

/* Continuous batching (several searches on one session): a step whose logits stay in backend
 * memory (emu2_decoder_step_resident, decoder.h), then per request emu2_decoder_item_next, which hands its search the rows
 * [row0, row0 + rows of the search) as top-k candidates where the search can use them (only those
 * leave the backend), else downloads them into host_rows ([rows, vocab] scratch) for
 * emu2_item_search_next. Same choices either way. */
emu2_status emu2_decoder_item_next(emu2_decoder_session *s, size_t row0, emu2_item_search *item, float *host_rows,
                                   int32_t *tokens, int32_t *src, int *live, emu2_error *err);

/* Whether $EMU2_SEARCH_FULL_LOGITS (set, not "" or "0") asks for the full-logits path: then the
 * stepper offers no step_topk and every step downloads [rows, vocab] logits. */
int emu2_search_full_logits_forced(void);

#endif
