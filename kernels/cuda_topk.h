/* cuda_topk.h: the CUDA backend's top_k op (ops.h): the host side (cuda_topk.c) and its kernel's
 * launcher (topk.cu). */
#ifndef EMU2_KERNELS_CUDA_TOPK_H
#define EMU2_KERNELS_CUDA_TOPK_H

#include "cuda_internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* values/ids: device [rows, k]; x device [rows, n]; 1 <= k <= min(n, EMU2_TOPK_MAX_K). */
cudaError_t emu2k_top_k(cudaStream_t s, size_t rows, size_t n, const float *x, size_t k, int log_form,
                        float *values, int32_t *ids);

#ifndef __CUDACC__
emu2_status cuda_top_k(emu2_backend *be, size_t rows, size_t n, const float *x, size_t k, unsigned flags,
                       float *values, int32_t *ids, emu2_error *err);
#endif

#ifdef __cplusplus
}
#endif

#endif
