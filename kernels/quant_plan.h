/* quant_plan.h: the host-side rules of the CUDA backend's quantized linears (plain C, no CUDA:
 * unit-tested in CI by tests/unit/test_cuda_quant_plan.c). */
#ifndef EMU2_KERNELS_QUANT_PLAN_H
#define EMU2_KERNELS_QUANT_PLAN_H

#include <stddef.h>

#include "ops/op_checks.h"
#include "ops/ops.h"

/* Bytes of bf16 scratch a chunk of widened weight rows may take (prefill / batches above the
 * decode kernel's rows): small enough to stay mostly in L2 between widening and the matmul. */
#define CUDA_QUANT_CHUNK_BYTES ((size_t)16 << 20)

/* Checks a Q8/Q4 op weight standing for the logical [N, K] matrix: format and group, dtypes
 * (I8 + F32 scales, U8 + F16 scales), the shapes core/quant writes ([N, rb]; scales [N] or
 * [N, G]), sizes, and (with is_backend_ptr) that both live in backend memory. The same rules and
 * the same words as the CPU backend's check (core/quant/quant.c), prefixed "linear: ". */
emu2_status cuda_quant_check_weight(const emu2_op_weight *W, size_t N, size_t K, emu2_is_backend_ptr_fn is_backend_ptr,
                                    emu2_error *err);

/* Bytes per row of the stored values: Q8 K, Q4 ceil(K/group) * group/2; 0 for anything else. */
size_t cuda_quant_row_bytes(emu2_weight_format format, int group, size_t K);
/* Scales per row: Q8 1, Q4 ceil(K/group); 0 for anything else. */
size_t cuda_quant_scales_per_row(emu2_weight_format format, int group, size_t K);

/* Weight rows widened per chunk for a K-wide matrix of N rows, at most budget bytes of bf16 each:
 * a multiple of 16 rows when more than 16 fit (cuBLASLt likes aligned shapes), at least 1, at
 * most N. 0 when N or K is 0. */
size_t cuda_quant_chunk_rows(size_t N, size_t K, size_t budget_bytes);

#endif
