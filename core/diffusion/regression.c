/* regression.c: the UNet conditions from the multimodal encoder (regression.h). */
#include "diffusion/regression.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/decoder.h"
#include "model/vision_tower.h"

emu2_status dif_visual_regression(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                  const emu2_prompt_batch *p, float *v, emu2_error *err)
{
    if (!be || !w || !cfg || !p || !v || p->rows != 1 || p->mask)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "visual regression: one unpadded prompt row is needed");
    if (!w->decoder.has_project_down)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "the checkpoint has no project_down.weight: not an Emu2-Gen multimodal encoder");
    const emu2_ops *o = be->ops;
    const size_t D = (size_t)cfg->hidden_size, W = (size_t)cfg->vision.width, nq = (size_t)cfg->vision.n_query;
    const size_t T = p->T;
    float *embeds = o->alloc(be, T * D, err);
    float *hb = embeds ? o->alloc(be, D, err) : NULL, *vb = hb ? o->alloc(be, W, err) : NULL;
    float *eb = vb ? o->alloc(be, D, err) : NULL, *hidden = malloc(D * sizeof *hidden);
    emu2_decoder_session *s = NULL;
    emu2_status st = eb && hidden ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the regression");
    emu2_decoder_limits lim = {1, T + nq - 1, 0};
    if (st == EMU2_OK)
        st = emu2_prompt_embeds(be, w, cfg, p, embeds, err);
    if (st == EMU2_OK)
        st = emu2_decoder_session_create(be, &w->decoder, cfg, &lim, &s, err);
    if (st == EMU2_OK)
        st = emu2_decoder_prefill(s, 1, T, embeds, NULL, NULL, hidden, err);
    /* the [IMG] position yields v_0; appended slot j yields v_j (EMU2-SPEC.md §6.1 off-by-one) */
    for (size_t j = 0; j < nq && st == EMU2_OK; j++) {
        st = o->upload(be, hb, hidden, D, err);
        if (st == EMU2_OK)
            st = o->linear(be, 1, D, W, hb, D, &w->decoder.project_down, NULL, vb, W, err);
        if (st == EMU2_OK)
            st = o->download(be, v + j * W, vb, W, err);
        if (st == EMU2_OK && j + 1 < nq) {
            st = o->linear(be, 1, W, D, vb, W, &w->vision.project_up, NULL, eb, D, err);
            if (st == EMU2_OK)
                st = emu2_decoder_step_embeds(s, eb, NULL, hidden, err);
        }
    }
    emu2_decoder_session_free(s);
    if (embeds)
        o->free(be, embeds);
    if (hb)
        o->free(be, hb);
    if (vb)
        o->free(be, vb);
    if (eb)
        o->free(be, eb);
    free(hidden);
    return st;
}

emu2_status dif_autoencode_condition(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                     const float *pixels, float *pooled, emu2_error *err)
{
    const size_t S = (size_t)cfg->vision.image_size, nq = (size_t)cfg->vision.n_query;
    float *zeros = pixels ? NULL : calloc(3 * S * S, sizeof *zeros);
    float *up = be->ops->alloc(be, nq * (size_t)cfg->hidden_size, err);
    emu2_status st = (pixels || zeros) && up ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    emu2_vision_taps taps = {0, NULL, NULL, pooled};
    if (st == EMU2_OK)
        st = emu2_vision_encode(be, &w->vision, cfg, pixels ? pixels : zeros, 1, (int)nq, up, &taps, err);
    if (up)
        be->ops->free(be, up);
    free(zeros);
    return st;
}
