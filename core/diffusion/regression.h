/* regression.h: Emu2-Gen's conditions for the UNet (EMU2-SPEC.md §1.3, §6.1):
 *   generation mode: the LLM's visual regression in its KV-cache form: prefill BOS + prompt
 *     (images spliced) + [IMG] -> v_0 = project_down(final-norm hidden state at [IMG]); then
 *     n_query - 1 decode steps, each feeding project_up(v_{j-1}) as the next input embedding;
 *   autoencoding mode: pool(EVA(image)) of one image, no LLM, no project_up; its negative is the
 *     same for an all-zero normalized image. */
#ifndef EMU2_DIFFUSION_REGRESSION_H
#define EMU2_DIFFUSION_REGRESSION_H

#include "io/config.h"
#include "model/pipeline.h"
#include "model/weights.h"
#include "ops/ops.h"

/* p: one row (rows = 1, no mask) ending with the [IMG] token. v: host [n_query, vision width]. */
emu2_status dif_visual_regression(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                  const emu2_prompt_batch *p, float *v, emu2_error *err);

/* pixels: host [3, S, S] (normalized), or NULL for the all-zero normalized image.
 * pooled: host [n_query, vision width]. */
emu2_status dif_autoencode_condition(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                     const float *pixels, float *pooled, emu2_error *err);

#endif
