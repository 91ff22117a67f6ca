/* quant_plan.c: the host-side rules of the CUDA backend's quantized linears (quant_plan.h). */
#include "quant_plan.h"

#include <stdint.h>

#include "common/checked.h"
#include "common/error.h"
#include "common/tensor.h"

size_t cuda_quant_row_bytes(emu2_weight_format format, int group, size_t K)
{
    if (format == EMU2_WEIGHT_Q8)
        return K;
    if (format == EMU2_WEIGHT_Q4 && (group == 32 || group == 64 || group == 128))
        return (K / (size_t)group + (K % (size_t)group != 0)) * ((size_t)group / 2);
    return 0;
}

size_t cuda_quant_scales_per_row(emu2_weight_format format, int group, size_t K)
{
    if (format == EMU2_WEIGHT_Q8)
        return 1;
    if (format == EMU2_WEIGHT_Q4 && (group == 32 || group == 64 || group == 128))
        return K / (size_t)group + (K % (size_t)group != 0);
    return 0;
}

emu2_status cuda_quant_check_weight(const emu2_op_weight *W, size_t N, size_t K, emu2_is_backend_ptr_fn is_backend_ptr,
                                    emu2_error *err)
{
    static const char op[] = "linear";
    emu2_status st =
        emu2_check_quant_weight(op, W->format == EMU2_WEIGHT_Q8 ? "int8" : "int4", W, N, K, INT32_MAX, err);
    if (st != EMU2_OK)
        return st;
    const emu2_tensor_view *q = &W->w, *s = &W->scales;
    if (is_backend_ptr && (!is_backend_ptr(q->data) || !is_backend_ptr(s->data)))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "%s: quantized weight is host memory; pass it (values and scales) through prepare_weight", op);
    return EMU2_OK;
}

size_t cuda_quant_chunk_rows(size_t N, size_t K, size_t budget_bytes)
{
    if (!N || !K)
        return 0;
    size_t row_bytes = K * 2; /* bf16 */
    if (row_bytes / 2 != K)
        return 1;
    size_t rows = budget_bytes / row_bytes;
    if (rows > 16)
        rows -= rows % 16;
    if (rows < 1)
        rows = 1;
    return rows < N ? rows : N;
}
