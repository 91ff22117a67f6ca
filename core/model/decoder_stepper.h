/* decoder_stepper.h: a decoder session seen as the token search's emu2_lm_stepper (core/generate):
 * step = emu2_decoder_step, reorder = emu2_decoder_select_rows. */
#ifndef EMU2_MODEL_DECODER_STEPPER_H
#define EMU2_MODEL_DECODER_STEPPER_H

#include "generate/generate.h"
#include "model/decoder.h"

/* Fills *out for session s (which must outlive it). Prefill s first: emu2_search starts from the
 * rows the session holds and the logits of that prefill. */
void emu2_decoder_stepper(emu2_decoder_session *s, emu2_lm_stepper *out);

#endif
