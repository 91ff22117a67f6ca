/* roofline.h: the machine's own limits, measured in the same run as the engine so ratios against them
 * mean something on a shared or throttled machine:
 *   copy bandwidth  threads x memcpy of disjoint slices of a 256 MiB buffer (read + written bytes)
 *   read bandwidth  threads x vector sums of disjoint slices of a 256 MiB buffer (what decode does to weights)
 *   FMA peak        threads x independent chains of f32 fused multiply-adds (AVX-512, else AVX2+FMA) */
#ifndef EMU2_BENCH_ROOFLINE_H
#define EMU2_BENCH_ROOFLINE_H

#include <stddef.h>

/* Seconds of one copy of `bytes` bytes (each byte read once and written once) by `threads` threads;
 * the buffers are allocated and touched by the caller's first call. Returns < 0 if out of memory. */
double roofline_copy_seconds(int threads, size_t bytes);
/* Seconds of one read of `bytes` bytes by `threads` threads (vector loads + adds); 0 without AVX2,
 * < 0 if out of memory. */
double roofline_read_seconds(int threads, size_t bytes);
/* Seconds of `flop` f32 FLOP (2 per FMA) spread over `threads` threads; 0 FLOP if no FMA unit. */
double roofline_fma_seconds(int threads, double flop, const char **isa);

#endif
