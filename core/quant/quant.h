/* quant.h: the weight-only formats (int8 per output channel, int4 group-wise; layouts in ops.h and
 * docs/QUANT.md) and their reference quantize / dequantize code. The same functions serve load-time
 * quantization and `emu2 convert`, so both give bit-identical weights from the same source. */
#ifndef EMU2_QUANT_QUANT_H
#define EMU2_QUANT_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"
#include "emu2.h"
#include "ops/ops.h"

#define EMU2_Q4_DEFAULT_GROUP 32

typedef struct emu2_quant_spec {
    emu2_weight_format format; /* EMU2_WEIGHT_FLOAT: no quantization */
    int group;                 /* Q4 group size (32, 64, 128) */
    int down_int8;             /* Q4 preset "int4": mlp.down_proj stays int8 (docs/QUANT.md) */
} emu2_quant_spec;

/* "none"/NULL/"" -> FLOAT; "int8" -> Q8; "int4" -> Q4 group 32 with down_proj in int8 (the
 * default: measured on the tiny model, down_proj is where int4 loses accuracy); "int4-g32",
 * "int4-g64", "int4-g128" -> every linear Q4 with that group. Unknown names are an
 * EMU2_ERR_INVALID_ARGUMENT naming the accepted ones. */
emu2_status emu2_quant_parse(const char *name, emu2_quant_spec *out, emu2_error *err);
/* "none", "int8", "int4", "int4-g32", ... (static string). */
const char *emu2_quant_name(emu2_quant_spec spec);
/* The format one linear gets under spec: `base` is its canonical name without ".weight"
 * (e.g. "decoder.lm.model.layers.3.mlp.down_proj"). lm_head ("decoder.lm.lm_head") is int8 in
 * every quantized mode; the "int4" preset also keeps down_proj in int8. */
emu2_quant_spec emu2_quant_spec_for(emu2_quant_spec spec, const char *base);

/* Bytes of the quantized values and of the scales of an [N, K] matrix. */
size_t emu2_quant_q_row_bytes(emu2_quant_spec spec, size_t K);
size_t emu2_quant_scale_row_count(emu2_quant_spec spec, size_t K); /* scales per row */

/* Quantizes rows [0, N) of src ([N, K], F32/F16/BF16) into q (N * q_row_bytes) and scales
 * (Q8: N floats; Q4: N * groups f16 values). Symmetric, round-to-nearest-even; a row or group of
 * zeros gets scale 0. Non-finite weights are refused (EMU2_ERR_FORMAT). */
emu2_status emu2_quantize_rows(emu2_quant_spec spec, const void *src, emu2_dtype src_dt, size_t N, size_t K,
                               void *q, void *scales, emu2_error *err);

/* The same with the rows split over `threads` threads (results identical; threads <= 1: inline). */
emu2_status emu2_quantize_rows_threads(emu2_quant_spec spec, const void *src, emu2_dtype src_dt, size_t N, size_t K,
                                       void *q, void *scales, int threads, emu2_error *err);

/* Dequantized elements [k0, k0 + n) of row `row` of a Q8/Q4 weight as f32 (the reference every
 * kernel is tested against). For Q4, k0 must be a multiple of the group size. */
void emu2_dequant_row(const emu2_op_weight *w, size_t K, size_t row, size_t k0, size_t n, float *out);

/* Checks a quantized op weight against the logical [N, K] it stands for (dtypes, shapes, sizes). */
emu2_status emu2_quant_check_weight(const emu2_op_weight *w, size_t N, size_t K, emu2_error *err);

#endif
