/* kern_q8q4_avx512.c: AVX-512 (F/BW/VL) int8/int4 dot kernels: 16 weights widened to i32, converted
 * to f32 and multiplied into f32 accumulators; int8 one weight row after another, int4 four weight
 * rows per call sharing each x load.
 * K tails use masked loads (int8) or the scalar group code (a partial int4 group), so nothing is
 * read past a row. Rows past nr reuse row 0 and are discarded. */
#include "ops/cpu/kern_q8q4.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define A512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define INLINE512 static inline __attribute__((always_inline)) A512

INLINE512 __m512 q8_16(const int8_t *p, __mmask16 m)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

/* How far ahead the int8 row kernel prefetches its weight stream (bytes): a decode step walks ~100
 * matrices one after another and the hardware prefetchers restart on each. Measured (0.94B model,
 * int8, 1 thread, one run): 4 KiB 37.6, 8 KiB 39.2, 16 KiB 38.4 tokens/s; the 4-rows kernel below 31.7. */
#define Q8_ROW_PREFETCH 8192

/* 16 int8 weights at p as f32, by a plain load (masked loads whose line comes from DRAM stall the
 * stream on AMD Zen 5: see kern_q4_vnni.c). */
INLINE512 __m512 q8_16_plain(const int8_t *p)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)));
}

/* Rows one after another, so the matrix is read as one sequential stream, prefetched
 * Q8_ROW_PREFETCH ahead; 4 accumulators per row; the K % 64 tail in scalar code. */
A512 static void avx512_dot_q8(const float *x, const int8_t *w, size_t K, size_t nr, const void *scales, float *out)
{
    for (size_t j = 0; j < nr; j++) {
        const int8_t *r = w + j * K;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t k = 0;
        for (; k + 64 <= K; k += 64) {
            _mm_prefetch((const char *)(r + k + Q8_ROW_PREFETCH), _MM_HINT_T0);
            a0 = _mm512_fmadd_ps(q8_16_plain(r + k), _mm512_loadu_ps(x + k), a0);
            a1 = _mm512_fmadd_ps(q8_16_plain(r + k + 16), _mm512_loadu_ps(x + k + 16), a1);
            a2 = _mm512_fmadd_ps(q8_16_plain(r + k + 32), _mm512_loadu_ps(x + k + 32), a2);
            a3 = _mm512_fmadd_ps(q8_16_plain(r + k + 48), _mm512_loadu_ps(x + k + 48), a3);
        }
        float acc = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))), s;
        for (; k < K; k++)
            acc += x[k] * (float)r[k];
        memcpy(&s, (const char *)scales + j * 4, 4);
        out[j] = acc * s;
    }
}

/* The previous kernel (4 rows side by side), kept for same-run A/B runs (EMU2_CPU_QUANT_DECODE=legacy). */
A512 static void avx512_dot_q8_4rows(const float *x, const int8_t *w, size_t K, size_t nr, const void *scales,
                                     float *out)
{
    const int8_t *r[CPU_Q_ROWS];
    cpu_q8_rows(w, K, nr, r);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t k = 0;
    for (; k + 16 <= K; k += 16) {
        if ((k & 63) == 0) /* the next 4 rows at the same offset: one page per row defeats the prefetchers */
            for (int j = 0; j < CPU_Q_ROWS; j++)
                _mm_prefetch((const char *)(r[j] + 4 * K + k), _MM_HINT_T0);
        __m512 xv = _mm512_loadu_ps(x + k);
        a0 = _mm512_fmadd_ps(q8_16(r[0] + k, 0xffff), xv, a0);
        a1 = _mm512_fmadd_ps(q8_16(r[1] + k, 0xffff), xv, a1);
        a2 = _mm512_fmadd_ps(q8_16(r[2] + k, 0xffff), xv, a2);
        a3 = _mm512_fmadd_ps(q8_16(r[3] + k, 0xffff), xv, a3);
    }
    if (k < K) {
        __mmask16 m = (__mmask16)((1u << (K - k)) - 1u);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
        a0 = _mm512_fmadd_ps(q8_16(r[0] + k, m), xv, a0);
        a1 = _mm512_fmadd_ps(q8_16(r[1] + k, m), xv, a1);
        a2 = _mm512_fmadd_ps(q8_16(r[2] + k, m), xv, a2);
        a3 = _mm512_fmadd_ps(q8_16(r[3] + k, m), xv, a3);
    }
    float sums[CPU_Q_ROWS] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2),
                              _mm512_reduce_add_ps(a3)};
    cpu_q8_finish(x, r, K, K, scales, nr, sums, out);
}

/* Scales of one row converted once per call (f16 -> f32), read back with a broadcast from memory,
 * which keeps the shuffle port free for the nibble lookups. */
#define Q4_SCALE_CHUNK 256

/* Row j's 32 values of one 16-byte chunk against xl/xh into ga. vpermps picks lane (index & 15)
 * of the 16 levels (nibble - 8): the widened bytes index it directly for the low nibble, and after
 * a shift for the high one. Written out per row (no arrays) so the accumulators stay in registers. */
#define Q4_ROW(ga, row)                                                                                             \
    do {                                                                                                            \
        __m512i b_ = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)((row) + off)));                       \
        ga = _mm512_fmadd_ps(_mm512_permutexvar_ps(b_, lut), xl, ga);                                              \
        ga = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(b_, 4), lut), xh, ga);                       \
    } while (0)

A512 static void avx512_dot_q4(const float *x, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                               size_t K, size_t nr, float *out)
{
    const cpu_q4_rowset rs = cpu_q4_rows(w, rb, sc, nr);
    const uint8_t *r0 = rs.r[0], *r1 = rs.r[1], *r2 = rs.r[2], *r3 = rs.r[3];
    const size_t half = G / 2, full = K / G;
    const __m512 lut = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    float sbuf[CPU_Q_ROWS][Q4_SCALE_CHUNK];
    for (size_t g0 = 0; g0 < full; g0 += Q4_SCALE_CHUNK) {
        size_t g1 = full - g0 < Q4_SCALE_CHUNK ? full : g0 + Q4_SCALE_CHUNK;
        for (size_t j = 0; j < CPU_Q_ROWS; j++)
            for (size_t g = g0; g < g1; g++)
                sbuf[j][g - g0] = cpu_f16c_at(scales, rs.srow[j] + g);
        for (size_t g = g0; g < g1; g++) {
            const float *xg = x + g * G;
            __m512 g0v = _mm512_setzero_ps(), g1v = g0v, g2v = g0v, g3v = g0v;
            for (size_t c = 0; c < half; c += 16) {
                __m512 xl = _mm512_loadu_ps(xg + c), xh = _mm512_loadu_ps(xg + half + c);
                size_t off = g * half + c;
                if ((off & 63) == 0) { /* the next 4 rows at the same offset (see avx512_dot_q8) */
                    _mm_prefetch((const char *)(r0 + 4 * rb + off), _MM_HINT_T0);
                    _mm_prefetch((const char *)(r1 + 4 * rb + off), _MM_HINT_T0);
                    _mm_prefetch((const char *)(r2 + 4 * rb + off), _MM_HINT_T0);
                    _mm_prefetch((const char *)(r3 + 4 * rb + off), _MM_HINT_T0);
                }
                Q4_ROW(g0v, r0);
                Q4_ROW(g1v, r1);
                Q4_ROW(g2v, r2);
                Q4_ROW(g3v, r3);
            }
            a0 = _mm512_fmadd_ps(g0v, _mm512_set1_ps(sbuf[0][g - g0]), a0);
            a1 = _mm512_fmadd_ps(g1v, _mm512_set1_ps(sbuf[1][g - g0]), a1);
            a2 = _mm512_fmadd_ps(g2v, _mm512_set1_ps(sbuf[2][g - g0]), a2);
            a3 = _mm512_fmadd_ps(g3v, _mm512_set1_ps(sbuf[3][g - g0]), a3);
        }
    }
    float sums[CPU_Q_ROWS] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2),
                              _mm512_reduce_add_ps(a3)};
    cpu_q4_finish(x, &rs, scales, G, K, nr, sums, out);
}

const cpu_qkernels cpu_qkernels_avx512 = {
    .isa = EMU2_ISA_AVX512,
    .dot_q8 = avx512_dot_q8,
    .dot_q4 = avx512_dot_q4,
    .dot_q8_legacy = avx512_dot_q8_4rows,
};
#endif
