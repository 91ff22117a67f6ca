/* sentencepiece_shim.h: a C view of libsentencepiece's SentencePieceProcessor.
 *
 * The only C++ in the engine lives behind this header. Every function catches all exceptions and
 * reports them as an emu2_status, so nothing C++ ever unwinds into C. Buffers returned here are
 * malloc'd (release with free / emu2_free). A loaded processor is read-only: it may be shared by
 * threads. */
#ifndef EMU2_TEXT_SENTENCEPIECE_SHIM_H
#define EMU2_TEXT_SENTENCEPIECE_SHIM_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"
#include "text/buffers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct emu2_sp emu2_sp;

/* Loads a serialized ModelProto from a file / from memory. */
emu2_status emu2_sp_load_file(const char *path, emu2_sp **out, emu2_error *err);
emu2_status emu2_sp_load_memory(const void *data, size_t size, emu2_sp **out, emu2_error *err);
void emu2_sp_free(emu2_sp *sp);

/* Number of pieces (ids 0 .. n-1). */
int32_t emu2_sp_piece_size(const emu2_sp *sp);
/* The piece of id; NULL when id is out of range. Valid as long as sp lives. */
const char *emu2_sp_id_to_piece(const emu2_sp *sp, int32_t id);
/* The id of an exact piece string, or -1 when the vocabulary has no such piece. */
int32_t emu2_sp_piece_to_id(const emu2_sp *sp, const char *piece, size_t len);
int emu2_sp_is_byte(const emu2_sp *sp, int32_t id);
int emu2_sp_is_control(const emu2_sp *sp, int32_t id);
int emu2_sp_is_unknown(const emu2_sp *sp, int32_t id);
/* Reserved ids of the model; -1 when the model defines none. */
int32_t emu2_sp_unk_id(const emu2_sp *sp);
int32_t emu2_sp_bos_id(const emu2_sp *sp);
int32_t emu2_sp_eos_id(const emu2_sp *sp);

/* Encodes len bytes of text (no BOS/EOS) and appends the ids to ids (bounded by ids->max). */
emu2_status emu2_sp_encode_append(const emu2_sp *sp, const char *text, size_t len, emu2_id_vec *ids,
                                  emu2_error *err);
/* Decodes ids as SentencePiece does (byte fallback, dummy-prefix removal) and appends the text to
 * out. Every id must be in range (checked). */
emu2_status emu2_sp_decode_append(const emu2_sp *sp, const int32_t *ids, size_t n_ids,
                                  emu2_text_buf *out, emu2_error *err);

#ifdef __cplusplus
}
#endif
#endif
