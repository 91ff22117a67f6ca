/* decoder_internal.h: the session state shared by decoder.c (forward passes) and decoder_rows.c
 * (row bookkeeping: masks, positions, cache reordering). Only core/model sees this. */
#ifndef EMU2_MODEL_DECODER_INTERNAL_H
#define EMU2_MODEL_DECODER_INTERNAL_H

#include "model/decoder.h"

struct emu2_decoder_session {
    emu2_backend *be;
    const emu2_decoder_weights *w;
    size_t D, I, V, n_layers, heads, head_dim;
    float eps, theta;
    size_t max_rows, max_len, chunk;

    /* cache: per layer [max_rows][max_len][D]; `spare` is one more layer-sized buffer that
     * select_rows gathers into and then swaps with the layer it reordered */
    float **k_cache, **v_cache, *spare;
    size_t rows, len;       /* current rows, positions filled per row */
    uint8_t *mask;          /* host [max_rows][max_len]: 1 = real position */
    int32_t *n_real;        /* host [max_rows]: real positions so far (the next token's position) */

    /* scratch, backend memory, sized for max_rows x chunk token rows */
    float *x, *n, *qkv, *att, *gate, *up, *last, *logits;
    /* scratch, host */
    int32_t *positions, *rows_a; /* [max_rows * chunk] */
    uint8_t *key_mask;           /* [max_rows * max_len] packed for the attention op */
};

#endif
