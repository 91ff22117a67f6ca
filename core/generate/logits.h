/* logits.h: HF 4.31's logits processors and warpers, one row (vocab floats) at a time, in fp32 as
 * torch computes them. Rows are checked for NaN/+inf first (emu2_logits_check), so the helpers
 * below may assume every value is finite or -inf. */
#ifndef EMU2_GENERATE_LOGITS_H
#define EMU2_GENERATE_LOGITS_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"
#include "generate/rng.h"

/* EMU2_ERR_INTERNAL naming row/step when a value is NaN or +inf or the whole row is -inf. */
emu2_status emu2_logits_check(const float *row, int32_t vocab, size_t row_index, size_t step, emu2_error *err);

/* row := log_softmax(row), as (x - max) - log(sum exp(x - max)) like torch's CPU kernel. */
void emu2_log_softmax(float *row, int32_t vocab);

/* RepetitionPenaltyLogitsProcessor: every distinct id of seq[0..n) gets s*p if s < 0 else s/p.
 * mark: vocab bytes of scratch, all zero on entry and on return. */
void emu2_repetition_penalty(float *row, const int32_t *seq, size_t n, float penalty, unsigned char *mark);

/* TemperatureLogitsWarper: row /= temperature. */
void emu2_temperature(float *row, int32_t vocab, float temperature);
/* TopKLogitsWarper: values below the k-th largest become -inf (ties at the k-th are kept).
 * scratch: vocab floats. */
void emu2_top_k(float *row, int32_t vocab, int top_k, int min_keep, float *scratch);
typedef struct emu2_scored_id {
    float value;
    int32_t id;
} emu2_scored_id;
/* TopPLogitsWarper: sort ascending, drop ids whose cumulative softmax (fp32 softmax, cumsum
 * accumulated in double and stored as fp32, as torch does) is <= 1 - top_p, always keeping the
 * min_keep largest. scratch: vocab entries. */
void emu2_top_p(float *row, int32_t vocab, float top_p, int min_keep, emu2_scored_id *scratch);

/* Scratch for the chains below: each array has vocab entries; mark all zero. */
typedef struct emu2_logits_scratch {
    float *topk;
    emu2_scored_id *sorted;
    unsigned char *mark;
} emu2_logits_scratch;

/* HF's logits processors for Emu2's options, in HF's order: repetition penalty over seq (the BOS
 * and the generated ids), then min length (EOS = -inf while seq_len < min_length; seq_len is HF's
 * cur_len). */
void emu2_logits_process(float *row, int32_t vocab, const emu2_gen_options *o, const int32_t *seq, size_t seq_len,
                         int32_t eos, emu2_logits_scratch *scratch);
/* HF's warpers (do_sample only): temperature, top-k, top-p; min_keep is 1, or 2 with beams. */
void emu2_logits_warp(float *row, int32_t vocab, const emu2_gen_options *o, int min_keep,
                      emu2_logits_scratch *scratch);

/* First index of the maximum (torch.argmax). */
int32_t emu2_argmax(const float *row, int32_t vocab);
/* One draw from softmax(row) (torch.multinomial(probs, 1) semantics, our random stream). */
int32_t emu2_sample(const float *row, int32_t vocab, emu2_rng *rng);

#endif
