/* quant_bind.h: one LLM linear as an int8/int4 op weight: either read from a converted checkpoint
 * (`<base>.qweight` + `<base>.scales`, written by `emu2 convert`) or quantized at load time from
 * `<base>.weight` with the same reference code (quant.c), so both give the same bytes. */
#ifndef EMU2_QUANT_QUANT_BIND_H
#define EMU2_QUANT_QUANT_BIND_H

#include "io/checkpoint.h"
#include "quant/quant.h"

#define EMU2_QWEIGHT_SUFFIX "qweight"
#define EMU2_QSCALES_SUFFIX "scales"

/* Whether the checkpoint holds a quantized version of linear `base` (e.g. "decoder.lm.model.layers.0.mlp.up_proj"). */
int emu2_quant_has_stored(const emu2_checkpoint *ck, const char *base);

/* Fills out for the [N, K] linear `base`: stored quantized tensors when the checkpoint has them
 * (whatever `spec` says: a converted checkpoint is read as is), else `<base>.weight` quantized to
 * spec into a new buffer (*owned, to free() when the weights go; NULL when nothing was allocated).
 * spec.format must not be EMU2_WEIGHT_FLOAT unless the checkpoint holds a quantized version.
 * Errors name the tensor. The source must be host memory (a CPU backend's). Quantizing uses
 * `threads` threads. */
emu2_status emu2_quant_bind_linear(const emu2_checkpoint *ck, const char *base, size_t N, size_t K,
                                   emu2_quant_spec spec, int threads, emu2_op_weight *out, void **owned,
                                   emu2_error *err);

/* For `emu2 inspect`: whether the expected float tensor `weight_name` ("<base>.weight", [N, K]) is
 * present as a quantized pair: 1 (both found and consistent; their entries in `matched`, indexed
 * like ck->tensors, are set), -1 (found but inconsistent), 0 (not there). */
int emu2_quant_match_stored(const emu2_checkpoint *ck, const char *weight_name, int64_t N, int64_t K, char *matched);

#endif
