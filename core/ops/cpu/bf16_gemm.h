/* bf16_gemm.h: the large-M linear on the AVX512_BF16 kernels (kern_bf16dot.h): x rounded to bf16,
 * weights as bf16 panels, f32 accumulation. Used by the "bf16" precision (BF16 weights) and by the
 * int8 / int4 prefill (linear_q8q4.c: the panels are dequantized from the quantized rows). */
#ifndef EMU2_OPS_CPU_BF16_GEMM_H
#define EMU2_OPS_CPU_BF16_GEMM_H

#include <stdint.h>

#include "ops/cpu/cpu_internal.h"

#define CPU_BF16_BLOCK_K 1024 /* the K slices the panels are packed in (pack's k0 is a multiple) */

/* The fewest x rows for which the int8 / int4 linears take this GEMM: below, packing the panels
 * costs more than it saves against the VNNI tiles (measured at 1 thread, K 2048 / 5504: bf16 0.43-0.59x
 * the VNNI tiles' speed at 8 rows, 0.83-1.09x at 32, 1.13-1.42x at 48 and more). */
#define CPU_BF16_QUANT_MIN_M 40

/* A weight matrix [N, K] in some format, as the GEMM reads it. */
typedef struct cpu_bf16_weights {
    /* Fills one panel (kern_bf16dot.h layout) from rows [n, n + rows) (rows <= CPU_BF16_NR) x
     * elements [k0, k0 + kl); rows past the matrix are zero. */
    void (*pack)(const void *ctx, size_t n, size_t rows, size_t k0, size_t kl, uint32_t *dst);
    const void *ctx;
    /* for prefetching the next block: row n's elements from k0 on start at
     * data + n * row_bytes + k0 * bits / 8 (bits per element: 16, 8 or 4) */
    const void *data;
    size_t row_bytes, bits;
} cpu_bf16_weights;

/* y[M, N] = bf16(x) . W^T (+ bias); arguments already checked, and cpu_bf16dot_supported() true.
 * Runs on the backend's threads. */
emu2_status cpu_bf16_gemm_weights(cpu_backend *cb, size_t M, size_t K, size_t N, const float *x, size_t ldx,
                                  const cpu_bf16_weights *w, const emu2_tensor_view *bias, float *y, size_t ldy,
                                  emu2_error *err);

/* The same for BF16 weights [N, K] row-major. */
emu2_status cpu_bf16_gemm(cpu_backend *cb, size_t M, size_t K, size_t N, const float *x, size_t ldx,
                          const uint16_t *w, const emu2_tensor_view *bias, float *y, size_t ldy, emu2_error *err);

#endif
