/* beam_candidates.c: top-k and sampled candidates of a beam step (see beam_candidates.h). */
#include "generate/beam_candidates.h"

#include <math.h>

/* Inserts c into top[0..n) (sorted by score, best first; equal scores keep their arrival order). */
static void insert_sorted(emu2_beam_candidate *top, size_t n, emu2_beam_candidate c)
{
    size_t pos = n;
    while (pos > 0 && top[pos - 1].score < c.score) {
        top[pos] = top[pos - 1];
        pos--;
    }
    top[pos] = c;
}

size_t emu2_beam_top(const float *scores, size_t total, size_t k, emu2_beam_candidate *top)
{
    size_t n = 0;
    if (k > total)
        k = total;
    for (size_t f = 0; f < total && k > 0; f++) {
        float v = scores[f];
        if (n == k && !(v > top[n - 1].score))
            continue;
        /* when full, the last (worst) entry drops out */
        insert_sorted(top, n < k ? n : k - 1, (emu2_beam_candidate){v, f});
        if (n < k)
            n++;
    }
    return n;
}

/* Index of one draw from weights (mass > 0); the last id with weight on rounding at the top. */
static size_t draw_one(const double *weights, size_t total, double mass, emu2_rng *rng)
{
    double r = emu2_rng_uniform(rng) * mass, acc = 0.0;
    size_t last = total;
    for (size_t f = 0; f < total; f++) {
        if (weights[f] <= 0.0)
            continue;
        acc += weights[f];
        last = f;
        if (r < acc)
            return f;
    }
    return last;
}

size_t emu2_beam_draw(const float *scores, size_t total, size_t k, double *weights, emu2_rng *rng,
                      emu2_beam_candidate *top)
{
    if (k > total)
        k = total;
    float m = -INFINITY;
    for (size_t f = 0; f < total; f++)
        if (scores[f] > m)
            m = scores[f];
    for (size_t f = 0; f < total; f++)
        weights[f] = scores[f] == -INFINITY ? 0.0 : exp((double)scores[f] - (double)m);
    size_t n = 0;
    for (; n < k; n++) {
        double mass = 0.0; /* summed afresh each draw: no drift from subtracting */
        for (size_t f = 0; f < total; f++)
            mass += weights[f];
        size_t pick = total;
        if (mass > 0.0) {
            pick = draw_one(weights, total, mass, rng);
        } else { /* no probability left: the best id not taken yet */
            for (size_t f = 0; f < total; f++) {
                int taken = 0;
                for (size_t j = 0; j < n && !taken; j++)
                    taken = top[j].flat == f;
                if (!taken && (pick == total || scores[f] > scores[pick]))
                    pick = f;
            }
        }
        weights[pick] = 0.0;
        insert_sorted(top, n, (emu2_beam_candidate){scores[pick], pick});
    }
    return n;
}
