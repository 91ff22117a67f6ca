/* vision_tower.h: EVA-CLIP (post-norm, EMU2-SPEC.md §3) + CLS drop + k x k average pool + project_up:
 * normalized pixels in, the visual rows that replace <image> slots out. */
#ifndef EMU2_MODEL_VISION_TOWER_H
#define EMU2_MODEL_VISION_TOWER_H

#include <stddef.h>

#include "emu2.h"
#include "io/config.h"
#include "model/weights.h"
#include "ops/ops.h"

/* Optional host copies of intermediate results of ONE image (tests, debugging); any may be NULL.
 * Taps apply to the image `image_index` of the call. */
typedef struct emu2_vision_taps {
    size_t image_index;
    float *block_first; /* [n_tokens, width]: residual stream after block 0 */
    float *block_last;  /* [n_tokens, width]: after the last block */
    float *pooled;      /* [n_query, width] */
} emu2_vision_taps;

/* Encodes n_images images. pixels: HOST floats, n_images x [3, S, S] (S = image_size, CLIP-normalized,
 * as emu2_image_preprocess writes them). n_query: tokens per image (cfg->vision.n_query for images,
 * v_query for video frames); it must be a square whose root divides the patch grid.
 * out: BACKEND memory, [n_images * n_query, hidden_size], images in order. taps may be NULL.
 * Images are encoded one at a time (activation memory: a few [n_tokens, intermediate] buffers). */
emu2_status emu2_vision_encode(emu2_backend *be, const emu2_vision_weights *w, const emu2_config *cfg,
                               const float *pixels, size_t n_images, int n_query, float *out,
                               const emu2_vision_taps *taps, emu2_error *err);

#endif
