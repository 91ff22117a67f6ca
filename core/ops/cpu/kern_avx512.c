/* kern_avx512.c: AVX-512 (F/BW/VL) versions of the hot loops. Compiled for any x86-64 target:
 * each function carries its own target attribute and is only called after isa.c checked the CPU.
 * K tails use masked loads, so no element is read past the end of a row. */
#include "ops/cpu/kernels.h"

#ifdef EMU2_CPU_X86
#include <immintrin.h>
#include <stdint.h>

#define A512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define INLINE512 static inline __attribute__((always_inline)) A512

static inline __mmask16 tail_mask(size_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

/* 16 weights as f32; dt is a constant after inlining, so each caller gets one straight path. */
INLINE512 __m512 load_w16(const void *w, emu2_dtype dt, size_t off, __mmask16 m)
{
    if (dt == EMU2_DT_F32)
        return _mm512_maskz_loadu_ps(m, (const float *)w + off);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + off);
    if (dt == EMU2_DT_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* The four sums of a, b, c, d as one vector [sum a, sum b, sum c, sum d]: a transpose-and-add tree,
 * much cheaper than four separate reductions. */
INLINE512 __m128 sum4(__m512 a, __m512 b, __m512 c, __m512 d)
{
    __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    __m512d abd = _mm512_castps_pd(ab), cdd = _mm512_castps_pd(cd);
    __m512 t = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(abd, cdd)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(abd, cdd))); /* per 128-bit block: a b c d */
    t = _mm512_add_ps(t, _mm512_shuffle_f32x4(t, t, _MM_SHUFFLE(1, 0, 3, 2)));
    __m256 h = _mm512_castps512_ps256(t);
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

static A512 void avx512_tile_packed(const float *a, size_t lda, const float *b, size_t kp, float *c)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (size_t k = 0; k < kp; k += 16) {
        __m512 b0 = _mm512_loadu_ps(b + k), b1 = _mm512_loadu_ps(b + kp + k);
        __m512 b2 = _mm512_loadu_ps(b + 2 * kp + k), b3 = _mm512_loadu_ps(b + 3 * kp + k);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512 av = _mm512_loadu_ps(a + (size_t)i * lda + k);
            acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
            acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);
            acc[i][3] = _mm512_fmadd_ps(av, b3, acc[i][3]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        _mm_storeu_ps(c + i * 4, sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
}

/* 16 weights as f32, no tail (the main loop of row_dots). */
INLINE512 __m512 load_w16_full(const void *w, emu2_dtype dt, size_t off)
{
    if (dt == EMU2_DT_F32)
        return _mm512_loadu_ps((const float *)w + off);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + off));
    if (dt == EMU2_DT_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* out[i * 4] = dot(x row i, wr) for i < mr: one weight row read once, front to back, 4 independent
 * accumulator chains per x row (64 weights per step), the K tail by masked loads. */
INLINE512 void row_dots(const float *x, size_t ldx, const int mr, const char *wr, const emu2_dtype dt, size_t k,
                        float *out)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            acc[i][u] = _mm512_setzero_ps();
    /* checkpoint tensors seldom start on a cache line (safetensors aligns to 8 bytes): masked steps
     * first bring the weight pointer to a 64-byte boundary, so that no full load of the stream
     * straddles two lines (f32: ~10% faster in a same-process A/B) */
    size_t q = 0, es = dt == EMU2_DT_F32 ? 4 : 2;
    if ((uintptr_t)wr % es == 0) {
        size_t head = ((64 - ((uintptr_t)wr & 63)) & 63) / es;
        head = head < k ? head : k;
        while (q < head) {
            size_t n = head - q < 16 ? head - q : 16;
            __mmask16 m = tail_mask(n);
            __m512 wv = load_w16(wr, dt, q, m);
#pragma GCC unroll 4
            for (int i = 0; i < mr; i++)
                acc[i][1] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + (size_t)i * ldx + q), wv, acc[i][1]);
            q += n;
        }
    }
    for (; q + 64 <= k; q += 64) {
        /* 8 KiB ahead, every line of the step: a decode step walks ~100 matrices and the hardware
         * prefetchers restart on each (as kern_vnni_tile.h's CPU_VNNI_ROW_PREFETCH) */
        for (size_t b = 0; b < 64 * es; b += 64)
            _mm_prefetch(wr + q * es + b + 8192, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            __m512 wv = load_w16_full(wr, dt, q + 16 * (size_t)u);
#pragma GCC unroll 4
            for (int i = 0; i < mr; i++)
                acc[i][u] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (size_t)i * ldx + q + 16 * (size_t)u), wv, acc[i][u]);
        }
    }
    for (; q < k; q += 16) {
        __mmask16 m = tail_mask(k - q);
        __m512 wv = load_w16(wr, dt, q, m);
#pragma GCC unroll 4
        for (int i = 0; i < mr; i++)
            acc[i][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + (size_t)i * ldx + q), wv, acc[i][0]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < mr; i++)
        out[i * 4] = _mm512_reduce_add_ps(
            _mm512_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]), _mm512_add_ps(acc[i][2], acc[i][3])));
}

/* The tile's weight rows one after another, each read once in order: consecutive rows are adjacent
 * in memory, so the whole matrix is a single forward stream that the hardware prefetchers follow
 * (4 rows read side by side were 4 streams each crossing a page per row: ~25% less bandwidth). */
INLINE512 void direct_body(const float *x, size_t ldx, const int mr, const void *w, const emu2_dtype dt, size_t ldw,
                           size_t nr, size_t k, float *c)
{
    size_t es = dt == EMU2_DT_F32 ? 4 : 2;
    for (size_t j = 0; j < nr; j++)
        row_dots(x, ldx, mr, (const char *)w + j * ldw * es, dt, k, c + j);
}

#define DIRECT_FOR_DTYPE(DT)                                                                                 \
    switch (mr) {                                                                                            \
    case 1: direct_body(x, ldx, 1, w, DT, ldw, nr, k, c); return;                                           \
    case 2: direct_body(x, ldx, 2, w, DT, ldw, nr, k, c); return;                                           \
    case 3: direct_body(x, ldx, 3, w, DT, ldw, nr, k, c); return;                                           \
    default: direct_body(x, ldx, 4, w, DT, ldw, nr, k, c); return;                                          \
    }

static A512 void avx512_tile_direct(const float *x, size_t ldx, size_t mr, const void *w, emu2_dtype dt, size_t ldw,
                                    size_t nr, size_t k, float *c)
{
    if (dt == EMU2_DT_BF16) {
        DIRECT_FOR_DTYPE(EMU2_DT_BF16)
    } else if (dt == EMU2_DT_F16) {
        DIRECT_FOR_DTYPE(EMU2_DT_F16)
    } else {
        DIRECT_FOR_DTYPE(EMU2_DT_F32)
    }
}

static A512 void avx512_to_f32(const void *src, emu2_dtype dt, float *dst, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = dt == EMU2_DT_BF16  ? load_w16(src, EMU2_DT_BF16, i, m)
                   : dt == EMU2_DT_F16 ? load_w16(src, EMU2_DT_F16, i, m)
                                       : load_w16(src, EMU2_DT_F32, i, m);
        _mm512_mask_storeu_ps(dst + i, m, v);
    }
}

/* mr rows x 64 columns of c per pass (up to 16 accumulators); masked columns past n. mr is a
 * constant after inlining: one row (decode attention's p.v) does a quarter of the multiply-adds. */
INLINE512 void gemm_nn_body(const size_t mr, size_t n, size_t k, const float *a, size_t lda, const float *b,
                            size_t ldb, float *c, size_t ldc, int accumulate)
{
    const float *ar[4];
#pragma GCC unroll 4
    for (size_t i = 0; i < 4; i++)
        ar[i] = a + (i < mr ? i : mr - 1) * lda; /* rows past mr are never used */
    for (size_t j0 = 0; j0 < n; j0 += 64) {
        __mmask16 m[4];
#pragma GCC unroll 4
        for (size_t v = 0; v < 4; v++)
            m[v] = j0 + 16 * v < n ? tail_mask(n - j0 - 16 * v) : 0;
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++)
                acc[i][v] = _mm512_setzero_ps();
        for (size_t p = 0; p < k; p++) {
            const float *br = b + p * ldb + j0;
            __m512 b0 = _mm512_maskz_loadu_ps(m[0], br), b1 = _mm512_maskz_loadu_ps(m[1], br + 16);
            __m512 b2 = _mm512_maskz_loadu_ps(m[2], br + 32), b3 = _mm512_maskz_loadu_ps(m[3], br + 48);
#pragma GCC unroll 4
            for (size_t i = 0; i < mr; i++) {
                __m512 av = _mm512_set1_ps(ar[i][p]);
                acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
                acc[i][2] = _mm512_fmadd_ps(av, b2, acc[i][2]);
                acc[i][3] = _mm512_fmadd_ps(av, b3, acc[i][3]);
            }
        }
        /* constant trip counts: the accumulators must stay registers, not a stack array */
#pragma GCC unroll 4
        for (size_t i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (size_t v = 0; v < 4; v++) {
                if (i >= mr)
                    continue;
                float *cp = c + i * ldc + j0 + 16 * v;
                __m512 r = acc[i][v];
                if (accumulate)
                    r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(m[v], cp));
                _mm512_mask_storeu_ps(cp, m[v], r);
            }
    }
}

#define GEMM_NN_ROWS(m) gemm_nn_body(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
static A512 void avx512_gemm_nn(size_t mr, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                                float *c, size_t ldc, int accumulate)
{
    CPU_DISPATCH_TILE_ROWS(mr, GEMM_NN_ROWS)
}
#undef GEMM_NN_ROWS

/* exp(x) for x <= ~88: range reduction by ln 2 (in two parts, so r is exact), a degree-6 Taylor-like
 * polynomial on |r| <= ln2/2 (Cephes expf coefficients), scaled by 2^n. Below -87.3 the result is 0. */
INLINE512 __m512 exp512(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-87.33654f);
    __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ); /* also -inf */
    x = _mm512_max_ps(x, lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_scalef_ps((__mmask16)~tiny, p, n);
}

static A512 float avx512_exp_sum(float *x, size_t n, float max)
{
    __m512 mv = _mm512_set1_ps(max), s = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mv));
        _mm512_mask_storeu_ps(x + i, m, e);
        s = _mm512_mask_add_ps(s, m, s, e);
    }
    return _mm512_reduce_add_ps(s);
}

/* GELU(x) = x/2 * erfc(-x/sqrt2); erfc(u) = r for u >= 0 and 2 - r below, with
 * r = t exp(-z^2 + P(t)), z = |u|, t = 1/(1 + z/2) (Numerical Recipes' erfcc fit). */
INLINE512 __m512 gelu512(__m512 x)
{
    __m512 z = _mm512_abs_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    __m512 r = _mm512_mul_ps(t, exp512(_mm512_fnmadd_ps(z, z, p)));
    __m512 half_xr = _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), r);
    __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    return _mm512_mask_sub_ps(half_xr, pos, x, half_xr); /* x > 0: x - xr/2 */
}

static A512 void avx512_gelu(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, gelu512(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static A512 float avx512_dot(const float *a, const float *b, size_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static A512 void avx512_axpy(float alpha, const float *x, float *y, size_t n)
{
    __m512 av = _mm512_set1_ps(alpha);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 r = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i));
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}

const cpu_kernels cpu_kernels_avx512 = {
    .isa = EMU2_ISA_AVX512,
    .tile_packed = avx512_tile_packed,
    .tile_direct = avx512_tile_direct,
    .to_f32 = avx512_to_f32,
    .gemm_nn = avx512_gemm_nn,
    .exp_sum = avx512_exp_sum,
    .gelu = avx512_gelu,
    .dot = avx512_dot,
    .axpy = avx512_axpy,
};
#endif
