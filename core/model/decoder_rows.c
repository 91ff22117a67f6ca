/* decoder_rows.c: rebuilding a session's batch from its rows (beam search reorders, prompt expansion). */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/decoder_internal.h"

emu2_status emu2_decoder_select_rows(emu2_decoder_session *s, size_t n_rows, const int32_t *src, emu2_error *err)
{
    if (!s || (n_rows && !src))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_decoder_select_rows: NULL argument");
    if (s->rows == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "select_rows before a successful prefill");
    if (n_rows == 0 || n_rows > s->max_rows)
        return emu2_fail(err, EMU2_ERR_LIMIT, "select_rows: %zu rows (the session holds 1..%zu)", n_rows, s->max_rows);
    for (size_t i = 0; i < n_rows; i++)
        if (src[i] < 0 || (size_t)src[i] >= s->rows)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                             "select_rows: source row %d of new row %zu is not in 0..%zu",
                             (int)src[i], i, s->rows - 1);
    uint8_t *mask = malloc(n_rows * s->max_len);
    int32_t *n_real = malloc(n_rows * sizeof *n_real);
    if (!mask || !n_real) {
        free(mask);
        free(n_real);
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory reordering the KV cache");
    }
    /* Gather each layer into the spare buffer, then swap: one copy per layer, no overlap. A row is
     * max_len positions apart but only the filled prefix is copied. */
    const size_t stride = s->max_len * s->D, cols = s->len * s->D;
    emu2_status st = EMU2_OK;
    for (size_t l = 0; st == EMU2_OK && l < 2 * s->n_layers; l++) {
        float **layer = l < s->n_layers ? &s->k_cache[l] : &s->v_cache[l - s->n_layers];
        st = s->be->ops->copy_rows(s->be, n_rows, cols, *layer, stride, s->rows, src, s->spare, stride, s->max_rows,
                                   NULL, err);
        if (st == EMU2_OK) {
            float *t = *layer;
            *layer = s->spare;
            s->spare = t;
        }
    }
    if (st == EMU2_OK) {
        for (size_t i = 0; i < n_rows; i++) {
            memcpy(mask + i * s->max_len, s->mask + (size_t)src[i] * s->max_len, s->max_len);
            n_real[i] = s->n_real[src[i]];
        }
        memcpy(s->mask, mask, n_rows * s->max_len);
        memcpy(s->n_real, n_real, n_rows * sizeof *n_real);
        s->rows = n_rows;
    } else {
        /* some layers are reordered and some not: the cache is unusable until the next prefill */
        s->rows = 0;
    }
    free(mask);
    free(n_real);
    return st;
}

size_t emu2_decoder_rows(const emu2_decoder_session *s) { return s ? s->rows : 0; }
size_t emu2_decoder_length(const emu2_decoder_session *s) { return s ? s->len : 0; }
size_t emu2_decoder_vocab(const emu2_decoder_session *s) { return s ? s->V : 0; }
