/* cuda_quant.c: linear with int8 / int4 weights (formats in core/ops/ops.h), read as stored.
 *   - M <= emu2k_qgemv_max_rows() (decode): the weight-streaming kernel of quant.cu reads each
 *     weight byte once (f32 activations and sums, bias fused).
 *   - larger M (prefill, big batches): activations rounded to bf16 once, then per chunk of weight
 *     rows (CUDA_QUANT_CHUNK_BYTES of bf16) the rows are widened to bf16 and multiplied by
 *     cuBLASLt into the chunk's output columns. int8 rows are widened unscaled (exact) and the row
 *     scales applied to the f32 result with the bias; int4 rows are widened scaled (rounded to
 *     bf16 once, as the bf16 path rounds its weights).
 * Arguments are checked by cuda_linear (cuda_matmul.c) before this runs. */
#include "common/checked.h"
#include "common/error.h"
#include "cuda_internal.h"
#include "quant_plan.h"

emu2_status cuda_linear_quant(cuda_backend *cb, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                              const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                              emu2_error *err)
{
    emu2k_qlinear a = {
        .M = M, .K = K, .N = N, .format = (int)W->format, .group = W->group, .x = x, .ldx = x_stride,
        .q = W->w.data, .scales = W->scales.data, .bias = bias ? bias->data : NULL,
        .bias_dtype = bias ? (int)bias->dtype : 0, .y = y, .ldy = y_stride,
    };
    cuda_use(cb);
    if (M <= (size_t)emu2k_qgemv_max_rows())
        return cuda_launched(err, emu2k_qgemv(cb->stream, &a), "linear (quantized gemv)");

    size_t xbytes, rows = cuda_quant_chunk_rows(N, K, CUDA_QUANT_CHUNK_BYTES), wbytes;
    size_t rb = cuda_quant_row_bytes(W->format, W->group, K), sc = cuda_quant_scales_per_row(W->format, W->group, K);
    size_t scale_size = W->format == EMU2_WEIGHT_Q8 ? sizeof(float) : 2;
    if (!emu2_mul_size(M, K, &xbytes) || !emu2_mul_size(xbytes, 2, &xbytes) || !emu2_mul_size(rows, K, &wbytes) ||
        !emu2_mul_size(wbytes, 2, &wbytes))
        return emu2_fail(err, EMU2_ERR_LIMIT, "linear: activations of %zu x %zu are too large", M, K);
    void *xh = cuda_scratch(cb, CUDA_SCRATCH_CONVERT, xbytes, err);
    void *wh = xh ? cuda_scratch(cb, CUDA_SCRATCH_DEQUANT, wbytes, err) : NULL;
    if (!xh || !wh)
        return err ? err->status : EMU2_ERR_NOMEM;
    emu2_status st = cuda_launched(err, emu2k_to_half(cb->stream, M, K, x, x_stride, xh, EMU2_DT_BF16),
                                   "linear (activation conversion)");
    for (size_t n0 = 0; st == EMU2_OK && n0 < N; n0 += rows) {
        size_t nc = N - n0 < rows ? N - n0 : rows;
        const unsigned char *q = (const unsigned char *)W->w.data + n0 * rb;
        const unsigned char *s = (const unsigned char *)W->scales.data + n0 * sc * scale_size;
        st = cuda_launched(err, emu2k_dequant_bf16(cb->stream, (int)W->format, W->group, nc, K, q, s, wh),
                           "linear (weight widening)");
        if (st == EMU2_OK) /* the chunk's columns of y: C[nc x M] at y + n0, same ldc */
            st = cuda_lt_matmul(cb, M, K, nc, wh, xh, y + n0, y_stride, EMU2_DT_BF16, err);
    }
    if (st != EMU2_OK)
        return st;
    const float *row_scales = W->format == EMU2_WEIGHT_Q8 ? (const float *)W->scales.data : NULL;
    return cuda_launched(err, emu2k_scale_bias(cb->stream, M, N, y, y_stride, row_scales, a.bias, a.bias_dtype),
                         "linear (scales and bias)");
}
