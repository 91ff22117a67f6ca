/* rng.h: the sampler's random numbers. A small seeded generator (xoshiro256** seeded through
 * splitmix64) kept in a struct, so every search has its own stream and the library holds no
 * global state. Same seed -> same sequence on every platform. */
#ifndef EMU2_GENERATE_RNG_H
#define EMU2_GENERATE_RNG_H

#include <stdint.h>

typedef struct emu2_rng {
    uint64_t s[4];
} emu2_rng;

void emu2_rng_seed(emu2_rng *rng, uint64_t seed);
uint64_t emu2_rng_next(emu2_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
double emu2_rng_uniform(emu2_rng *rng);

#endif
