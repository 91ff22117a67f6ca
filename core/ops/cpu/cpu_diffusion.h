/* cpu_diffusion.h: the CPU versions of the diffusion ops (ops.h, "diffusion ops"): conv2d.c,
 * groupnorm.c, diffusion_elementwise.c. */
#ifndef EMU2_OPS_CPU_DIFFUSION_H
#define EMU2_OPS_CPU_DIFFUSION_H

#include "ops/ops.h"

emu2_status cpu_conv2d(emu2_backend *be, size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt,
                       const emu2_tensor_view *bias, size_t k, size_t stride, size_t pad, float *y, emu2_error *err);
emu2_status cpu_group_norm(emu2_backend *be, size_t rows, size_t C, size_t groups, const float *x,
                           const emu2_tensor_view *weight, const emu2_tensor_view *bias, float eps, int apply_silu,
                           float *y, emu2_error *err);
emu2_status cpu_upsample_nearest(emu2_backend *be, size_t C, size_t H, size_t W, size_t Ho, size_t Wo, const float *x,
                                 float *y, emu2_error *err);
emu2_status cpu_silu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err);
emu2_status cpu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
emu2_status cpu_add_row_vector(emu2_backend *be, size_t rows, size_t n, const float *x, const float *v, float *y,
                               emu2_error *err);

#endif
