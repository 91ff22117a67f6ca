/* kern_bf16dot.c: AVX512_BF16 kernels of the bf16 precision (layouts in kern_bf16dot.h). Each
 * function carries its own target attribute; bf16_gemm.c calls them only after
 * cpu_bf16dot_supported() said yes. */
#include "ops/cpu/kern_bf16dot.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#include <string.h>

#define BF16DOT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

/* Transposes 16 rows of 16 words in place (r[i] word c -> r[c] word i): 32-bit then 64-bit
 * interleaves give 4x4 blocks inside each 128-bit lane, two lane shuffles put the lanes in order.
 * The loops are unrolled so that r stays in registers. */
static inline __attribute__((always_inline)) BF16DOT void transpose16(__m512i r[16])
{
    __m512i t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) { /* u[4g + j], lane L: column 4L + j of rows 4g..4g+3 */
        u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd);
        __m512i w0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
        __m512i w1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
        r[j] = _mm512_shuffle_i32x4(v0, w0, 0x88);
        r[8 + j] = _mm512_shuffle_i32x4(v0, w0, 0xdd);
        r[4 + j] = _mm512_shuffle_i32x4(v1, w1, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(v1, w1, 0xdd);
    }
}

static inline __mmask32 elem_mask32(size_t left)
{
    return left >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << left) - 1u);
}

/* r: 16 rows x 16 words; stores words c < nwords of the 16 rows as panel words dst[c][0..16). */
static inline __attribute__((always_inline)) BF16DOT void store_transposed(__m512i r[16], uint32_t *dst,
                                                                            size_t nwords)
{
    transpose16(r);
    if (nwords == 16) {
#pragma GCC unroll 16
        for (size_t c = 0; c < 16; c++)
            _mm512_storeu_si512((void *)(dst + c * CPU_BF16_NR), r[c]);
    } else {
        for (size_t c = 0; c < nwords; c++)
            _mm512_storeu_si512((void *)(dst + c * CPU_BF16_NR), r[c]);
    }
}

/* One 16-row group x 16 words: whole rows and whole words take plain loads (the usual case). */
static inline __attribute__((always_inline)) BF16DOT void pack_16x16(const uint16_t *w, size_t ldw, size_t nrows,
                                                                      __mmask32 m, int whole, uint32_t *dst,
                                                                      size_t nwords)
{
    __m512i r[16];
    if (whole && nrows == 16) {
#pragma GCC unroll 16
        for (size_t i = 0; i < 16; i++)
            r[i] = _mm512_loadu_si512((const void *)(w + i * ldw));
    } else {
#pragma GCC unroll 16
        for (size_t i = 0; i < 16; i++) /* a masked load keeps the odd tail's high half zero */
            r[i] = i < nrows ? _mm512_maskz_loadu_epi16(m, w + i * ldw) : _mm512_setzero_si512();
    }
    store_transposed(r, dst, nwords);
}

BF16DOT void cpu_bf16dot_pack_panel(const uint16_t *w, size_t ldw, size_t rows, size_t kl, uint32_t *dst)
{
    size_t kpairs = (kl + 1) / 2;
    for (size_t g = 0; g < CPU_BF16_NR; g += 16) {
        size_t nrows = g >= rows ? 0 : rows - g < 16 ? rows - g : 16;
        for (size_t p0 = 0; p0 < kpairs; p0 += 16) {
            size_t left = kl - 2 * p0, nwords = kpairs - p0 < 16 ? kpairs - p0 : 16;
            pack_16x16(w + g * ldw + 2 * p0, ldw, nrows, elem_mask32(left), left >= 32,
                       dst + p0 * CPU_BF16_NR + g, nwords);
        }
    }
}

/* The panel's 16-row groups past the matrix's rows: zeros. */
static inline BF16DOT void zero_groups_past(size_t rows, size_t kpairs, uint32_t *dst)
{
    for (size_t g = (rows + 15) / 16 * 16; g < CPU_BF16_NR; g += 16)
        for (size_t p = 0; p < kpairs; p++)
            _mm512_storeu_si512((void *)(dst + p * CPU_BF16_NR + g), _mm512_setzero_si512());
}

/* 32 int4 values of one row as bf16, elements [in, in + 32) of the group at grp (in a multiple of
 * 32; half = G / 2 bytes, element e in the low nibble of byte e for e < half, else in the high
 * nibble of byte e - half): the nibbles index a 16-entry table of (n - 8) x scale, rounded once. */
static inline __attribute__((always_inline)) BF16DOT __m512i q4_values(const uint8_t *grp, size_t in, size_t half,
                                                                       const uint8_t *scale, __m512 levels)
{
    uint16_t h;
    memcpy(&h, scale, 2);
    __m256i table = (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(levels, _mm512_set1_ps(_cvtsh_ss(h))));
    __m512i idx;
    if (half == 16) { /* G 32: the 16 bytes' low nibbles, then their high nibbles */
        __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(const void *)grp));
        idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(b, _mm256_set1_epi16(15))),
                                 _mm256_srli_epi16(b, 4), 1);
    } else { /* G 64, 128: 32 bytes' low or high nibbles */
        __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(const void *)(grp + in % half)));
        idx = in < half ? _mm512_and_si512(b, _mm512_set1_epi16(15)) : _mm512_srli_epi16(b, 4);
    }
    return _mm512_permutexvar_epi16(idx, _mm512_zextsi256_si512(table)); /* indices < 16: the table */
}

BF16DOT void cpu_bf16dot_pack_panel_q4(const uint8_t *q, size_t rb, const void *scales, size_t sc, size_t G,
                                       size_t rows, size_t kl, uint32_t *dst)
{
    const __m512 levels = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    const uint8_t *sb = scales;
    size_t kpairs = (kl + 1) / 2, half = G / 2;
    for (size_t g = 0; g < CPU_BF16_NR && g < rows; g += 16) {
        size_t nrows = rows - g < 16 ? rows - g : 16;
        const uint8_t *q0 = q + g * rb, *s0 = sb + g * sc * 2;
        for (size_t p0 = 0; p0 < kpairs; p0 += 16) {
            size_t e = 2 * p0, grp = e / G, in = e % G; /* a whole group holds these 32 values */
            const uint8_t *qg = q0 + grp * half, *sg = s0 + grp * 2;
            __m512i r[16];
            if (nrows == 16) {
#pragma GCC unroll 16
                for (size_t i = 0; i < 16; i++)
                    r[i] = q4_values(qg + i * rb, in, half, sg + i * sc * 2, levels);
            } else {
                for (size_t i = 0; i < 16; i++)
                    r[i] = i < nrows ? q4_values(qg + i * rb, in, half, sg + i * sc * 2, levels)
                                     : _mm512_setzero_si512();
            }
            store_transposed(r, dst + p0 * CPU_BF16_NR + g, kpairs - p0 < 16 ? kpairs - p0 : 16);
        }
    }
    zero_groups_past(rows, kpairs, dst);
}

/* 32 int8 values of one row (fewer at the slice's end: zeros) times its scale (f32 at any
 * alignment), as bf16. */
static inline __attribute__((always_inline)) BF16DOT __m512i q8_values(const int8_t *q, size_t left,
                                                                       const uint8_t *scale)
{
    float f;
    memcpy(&f, scale, 4);
    __m512 s = _mm512_set1_ps(f);
    __m256i b = _mm256_maskz_loadu_epi8(elem_mask32(left), q);
    __m512 lo = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_castsi256_si128(b)));
    __m512 hi = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm256_extracti128_si256(b, 1)));
    return (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, s), _mm512_mul_ps(lo, s));
}

BF16DOT void cpu_bf16dot_pack_panel_q8(const int8_t *q, size_t ldq, const void *scales, size_t rows, size_t kl,
                                       uint32_t *dst)
{
    const uint8_t *sb = scales;
    size_t kpairs = (kl + 1) / 2;
    for (size_t g = 0; g < CPU_BF16_NR && g < rows; g += 16) {
        size_t nrows = rows - g < 16 ? rows - g : 16;
        const int8_t *q0 = q + g * ldq;
        const uint8_t *s0 = sb + g * 4;
        for (size_t p0 = 0; p0 < kpairs; p0 += 16) {
            size_t e = 2 * p0;
            __m512i r[16];
            if (nrows == 16) {
#pragma GCC unroll 16
                for (size_t i = 0; i < 16; i++)
                    r[i] = q8_values(q0 + i * ldq + e, kl - e, s0 + i * 4);
            } else {
                for (size_t i = 0; i < 16; i++)
                    r[i] = i < nrows ? q8_values(q0 + i * ldq + e, kl - e, s0 + i * 4) : _mm512_setzero_si512();
            }
            store_transposed(r, dst + p0 * CPU_BF16_NR + g, kpairs - p0 < 16 ? kpairs - p0 : 16);
        }
    }
    zero_groups_past(rows, kpairs, dst);
}

BF16DOT void cpu_bf16dot_round_rows(const float *x, size_t ldx, size_t rows, size_t k, uint32_t *dst, size_t lda)
{
    for (size_t i = 0; i < rows; i++) {
        const float *xr = x + i * ldx;
        uint16_t *d = (uint16_t *)(dst + i * lda);
        size_t j = 0;
        for (; j + 16 <= k; j += 16)
            _mm256_storeu_si256((__m256i *)(d + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(xr + j)));
        if (j < k) { /* the whole 16 (zeros past k) keeps the odd tail's high half zero */
            __mmask16 m = (__mmask16)((1u << (k - j)) - 1u);
            _mm256_storeu_si256((__m256i *)(d + j), (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, xr + j)));
            j += 16;
        }
        if (2 * lda > j)
            memset(d + j, 0, (2 * lda - j) * sizeof(uint16_t));
    }
}

#define BCAST(i) __m512bh a##i = (__m512bh)_mm512_set1_epi32((int)a[(i) * lda + p])
#define DP_ROW(i)                                                                                                     \
    c##i##0 = _mm512_dpbf16_ps(c##i##0, a##i, b0);                                                                     \
    c##i##1 = _mm512_dpbf16_ps(c##i##1, a##i, b1);                                                                     \
    c##i##2 = _mm512_dpbf16_ps(c##i##2, a##i, b2);                                                                     \
    c##i##3 = _mm512_dpbf16_ps(c##i##3, a##i, b3)
#define ZERO_ROW(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0

/* Adds one row's 4 accumulators into y (masked to nr columns). */
static inline __attribute__((always_inline)) BF16DOT void add_row(float *yr, size_t nr, __m512 v0, __m512 v1,
                                                                   __m512 v2, __m512 v3)
{
    __m512 v[4] = {v0, v1, v2, v3};
    for (size_t q = 0; q < 4 && 16 * q < nr; q++) {
        size_t left = nr - 16 * q;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        float *d = yr + 16 * q;
        _mm512_mask_storeu_ps(d, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d), v[q]));
    }
}

BF16DOT void cpu_bf16dot_tile(const uint32_t *a, size_t lda, const uint32_t *panel, size_t kpairs, float *y,
                              size_t ldy, size_t mr, size_t nr)
{
    ZERO_ROW(0);
    ZERO_ROW(1);
    ZERO_ROW(2);
    ZERO_ROW(3);
    ZERO_ROW(4);
    ZERO_ROW(5);
    const uint32_t *b = panel;
    for (size_t p = 0; p < kpairs; p++, b += CPU_BF16_NR) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)b);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(b + 16));
        __m512bh b2 = (__m512bh)_mm512_loadu_si512((const void *)(b + 32));
        __m512bh b3 = (__m512bh)_mm512_loadu_si512((const void *)(b + 48));
        BCAST(0);
        DP_ROW(0);
        BCAST(1);
        DP_ROW(1);
        BCAST(2);
        DP_ROW(2);
        BCAST(3);
        DP_ROW(3);
        BCAST(4);
        DP_ROW(4);
        BCAST(5);
        DP_ROW(5);
    }
    /* mr is 1..6: rows past it were computed on zero rows and are dropped */
    add_row(y, nr, c00, c01, c02, c03);
    if (mr > 1)
        add_row(y + ldy, nr, c10, c11, c12, c13);
    if (mr > 2)
        add_row(y + 2 * ldy, nr, c20, c21, c22, c23);
    if (mr > 3)
        add_row(y + 3 * ldy, nr, c30, c31, c32, c33);
    if (mr > 4)
        add_row(y + 4 * ldy, nr, c40, c41, c42, c43);
    if (mr > 5)
        add_row(y + 5 * ldy, nr, c50, c51, c52, c53);
}

#else /* not x86: cpu_bf16dot_supported() is 0, so these are never called */

void cpu_bf16dot_pack_panel(const uint16_t *w, size_t ldw, size_t rows, size_t kl, uint32_t *dst)
{
    (void)w, (void)ldw, (void)rows, (void)kl, (void)dst;
}
void cpu_bf16dot_pack_panel_q4(const uint8_t *q, size_t rb, const void *scales, size_t sc, size_t G, size_t rows,
                               size_t kl, uint32_t *dst)
{
    (void)q, (void)rb, (void)scales, (void)sc, (void)G, (void)rows, (void)kl, (void)dst;
}
void cpu_bf16dot_pack_panel_q8(const int8_t *q, size_t ldq, const void *scales, size_t rows, size_t kl,
                               uint32_t *dst)
{
    (void)q, (void)ldq, (void)scales, (void)rows, (void)kl, (void)dst;
}
void cpu_bf16dot_round_rows(const float *x, size_t ldx, size_t rows, size_t k, uint32_t *dst, size_t lda)
{
    (void)x, (void)ldx, (void)rows, (void)k, (void)dst, (void)lda;
}
void cpu_bf16dot_tile(const uint32_t *a, size_t lda, const uint32_t *panel, size_t kpairs, float *y, size_t ldy,
                      size_t mr, size_t nr)
{
    (void)a, (void)lda, (void)panel, (void)kpairs, (void)y, (void)ldy, (void)mr, (void)nr;
}
#endif
