/* embed_splice.h: the decoder's input embeddings: token embeddings with visual rows spliced into the
 * slot tokens (<image> for images, [gIMG] for video frames), EMU2-SPEC.md §4.4. */
#ifndef EMU2_MODEL_EMBED_SPLICE_H
#define EMU2_MODEL_EMBED_SPLICE_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"
#include "ops/ops.h"

/* out[i, :] = table[ids[i], :] for i < n_ids (ids on the host, checked against the table's rows).
 * out: BACKEND memory [n_ids, D]. */
emu2_status emu2_embed_tokens(emu2_backend *be, const emu2_tensor_view *table, const int32_t *ids, size_t n_ids,
                              float *out, emu2_error *err);

/* Overwrites the rows of `embeds` ([n_ids, D], backend) whose id is slot_id with the rows of
 * `visual` ([n_visual, D], backend), in order: the k-th slot in the flattened (batch, position)
 * order gets visual row k, as PyTorch's boolean-mask assignment does. The number of slots must
 * equal n_visual exactly (EMU2_ERR_MISMATCH otherwise, naming both counts). */
emu2_status emu2_splice_rows(emu2_backend *be, const int32_t *ids, size_t n_ids, int32_t slot_id,
                             const float *visual, size_t n_visual, size_t D, float *embeds, emu2_error *err);

/* Number of ids equal to slot_id. */
size_t emu2_count_slots(const int32_t *ids, size_t n_ids, int32_t slot_id);

#endif
