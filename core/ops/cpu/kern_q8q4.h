/* kern_q8q4.h: the inner loops of the int8 / int4 weight-only linear (linear_q8q4.c) in scalar,
 * AVX2 and AVX-512 versions. Activations stay f32; weights are read as stored (no dequantized copy)
 * and each row's (or group's) sum is scaled once. Formats: ops.h (emu2_weight_format). */
#ifndef EMU2_OPS_CPU_KERN_Q8Q4_H
#define EMU2_OPS_CPU_KERN_Q8Q4_H

#include <stddef.h>
#include <stdint.h>

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
} cpu_qkernels;

extern const cpu_qkernels cpu_qkernels_scalar;
#if defined(__x86_64__) || defined(__i386__)
extern const cpu_qkernels cpu_qkernels_avx2;
extern const cpu_qkernels cpu_qkernels_avx512;
#endif

/* The set matching the float kernels' instruction set (the backend's choice). */
const cpu_qkernels *cpu_qkernels_for(emu2_cpu_isa isa);

/* AVX-512 VNNI int4 decode (kern_q4_vnni.c): whether the CPU has it; the prepared activation
 * row (int8 blocks laid out like weight rows of rb bytes) and its size; the dot of up to
 * CPU_Q_ROWS weight rows against it. */
int cpu_q4_vnni_supported(void);
size_t cpu_q4_vnni_prep_bytes(size_t rb);
void cpu_q4_vnni_prep(const float *x, size_t K, size_t G, size_t rb, void *buf);
void cpu_q4_vnni_dot(const void *prep, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                     size_t nr, float *out);

/* The linear op for Q8/Q4 weights (cpu_linear hands them here); same contract as ops.h linear. */
emu2_status cpu_linear_quant(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                             const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                             emu2_error *err);

/* Scalar pieces the SIMD versions reuse for a partial last int4 group. */
float cpu_q4_group_dot(const float *x, const uint8_t *q, size_t G, size_t n);
float cpu_load_f16(const void *p, size_t i);

#endif
