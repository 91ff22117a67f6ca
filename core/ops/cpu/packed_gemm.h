/* packed_gemm.h: the prefill (large M) path of linear, shared by float weights (matmul.c) and
 * int8/int4 weights (linear_q8q4.c): a (64-row, 1024-column) block of W is turned into f32 once
 * per task in per-thread scratch (it stays in L2) and multiplied with the float kernels' packed
 * 4x4 tiles; tasks are (N block, M chunk) pairs, so even narrow outputs keep every thread busy.
 * Accumulation is f32 throughout; only how a block of weight rows becomes f32 differs. */
#ifndef EMU2_OPS_CPU_PACKED_GEMM_H
#define EMU2_OPS_CPU_PACKED_GEMM_H

#include "ops/cpu/cpu_internal.h"

#define CPU_PACK_BLOCK_N 64   /* weight rows per packed block */
#define CPU_PACK_BLOCK_K 1024 /* columns per block: 64 x 1024 f32 = 256 KiB; a multiple of every int4 group */

/* Elements [k0, k0 + n) of weight row `row` as f32 into dst (k0 a multiple of CPU_PACK_BLOCK_K). */
typedef void (*cpu_weight_rows_fn)(const void *ctx, size_t row, size_t k0, size_t n, float *dst);

typedef struct cpu_packed_gemm {
    size_t M, K, N;
    const float *x;
    size_t ldx;
    const emu2_tensor_view *bias; /* or NULL */
    float *y;
    size_t ldy;
    cpu_weight_rows_fn weight_rows;
    const void *weight_ctx;
    const float *w_f32; /* the weights when they are f32 [N, K] rows (read in place when K fits one
                         * block), else NULL */
} cpu_packed_gemm;

/* y[M, N] = x . W^T (+ bias) on the backend's threads; arguments already checked. */
emu2_status cpu_packed_gemm_run(cpu_backend *cb, const cpu_packed_gemm *g, emu2_error *err);

#endif
