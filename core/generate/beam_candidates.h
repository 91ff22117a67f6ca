/* beam_candidates.h: the 2*num_beams candidates of one batch item per beam step, picked from its
 * num_beams x vocab scores (flat index = beam * vocab + token), best score first. */
#ifndef EMU2_GENERATE_BEAM_CANDIDATES_H
#define EMU2_GENERATE_BEAM_CANDIDATES_H

#include <stddef.h>

#include "generate/rng.h"

typedef struct emu2_beam_candidate {
    float score;
    size_t flat;
} emu2_beam_candidate;

/* beam_search: torch.topk(k, sorted) over scores[0..total); among equal scores the lower flat index
 * comes first. Returns min(k, total). */
size_t emu2_beam_top(const float *scores, size_t total, size_t k, emu2_beam_candidate *top);

/* beam_sample: k draws without replacement from softmax(scores) (torch.multinomial semantics, our
 * random stream), then sorted by score, best first. weights: total doubles of scratch. If fewer
 * than k ids have any probability, the best remaining ones fill up (torch would refuse). Returns
 * min(k, total). */
size_t emu2_beam_draw(const float *scores, size_t total, size_t k, double *weights, emu2_rng *rng,
                      emu2_beam_candidate *top);

#endif
