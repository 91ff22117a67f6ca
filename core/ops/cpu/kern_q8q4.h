/* kern_q8q4.h: the inner loops of the int8 / int4 weight-only linear (linear_q8q4.c): with f32
 * activations in scalar, AVX2 and AVX-512 versions (weights read as stored, no dequantized copy,
 * each row's or group's sum scaled once), and with int8-quantized activations on AVX-512 VNNI
 * (kern_q4_vnni.c, kern_q8_vnni.c). Formats: ops.h (emu2_weight_format). */
#ifndef EMU2_OPS_CPU_KERN_Q8Q4_H
#define EMU2_OPS_CPU_KERN_Q8Q4_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ops/ops.h"

#define CPU_Q_ROWS 4 /* weight rows one kernel call handles at most */

typedef struct cpu_qkernels {
    emu2_cpu_isa isa;
    /* out[j] = scale_j * sum_{k<K} x[k] * w[j*K + k], j < nr (1..CPU_Q_ROWS); scales: nr f32 (any alignment). */
    void (*dot_q8)(const float *x, const int8_t *w, size_t K, size_t nr, const void *scales, float *out);
    /* The same for int4 rows of rb bytes (w + j*rb), scales f16 rows of sc values (scales + j*sc*2
     * bytes), group G (multiple of 32); the last group may be partial (K % G != 0). */
    void (*dot_q4)(const float *x, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G, size_t K,
                   size_t nr, float *out);
    /* where set: the dot_q8 before its rewrite, for same-run A/B runs (EMU2_CPU_QUANT_DECODE=legacy) */
    void (*dot_q8_legacy)(const float *x, const int8_t *w, size_t K, size_t nr, const void *scales, float *out);
} cpu_qkernels;

extern const cpu_qkernels cpu_qkernels_scalar;
#if defined(__x86_64__) || defined(__i386__)
extern const cpu_qkernels cpu_qkernels_avx2;
extern const cpu_qkernels cpu_qkernels_avx512;
#endif

/* The set matching the float kernels' instruction set (the backend's choice). */
const cpu_qkernels *cpu_qkernels_for(emu2_cpu_isa isa);

/* int4 weights x int8-quantized activations on AVX-512 VNNI (kern_q4_vnni.c), the default int4
 * path where the CPU has it: whether it does; the prepared activation row (int8 blocks of 32
 * laid out like weight rows of rb bytes) and its size; the dot of up to CPU_Q_ROWS weight rows
 * against one prepared row (decode; the caller checks the CPU's support); and a tile of up to
 * CPU_VNNI_TM prepared rows (prep_stride bytes apart) by up to CPU_Q_ROWS weight rows: out[m][n]
 * (prefill, beams). */
#define CPU_VNNI_TM 4 /* activation rows per VNNI tile (int4 and int8) */
int cpu_q4_vnni_supported(void);
int cpu_q4_vnni_usable(emu2_cpu_isa isa); /* the same, given the backend's kernel ISA (cheap) */
size_t cpu_q4_vnni_prep_bytes(size_t rb);
void cpu_q4_vnni_prep(const float *x, size_t K, size_t G, size_t rb, void *buf);
void cpu_q4_vnni_dot(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                     size_t nr, float *out);
/* the previous row kernel, for same-run A/B measurements (EMU2_CPU_QUANT_DECODE=legacy) */
void cpu_q4_vnni_dot_legacy(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                            size_t nr, float *out);
void cpu_q4_vnni_tile(const void *prep, size_t prep_stride, size_t mr, const uint8_t *w, size_t rb,
                      const void *scales, size_t sc, size_t G, size_t nr, float out[CPU_VNNI_TM][CPU_Q_ROWS]);

/* int8 weights x int8-quantized activations on AVX-512 VNNI (kern_q8_vnni.c; prefill): the
 * prepared activation row (blocks of 32 as unsigned q + 128) and its size, and a tile of up to
 * CPU_VNNI_TM prepared rows by up to CPU_Q_ROWS weight rows of K values: out[m][n], without the
 * weight row scales. */
size_t cpu_q8_vnni_prep_bytes(size_t K);
void cpu_q8_vnni_prep(const float *x, size_t K, void *buf);
void cpu_q8_vnni_tile(const void *prep, size_t prep_stride, size_t mr, const int8_t *w, size_t K, size_t nr,
                      float out[CPU_VNNI_TM][CPU_Q_ROWS]);

/* The linear op for Q8/Q4 weights: cpu_linear checks the arguments and hands them here. */
emu2_status cpu_linear_quant(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                             const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                             emu2_error *err);

/* Scalar pieces the SIMD versions reuse for a partial last int4 group. */
float cpu_q4_group_dot(const float *x, const uint8_t *q, size_t G, size_t n);
float cpu_load_f16(const void *p, size_t i);

/* The setup and the scalar ends the SIMD kernels share (their vector loops stay ISA-specific). */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* An f16 scale (any alignment) by F16C; inlined into the AVX2 / AVX-512 kernels, whose targets
 * include f16c. */
static inline __attribute__((always_inline, target("f16c"))) float cpu_f16c_at(const void *p, size_t i)
{
    uint16_t h;
    memcpy(&h, (const char *)p + i * 2, 2);
    return _cvtsh_ss(h);
}
#endif

/* Row pointers of up to CPU_Q_ROWS int8 rows of K values; rows past nr repeat row 0. */
static inline void cpu_q8_rows(const int8_t *w, size_t K, size_t nr, const int8_t *r[CPU_Q_ROWS])
{
    for (size_t j = 0; j < CPU_Q_ROWS; j++)
        r[j] = w + (j < nr ? j : 0) * K;
}

/* Up to CPU_Q_ROWS int4 rows: their values and the offsets of their scale rows; rows past nr
 * repeat row 0 (computed and discarded) so the vector loops always do four. */
typedef struct cpu_q4_rowset {
    const uint8_t *r[CPU_Q_ROWS];
    size_t srow[CPU_Q_ROWS];
} cpu_q4_rowset;

static inline cpu_q4_rowset cpu_q4_rows(const uint8_t *w, size_t rb, size_t sc, size_t nr)
{
    cpu_q4_rowset rs;
    for (size_t j = 0; j < CPU_Q_ROWS; j++) {
        size_t jj = j < nr ? j : 0;
        rs.r[j] = w + jj * rb;
        rs.srow[j] = jj * sc;
    }
    return rs;
}

/* out[j] = sums[j] + the dot of row j's partial last group (the K % G values the vector loop over
 * whole groups left), for j < nr. */
static inline void cpu_q4_finish(const float *x, const cpu_q4_rowset *rs, const void *scales, size_t G, size_t K,
                                 size_t nr, const float *sums, float *out)
{
    const size_t full = K / G;
    for (size_t j = 0; j < nr; j++) {
        float s = sums[j];
        if (full * G < K)
            s += cpu_q4_group_dot(x + full * G, rs->r[j] + full * (G / 2), G, K - full * G) *
                 cpu_load_f16(scales, rs->srow[j] + full);
        out[j] = s;
    }
}

/* out[j] = (sums[j] + x[k0..K) . row j's values there) * scale j (f32, any alignment), j < nr;
 * k0 = K when the vector loop covered the whole row. */
static inline void cpu_q8_finish(const float *x, const int8_t *const r[CPU_Q_ROWS], size_t k0, size_t K,
                                 const void *scales, size_t nr, const float *sums, float *out)
{
    for (size_t j = 0; j < nr; j++) {
        float acc = sums[j], s;
        for (size_t t = k0; t < K; t++)
            acc += x[t] * (float)r[j][t];
        memcpy(&s, (const char *)scales + j * 4, 4);
        out[j] = acc * s;
    }
}

#endif
