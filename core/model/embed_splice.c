/* embed_splice.c: token embedding lookup and the splice of visual rows into slot positions. */
#include "model/embed_splice.h"

#include <stdlib.h>

#include "common/error.h"

emu2_status emu2_embed_tokens(emu2_backend *be, const emu2_tensor_view *table, const int32_t *ids, size_t n_ids,
                              float *out, emu2_error *err)
{
    if (!be || !table || (n_ids && (!ids || !out)))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_embed_tokens: NULL argument");
    if (n_ids == 0)
        return EMU2_OK;
    return be->ops->embedding(be, n_ids, ids, table, out, err);
}

size_t emu2_count_slots(const int32_t *ids, size_t n_ids, int32_t slot_id)
{
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++)
        n += ids[i] == slot_id;
    return n;
}

emu2_status emu2_splice_rows(emu2_backend *be, const int32_t *ids, size_t n_ids, int32_t slot_id,
                             const float *visual, size_t n_visual, size_t D, float *embeds, emu2_error *err)
{
    if (!be || (n_ids && (!ids || !embeds)) || (n_visual && !visual))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_splice_rows: NULL argument");
    size_t n_slots = emu2_count_slots(ids, n_ids, slot_id);
    if (n_slots != n_visual)
        return emu2_fail(err, EMU2_ERR_MISMATCH,
                         "the prompt has %zu slot tokens (id %d) but %zu visual embeddings were computed", n_slots,
                         (int)slot_id, n_visual);
    if (n_slots == 0)
        return EMU2_OK;
    if (n_ids > (size_t)INT32_MAX)
        return emu2_fail(err, EMU2_ERR_LIMIT, "emu2_splice_rows: %zu positions is too many", n_ids);
    int32_t *dst_rows = malloc(n_slots * sizeof *dst_rows);
    if (!dst_rows)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory splicing visual embeddings");
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] == slot_id)
            dst_rows[k++] = (int32_t)i;
    emu2_status st = be->ops->copy_rows(be, n_slots, D, visual, D, n_visual, NULL, embeds, D, n_ids, dst_rows, err);
    free(dst_rows);
    return st;
}
