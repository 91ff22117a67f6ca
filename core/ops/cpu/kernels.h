/* kernels.h: the few hot inner loops the CPU backend has in several instruction-set versions
 * (kern_scalar.c, kern_avx2.c, kern_avx512.c). Everything else is plain C around them. */
#ifndef EMU2_OPS_CPU_KERNELS_H
#define EMU2_OPS_CPU_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/tensor.h"
#include "ops/ops.h"

/* Packed matmul tiles: K is padded (with zeros) to a multiple of this. */
#define CPU_KPAD 16
/* A tile is CPU_TILE_M rows of x against CPU_TILE_N rows of W. */
#define CPU_TILE_M 4
#define CPU_TILE_N 4

/* For the SIMD kernels: runs CALL(m) with mr's value (1..CPU_TILE_M) as the constant m, so that each row
 * count gets its own fully unrolled copy of an inline body, then returns. */
#define CPU_DISPATCH_TILE_ROWS(mr, CALL)                                                                           \
    switch (mr) {                                                                                                  \
    case 1: CALL(1); return;                                                                                       \
    case 2: CALL(2); return;                                                                                       \
    case 3: CALL(3); return;                                                                                       \
    default: CALL(4); return;                                                                                      \
    }

typedef struct cpu_kernels {
    emu2_cpu_isa isa;
    /* c[i*4+j] = sum_k a[i*lda + k] * b[j*kp + k] for i, j < 4, k < kp; kp is a multiple of CPU_KPAD. */
    void (*tile_packed)(const float *a, size_t lda, const float *b, size_t kp, float *c);
    /* c[i*4+j] = sum_k x[i*ldx + k] * w[j*ldw + k] for i < mr, j < nr (mr, nr in 1..4), any k;
     * w in dtype dt (F32/F16/BF16), ldw in elements. Converts w on the fly (small-M path). c has
     * room for 4x4; entries past nr may be overwritten with junk. */
    void (*tile_direct)(const float *x, size_t ldx, size_t mr, const void *w, emu2_dtype dt, size_t ldw, size_t nr,
                        size_t k, float *c);
    /* dst[i] = (float)src[i], src in F32/F16/BF16. */
    void (*to_f32)(const void *src, emu2_dtype dt, float *dst, size_t n);
    /* c[i*ldc + j] (+)= sum_p a[i*lda + p] * b[p*ldb + j] for i < mr (1..4), j < n, p < k: a small
     * "nn" GEMM with b read along its rows (attention: scores against transposed keys, and
     * probabilities times values). accumulate = 0 overwrites c. */
    void (*gemm_nn)(size_t mr, size_t n, size_t k, const float *a, size_t lda, const float *b, size_t ldb, float *c,
                    size_t ldc, int accumulate);
    /* x[i] = exp(x[i] - max) for i < n, returns the sum (f32). x[i] = -inf gives 0. The SIMD
     * versions use their own exp (max error ~2 ulp; results below ~1e-38 flush to 0). */
    float (*exp_sum)(float *x, size_t n, float max);
    /* y[i] = x[i] * Phi(x[i]) (exact GELU). SIMD versions: erfc by the Chebyshev fit of Numerical
     * Recipes' erfcc (fractional error < 1.2e-7) on top of their exp. y may be x. */
    void (*gelu)(const float *x, float *y, size_t n);
    float (*dot)(const float *a, const float *b, size_t n);
    /* y[i] += alpha * x[i] */
    void (*axpy)(float alpha, const float *x, float *y, size_t n);
} cpu_kernels;

/* Element i of F32/F16/BF16 data as f32. memcpy: checkpoint data need not be aligned. */
static inline float cpu_load_elem(const void *p, emu2_dtype dt, size_t i)
{
    if (dt == EMU2_DT_F32) {
        float f;
        memcpy(&f, (const char *)p + i * 4, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const char *)p + i * 2, 2);
    return dt == EMU2_DT_BF16 ? emu2_bf16_to_f32(h) : emu2_f16_to_f32(h);
}

extern const cpu_kernels cpu_kernels_scalar;
#if defined(__x86_64__) || defined(__i386__)
#define EMU2_CPU_X86 1
extern const cpu_kernels cpu_kernels_avx2;
extern const cpu_kernels cpu_kernels_avx512;
#endif

/* The best kernels the CPU supports, capped at max_isa (EMU2_ISA_AUTO: no cap). */
const cpu_kernels *cpu_kernels_select(emu2_cpu_isa max_isa);
/* Whether this CPU can run the given path. */
int cpu_isa_supported(emu2_cpu_isa isa);

#endif
