/* decoder_join.h: a decoder session whose rows come and go between steps (continuous batching).
 * Rows are prefilled alone in a second session and joined into the running one, right-aligned so
 * that every row's next token lands at the same position; the positions in front of a shorter row
 * are masked. Rows leave through emu2_decoder_select_rows (or emu2_decoder_clear when none is
 * left). Since rows only ever start later than the oldest one, the masked front of every row grows
 * as old rows leave: emu2_decoder_compact drops the columns no row uses, so the cache never holds
 * more positions than the longest-lived request needs. */
#ifndef EMU2_MODEL_DECODER_JOIN_H
#define EMU2_MODEL_DECODER_JOIN_H

#include "model/decoder.h"

/* No rows, no positions: the next join starts the session afresh. */
void emu2_decoder_clear(emu2_decoder_session *s);

/* Appends `copies` rows to dst, each continuing row `row` of src (a session of the same model,
 * prefilled): cache, mask and position copied, aligned so that all rows end at the same column
 * (dst's existing rows are shifted right when src is longer). Fails with EMU2_ERR_LIMIT when dst
 * has no room for the rows or the positions. */
emu2_status emu2_decoder_join(emu2_decoder_session *dst, const emu2_decoder_session *src, size_t row, size_t copies,
                              emu2_error *err);

/* Columns at the front of every row that no row uses (masked in all of them). */
size_t emu2_decoder_unused_front(const emu2_decoder_session *s);
/* Drops those columns (one gather of the cache); nothing to do is fine. */
emu2_status emu2_decoder_compact(emu2_decoder_session *s, emu2_error *err);
/* emu2_decoder_select_rows that also drops the front columns none of the selected rows uses (the
 * same single gather of the cache); with no such column, only the rows that change are copied. */
emu2_status emu2_decoder_gather(emu2_decoder_session *s, size_t n_rows, const int32_t *src, emu2_error *err);
/* Positions left before the session is full. */
size_t emu2_decoder_room(const emu2_decoder_session *s);

#endif
