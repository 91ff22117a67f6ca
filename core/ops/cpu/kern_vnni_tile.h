/* kern_vnni_tile.h: what the AVX-512 VNNI tile kernels (kern_q8_vnni.c, kern_q4_vnni.c) share: their
 * target, and the 4 x 4 block of f32 accumulators a<m><n> (activation row m, weight row n) that their
 * TILE_* macros add into, summed into out[m][n] at the end. x86 only; include after <immintrin.h>. */
#ifndef EMU2_OPS_CPU_KERN_VNNI_TILE_H
#define EMU2_OPS_CPU_KERN_VNNI_TILE_H

#include "ops/cpu/kern_q8q4.h"

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

/* How far ahead of its use the int4 decode row kernel (cpu_q4_vnni_dot) prefetches the weight
 * stream, in bytes. A decode step walks ~100 matrices of 2-22 MB one after another, and the hardware
 * prefetchers restart on each; 0.94B model, int4 preset, 1 thread, one run: none 41.6, 1 KiB 46.4,
 * 4 KiB 49.4, 8 KiB 52.0, 16 KiB 49.9 tokens/s (that run also prefetched an int8 row-kernel trial,
 * since dropped: docs/QUANT.md). */
#define CPU_VNNI_ROW_PREFETCH 8192

/* Declares the accumulators a00 .. a33, all zero (named variables: they stay in registers). */
#define VNNI_TILE_ACCUMULATORS                                                                                      \
    __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00, \
           a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00

/* out[m][n] = the sum of a<m><n>'s 16 lanes. */
#define VNNI_TILE_STORE(out)                                                                                        \
    vnni_tile_store(out, (const __m512[CPU_VNNI_TM][CPU_Q_ROWS]){                                                   \
                             {a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}})

static inline __attribute__((always_inline)) VNNI void vnni_tile_store(float out[CPU_VNNI_TM][CPU_Q_ROWS],
                                                                       const __m512 acc[CPU_VNNI_TM][CPU_Q_ROWS])
{
    for (size_t m = 0; m < CPU_VNNI_TM; m++)
        for (size_t n = 0; n < CPU_Q_ROWS; n++)
            out[m][n] = _mm512_reduce_add_ps(acc[m][n]);
}

#endif
