/* kern_q4_vnni.c: the int4 decode dot on AVX-512 VNNI (vpdpbusd: 64 u8 x s8 products per
 * instruction) where the CPU has it, under the AVX-512 cap. The activation row is quantized once
 * per call to int8 in blocks of 32 (the 16 low + 16 high nibbles of one 16-byte chunk of a
 * weight row, scale amax/127), laid out like the packed weights so no shuffles are needed; each
 * 4-byte lane then sums whole integer products, corrected by -8 * (its x sum) for the nibble
 * offset, converted to f32 once and scaled by (weight group scale) x (activation block scale).
 * This adds the activations' int8 rounding (relative ~0.4% per element, far below int4's own
 * error); the other paths keep f32 activations. */
#include "ops/cpu/kern_q8q4.h"
#include "ops/cpu/kernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

int cpu_q4_vnni_supported(void)
{
    /* F16C comes with the AVX2 level (isa.c checks it by CPUID; clang's builtin has no "f16c") */
    __builtin_cpu_init();
    return cpu_isa_supported(EMU2_ISA_AVX512) && __builtin_cpu_supports("avx512vnni");
}
#else
int cpu_q4_vnni_supported(void)
{
    return 0;
}
#endif

/* Layout of the prepared activations for rows of rb bytes, one 256-byte record per 64 weight
 * bytes (so the kernel reads a single activation stream beside the four weight rows):
 *   int8 xlo[64], xhi[64]  x of the low / high nibble of each weight byte, quantized
 *   int32 xsum8[16]        8 * (sum of the 8 quantized x each 4-byte lane multiplies)
 *   float sx[16]           the activation scale of each 4-byte lane's 32-value block */
#define REC 256

static size_t n_records(size_t rb)
{
    return (rb + 63) / 64;
}

size_t cpu_q4_vnni_prep_bytes(size_t rb)
{
    return n_records(rb) * REC;
}

#if defined(__x86_64__) || defined(__i386__)
static inline __mmask16 valid16(size_t k0, size_t K)
{
    return k0 >= K ? 0 : K - k0 >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k0)) - 1u);
}

/* Per chunk: s = amax / 127, q = round-to-nearest-even(x * (1 / s)) (0 when s is 0), the 4-lane
 * sums of q by vpdpbusd against ones. Values past K are 0. */
VNNI void cpu_q4_vnni_prep(const float *x, size_t K, size_t G, size_t rb, void *buf)
{
    size_t half = G / 2;
    uint8_t *base = buf;
    memset(buf, 0, cpu_q4_vnni_prep_bytes(rb));
    const __m128i ones = _mm_set1_epi8(1);
    for (size_t ch = 0; ch * 16 < rb; ch++) {
        size_t g = ch * 16 / half, c = ch * 16 % half;
        size_t lo0 = g * G + c, hi0 = g * G + half + c;
        uint8_t *rec = base + ch / 4 * REC;
        size_t in = ch % 4; /* chunk within the record */
        __m512 vlo = _mm512_maskz_loadu_ps(valid16(lo0, K), x + lo0);
        __m512 vhi = _mm512_maskz_loadu_ps(valid16(hi0, K), x + hi0);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(vlo), _mm512_abs_ps(vhi)));
        float s = amax / 127.0f, inv = s > 0 ? 1.0f / s : 0.0f;
        __m512 iv = _mm512_set1_ps(inv);
        __m128i qlo = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(vlo, iv)));
        __m128i qhi = _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(vhi, iv)));
        _mm_storeu_si128((__m128i *)(rec + in * 16), qlo);
        _mm_storeu_si128((__m128i *)(rec + 64 + in * 16), qhi);
        __m128i sums = _mm_dpbusd_epi32(_mm_dpbusd_epi32(_mm_setzero_si128(), ones, qlo), ones, qhi);
        _mm_storeu_si128((__m128i *)(rec + 128 + in * 16), _mm_slli_epi32(sums, 3));
        _mm_storeu_ps((float *)(void *)(rec + 192 + in * 16), _mm_set1_ps(s));
    }
}
#else
void cpu_q4_vnni_prep(const float *x, size_t K, size_t G, size_t rb, void *buf)
{
    (void)x, (void)K, (void)G, (void)rb, (void)buf;
}
#endif

#if defined(__x86_64__) || defined(__i386__)
/* One row: the scales of the groups a 64-byte block covers, spread to its 16 lanes. */
#define SCALES(sv, j)                                                                                               \
    do {                                                                                                            \
        size_t n_ = sc - g_first < gpb ? sc - g_first : gpb;                                                        \
        __m128i h_ = _mm_maskz_loadu_epi16((__mmask8)((1u << n_) - 1u), (const uint16_t *)scales + (j) * sc + g_first); \
        sv = _mm512_permutexvar_ps(gidx, _mm512_castps128_ps512(_mm_cvtph_ps(h_)));                               \
    } while (0)

#define ROW(acc, j)                                                                                                 \
    do {                                                                                                            \
        __m512i wb_ = full_ ? _mm512_loadu_si512(r##j + off) : _mm512_maskz_loadu_epi8(m, r##j + off);             \
        __m512i lo_ = _mm512_and_si512(wb_, low4), hi_ = _mm512_and_si512(_mm512_srli_epi16(wb_, 4), low4);         \
        __m512i is_ = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo_, xl);                                         \
        is_ = _mm512_dpbusd_epi32(is_, hi_, xh);                                                                    \
        is_ = _mm512_sub_epi32(is_, xs);                                                                            \
        __m512 sw_;                                                                                                 \
        SCALES(sw_, rowi[j]);                                                                                       \
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(is_), _mm512_mul_ps(sw_, sxv), acc);                               \
    } while (0)

VNNI void cpu_q4_vnni_dot(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                          size_t nr, float *out)
{
    const uint8_t *rec = prep;
    size_t rowi[CPU_Q_ROWS];
    for (size_t j = 0; j < CPU_Q_ROWS; j++)
        rowi[j] = j < nr ? j : 0;
    const uint8_t *r0 = w + rowi[0] * rb, *r1 = w + rowi[1] * rb, *r2 = w + rowi[2] * rb, *r3 = w + rowi[3] * rb;
    const __m512i low4 = _mm512_set1_epi8(15);
    const size_t gpb = 128 / G; /* groups per 64-byte block: 4, 2 or 1 */
    /* lane l (4 bytes) of a block belongs to group (8 l) / G of the block */
    const __m512i gidx = G == 32 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                         : G == 64 ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
                                   : _mm512_setzero_si512();
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t off = 0; off < rb; off += 64) {
        int full_ = rb - off >= 64;
        __mmask64 m = full_ ? ~(__mmask64)0 : (((__mmask64)1 << (rb - off)) - 1);
        const uint8_t *p = rec + off / 64 * REC;
        __m512i xl = _mm512_loadu_si512(p), xh = _mm512_loadu_si512(p + 64);
        __m512i xs = _mm512_loadu_si512(p + 128);
        __m512 sxv = _mm512_loadu_ps((const float *)(const void *)(p + 192));
        size_t g_first = off * 2 / G;
        /* the next 4 rows at the same offset: one page per row defeats the hardware prefetchers */
        _mm_prefetch((const char *)(r0 + 4 * rb + off), _MM_HINT_T0);
        _mm_prefetch((const char *)(r1 + 4 * rb + off), _MM_HINT_T0);
        _mm_prefetch((const char *)(r2 + 4 * rb + off), _MM_HINT_T0);
        _mm_prefetch((const char *)(r3 + 4 * rb + off), _MM_HINT_T0);
        ROW(a0, 0);
        ROW(a1, 1);
        ROW(a2, 2);
        ROW(a3, 3);
    }
    float sums[CPU_Q_ROWS] = {_mm512_reduce_add_ps(a0), _mm512_reduce_add_ps(a1), _mm512_reduce_add_ps(a2),
                              _mm512_reduce_add_ps(a3)};
    for (size_t j = 0; j < nr; j++)
        out[j] = sums[j];
}
#else
void cpu_q4_vnni_dot(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                     size_t nr, float *out)
{
    (void)prep, (void)w, (void)rb, (void)scales, (void)sc, (void)G, (void)nr, (void)out;
}
#endif
