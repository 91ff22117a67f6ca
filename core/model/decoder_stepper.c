/* decoder_stepper.c: adapts a decoder session to the search's stepper interface. */
#include "model/decoder_stepper.h"

#include "common/error.h"

static emu2_status stepper_step(void *user, const int32_t *tokens, size_t n_rows, float *logits, emu2_error *err)
{
    emu2_decoder_session *s = user;
    if (n_rows != emu2_decoder_rows(s))
        return emu2_fail(err, EMU2_ERR_INTERNAL, "search stepped %zu rows but the decoder holds %zu", n_rows,
                         emu2_decoder_rows(s));
    return emu2_decoder_step(s, tokens, logits, NULL, err);
}

static emu2_status stepper_reorder(void *user, const int32_t *src, size_t n_rows, emu2_error *err)
{
    return emu2_decoder_select_rows(user, n_rows, src, err);
}

void emu2_decoder_stepper(emu2_decoder_session *s, emu2_lm_stepper *out)
{
    out->user = s;
    out->vocab = (int32_t)emu2_decoder_vocab(s);
    out->step = stepper_step;
    out->reorder = stepper_reorder;
}
