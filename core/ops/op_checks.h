/* op_checks.h: the argument checks of the ops (ops.h), shared by every backend so that the CPU
 * backend (core/ops/cpu/) and the CUDA backend (the host files in kernels/) accept and refuse
 * exactly the same calls with the same messages ("<op>: <what is wrong>"). Each check sets err
 * and returns its status, or returns EMU2_OK. Nothing here touches a device: a backend whose
 * weights must live in its own memory passes a predicate (is_backend_ptr), and views it refuses
 * are reported as host memory that has to go through prepare_weight; the CPU passes NULL. */
#ifndef EMU2_OPS_OP_CHECKS_H
#define EMU2_OPS_OP_CHECKS_H

#include <stddef.h>
#include <stdint.h>

#include "ops/ops.h"

/* Whether p is memory the backend's kernels can read; NULL = every pointer is. */
typedef int (*emu2_is_backend_ptr_fn)(const void *p);

/* Largest head_dim/2 rope handles (its cos/sin tables live on the stack). */
#define EMU2_ROPE_MAX_HALF 512

int emu2_is_float_dtype(emu2_dtype dt);
/* Whether [a, a+an) and [b, b+bn) (in floats) share memory. */
int emu2_floats_overlap(const float *a, size_t an, const float *b, size_t bn);

/* A float vector [n] (bias, norm weight); a NULL v is fine unless required. */
emu2_status emu2_check_vector(const char *op, const char *what, const emu2_tensor_view *v, size_t n, int required,
                              emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err);

/* linear, in three steps so that a backend can put its own rules between them (the CPU hands
 * quantized weights to their own checks, CUDA refuses them):
 *   head: shape, NULL buffers, row strides;
 *   float weight: dtype, [N, K] shape, data size (and backend memory);
 *   extents: the floats x and y span (0 when they overflow). */
emu2_status emu2_check_linear_head(size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                                   const emu2_op_weight *W, const float *y, size_t y_stride, emu2_error *err);
emu2_status emu2_check_linear_float_weight(const emu2_tensor_view *w, size_t N, size_t K,
                                           emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err);
/* A Q8/Q4 weight standing for the logical [N, K] matrix: format and group (32, 64, 128), dtypes (I8 +
 * F32 scales, U8 + F16 scales), the shapes core/quant writes ([N, row bytes]; scales [N] or [N, groups])
 * and sizes; dimensions over max_dim are too large. Messages name the format `name` ("int8", ...) and
 * start with "<op>: " (op NULL: nothing). */
emu2_status emu2_check_quant_weight(const char *op, const char *name, const emu2_op_weight *w, size_t N, size_t K,
                                    size_t max_dim, emu2_error *err);
int emu2_linear_extents(size_t M, size_t K, size_t N, size_t x_stride, size_t y_stride, size_t *x_span,
                        size_t *y_span);

/* Row ops. */
emu2_status emu2_check_elementwise_args(const char *op, size_t n, const void *a, const void *b, const void *y,
                                        emu2_error *err);
emu2_status emu2_check_softmax_args(const char *op, size_t rows, size_t n, const float *x, const float *y,
                                    emu2_error *err);
/* layernorm (bias optional) and rmsnorm (bias NULL). */
emu2_status emu2_check_norm_args(const char *op, size_t rows, size_t n, const float *x, const float *y, float eps,
                                 const emu2_tensor_view *weight, const emu2_tensor_view *bias,
                                 emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err);
emu2_status emu2_check_rope_args(size_t rows, size_t n_heads, size_t head_dim, const float *x, size_t stride,
                                 const int32_t *positions, float theta, unsigned flags, emu2_error *err);
/* inv_freq[i] = 1 / theta^(2i/head_dim) for i < head_dim/2, in f32 steps as torch does them. */
void emu2_rope_inv_freq(float theta, size_t head_dim, float *inv_freq);

/* attention; *items (if items) = batch * n_heads * q_len; batch * kv_len (the key mask) fits too. */
emu2_status emu2_check_attention_args(const emu2_attention_args *a, size_t *items, emu2_error *err);

/* Row movers. */
emu2_status emu2_check_embedding_args(size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                                      const float *out, emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err);
emu2_status emu2_check_copy_rows_args(size_t n_rows, size_t cols, const float *src, size_t src_stride,
                                      size_t src_n_rows, const int32_t *src_rows, const float *dst, size_t dst_stride,
                                      size_t dst_n_rows, const int32_t *dst_rows, emu2_error *err);
emu2_status emu2_check_avgpool2d_args(emu2_grid_layout layout, size_t C, size_t H, size_t W, size_t k,
                                      const float *x, const float *y, emu2_error *err);
emu2_status emu2_check_patchify_args(size_t C, size_t H, size_t W, size_t p, const float *img, const float *out,
                                     emu2_error *err);

/* Diffusion ops. conv2d: on success *geo holds the output geometry and *mat the weight viewed as
 * the [O, C*k*k] matrix its im2col + linear multiplies by. */
typedef struct emu2_conv2d_geometry {
    size_t O, Ho, Wo, K, n_out; /* K = C*k*k, n_out = Ho*Wo */
} emu2_conv2d_geometry;
#define EMU2_CONV2D_MAX_K ((size_t)4 << 20)
emu2_status emu2_check_conv2d_args(size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt, size_t k,
                                   size_t stride, size_t pad, const float *y, emu2_conv2d_geometry *geo,
                                   emu2_op_weight *mat, emu2_error *err);
emu2_status emu2_check_group_norm_args(size_t rows, size_t C, size_t groups, const float *x, const float *y,
                                       float eps, const emu2_tensor_view *weight, const emu2_tensor_view *bias,
                                       emu2_is_backend_ptr_fn is_backend_ptr, emu2_error *err);
/* silu, mul and add_row_vector's vector part (a limit of SIZE_MAX/8 elements). */
emu2_status emu2_check_diffusion_elementwise_args(const char *op, size_t n, const void *a, const void *b,
                                                  const void *y, emu2_error *err);
emu2_status emu2_check_add_row_vector_args(size_t rows, size_t n, const float *x, const float *v, const float *y,
                                           emu2_error *err);
emu2_status emu2_check_upsample_args(size_t C, size_t H, size_t W, size_t Ho, size_t Wo, const float *x,
                                     const float *y, emu2_error *err);

#endif
