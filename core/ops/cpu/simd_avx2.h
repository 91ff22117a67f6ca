/* simd_avx2.h: what the AVX2 kernel files (kern_avx2.c, kern_q8q4_avx2.c) share: the target
 * attribute their functions carry (no -m flags: isa.c checks the CPU before any of them runs) and
 * the horizontal sum. Include only on x86. */
#ifndef EMU2_OPS_CPU_SIMD_AVX2_H
#define EMU2_OPS_CPU_SIMD_AVX2_H

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE2 static inline __attribute__((always_inline)) AVX2

/* The sum of the 8 lanes. */
INLINE2 float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif
