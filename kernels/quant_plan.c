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
    if (W->format == EMU2_WEIGHT_Q4 && W->group != 32 && W->group != 64 && W->group != 128)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: int4 weight with group size %d (want 32, 64 or 128)", op,
                         W->group);
    if (W->format != EMU2_WEIGHT_Q8 && W->format != EMU2_WEIGHT_Q4)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: weight format %d is not a quantized one", op,
                         (int)W->format);
    const char *name = W->format == EMU2_WEIGHT_Q8 ? "int8" : "int4";
    emu2_dtype qdt = W->format == EMU2_WEIGHT_Q8 ? EMU2_DT_I8 : EMU2_DT_U8;
    emu2_dtype sdt = W->format == EMU2_WEIGHT_Q8 ? EMU2_DT_F32 : EMU2_DT_F16;
    size_t rb = cuda_quant_row_bytes(W->format, W->group, K), sc = cuda_quant_scales_per_row(W->format, W->group, K);
    size_t qbytes, sbytes;
    if (!emu2_mul_size(N, rb, &qbytes) || !emu2_mul_size(N, sc, &sbytes) ||
        !emu2_mul_size(sbytes, emu2_dtype_size(sdt), &sbytes) || N > INT32_MAX || K > INT32_MAX)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: quantized weight [%zu, %zu] is too large", op, N, K);
    const emu2_tensor_view *q = &W->w, *s = &W->scales;
    int q_ok = q->dtype == qdt && q->ndim == 2 && q->shape[0] == (int64_t)N && q->shape[1] == (int64_t)rb &&
               q->data && q->nbytes >= qbytes;
    int s_ok = s->dtype == sdt && s->data && s->nbytes >= sbytes &&
               ((s->ndim == 1 && sc == 1 && s->shape[0] == (int64_t)N) ||
                (s->ndim == 2 && s->shape[0] == (int64_t)N && s->shape[1] == (int64_t)sc));
    if (!q_ok)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: %s weight values must be %s [%zu, %zu] for a [%zu, %zu] matrix",
                         op, name, emu2_dtype_name(qdt), N, rb, N, K);
    if (!s_ok)
        return emu2_fail(err, EMU2_ERR_MISMATCH,
                         "%s: %s weight scales must be %s [%zu] (int8) or [%zu, %zu] (int4) for a [%zu, %zu] matrix",
                         op, name, emu2_dtype_name(sdt), N, N, sc, N, K);
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
