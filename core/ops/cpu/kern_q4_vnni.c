/* kern_q4_vnni.c: int4 x int8 dot products on AVX-512 VNNI (vpdpbusd: 64 u8 x s8 products per
 * instruction), the default int4 path where the CPU has it, under the AVX-512 cap.
 *
 * Each activation row is quantized once per call to int8 in blocks of 32 (the 16 low + 16 high
 * nibbles of one 16-byte chunk of a weight row, scale amax/127), laid out like the packed weights
 * so no shuffles are needed. Each 4-byte lane of vpdpbusd sums integer products of one block,
 * converted to f32 once per 64 weight bytes and scaled by (weight group scale) x (activation block
 * scale). The nibbles' offset of 8 is removed by starting each lane from -8 * (its x sum) (tile
 * kernel), or once per weight group after the loop (row kernel: one load less per block). The
 * activations' int8 rounding (relative ~0.4 % per element) is well below int4's own error
 * (docs/QUANT.md has the measured cosines); EMU2_CPU_QUANT_EXACT=1 keeps them f32.
 *
 * Two kernels: cpu_q4_vnni_dot (decode) walks the weight rows one after another, so the matrix
 * is read as one sequential stream (four rows side by side, 1 KiB each for K = 2048, kept the
 * hardware prefetchers from streaming: 13 vs 19 GB/s), with plain loads only and a software
 * prefetch 8 KiB ahead (see its comment: 20-24 -> ~30 GB/s); cpu_q4_vnni_tile (several activation
 * rows) multiplies 4 activation rows by 4 weight rows per pass, sharing every unpacked weight
 * vector and every activation load. */
#include "ops/cpu/kern_q8q4.h"
#include "ops/cpu/kernels.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "ops/cpu/kern_vnni_tile.h"

int cpu_q4_vnni_supported(void)
{
    /* F16C comes with the AVX2 level (isa.c checks it by CPUID; clang's builtin has no "f16c") */
    __builtin_cpu_init();
    return cpu_isa_supported(EMU2_ISA_AVX512) && __builtin_cpu_supports("avx512vnni");
}

int cpu_q4_vnni_usable(emu2_cpu_isa isa)
{
    /* the AVX-512 level was checked when the backend chose it; this test is a flag read, cheap
     * enough for every linear call (a CPUID per call is not, under a hypervisor) */
    __builtin_cpu_init();
    return isa == EMU2_ISA_AVX512 && __builtin_cpu_supports("avx512vnni");
}
#else
int cpu_q4_vnni_supported(void)
{
    return 0;
}

int cpu_q4_vnni_usable(emu2_cpu_isa isa)
{
    (void)isa;
    return 0;
}
#endif

/* Layout of the prepared activations for rows of rb bytes, one 256-byte record per 64 weight
 * bytes (so a kernel reads a single activation stream beside the weight rows), then corr (below):
 *   int8 xlo[64], xhi[64]  x of the low / high nibble of each weight byte, quantized
 *   int32 nsum8[16]        -8 * (sum of the 8 quantized x each 4-byte lane multiplies)
 *   float sx[16]           the activation scale of each 4-byte lane's 32-value block */
#define REC 256

static size_t n_records(size_t rb)
{
    return (rb + 63) / 64;
}

/* After the records: float corr[groups], per weight group g, the sum over its blocks of
 * -8 * (activation block scale) * (block's quantized sum): the nibble offset's whole contribution
 * but for the weight scale, which the row kernel applies with the group's scale. Then float
 * sxc[chunks]: the activation scale of each 16-byte chunk of a weight row, in row order (the row
 * kernel multiplies 16 of them by the weight scales at once). */
static size_t n_groups(size_t rb)
{
    return (rb * 2 + 31) / 32; /* enough for the smallest group (32); G = 64, 128 use fewer */
}

static size_t n_chunks(size_t rb)
{
    return n_records(rb) * 4;
}

size_t cpu_q4_vnni_prep_bytes(size_t rb)
{
    return n_records(rb) * REC + (n_groups(rb) + n_chunks(rb)) * sizeof(float);
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
    float *corr = (float *)(void *)(base + n_records(rb) * REC), *sxc = corr + n_groups(rb);
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
        _mm_storeu_si128((__m128i *)(rec + 128 + in * 16), _mm_sub_epi32(_mm_setzero_si128(), _mm_slli_epi32(sums, 3)));
        _mm_storeu_ps((float *)(void *)(rec + 192 + in * 16), _mm_set1_ps(s));
        sxc[ch] = s;
        /* 8 * sum(q) of the chunk, exactly (|sum| <= 32 * 127), times its scale, into its group */
        corr[g] -= s * (float)(8 * (_mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(qlo)) +
                                    _mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(qhi))));
    }
}

/* Lane l (4 bytes) of a 64-byte block belongs to group (8 l) / G of the block. */
static inline __attribute__((always_inline)) VNNI __m512i group_of_lane(size_t G)
{
    return G == 32   ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
           : G == 64 ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
                     : _mm512_setzero_si512();
}

/* The f16 scales of the groups the 64-byte block `blk` covers (srow: one row's scales, sc of
 * them, any alignment), spread to its 16 lanes; gpb = groups per block (4, 2 or 1). */
static inline __attribute__((always_inline)) VNNI __m512 block_scales(const void *srow, size_t sc, size_t blk,
                                                                     size_t gpb, __m512i gidx)
{
    size_t first = blk * gpb, n = sc - first < gpb ? sc - first : gpb;
    __m128i h = _mm_maskz_loadu_epi16((__mmask8)((1u << n) - 1u), (const uint16_t *)srow + first);
    return _mm512_permutexvar_ps(gidx, _mm512_castps128_ps512(_mm_cvtph_ps(h)));
}

/* The 64 (or, at a row's end, fewer: mask) weight bytes at r + off: low and high nibbles. A masked
 * load always, so that the loops have no branch (which made GCC spill accumulators). */
static inline __attribute__((always_inline)) VNNI void nibbles(const uint8_t *r, size_t off, __mmask64 mask,
                                                                __m512i *lo, __m512i *hi)
{
    const __m512i low4 = _mm512_set1_epi8(15);
    __m512i b = _mm512_maskz_loadu_epi8(mask, r + off);
    *lo = _mm512_and_si512(b, low4);
    *hi = _mm512_and_si512(_mm512_srli_epi16(b, 4), low4);
}

static inline __mmask64 bytes_mask(size_t off, size_t rb)
{
    return rb - off >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (rb - off)) - 1);
}

/* acc += (the integer dot of one 64-byte block, offset removed) x (weight x activation scales). */
static inline __attribute__((always_inline)) VNNI __m512 block_dot(__m512 acc, __m512i lo, __m512i hi,
                                                                  const uint8_t *p, __m512 sw)
{
    __m512i is = _mm512_dpbusd_epi32(_mm512_loadu_si512(p + 128), lo, _mm512_loadu_si512(p));
    is = _mm512_dpbusd_epi32(is, hi, _mm512_loadu_si512(p + 64));
    __m512 s = _mm512_mul_ps(sw, _mm512_loadu_ps((const float *)(const void *)(p + 192)));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), s, acc);
}

/* How far ahead of its use a weight row is prefetched: the rows are read in order, so this runs
 * into the next rows; measured 1 KiB > 256 B and 2 KiB on this EPYC. */
#define Q4V_PREFETCH 1024

/* The row kernel's block: the integer dot from zero (the offset is in corr), f32 once, times
 * weight x activation scales. */
static inline __attribute__((always_inline)) VNNI __m512 row_block(__m512 acc, const uint8_t *r, size_t off,
                                                                  __mmask64 mask, const uint8_t *p, __m512 sw)
{
    __m512i lo, hi;
    nibbles(r, off, mask, &lo, &hi);
    __m512i is = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_loadu_si512(p));
    is = _mm512_dpbusd_epi32(is, hi, _mm512_loadu_si512(p + 64));
    __m512 sc = _mm512_mul_ps(sw, _mm512_loadu_ps((const float *)(const void *)(p + 192)));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), sc, acc);
}

/* The previous row kernel (masked scale loads), kept for same-run A/B measurements
 * (EMU2_CPU_QUANT_DECODE=legacy, tests/bench/bench_quant.c's ":legacy"). */
VNNI void cpu_q4_vnni_dot_legacy(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc,
                                 size_t G, size_t nr, float *out)
{
    const uint8_t *rec = prep;
    const float *corr = (const float *)(const void *)(rec + n_records(rb) * REC);
    const __m512i gidx = group_of_lane(G);
    const size_t gpb = 128 / G;
    /* the scales of 4 blocks come in one load: block i's lanes pick groups i * gpb + (lane group) */
    const __m512i step = _mm512_set1_epi32((int)gpb);
    const __m512i g0 = gidx, g1 = _mm512_add_epi32(g0, step), g2 = _mm512_add_epi32(g1, step),
                  g3 = _mm512_add_epi32(g2, step);
    const __mmask16 four = (__mmask16)((1u << (4 * gpb)) - 1u);
    for (size_t j = 0; j < nr; j++) {
        const uint8_t *r = w + j * rb;
        const uint16_t *srow = (const uint16_t *)(const void *)((const uint8_t *)scales + j * sc * 2);
        /* two accumulators so consecutive blocks' FMAs do not wait on each other */
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        size_t off = 0;
        for (; off + 256 <= rb; off += 256) {
            const uint8_t *p = rec + off / 64 * REC;
            for (size_t t = 0; t < 256; t += 64)
                _mm_prefetch((const char *)(r + off + t + Q4V_PREFETCH), _MM_HINT_T0);
            __m512 sv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(four, srow + off / 64 * gpb));
            a0 = row_block(a0, r, off, ~(__mmask64)0, p, _mm512_permutexvar_ps(g0, sv));
            a1 = row_block(a1, r, off + 64, ~(__mmask64)0, p + REC, _mm512_permutexvar_ps(g1, sv));
            a0 = row_block(a0, r, off + 128, ~(__mmask64)0, p + 2 * REC, _mm512_permutexvar_ps(g2, sv));
            a1 = row_block(a1, r, off + 192, ~(__mmask64)0, p + 3 * REC, _mm512_permutexvar_ps(g3, sv));
        }
        for (; off < rb; off += 64)
            a0 = row_block(a0, r, off, bytes_mask(off, rb), rec + off / 64 * REC,
                           block_scales(srow, sc, off / 64, gpb, gidx));
        /* the nibble offset: sum over groups of (weight scale) x corr */
        for (size_t g = 0; g < sc; g += 16) {
            __mmask16 m = sc - g >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (sc - g)) - 1u);
            a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, srow + g)),
                                 _mm512_maskz_loadu_ps(m, corr + g), a1);
        }
        out[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

/* The decode row kernel. On this EPYC (Zen 5) a masked load whose line comes from DRAM holds up the
 * weight stream: with the scales of 4 blocks read by a masked load the kernel streamed 20-24 GB/s
 * from DRAM although it runs at 65-90 GB/s from L2; with plain loads of exactly the bytes needed,
 * 29-31 GB/s (docs/QUANT.md). So every load of a whole block is a plain one, and only a partial last
 * block (K % 128 != 0) uses masks. */

/* The weight scales of the 4 * 128 / G groups of 256 row bytes from srow (any alignment), as f32 in
 * the low lanes, the rest 0. */
static inline __attribute__((always_inline)) VNNI __m512 scales_256(const uint16_t *srow, size_t G)
{
    if (G == 32)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)srow));
    if (G == 64)
        return _mm512_zextps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)srow)));
    return _mm512_zextps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)srow)));
}

/* The same for the 128 / G groups of one whole 64-byte block. */
static inline __attribute__((always_inline)) VNNI __m512 scales_64(const uint16_t *srow, size_t G)
{
    uint64_t v = 0;
    memcpy(&v, srow, G == 32 ? 8 : G == 64 ? 4 : 2);
    return _mm512_zextps128_ps512(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)&v)));
}

/* acc += the integer dot of the whole 64-byte block at wb against record p (offset removed by
 * corr), times s (weight x activation scale of each lane). */
static inline __attribute__((always_inline)) VNNI __m512 whole_block(__m512 acc, const uint8_t *wb, const uint8_t *p,
                                                                    __m512 s)
{
    const __m512i low4 = _mm512_set1_epi8(15);
    __m512i b = _mm512_loadu_si512(wb);
    __m512i is = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_and_si512(b, low4), _mm512_loadu_si512(p));
    is = _mm512_dpbusd_epi32(is, _mm512_and_si512(_mm512_srli_epi16(b, 4), low4), _mm512_loadu_si512(p + 64));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(is), s, acc);
}

/* One weight row (rb bytes, scales srow) against the prepared row; G a constant after inlining. */
static inline __attribute__((always_inline)) VNNI float dot_row(const uint8_t *rec, const uint8_t *r, size_t rb,
                                                               const uint16_t *srow, size_t sc, size_t G)
{
    const float *corr = (const float *)(const void *)(rec + n_records(rb) * REC), *sxc = corr + n_groups(rb);
    const size_t gpb = 128 / G, full = rb / 256 * 256;
    const __m512i gidx = group_of_lane(G);
    /* lane l of block t of 256 bytes is in chunk 4t + l/4, whose group is (chunk * 32 / G) */
    const __m512i c0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), four = _mm512_set1_epi32(4);
    const __m512i c1 = _mm512_add_epi32(c0, four), c2 = _mm512_add_epi32(c1, four), c3 = _mm512_add_epi32(c2, four);
    const __m512i cg = _mm512_srli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         G == 32 ? 0 : G == 64 ? 1 : 2);
    /* two accumulators so consecutive blocks' FMAs do not wait on each other; ac: the offset */
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, ac = a0;
    size_t off = 0;
    for (; off < full; off += 256) {
        const uint8_t *p = rec + off / 64 * REC;
        size_t g = off / 64 * gpb;
        for (size_t t = 0; t < 256; t += 64)
            _mm_prefetch((const char *)(r + off + t + CPU_VNNI_ROW_PREFETCH), _MM_HINT_T0);
        __m512 sv = scales_256(srow + g, G);
        /* corr past this block's groups (G 64, 128) meets zero scales; it stays inside corr */
        ac = _mm512_fmadd_ps(sv, _mm512_loadu_ps(corr + g), ac);
        /* weight x activation scale of the 16 chunks, then spread to each block's lanes */
        __m512 cs = _mm512_mul_ps(G == 32 ? sv : _mm512_permutexvar_ps(cg, sv), _mm512_loadu_ps(sxc + off / 16));
        a0 = whole_block(a0, r + off, p, _mm512_permutexvar_ps(c0, cs));
        a1 = whole_block(a1, r + off + 64, p + REC, _mm512_permutexvar_ps(c1, cs));
        a0 = whole_block(a0, r + off + 128, p + 2 * REC, _mm512_permutexvar_ps(c2, cs));
        a1 = whole_block(a1, r + off + 192, p + 3 * REC, _mm512_permutexvar_ps(c3, cs));
    }
    for (; off + 64 <= rb; off += 64) {
        const uint8_t *p = rec + off / 64 * REC;
        size_t g = off / 64 * gpb;
        __m512 sv = scales_64(srow + g, G);
        ac = _mm512_fmadd_ps(sv, _mm512_zextps128_ps512(_mm_loadu_ps(corr + g)), ac);
        __m512 s = _mm512_mul_ps(_mm512_permutexvar_ps(gidx, sv), _mm512_loadu_ps((const float *)(const void *)(p + 192)));
        a0 = whole_block(a0, r + off, p, s);
    }
    if (off < rb) { /* a partial last block: masked loads, and the offset of its groups */
        a1 = row_block(a1, r, off, bytes_mask(off, rb), rec + off / 64 * REC, block_scales(srow, sc, off / 64, gpb, gidx));
        for (size_t g = off / 64 * gpb; g < sc; g += 16) {
            __mmask16 m = sc - g >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (sc - g)) - 1u);
            ac = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, srow + g)),
                                 _mm512_maskz_loadu_ps(m, corr + g), ac);
        }
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), ac));
}

/* Rows one after another: one sequential stream of the matrix, prefetched CPU_VNNI_ROW_PREFETCH
 * ahead (kern_vnni_tile.h). */
VNNI void cpu_q4_vnni_dot(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                          size_t nr, float *out)
{
    const uint8_t *rec = prep;
    const uint8_t *sb = scales;
    for (size_t j = 0; j < nr; j++) {
        const uint8_t *r = w + j * rb;
        const uint16_t *srow = (const uint16_t *)(const void *)(sb + j * sc * 2);
        out[j] = G == 32   ? dot_row(rec, r, rb, srow, sc, 32)
                 : G == 64 ? dot_row(rec, r, rb, srow, sc, 64)
                           : dot_row(rec, r, rb, srow, sc, 128);
    }
}

/* Weight row n's block against the 4 prepared rows into accumulators a0n..a3n (named, not an
 * array, so that all 16 stay in registers). */
#define TILE_ROW(n)                                                                                                 \
    do {                                                                                                            \
        __m512i lo_, hi_;                                                                                           \
        nibbles(w##n, off, mask, &lo_, &hi_);                                                                         \
        __m512 sw_ = block_scales(s##n, sc, blk, gpb, gidx);                                                        \
        a0##n = block_dot(a0##n, lo_, hi_, x0 + blk * REC, sw_);                                                    \
        a1##n = block_dot(a1##n, lo_, hi_, x1 + blk * REC, sw_);                                                    \
        a2##n = block_dot(a2##n, lo_, hi_, x2 + blk * REC, sw_);                                                    \
        a3##n = block_dot(a3##n, lo_, hi_, x3 + blk * REC, sw_);                                                    \
    } while (0)

VNNI void cpu_q4_vnni_tile(const void *prep, size_t prep_stride, size_t mr, const uint8_t *w, size_t rb,
                           const void *scales, size_t sc, size_t G, size_t nr, float out[CPU_VNNI_TM][CPU_Q_ROWS])
{
    /* rows past mr / nr repeat row 0 and are discarded */
    const uint8_t *xb = prep, *sb = scales;
    const uint8_t *x0 = xb, *x1 = xb + (mr > 1) * prep_stride, *x2 = xb + (mr > 2) * 2 * prep_stride,
                  *x3 = xb + (mr > 3) * 3 * prep_stride;
    const uint8_t *w0 = w, *w1 = w + (nr > 1) * rb, *w2 = w + (nr > 2) * 2 * rb, *w3 = w + (nr > 3) * 3 * rb;
    const uint8_t *s0 = sb, *s1 = sb + (nr > 1) * sc * 2, *s2 = sb + (nr > 2) * 2 * sc * 2,
                  *s3 = sb + (nr > 3) * 3 * sc * 2;
    const __m512i gidx = group_of_lane(G);
    const size_t gpb = 128 / G;
    VNNI_TILE_ACCUMULATORS;
    for (size_t off = 0, blk = 0; off < rb; off += 64, blk++) {
        __mmask64 mask = bytes_mask(off, rb);
        TILE_ROW(0);
        TILE_ROW(1);
        TILE_ROW(2);
        TILE_ROW(3);
    }
    VNNI_TILE_STORE(out);
}
#else
void cpu_q4_vnni_prep(const float *x, size_t K, size_t G, size_t rb, void *buf)
{
    (void)x, (void)K, (void)G, (void)rb, (void)buf;
}

void cpu_q4_vnni_dot(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                     size_t nr, float *out)
{
    (void)prep, (void)w, (void)rb, (void)scales, (void)sc, (void)G, (void)nr, (void)out;
}

void cpu_q4_vnni_dot_legacy(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                            size_t nr, float *out)
{
    (void)prep, (void)w, (void)rb, (void)scales, (void)sc, (void)G, (void)nr, (void)out;
}

void cpu_q4_vnni_tile(const void *prep, size_t prep_stride, size_t mr, const uint8_t *w, size_t rb,
                      const void *scales, size_t sc, size_t G, size_t nr, float out[CPU_VNNI_TM][CPU_Q_ROWS])
{
    (void)prep, (void)prep_stride, (void)mr, (void)w, (void)rb, (void)scales, (void)sc, (void)G, (void)nr, (void)out;
}
#endif
