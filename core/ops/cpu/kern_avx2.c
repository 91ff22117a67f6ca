/* kern_avx2.c: AVX2 + FMA + F16C versions of the hot loops (the baseline x86-64 fast path).
 * Per-function target attributes; called only after isa.c checked the CPU. AVX2 has 16 vector
 * registers, so tiles are done as 2-row halves; K tails (< 8) finish in scalar code. */
#include "ops/cpu/kernels.h"

#ifdef EMU2_CPU_X86
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "ops/cpu/simd_avx2.h"

INLINE2 __m256 load_w8(const void *w, emu2_dtype dt, size_t off)
{
    if (dt == EMU2_DT_F32)
        return _mm256_loadu_ps((const float *)w + off);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + off));
    if (dt == EMU2_DT_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

static float load_w1(const void *w, emu2_dtype dt, size_t i)
{
    return cpu_load_elem(w, dt, i);
}

/* [sum a, sum b, sum c, sum d] by horizontal adds (cheaper than four separate reductions). */
INLINE2 __m128 sum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d)); /* per 128-bit half: a b c d */
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

/* Two rows of a against four rows of b (8 accumulators). */
INLINE2 void packed_half(const float *a, size_t lda, const float *b, size_t kp, float *c)
{
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            acc[i][j] = _mm256_setzero_ps();
    for (size_t k = 0; k < kp; k += 8) {
        __m256 b0 = _mm256_loadu_ps(b + k), b1 = _mm256_loadu_ps(b + kp + k);
        __m256 b2 = _mm256_loadu_ps(b + 2 * kp + k), b3 = _mm256_loadu_ps(b + 3 * kp + k);
#pragma GCC unroll 2
        for (int i = 0; i < 2; i++) {
            __m256 av = _mm256_loadu_ps(a + (size_t)i * lda + k);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
            acc[i][2] = _mm256_fmadd_ps(av, b2, acc[i][2]);
            acc[i][3] = _mm256_fmadd_ps(av, b3, acc[i][3]);
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
        _mm_storeu_ps(c + i * 4, sum4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]));
}

static AVX2 void avx2_tile_packed(const float *a, size_t lda, const float *b, size_t kp, float *c)
{
    packed_half(a, lda, b, kp, c);
    packed_half(a + 2 * lda, lda, b, kp, c + 8);
}

/* c[i * 4] = dot(x row i, wr) for i < mr (1 or 2): one weight row read once, front to back, 4
 * independent accumulator chains per x row (32 weights per step); the K tail (< 8) in scalar code. */
INLINE2 void row_dots(const float *x, size_t ldx, const int mr, const void *wr, const emu2_dtype dt, size_t k,
                      float *c)
{
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            acc[i][u] = _mm256_setzero_ps();
    size_t q = 0, k8 = k & ~(size_t)7, es = dt == EMU2_DT_F32 ? 4 : 2;
    for (; q + 32 <= k; q += 32) {
        /* 8 KiB ahead, every line of the step (see kern_avx512.c's row_dots) */
        for (size_t b = 0; b < 32 * es; b += 64)
            _mm_prefetch((const char *)wr + q * es + b + 8192, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            __m256 wv = load_w8(wr, dt, q + 8 * (size_t)u);
#pragma GCC unroll 2
            for (int i = 0; i < mr; i++)
                acc[i][u] = _mm256_fmadd_ps(_mm256_loadu_ps(x + (size_t)i * ldx + q + 8 * (size_t)u), wv, acc[i][u]);
        }
    }
    for (; q < k8; q += 8) {
        __m256 wv = load_w8(wr, dt, q);
#pragma GCC unroll 2
        for (int i = 0; i < mr; i++)
            acc[i][0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + (size_t)i * ldx + q), wv, acc[i][0]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < mr; i++) {
        float s = hsum8(_mm256_add_ps(_mm256_add_ps(acc[i][0], acc[i][1]), _mm256_add_ps(acc[i][2], acc[i][3])));
        for (size_t t = k8; t < k; t++)
            s += x[(size_t)i * ldx + t] * load_w1(wr, dt, t);
        c[i * 4] = s;
    }
}

/* mr (1..4) rows of x against up to four rows of w, converting w on the fly. The weight rows are
 * read one after another (x rows in pairs, while the row is still in L1): adjacent rows make one
 * forward stream for the hardware prefetchers (see kern_avx512.c). */
INLINE2 void direct_rows(const float *x, size_t ldx, size_t mr, const void *w, const emu2_dtype dt, size_t ldw,
                         size_t nr, size_t k, float *c)
{
    size_t es = dt == EMU2_DT_F32 ? 4 : 2;
    for (size_t j = 0; j < nr; j++) {
        const char *wr = (const char *)w + j * ldw * es;
        for (size_t i0 = 0; i0 < mr; i0 += 2) {
            if (mr - i0 >= 2)
                row_dots(x + i0 * ldx, ldx, 2, wr, dt, k, c + i0 * 4 + j);
            else
                row_dots(x + i0 * ldx, ldx, 1, wr, dt, k, c + i0 * 4 + j);
        }
    }
}

static AVX2 void avx2_tile_direct(const float *x, size_t ldx, size_t mr, const void *w, emu2_dtype dt, size_t ldw,
                                  size_t nr, size_t k, float *c)
{
    if (dt == EMU2_DT_BF16)
        direct_rows(x, ldx, mr, w, EMU2_DT_BF16, ldw, nr, k, c);
    else if (dt == EMU2_DT_F16)
        direct_rows(x, ldx, mr, w, EMU2_DT_F16, ldw, nr, k, c);
    else
        direct_rows(x, ldx, mr, w, EMU2_DT_F32, ldw, nr, k, c);
}

static AVX2 void avx2_to_f32(const void *src, emu2_dtype dt, float *dst, size_t n)
{
    size_t n8 = n & ~(size_t)7, i = 0;
    if (dt == EMU2_DT_BF16)
        for (; i < n8; i += 8)
            _mm256_storeu_ps(dst + i, load_w8(src, EMU2_DT_BF16, i));
    else if (dt == EMU2_DT_F16)
        for (; i < n8; i += 8)
            _mm256_storeu_ps(dst + i, load_w8(src, EMU2_DT_F16, i));
    else
        for (; i < n8; i += 8)
            _mm256_storeu_ps(dst + i, load_w8(src, EMU2_DT_F32, i));
    for (; i < n; i++)
        dst[i] = load_w1(src, dt, i);
}

/* 4 rows x 16 columns of c per pass (8 accumulators); lane masks for columns past n. */
/* mr is a constant after inlining: one row (decode attention's p.v) does a quarter of the work. */
INLINE2 void gemm_nn_body(const size_t mr, size_t n, size_t k, const float *a, size_t lda, const float *b,
                          size_t ldb, float *c, size_t ldc, int accumulate)
{
    const float *ar[4];
#pragma GCC unroll 4
    for (size_t i = 0; i < 4; i++)
        ar[i] = a + (i < mr ? i : mr - 1) * lda;
    for (size_t j0 = 0; j0 < n; j0 += 16) {
        __m256i m[2];
#pragma GCC unroll 4
        for (int v = 0; v < 2; v++) {
            size_t first = j0 + 8 * (size_t)v;
            int left = first >= n ? 0 : n - first >= 8 ? 8 : (int)(n - first);
            m[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        }
        __m256 acc[4][2];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
            acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        for (size_t p = 0; p < k; p++) {
            const float *br = b + p * ldb + j0;
            __m256 b0 = _mm256_maskload_ps(br, m[0]), b1 = _mm256_maskload_ps(br + 8, m[1]);
#pragma GCC unroll 4
            for (size_t i = 0; i < mr; i++) {
                __m256 av = _mm256_broadcast_ss(ar[i] + p);
                acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
            }
        }
        /* constant trip counts: the accumulators must stay registers, not a stack array */
#pragma GCC unroll 4
        for (size_t i = 0; i < 4; i++)
#pragma GCC unroll 2
            for (int v = 0; v < 2; v++) {
                if (i >= mr)
                    continue;
                float *cp = c + i * ldc + j0 + 8 * v;
                __m256 r = acc[i][v];
                if (accumulate)
                    r = _mm256_add_ps(r, _mm256_maskload_ps(cp, m[v]));
                _mm256_maskstore_ps(cp, m[v], r);
            }
    }
}

#define GEMM_NN_ROWS(m) gemm_nn_body(m, n, k, a, lda, b, ldb, c, ldc, accumulate)
static AVX2 void avx2_gemm_nn(size_t mr, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb,
                              float *c, size_t ldc, int accumulate)
{
    CPU_DISPATCH_TILE_ROWS(mr, GEMM_NN_ROWS)
}
#undef GEMM_NN_ROWS

/* exp(x) for x <= ~88, as exp512 in kern_avx512.c; 2^n built in the exponent bits. */
INLINE2 __m256 exp256(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ); /* also -inf */
    x = _mm256_max_ps(x, lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* n in [-126, 128]: 2^n as (n + 127) << 23; n = -126 with p < 1 stays a normal number */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 two_n = _mm256_castsi256_ps(e);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, two_n));
}

static AVX2 float avx2_exp_sum(float *x, size_t n, float max)
{
    __m256 mv = _mm256_set1_ps(max), s = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        s = _mm256_add_ps(s, e);
    }
    if (i < n) { /* tail through a padded copy: -inf lanes give 0 */
        float buf[8];
        for (size_t q = 0; q < 8; q++)
            buf[q] = i + q < n ? x[i + q] : -INFINITY;
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(buf), mv));
        _mm256_storeu_ps(buf, e);
        s = _mm256_add_ps(s, e);
        for (size_t q = 0; i + q < n; q++)
            x[i + q] = buf[q];
    }
    return hsum8(s);
}

/* GELU as gelu512 in kern_avx512.c. */
INLINE2 __m256 gelu256(__m256 x)
{
    __m256 z = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    __m256 r = _mm256_mul_ps(t, exp256(_mm256_fnmadd_ps(z, z, p)));
    __m256 half_xr = _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), r);
    __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ);
    return _mm256_blendv_ps(half_xr, _mm256_sub_ps(x, half_xr), pos); /* x > 0: x - xr/2 */
}

static AVX2 void avx2_gelu(const float *x, float *y, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, gelu256(_mm256_loadu_ps(x + i)));
    if (i < n) { /* tail through a padded copy */
        float buf[8] = {0};
        for (size_t q = 0; i + q < n; q++)
            buf[q] = x[i + q];
        _mm256_storeu_ps(buf, gelu256(_mm256_loadu_ps(buf)));
        for (size_t q = 0; i + q < n; q++)
            y[i + q] = buf[q];
    }
}

static AVX2 float avx2_dot(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum8(_mm256_add_ps(s0, s1));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static AVX2 void avx2_axpy(float alpha, const float *x, float *y, size_t n)
{
    __m256 av = _mm256_set1_ps(alpha);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}

const cpu_kernels cpu_kernels_avx2 = {
    .isa = EMU2_ISA_AVX2,
    .tile_packed = avx2_tile_packed,
    .tile_direct = avx2_tile_direct,
    .to_f32 = avx2_to_f32,
    .gemm_nn = avx2_gemm_nn,
    .exp_sum = avx2_exp_sum,
    .gelu = avx2_gelu,
    .dot = avx2_dot,
    .axpy = avx2_axpy,
};
#endif
