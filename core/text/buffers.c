/* buffers.c: see buffers.h. */
#include "text/buffers.h"

#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"

static emu2_status grow_ids(emu2_id_vec *v, size_t need, emu2_error *err)
{
    if (need <= v->cap)
        return EMU2_OK;
    size_t cap = v->cap ? v->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 4 ? need : cap * 2;
    size_t bytes;
    if (!emu2_mul_size(cap, sizeof *v->data, &bytes))
        return emu2_fail(err, EMU2_ERR_NOMEM, "token id array too large");
    int32_t *p = realloc(v->data, bytes);
    if (!p)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for %zu token ids", cap);
    v->data = p;
    v->cap = cap;
    return EMU2_OK;
}

emu2_status emu2_id_vec_push_n(emu2_id_vec *v, int32_t id, size_t count, emu2_error *err)
{
    size_t need;
    if (!emu2_add_size(v->len, count, &need) || need > v->max)
        return emu2_fail(err, EMU2_ERR_LIMIT, "the prompt needs more than %zu token ids", v->max);
    emu2_status st = grow_ids(v, need, err);
    if (st != EMU2_OK)
        return st;
    for (size_t i = 0; i < count; i++)
        v->data[v->len++] = id;
    return EMU2_OK;
}

emu2_status emu2_id_vec_push(emu2_id_vec *v, int32_t id, emu2_error *err)
{
    return emu2_id_vec_push_n(v, id, 1, err);
}

emu2_status emu2_text_buf_append(emu2_text_buf *b, const char *s, size_t n, emu2_error *err)
{
    size_t need;
    if (!emu2_add_size(b->len, n, &need) || !emu2_add_size(need, 1, &need))
        return emu2_fail(err, EMU2_ERR_NOMEM, "decoded text too large");
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < need)
            cap = cap > SIZE_MAX / 4 ? need : cap * 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for %zu bytes of text", cap);
        b->data = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return EMU2_OK;
}
