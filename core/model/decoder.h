/* decoder.h: the LLaMA decoder (EMU2-SPEC.md §4) as a session with a KV cache, the model side of
 * generation (core/generate/ drives it):
 *
 *   emu2_decoder_session_create(be, &weights->decoder, cfg, max_rows, max_len, &s, err);
 *   emu2_decoder_prefill(s, rows, T, embeds, mask, logits, NULL, err); // last-position logits per row
 *   loop: emu2_decoder_step(s, next_ids, logits, NULL, err);          // one token per row
 *         emu2_decoder_select_rows(s, n, src, err);                    // beam search: row i <- row src[i]
 *
 * Rows: every row of the batch (batch x beams) has the same length (left padding); the attention
 * mask of the prompt is kept, and each generated token is a real (mask 1) position.
 * Position ids follow transformers 4.31 generate(): prompt positions are cumsum(mask) - 1 with padded
 * slots at 1, and a generated token's position is the number of real positions before it.
 * Math in f32 (weights read in their stored dtype; RoPE cos/sin in f32, no bf16 rounding).
 * Logits and hidden outputs are HOST memory; embeddings given to prefill/step_embeds are BACKEND
 * memory (what emu2_embed_tokens / emu2_splice_rows write). A session has one caller at a time. */
#ifndef EMU2_MODEL_DECODER_H
#define EMU2_MODEL_DECODER_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"
#include "io/config.h"
#include "model/weights.h"
#include "ops/ops.h"

typedef struct emu2_decoder_session emu2_decoder_session;

typedef struct emu2_decoder_limits {
    size_t max_rows;      /* rows the cache holds (batch x beams) */
    size_t max_len;       /* positions per row: prompt + generated tokens */
    size_t prefill_chunk; /* prompt positions per row per pass (bounds activation memory); 0 = 256 */
} emu2_decoder_limits;

/* Allocates the KV cache (2 x layers x max_rows x max_len x hidden f32) and scratch buffers. The
 * weights (and the checkpoint they view) must outlive the session. */
emu2_status emu2_decoder_session_create(emu2_backend *be, const emu2_decoder_weights *w, const emu2_config *cfg,
                                        const emu2_decoder_limits *limits, emu2_decoder_session **out,
                                        emu2_error *err);
void emu2_decoder_session_free(emu2_decoder_session *s);

/* Starts over with `rows` sequences of T positions (the cache is reset). embeds: BACKEND [rows, T, D].
 * mask: HOST [rows, T], 1 = real token, 0 = padding (NULL = all real); every row needs at least one
 * real position. logits: HOST [rows, vocab] at the last position of each row (NULL: not computed);
 * hidden: HOST [rows, D], the final-norm output at the last position (the lm_head input; NULL: not
 * copied). */
emu2_status emu2_decoder_prefill(emu2_decoder_session *s, size_t rows, size_t T, const float *embeds,
                                 const uint8_t *mask, float *logits, float *hidden, emu2_error *err);

/* Appends one token per row: ids HOST [rows] (checked against the vocabulary). Outputs as prefill. */
emu2_status emu2_decoder_step(emu2_decoder_session *s, const int32_t *ids, float *logits, float *hidden,
                              emu2_error *err);
/* The same, with the logits left in backend memory (the session's lm_head output, inside the step
 * and so inside a backend's step graph) for the top_k op: decoder_stepper.h. */
emu2_status emu2_decoder_step_resident(emu2_decoder_session *s, const int32_t *ids, emu2_error *err);
/* The same with an embedding per row instead of a token (BACKEND [rows, D]): Emu2-Gen's regression
 * feeds project_up of its own output back. */
emu2_status emu2_decoder_step_embeds(emu2_decoder_session *s, const float *embeds, float *logits, float *hidden,
                                     emu2_error *err);

/* Rebuilds the batch from existing rows: new row i continues old row src[i] (its cache, mask and
 * position). n_rows may differ from the current count (up to max_rows): e.g. expanding a prompt
 * prefilled once into num_beams rows, or keeping the chosen beams. src: HOST [n_rows]. */
emu2_status emu2_decoder_select_rows(emu2_decoder_session *s, size_t n_rows, const int32_t *src, emu2_error *err);

size_t emu2_decoder_rows(const emu2_decoder_session *s);   /* current rows */
size_t emu2_decoder_length(const emu2_decoder_session *s); /* positions filled per row */
size_t emu2_decoder_vocab(const emu2_decoder_session *s);

#endif
