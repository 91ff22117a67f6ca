/* conv2d_im2col.c: see conv2d_im2col.h. */
#include "ops/conv2d_im2col.h"

emu2_status emu2_conv2d_im2col_linear(emu2_backend *be, const emu2_conv2d_impl *impl, size_t C, size_t H, size_t W,
                                      const float *x, const emu2_op_weight *Wt, const emu2_tensor_view *bias, size_t k,
                                      size_t stride, size_t pad, float *y, emu2_error *err)
{
    emu2_conv2d_geometry g;
    emu2_op_weight mat;
    emu2_status st = emu2_check_conv2d_args(C, H, W, x, Wt, k, stride, pad, y, &g, &mat, err);
    if (st != EMU2_OK)
        return st;
    if (k == 1 && stride == 1 && pad == 0) /* a 1x1 convolution is a linear layer on the pixels */
        return be->ops->linear(be, g.n_out, C, g.O, x, C, &mat, bias, y, g.O, err);

    const emu2_conv2d_shape s = {C, H, W, k, stride, pad, g.Wo, g.K};
    size_t chunk = impl->chunk_floats / g.K;
    if (chunk > g.n_out)
        chunk = g.n_out;
    float *cols = impl->cols_buffer(be, chunk, g.K, err);
    if (!cols)
        return err ? err->status : EMU2_ERR_NOMEM;
    for (size_t first = 0; first < g.n_out && st == EMU2_OK; first += chunk) {
        size_t rows = g.n_out - first < chunk ? g.n_out - first : chunk;
        st = impl->im2col(be, &s, x, first, rows, cols, err);
        if (st == EMU2_OK)
            st = be->ops->linear(be, rows, g.K, g.O, cols, g.K, &mat, bias, y + first * g.O, g.O, err);
    }
    if (impl->cols_release)
        impl->cols_release(be, cols);
    return st;
}
