/* cuda_internal.h: the CUDA backend's state, and what its host files (*.c, plain C11) and kernel
 * files (*.cu) share. Host files check arguments and own every CUDA runtime / cuBLAS call; kernel
 * files only hold kernels and their launchers (extern "C", returning the launch's cudaError_t). */
#ifndef EMU2_KERNELS_CUDA_INTERNAL_H
#define EMU2_KERNELS_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "ops/ops.h"

#ifndef __CUDACC__ /* host-only part: the backend struct and the host helpers */

#include <cublasLt.h>
#include <cublas_v2.h>

#include "ops/op_checks.h"
#include "ptr_set.h"
#include "graph_policy.h"

/* One remembered cuBLASLt algorithm choice for a matmul shape. */
typedef struct cuda_lt_plan {
    int used;
    size_t M, K, N, ldc;
    int dtype, align_a, align_b, align_c;
    int has_algo;
    cublasLtMatmulAlgo_t algo;
} cuda_lt_plan;

#define CUDA_LT_PLANS 64

/* Decode-step graphs (cuda_graph.c, the step_begin / step_cut / step_end hooks of ops.h). */
#define CUDA_GRAPH_MAX_PARTS 16
typedef struct cuda_graph_state {
    cuda_graph_policy policy;
    cudaGraphExec_t exec[CUDA_GRAPH_MAX_PARTS]; /* each part's instantiated graph, or NULL */
    int part;              /* the part being recorded (step_cut moves on to the next) */
    size_t stage_part;     /* where that part's staged arrays begin in the ring */
    int capturing;         /* a part is being recorded on the backend's stream */
    int stage_overflow;    /* the recording ran out of staging ring (grown before the next one) */
    int scratch_refused;   /* the recording needed a bigger device scratch (grown by the eager rerun) */
    size_t stage_want;     /* staging ring bytes the next recording needs */
    size_t device_len;     /* length of base.device before the note "[cuda graphs off: ...]" */
    int noted_off;         /* base.device says graphs are off */
} cuda_graph_state;

typedef struct cuda_backend {
    emu2_backend base; /* first: an emu2_backend* is a cuda_backend* */
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    void *lt_workspace;
    size_t lt_workspace_size;
    cuda_ptr_set buffers; /* activation buffers from alloc, freed on destroy if still live */
    cuda_ptr_set weights; /* uploads made by prepare_weight */
    /* host-to-device staging of small host arrays (ids, positions, masks): a pinned host ring and
     * a device ring at the same offsets; wrapping synchronises the stream first, so a region is
     * only reused once the copy and the kernels that read it are done */
    unsigned char *stage_host, *stage_dev;
    size_t stage_cap, stage_used;
    /* device scratch, grown on demand, one slot per user (cuda_scratch) */
    void *scratch[4];
    size_t scratch_bytes[4];
    cuda_lt_plan plans[CUDA_LT_PLANS];
    int sm_count;
    size_t max_smem_optin; /* shared memory a block may opt in to */
    /* layer split (core/ops/split_backend.c): recorded when another backend waits for this one */
    cudaEvent_t handoff;
    uint64_t peers_enabled; /* bit d: this device may access GPU d's memory (d < 64) */
    cuda_graph_state graph; /* decode-step graphs (cuda_graph.c) */
} cuda_backend;

static inline cuda_backend *cuda_of(emu2_backend *be)
{
    return (cuda_backend *)be;
}

/* Makes the backend's GPU current for the calling thread (the runtime's current device is per
 * thread, and a backend may be driven from another thread than the one that opened it). */
static inline void cuda_use(cuda_backend *cb)
{
    cudaSetDevice(cb->device);
}

/* The stream to launch on, with the device made current. */
static inline cudaStream_t cuda_stream_of(emu2_backend *be)
{
    cuda_use(cuda_of(be));
    return cuda_of(be)->stream;
}

/* Sets err from a failed CUDA runtime call ("cuda backend: WHAT: <cuda message>"). */
emu2_status cuda_fail(emu2_error *err, cudaError_t e, const char *what);
emu2_status cuda_blas_fail(emu2_error *err, int blas_status, const char *what);
/* Checks the launch that just happened (cudaGetLastError), naming the op. */
emu2_status cuda_launched(emu2_error *err, cudaError_t launch, const char *op);

/* Copies n bytes of host memory to the device through the staging rings; returns the device copy
 * (valid for ops issued on the stream until the ring wraps), NULL on failure (err set). */
void *cuda_stage(cuda_backend *cb, const void *host, size_t n, emu2_error *err);
/* Frees the staging rings (host and device) and forgets them: the next cuda_stage allocates again. */
void cuda_stage_release(cuda_backend *cb);
/* Staging while a step is recorded: host ring only; cuda_step_end copies the ring to the device
 * before it launches the graph (cuda_graph.c). `need` is n rounded up as cuda_stage keeps it. */
void *cuda_stage_recorded(cuda_backend *cb, const void *host, size_t n, size_t need, emu2_error *err);
/* Decode-step graphs (cuda_graph.c): set up at open (reads EMU2_CUDA_GRAPHS), released at close. */
void cuda_graph_init(cuda_backend *cb);
void cuda_graph_release(cuda_backend *cb);
int cuda_step_begin(emu2_backend *be, uint64_t key);
int cuda_step_cut(emu2_backend *be);
int cuda_step_end(emu2_backend *be, int ok);

/* Device scratch of at least n bytes in one of the slots below (each user its own, so a conv2d's
 * patches survive the linear that converts them). */
enum { CUDA_SCRATCH_CONVERT = 0, CUDA_SCRATCH_IM2COL = 1, CUDA_SCRATCH_STATS = 2, CUDA_SCRATCH_DEQUANT = 3 };
void *cuda_scratch(cuda_backend *cb, int slot, size_t n, emu2_error *err);

/* Whether p is memory of this backend's device (a prepared view or an alloc'd buffer). */
int cuda_is_device_ptr(const void *p);

/* Argument checks: ops/op_checks.h, shared with the CPU backend; weight-side views must pass
 * cuda_is_device_ptr (given as their is_backend_ptr). */

/* C[N x M] (ldc) = W^T-as-stored (K x N, transposed) * Xh (K x M), W and Xh BF16 or F16 (dt),
 * C f32: cuBLASLt with the heuristic's algorithm remembered per shape (cuda_matmul.c). */
emu2_status cuda_lt_matmul(cuda_backend *cb, size_t M, size_t K, size_t N, const void *w, const void *xh, float *y,
                           size_t ldc, emu2_dtype dt, emu2_error *err);
/* linear with a Q8/Q4 weight, arguments already checked (cuda_quant.c). */
emu2_status cuda_linear_quant(cuda_backend *cb, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                              const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                              emu2_error *err);

/* The ops, one host file per family. */
emu2_status cuda_linear(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                        const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                        emu2_error *err);
emu2_status cuda_matmul_nt(emu2_backend *be, size_t M, size_t K, size_t N, const float *A, const float *B, float *C,
                           emu2_error *err);
emu2_status cuda_layernorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                           const emu2_tensor_view *bias, float eps, float *y, emu2_error *err);
emu2_status cuda_rmsnorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                         float eps, float *y, emu2_error *err);
emu2_status cuda_rope(emu2_backend *be, size_t rows, size_t n_heads, size_t head_dim, float *x, size_t stride,
                      const int32_t *positions, float theta, unsigned flags, emu2_error *err);
emu2_status cuda_attention(emu2_backend *be, const emu2_attention_args *args, emu2_error *err);
emu2_status cuda_gelu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err);
emu2_status cuda_silu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
emu2_status cuda_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err);
emu2_status cuda_log_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err);
emu2_status cuda_embedding(emu2_backend *be, size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                           float *out, emu2_error *err);
emu2_status cuda_avgpool2d(emu2_backend *be, emu2_grid_layout layout, size_t C, size_t H, size_t W, size_t k,
                           const float *x, float *y, emu2_error *err);
emu2_status cuda_patchify(emu2_backend *be, size_t C, size_t H, size_t W, size_t p, const float *img, float *out,
                          emu2_error *err);
emu2_status cuda_add(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
emu2_status cuda_copy_rows(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                           size_t src_n_rows, const int32_t *src_rows, float *dst, size_t dst_stride,
                           size_t dst_n_rows, const int32_t *dst_rows, emu2_error *err);
/* The diffusion ops (cuda_diffusion.c). */
emu2_status cuda_conv2d(emu2_backend *be, size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt,
                        const emu2_tensor_view *bias, size_t k, size_t stride, size_t pad, float *y, emu2_error *err);
emu2_status cuda_group_norm(emu2_backend *be, size_t rows, size_t C, size_t groups, const float *x,
                            const emu2_tensor_view *weight, const emu2_tensor_view *bias, float eps, int apply_silu,
                            float *y, emu2_error *err);
emu2_status cuda_upsample_nearest(emu2_backend *be, size_t C, size_t H, size_t W, size_t Ho, size_t Wo,
                                  const float *x, float *y, emu2_error *err);
emu2_status cuda_silu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err);
emu2_status cuda_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
emu2_status cuda_add_row_vector(emu2_backend *be, size_t rows, size_t n, const float *x, const float *v, float *y,
                                emu2_error *err);

#endif /* !__CUDACC__ */

/* ---------------------------------------------------------------- kernel launchers (*.cu)
 * Element types of weight-side data are passed as emu2_dtype values (F32, F16, BF16). Every
 * launcher enqueues on `s` and returns cudaGetLastError() after the launch. */

/* matmul.cu */
cudaError_t emu2k_gemv(cudaStream_t s, size_t M, size_t K, size_t N, const float *x, size_t ldx, const void *w,
                       int w_dtype, const void *bias, int bias_dtype, float *y, size_t ldy);
cudaError_t emu2k_to_half(cudaStream_t s, size_t M, size_t K, const float *x, size_t ldx, void *out, int dtype);
cudaError_t emu2k_add_bias(cudaStream_t s, size_t M, size_t N, float *y, size_t ldy, const void *bias,
                           int bias_dtype);
int emu2k_gemv_max_rows(void);

/* quant.cu: linears from Q8 / Q4 weights (core/ops/ops.h layouts), all pointers device memory. */
typedef struct emu2k_qlinear {
    size_t M, K, N;
    int format, group;         /* EMU2_WEIGHT_Q8 / Q4; Q4 group size 32, 64 or 128 */
    const float *x;            /* [M, K], rows ldx floats apart */
    size_t ldx;
    const void *q, *scales;    /* Q8: I8 [N, K] + F32 [N]; Q4: U8 [N, G*group/2] + F16 [N, G] */
    const void *bias;          /* [N] or NULL */
    int bias_dtype;
    float *y;                  /* [M, N], rows ldy floats apart */
    size_t ldy;
} emu2k_qlinear;
/* M <= emu2k_qgemv_max_rows(): the weight-streaming kernel, bias fused. */
cudaError_t emu2k_qgemv(cudaStream_t s, const emu2k_qlinear *a);
int emu2k_qgemv_max_rows(void);
/* rows x K bf16 at out from the chunk of weight rows at q / scales: Q8 unscaled (exact), Q4
 * scaled. */
cudaError_t emu2k_dequant_bf16(cudaStream_t s, int format, int group, size_t rows, size_t K, const void *q,
                               const void *scales, void *out);
/* y[m, n] = y[m, n] * scales[n] (if scales) + bias[n] (if bias). */
cudaError_t emu2k_scale_bias(cudaStream_t s, size_t M, size_t N, float *y, size_t ldy, const float *scales,
                             const void *bias, int bias_dtype);

/* norms.cu */
cudaError_t emu2k_layernorm(cudaStream_t s, size_t rows, size_t n, const float *x, const void *w, int w_dtype,
                            const void *b, int b_dtype, float eps, float *y);
cudaError_t emu2k_rmsnorm(cudaStream_t s, size_t rows, size_t n, const float *x, const void *w, int w_dtype,
                          float eps, float *y);
cudaError_t emu2k_softmax(cudaStream_t s, size_t rows, size_t n, const float *x, float *y, int log_form);

/* rope.cu */
cudaError_t emu2k_rope(cudaStream_t s, size_t rows, size_t n_heads, size_t head_dim, float *x, size_t stride,
                       const int32_t *positions, const float *inv_freq, int bf16_table);

/* elementwise.cu */
cudaError_t emu2k_gelu(cudaStream_t s, size_t n, const float *x, float *y);
cudaError_t emu2k_silu_mul(cudaStream_t s, size_t n, const float *a, const float *b, float *y);
cudaError_t emu2k_add(cudaStream_t s, size_t n, const float *a, const float *b, float *y);

/* embedding.cu: embedding rows, copy_rows, patchify */
cudaError_t emu2k_embedding(cudaStream_t s, size_t n_ids, const int32_t *ids, const void *table, int dtype, size_t d,
                            float *out);
cudaError_t emu2k_copy_rows(cudaStream_t s, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                            const int32_t *src_rows, float *dst, size_t dst_stride, const int32_t *dst_rows);
cudaError_t emu2k_patchify(cudaStream_t s, size_t C, size_t H, size_t W, size_t p, const float *img, float *out);

/* pool.cu */
cudaError_t emu2k_avgpool2d(cudaStream_t s, int channel_major, size_t C, size_t H, size_t W, size_t k,
                            const float *x, float *y);

/* attention.cu */
typedef struct emu2k_attention {
    size_t batch, n_heads, head_dim, q_len, kv_len, q_offset;
    int causal;
    float scale;
    const float *q, *k, *v;
    float *out;
    size_t q_stride, k_stride, v_stride, out_stride;
    size_t q_batch_stride, kv_batch_stride, out_batch_stride;
    const uint8_t *key_mask; /* device copy or NULL */
} emu2k_attention;
/* 0 when the shape is handled, else a reason; `smem_optin` is the device's per-block limit. */
const char *emu2k_attention_unsupported(const emu2k_attention *a, size_t smem_optin);
cudaError_t emu2k_attention_run(cudaStream_t s, const emu2k_attention *a, size_t smem_optin);

/* diffusion.cu */
cudaError_t emu2k_im2col(cudaStream_t s, size_t C, size_t H, size_t W, size_t Wo, size_t k, size_t stride,
                         size_t pad, size_t first, size_t rows, const float *x, float *cols);
/* GroupNorm statistics into stats (device: G doubles of mean, then G floats mean, G floats inv). */
cudaError_t emu2k_group_stats(cudaStream_t s, size_t rows, size_t C, size_t groups, const float *x, float eps,
                              void *stats);
cudaError_t emu2k_group_apply(cudaStream_t s, size_t rows, size_t C, size_t groups, const float *x, const void *stats,
                              const void *w, int w_dtype, const void *b, int b_dtype, int apply_silu, float *y);
cudaError_t emu2k_upsample_nearest(cudaStream_t s, size_t C, size_t H, size_t W, size_t Ho, size_t Wo,
                                   const float *x, float *y);
cudaError_t emu2k_silu(cudaStream_t s, size_t n, const float *x, float *y);
cudaError_t emu2k_mul(cudaStream_t s, size_t n, const float *a, const float *b, float *y);
cudaError_t emu2k_add_row_vector(cudaStream_t s, size_t rows, size_t n, const float *x, const float *v, float *y);

/* random.cu: n values of dtype (F32, F16, BF16) at dst: emu2_rw_value(key, i, scale) (the formula
 * of core/model/random_weights.h, the same on the host), or all equal to `constant` when scale == 0. */
cudaError_t emu2k_random_fill(cudaStream_t s, void *dst, size_t n, int dtype, uint64_t key, float scale,
                              float constant);

#ifdef __cplusplus
}
#endif

#endif
