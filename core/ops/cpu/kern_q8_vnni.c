/* kern_q8_vnni.c: int8 weights x int8-quantized activations on AVX-512 VNNI for several activation
 * rows (prefill; decode keeps f32 activations: it is memory-bound and gains nothing).
 *
 * vpdpbusd multiplies unsigned by signed bytes, so each activation block of 32 is quantized
 * (scale amax/127, q in [-127, 127]) and stored as q + 128 (unsigned); each 4-byte lane of the
 * integer dot then starts from -128 * (the lane's weight sum), which removes the offset. The lane
 * sums are converted to f32 once per 64 columns, scaled by their block's activation scale; the
 * weight row scale is applied at the end. 4 activation rows x 4 weight rows per pass. */
#include "ops/cpu/kern_q8q4.h"

#include <string.h>

/* Per 64 columns, one 128-byte record: uint8 xu[64] (q + 128; 0 past K), float sx[16] (the scale
 * of each 4-byte lane's block of 32). */
#define REC8 128

size_t cpu_q8_vnni_prep_bytes(size_t K)
{
    return (K + 63) / 64 * REC8;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "ops/cpu/kern_vnni_tile.h"

VNNI void cpu_q8_vnni_prep(const float *x, size_t K, void *buf)
{
    uint8_t *base = buf;
    memset(buf, 0, cpu_q8_vnni_prep_bytes(K));
    const __m512 c128 = _mm512_set1_ps(128.0f);
    for (size_t k0 = 0; k0 < K; k0 += 32) {
        uint8_t *rec = base + k0 / 64 * REC8;
        size_t half = k0 % 64 / 32; /* which block of the record */
        __mmask16 m0 = K - k0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k0)) - 1u);
        __mmask16 m1 = K - k0 <= 16 ? 0 : K - k0 >= 32 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k0 - 16)) - 1u);
        __m512 a = _mm512_maskz_loadu_ps(m0, x + k0), b = _mm512_maskz_loadu_ps(m1, x + k0 + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b)));
        float s = amax / 127.0f, inv = s > 0 ? 1.0f / s : 0.0f;
        __m512 iv = _mm512_set1_ps(inv);
        /* round to nearest even first (as the int4 path and the tests do), then offset */
        __m512 qa = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(a, iv), _MM_FROUND_TO_NEAREST_INT), c128);
        __m512 qb = _mm512_add_ps(_mm512_roundscale_ps(_mm512_mul_ps(b, iv), _MM_FROUND_TO_NEAREST_INT), c128);
        _mm_mask_storeu_epi8(rec + half * 32, m0, _mm512_cvtusepi32_epi8(_mm512_cvtps_epu32(qa)));
        _mm_mask_storeu_epi8(rec + half * 32 + 16, m1, _mm512_cvtusepi32_epi8(_mm512_cvtps_epu32(qb)));
        _mm256_storeu_ps((float *)(void *)(rec + 64 + half * 32), _mm256_set1_ps(s));
    }
}

/* Prepared row m's 64 columns at k against the 4 weight rows into am0..am3 (named accumulators:
 * all 16 stay in registers; the weights are the instruction's memory operand). */
#define TILE_X(m)                                                                                                   \
    do {                                                                                                            \
        const uint8_t *p_ = x##m + k / 64 * REC8;                                                                   \
        __m512i xu_ = _mm512_loadu_si512(p_);                                                                       \
        __m512 sx_ = _mm512_loadu_ps((const float *)(const void *)(p_ + 64));                                       \
        a##m##0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c0, xu_, v0)), sx_, a##m##0);              \
        a##m##1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c1, xu_, v1)), sx_, a##m##1);              \
        a##m##2 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c2, xu_, v2)), sx_, a##m##2);              \
        a##m##3 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(c3, xu_, v3)), sx_, a##m##3);              \
    } while (0)

/* -128 * (each 4-byte lane's weight sum): the start that cancels the activations' +128. */
static inline __attribute__((always_inline)) VNNI __m512i offset_start(__m512i wv)
{
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                                        _mm512_set1_epi8((char)128), wv));
}

VNNI void cpu_q8_vnni_tile(const void *prep, size_t prep_stride, size_t mr, const int8_t *w, size_t K,
                           size_t nr, float out[CPU_VNNI_TM][CPU_Q_ROWS])
{
    /* rows past mr / nr repeat row 0 and are discarded */
    const uint8_t *xb = prep;
    const uint8_t *x0 = xb, *x1 = xb + (mr > 1) * prep_stride, *x2 = xb + (mr > 2) * 2 * prep_stride,
                  *x3 = xb + (mr > 3) * 3 * prep_stride;
    const int8_t *w0 = w, *w1 = w + (nr > 1) * K, *w2 = w + (nr > 2) * 2 * K, *w3 = w + (nr > 3) * 3 * K;
    VNNI_TILE_ACCUMULATORS;
    for (size_t k = 0; k < K; k += 64) {
        __mmask64 mask = K - k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (K - k)) - 1);
        __m512i v0 = _mm512_maskz_loadu_epi8(mask, w0 + k), v1 = _mm512_maskz_loadu_epi8(mask, w1 + k);
        __m512i v2 = _mm512_maskz_loadu_epi8(mask, w2 + k), v3 = _mm512_maskz_loadu_epi8(mask, w3 + k);
        __m512i c0 = offset_start(v0), c1 = offset_start(v1), c2 = offset_start(v2), c3 = offset_start(v3);
        TILE_X(0);
        TILE_X(1);
        TILE_X(2);
        TILE_X(3);
    }
    VNNI_TILE_STORE(out);
}
#else
void cpu_q8_vnni_prep(const float *x, size_t K, void *buf)
{
    (void)x, (void)K, (void)buf;
}

void cpu_q8_vnni_tile(const void *prep, size_t prep_stride, size_t mr, const int8_t *w, size_t K, size_t nr,
                      float out[CPU_VNNI_TM][CPU_Q_ROWS])
{
    (void)prep, (void)prep_stride, (void)mr, (void)w, (void)K, (void)nr, (void)out;
}
#endif
