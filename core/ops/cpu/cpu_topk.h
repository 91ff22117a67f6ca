/* cpu_topk.h: the CPU backend's top_k op (ops.h; cpu_topk.c). */
#ifndef EMU2_OPS_CPU_TOPK_H
#define EMU2_OPS_CPU_TOPK_H

#include "ops/ops.h"

emu2_status cpu_top_k(emu2_backend *be, size_t rows, size_t n, const float *x, size_t k, unsigned flags,
                      float *values, int32_t *ids, emu2_error *err);

#endif
