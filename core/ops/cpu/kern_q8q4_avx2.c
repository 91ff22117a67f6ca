/* kern_q8q4_avx2.c: AVX2 (+FMA) int8/int4 dot kernels, the AVX-512 ones on 8 lanes (see there).
 * The int8 K tail and a partial int4 group go through scalar code. */
#include "ops/cpu/kern_q8q4.h"

#if defined(__x86_64__) || defined(__i386__)
#include "ops/cpu/simd_avx2.h"

INLINE2 __m256 q8_8(const int8_t *p)
{
    __m128i b;
    b = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
}

AVX2 static void avx2_dot_q8(const float *x, const int8_t *w, size_t K, size_t nr, const void *scales, float *out)
{
    const int8_t *r[CPU_Q_ROWS];
    cpu_q8_rows(w, K, nr, r);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv = _mm256_loadu_ps(x + k);
        a0 = _mm256_fmadd_ps(q8_8(r[0] + k), xv, a0);
        a1 = _mm256_fmadd_ps(q8_8(r[1] + k), xv, a1);
        a2 = _mm256_fmadd_ps(q8_8(r[2] + k), xv, a2);
        a3 = _mm256_fmadd_ps(q8_8(r[3] + k), xv, a3);
    }
    float sums[CPU_Q_ROWS] = {hsum8(a0), hsum8(a1), hsum8(a2), hsum8(a3)};
    cpu_q8_finish(x, r, k, K, scales, nr, sums, out);
}

/* 8 packed bytes -> 8 low-nibble and 8 high-nibble values, minus 8, as f32. */
INLINE2 void q4_16(const uint8_t *p, __m256 *lo, __m256 *hi)
{
    __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    __m256i eight = _mm256_set1_epi32(8);
    *lo = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_and_si256(b, _mm256_set1_epi32(15)), eight));
    *hi = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(b, 4), eight));
}

/* Row j's 16 values of one 8-byte chunk against xl/xh into ga (explicit per row: registers). */
#define Q4_ROW(ga, row)                                                                                             \
    do {                                                                                                            \
        __m256 lo_, hi_;                                                                                            \
        q4_16((row) + off, &lo_, &hi_);                                                                             \
        ga = _mm256_fmadd_ps(lo_, xl, ga);                                                                          \
        ga = _mm256_fmadd_ps(hi_, xh, ga);                                                                          \
    } while (0)

AVX2 static void avx2_dot_q4(const float *x, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                             size_t K, size_t nr, float *out)
{
    const cpu_q4_rowset rs = cpu_q4_rows(w, rb, sc, nr);
    const uint8_t *r0 = rs.r[0], *r1 = rs.r[1], *r2 = rs.r[2], *r3 = rs.r[3];
    const size_t half = G / 2, full = K / G;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t g = 0; g < full; g++) {
        const float *xg = x + g * G;
        __m256 g0v = _mm256_setzero_ps(), g1v = g0v, g2v = g0v, g3v = g0v;
        for (size_t c = 0; c < half; c += 8) {
            __m256 xl = _mm256_loadu_ps(xg + c), xh = _mm256_loadu_ps(xg + half + c);
            size_t off = g * half + c;
            Q4_ROW(g0v, r0);
            Q4_ROW(g1v, r1);
            Q4_ROW(g2v, r2);
            Q4_ROW(g3v, r3);
        }
        a0 = _mm256_fmadd_ps(g0v, _mm256_set1_ps(cpu_f16c_at(scales, rs.srow[0] + g)), a0);
        a1 = _mm256_fmadd_ps(g1v, _mm256_set1_ps(cpu_f16c_at(scales, rs.srow[1] + g)), a1);
        a2 = _mm256_fmadd_ps(g2v, _mm256_set1_ps(cpu_f16c_at(scales, rs.srow[2] + g)), a2);
        a3 = _mm256_fmadd_ps(g3v, _mm256_set1_ps(cpu_f16c_at(scales, rs.srow[3] + g)), a3);
    }
    float sums[CPU_Q_ROWS] = {hsum8(a0), hsum8(a1), hsum8(a2), hsum8(a3)};
    cpu_q4_finish(x, &rs, scales, G, K, nr, sums, out);
}

const cpu_qkernels cpu_qkernels_avx2 = {
    .isa = EMU2_ISA_AVX2,
    .dot_q8 = avx2_dot_q8,
    .dot_q4 = avx2_dot_q4,
};
#endif
