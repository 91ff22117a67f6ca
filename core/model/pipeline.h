/* pipeline.h: the networks assembled for text generation (EMU2-SPEC.md §1.1):
 *   images -> vision tower -> project_up rows; ids -> embeddings with those rows spliced into the
 *   <image> slots; prefill; the token search (core/generate) stepping the decoder session.
 * Tokenizing, templates and decoding text stay with the caller (core/api). */
#ifndef EMU2_MODEL_PIPELINE_H
#define EMU2_MODEL_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"
#include "generate/generate.h"
#include "io/config.h"
#include "model/weights.h"
#include "ops/ops.h"

/* A tokenized batch: rows x T ids (left padded), its mask, and its images (and video frames) in
 * splice order: the k-th slot in (row, position) order gets the k-th visual row. */
typedef struct emu2_prompt_batch {
    const int32_t *ids;    /* host [rows * T] */
    const uint8_t *mask;   /* host [rows * T], 1 = real; NULL = no padding */
    size_t rows, T;
    int32_t image_token_id; /* the image slot token (<image>): n_query rows per image */
    const float *pixels;    /* host, n_images x [3, S, S] normalized (emu2_image_preprocess) */
    size_t n_images;
    /* Video frames ([<VID_PLH>] expands to [IMG] [gIMG] x v_query [/IMG]): frames are spliced at
     * frame_token_id (the [gIMG] id), v_query rows per frame, when frame_token_id > 0. */
    int32_t frame_token_id;
    const float *frame_pixels; /* host, n_frames x [3, S, S] */
    size_t n_frames;
} emu2_prompt_batch;

/* The decoder input of a batch: embeds (BACKEND, [rows * T, hidden], caller-allocated) = token
 * embeddings with n_query visual rows per image (v_query per video frame) spliced in. Slot counts
 * are checked against the images (and frames) before the vision tower runs. */
emu2_status emu2_prompt_embeds(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                               const emu2_prompt_batch *p, float *embeds, emu2_error *err);

/* The whole generation: prompt embeds, a decoder session sized rows x num_beams by
 * T + max_new_tokens, prefill, emu2_search. ids: bos/eos/pad for the search (normally the config's).
 * on_token as in emu2_search (may be NULL). On success *out owns its items (emu2_search_result_free). */
emu2_status emu2_generate_tokens(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                 const emu2_prompt_batch *p, const emu2_gen_options *opts, emu2_search_ids ids,
                                 emu2_search_token_fn on_token, void *on_token_user, emu2_search_result *out,
                                 emu2_error *err);
/* The same with per-item hooks (streaming per item, per-item stop and cancel; hooks may be NULL). */
emu2_status emu2_generate_tokens_hooked(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                        const emu2_prompt_batch *p, const emu2_gen_options *opts,
                                        emu2_search_ids ids, const emu2_search_hooks *hooks,
                                        emu2_search_result *out, emu2_error *err);

#endif
