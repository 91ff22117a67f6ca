/* decoder_join.c: rows joining and leaving a running decoder session (see decoder_join.h). */
#include "model/decoder_join.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/decoder_internal.h"

void emu2_decoder_clear(emu2_decoder_session *s)
{
    if (!s)
        return;
    s->rows = 0;
    s->len = 0;
}

size_t emu2_decoder_room(const emu2_decoder_session *s)
{
    return s ? s->max_len - s->len : 0;
}

size_t emu2_decoder_unused_front(const emu2_decoder_session *s)
{
    if (!s || s->rows == 0)
        return 0;
    size_t front = s->len;
    for (size_t r = 0; r < s->rows && front > 0; r++) {
        const uint8_t *m = s->mask + r * s->max_len;
        size_t t = 0;
        while (t < front && !m[t])
            t++;
        front = t;
    }
    return front;
}

/* New row i = old row src[i] (src NULL: row i), column `from` of the old row moved to column `to`
 * (to < from: a shift left, to > from: right). Each layer is gathered into the spare buffer, which
 * is then swapped in. */
static emu2_status regather(emu2_decoder_session *s, size_t n_rows, const int32_t *src, size_t from, size_t to,
                            emu2_error *err)
{
    const size_t stride = s->max_len * s->D, cols = (s->len - from) * s->D, L = s->max_len;
    uint8_t *mask = malloc(n_rows * L);
    int32_t *n_real = malloc(n_rows * sizeof *n_real);
    emu2_status st = mask && n_real ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory reordering the KV cache");
    for (size_t l = 0; st == EMU2_OK && cols > 0 && l < 2 * s->n_layers; l++) {
        float **layer = l < s->n_layers ? &s->k_cache[l] : &s->v_cache[l - s->n_layers];
        st = s->be->ops->copy_rows(s->be, n_rows, cols, *layer + from * s->D, stride, s->rows, src,
                                   s->spare + to * s->D, stride, s->max_rows, NULL, err);
        if (st == EMU2_OK) {
            float *t = *layer;
            *layer = s->spare;
            s->spare = t;
        } else if (l > 0) {
            s->rows = 0; /* some layers moved and some not: unusable */
        }
    }
    if (st == EMU2_OK) {
        for (size_t i = 0; i < n_rows; i++) {
            size_t r = src ? (size_t)src[i] : i;
            memset(mask + i * L, 0, to);
            memcpy(mask + i * L + to, s->mask + r * L + from, s->len - from);
            n_real[i] = s->n_real[r];
        }
        memcpy(s->mask, mask, n_rows * L);
        memcpy(s->n_real, n_real, n_rows * sizeof *n_real);
        s->rows = n_rows;
        s->len = s->len - from + to;
    }
    free(mask);
    free(n_real);
    return st;
}

static emu2_status shift_cache(emu2_decoder_session *s, size_t from, size_t to, emu2_error *err)
{
    return regather(s, s->rows, NULL, from, to, err);
}

/* New row i = old row src[i] without a column shift, copying only the rows that change: their
 * sources are stashed in the spare buffer first (a source may itself be overwritten), then copied
 * to their places. Beam search keeps most rows on their own parent (about 3 in 4 on the tiny model),
 * so this moves far less than a gather of every row. */
static emu2_status permute_rows(emu2_decoder_session *s, size_t n_rows, const int32_t *src, emu2_error *err)
{
    int32_t *from = malloc(n_rows * sizeof *from), *to = malloc(n_rows * sizeof *to);
    uint8_t *mask = malloc(n_rows * s->max_len);
    int32_t *n_real = malloc(n_rows * sizeof *n_real);
    emu2_status st = from && to && mask && n_real ? EMU2_OK
                                                 : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory reordering the KV cache");
    size_t changed = 0;
    for (size_t i = 0; st == EMU2_OK && i < n_rows; i++)
        if (src[i] != (int32_t)i) {
            from[changed] = src[i];
            to[changed++] = (int32_t)i;
        }
    const size_t stride = s->max_len * s->D, cols = s->len * s->D;
    for (size_t l = 0; st == EMU2_OK && changed > 0 && l < 2 * s->n_layers; l++) {
        float *layer = l < s->n_layers ? s->k_cache[l] : s->v_cache[l - s->n_layers];
        st = s->be->ops->copy_rows(s->be, changed, cols, layer, stride, s->rows, from, s->spare, stride, s->max_rows,
                                   NULL, err);
        if (st == EMU2_OK)
            st = s->be->ops->copy_rows(s->be, changed, cols, s->spare, stride, s->max_rows, NULL, layer, stride,
                                       s->max_rows, to, err);
        if (st != EMU2_OK && l > 0)
            s->rows = 0; /* some layers moved and some not: unusable */
    }
    if (st == EMU2_OK) {
        for (size_t i = 0; i < n_rows; i++) {
            memcpy(mask + i * s->max_len, s->mask + (size_t)src[i] * s->max_len, s->len);
            n_real[i] = s->n_real[src[i]];
        }
        for (size_t i = 0; i < n_rows; i++)
            memcpy(s->mask + i * s->max_len, mask + i * s->max_len, s->len);
        memcpy(s->n_real, n_real, n_rows * sizeof *n_real);
        s->rows = n_rows;
    }
    free(from);
    free(to);
    free(mask);
    free(n_real);
    return st;
}

emu2_status emu2_decoder_gather(emu2_decoder_session *s, size_t n_rows, const int32_t *src, emu2_error *err)
{
    if (!s || !src || n_rows == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_decoder_gather: NULL argument or no rows");
    if (n_rows > s->max_rows)
        return emu2_fail(err, EMU2_ERR_LIMIT, "gather: %zu rows (the session holds 1..%zu)", n_rows, s->max_rows);
    size_t front = s->len;
    for (size_t i = 0; i < n_rows; i++) {
        if (src[i] < 0 || (size_t)src[i] >= s->rows)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "gather: source row %d of new row %zu is not in 0..%zu",
                             (int)src[i], i, s->rows ? s->rows - 1 : 0);
        const uint8_t *m = s->mask + (size_t)src[i] * s->max_len;
        size_t t = 0;
        while (t < front && !m[t])
            t++;
        front = t;
    }
    if (front == s->len) /* rows holding nothing: cannot come from a join */
        return emu2_fail(err, EMU2_ERR_INTERNAL, "gather: the selected rows hold no position");
    return front > 0 ? regather(s, n_rows, src, front, 0, err) : permute_rows(s, n_rows, src, err);
}

emu2_status emu2_decoder_compact(emu2_decoder_session *s, emu2_error *err)
{
    if (!s)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_decoder_compact: NULL session");
    size_t front = emu2_decoder_unused_front(s);
    if (front == 0)
        return EMU2_OK;
    if (front == s->len) { /* no row holds anything (cannot happen after a join) */
        s->len = 0;
        return EMU2_OK;
    }
    return shift_cache(s, front, 0, err);
}

emu2_status emu2_decoder_join(emu2_decoder_session *dst, const emu2_decoder_session *src, size_t row, size_t copies,
                              emu2_error *err)
{
    if (!dst || !src || copies == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_decoder_join: NULL session or no rows");
    if (row >= src->rows)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "decoder join: row %zu of a session holding %zu", row,
                         src->rows);
    if (src->D != dst->D || src->n_layers != dst->n_layers || src->w != dst->w)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "decoder join: the sessions are of different models");
    if (copies > dst->max_rows - dst->rows)
        return emu2_fail(err, EMU2_ERR_LIMIT, "decoder join: %zu more rows do not fit (%zu of %zu used)", copies,
                         dst->rows, dst->max_rows);
    if (src->len > dst->max_len)
        return emu2_fail(err, EMU2_ERR_LIMIT, "decoder join: %zu positions do not fit a session of %zu", src->len,
                         dst->max_len);
    if (dst->rows == 0)
        dst->len = 0;
    emu2_status st = EMU2_OK;
    if (src->len > dst->len && dst->rows > 0)
        st = shift_cache(dst, 0, src->len - dst->len, err);
    if (st != EMU2_OK)
        return st;
    if (src->len > dst->len)
        dst->len = src->len;
    const size_t front = dst->len - src->len, D = dst->D;
    int32_t *at = malloc(copies * sizeof *at), *from = calloc(copies, sizeof *from);
    if (!at || !from) {
        free(at);
        free(from);
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory joining rows");
    }
    for (size_t i = 0; i < copies; i++)
        at[i] = (int32_t)(dst->rows + i);
    const size_t src_stride = src->max_len * D, dst_stride = dst->max_len * D;
    for (size_t l = 0; st == EMU2_OK && l < 2 * dst->n_layers; l++) {
        const float *sl = l < dst->n_layers ? src->k_cache[l] : src->v_cache[l - dst->n_layers];
        float *dl = l < dst->n_layers ? dst->k_cache[l] : dst->v_cache[l - dst->n_layers];
        st = dst->be->ops->copy_rows(dst->be, copies, src->len * D, sl + row * src_stride, src_stride, 1, from,
                                     dl + front * D, dst_stride, dst->max_rows, at, err);
    }
    free(at);
    free(from);
    if (st != EMU2_OK)
        return st; /* the new rows are not counted: the old ones are intact */
    for (size_t i = 0; i < copies; i++) {
        uint8_t *m = dst->mask + (dst->rows + i) * dst->max_len;
        memset(m, 0, front);
        memcpy(m + front, src->mask + row * src->max_len, src->len);
        dst->n_real[dst->rows + i] = src->n_real[row];
    }
    dst->rows += copies;
    return EMU2_OK;
}
