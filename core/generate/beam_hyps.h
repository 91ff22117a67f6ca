/* beam_hyps.h: the n-best list of finished hypotheses of one batch item (HF 4.31 BeamHypotheses).
 * Scores are doubles as in HF's Python: sum_logprobs / L^length_penalty, L = 1 + tokens (the BOS
 * that generate(inputs_embeds=...) prepends is counted; EOS is not). */
#ifndef EMU2_GENERATE_BEAM_HYPS_H
#define EMU2_GENERATE_BEAM_HYPS_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

typedef struct emu2_beam_hyp {
    double score;
    int32_t *tokens; /* owned; generated ids, EOS excluded */
    size_t n_tokens;
    int ended_by_eos;
} emu2_beam_hyp;

typedef struct emu2_beam_hyps {
    size_t num_beams;
    double length_penalty;
    emu2_beam_hyp *beams; /* list order matters for ties, as in HF; capacity num_beams + 1 */
    size_t count;
    double worst_score;
} emu2_beam_hyps;

emu2_status emu2_beam_hyps_init(emu2_beam_hyps *h, size_t num_beams, double length_penalty, emu2_error *err);
void emu2_beam_hyps_free(emu2_beam_hyps *h);
/* BeamHypotheses.add: keeps it if there is room or it beats the worst (copies tokens then). */
emu2_status emu2_beam_hyps_add(emu2_beam_hyps *h, const int32_t *tokens, size_t n_tokens, float sum_logprobs,
                               int ended_by_eos, emu2_error *err);
/* BeamHypotheses.is_done with early_stopping=False; cur_len counts the BOS. */
int emu2_beam_hyps_is_done(const emu2_beam_hyps *h, float best_sum_logprobs, size_t cur_len);
/* The winner of finalize(): the highest score; among equal scores the one latest in the list. NULL
 * when empty. */
const emu2_beam_hyp *emu2_beam_hyps_best(const emu2_beam_hyps *h);

#endif
