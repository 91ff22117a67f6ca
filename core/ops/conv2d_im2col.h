/* conv2d_im2col.h: the conv2d op (ops.h) as every backend runs it: the shared argument checks,
 * then a 1x1 stride-1 convolution straight as a linear layer on the pixels, else output pixels in
 * chunks: each chunk's patches ([rows, C*k*k], in the flattening order of a Conv2d weight) are
 * gathered by the backend (im2col), then its linear multiplies them by the weight viewed as
 * [O, C*k*k]. A backend supplies only the gathering and the patch buffer. */
#ifndef EMU2_OPS_CONV2D_IM2COL_H
#define EMU2_OPS_CONV2D_IM2COL_H

#include "ops/op_checks.h"

/* What the gathering needs: the input geometry and the output width. */
typedef struct emu2_conv2d_shape {
    size_t C, H, W, k, stride, pad;
    size_t Wo, K; /* K = C*k*k values per patch */
} emu2_conv2d_shape;

typedef struct emu2_conv2d_impl {
    size_t chunk_floats; /* patch floats per chunk at most (at least EMU2_CONV2D_MAX_K) */
    /* A buffer for rows patches of K floats, or NULL (err set); release (may be NULL) returns it. */
    float *(*cols_buffer)(emu2_backend *be, size_t rows, size_t K, emu2_error *err);
    void (*cols_release)(emu2_backend *be, float *cols);
    /* The patches of output pixels [first, first + rows) of x into cols ([rows, K]). */
    emu2_status (*im2col)(emu2_backend *be, const emu2_conv2d_shape *s, const float *x, size_t first, size_t rows,
                          float *cols, emu2_error *err);
} emu2_conv2d_impl;

emu2_status emu2_conv2d_im2col_linear(emu2_backend *be, const emu2_conv2d_impl *impl, size_t C, size_t H, size_t W,
                                      const float *x, const emu2_op_weight *Wt, const emu2_tensor_view *bias, size_t k,
                                      size_t stride, size_t pad, float *y, emu2_error *err);

#endif
