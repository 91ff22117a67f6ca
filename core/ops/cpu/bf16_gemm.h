/* bf16_gemm.h: the large-M linear of the "bf16" precision: x rounded to bf16, BF16 weights, f32
 * accumulation, on the AVX512_BF16 kernels (kern_bf16dot.h). */
#ifndef EMU2_OPS_CPU_BF16_GEMM_H
#define EMU2_OPS_CPU_BF16_GEMM_H

#include <stdint.h>

#include "ops/cpu/cpu_internal.h"

/* y[M, N] = bf16(x) . W^T (+ bias), W BF16 [N, K] row-major; arguments already checked, and
 * cpu_bf16dot_supported() true. Runs on the backend's threads. */
emu2_status cpu_bf16_gemm(cpu_backend *cb, size_t M, size_t K, size_t N, const float *x, size_t ldx,
                          const uint16_t *w, const emu2_tensor_view *bias, float *y, size_t ldy, emu2_error *err);

#endif
