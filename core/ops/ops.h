/* ops.h: the op interface every network is written against, and every backend implements.
 *
 * A backend is a table of functions (emu2_ops) plus its own state (thread pool, device handles),
 * bundled in an emu2_backend. Networks call   be->ops->linear(be, ...)   and never know whether the
 * CPU (core/ops/cpu/) or CUDA (kernels/, loaded with dlopen) does the work.
 *
 * Data layouts (see docs/OPS.md):
 *   - activations: f32, row-major, in memory the backend owns (emu2_ops.alloc; on the CPU plain
 *     host memory). A "row" is one token; strides are counted in floats and let ops read a slice
 *     of a wider row (q, k and v inside a fused qkv output, one row inside a KV cache).
 *   - weights: emu2_tensor_view in F32, F16 or BF16, read in place from the mapped checkpoint.
 *     A matrix is [N, K] as PyTorch's Linear stores it; vectors (bias, norm weight) are [N].
 *     Backends that need their own copy (CUDA) translate a view once with prepare_weight.
 *   - small integer arrays (token ids, position ids, row indices, key masks) are HOST memory on
 *     every backend: they are tiny, and the backend copies them where it needs them.
 * Precision: every op accumulates in f32 or wider (norm statistics and the softmax op's sums in
 * double); softmaxes subtract the row max; see docs/OPS.md for the tolerances the tests hold.
 * Each op checks its arguments and returns a status (never aborts); outputs are undefined on error.
 * Unless an op says otherwise, an output may alias an input of exactly the same layout. */
#ifndef EMU2_OPS_OPS_H
#define EMU2_OPS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"
#include "emu2.h"

typedef struct emu2_backend emu2_backend;

/* Which instruction set the CPU backend may use; a cap, so tests and benchmarks can force the
 * slower paths on a machine that has the faster ones. */
typedef enum emu2_cpu_isa {
    EMU2_ISA_AUTO = 0, /* the best the CPU supports (or the cap in $EMU2_CPU_ISA) */
    EMU2_ISA_SCALAR,   /* portable C */
    EMU2_ISA_AVX2,     /* AVX2 + FMA + F16C */
    EMU2_ISA_AVX512    /* AVX-512 F/BW/VL (+ FMA, F16C) */
} emu2_cpu_isa;

typedef struct emu2_backend_options {
    size_t struct_size;  /* sizeof(emu2_backend_options): lets the struct grow compatibly */
    int threads;         /* CPU worker threads, including the caller; 0 = number of cores */
    emu2_cpu_isa max_isa;/* CPU: highest instruction set to use */
    int device_index;    /* CUDA: which GPU */
    int bf16_dot;        /* CPU: linears with BF16 weights and M >= 8 rows round their activations to bf16
                            and use bf16 dot products with f32 accumulation (the "bf16" precision; needs
                            AVX512_BF16, else f32 and the reason in device[]); 0 = f32 activations */
} emu2_backend_options;

void emu2_backend_options_init(emu2_backend_options *opts);

/* Weight-only formats beyond F32/F16/BF16 (docs/QUANT.md). The plain view stays the first member
 * and a zeroed struct is a float weight, so code written for float weights keeps working. */
typedef enum emu2_weight_format {
    EMU2_WEIGHT_FLOAT = 0, /* w: [N, K] F32, F16 or BF16 */
    EMU2_WEIGHT_Q8,        /* w: I8 [N, K]; scales: F32 [N]; W[n,k] = w[n,k] * scales[n] */
    EMU2_WEIGHT_Q4         /* w: U8 [N, G*group/2], G = ceil(K/group) groups per row, two values per byte
                              (low nibble: element i of the group, high: element i + group/2), each
                              stored + 8; scales: F16 [N, G]; W[n,k] = (nibble - 8) * scales[n, k/group] */
} emu2_weight_format;

typedef struct emu2_op_weight {
    emu2_tensor_view w; /* [N, K] in F32, F16 or BF16; the quantized values for Q8/Q4 */
    emu2_weight_format format;
    emu2_tensor_view scales; /* Q8/Q4 only */
    int group;               /* Q4: elements per scale (32, 64 or 128) */
} emu2_op_weight;

/* Attention over one batch of sequences, all heads at once.
 * Shapes, per batch element b and head h (D = n_heads * head_dim):
 *   q   rows i in [0, q_len)  : q   + b*q_batch_stride   + i*q_stride   + h*head_dim
 *   k,v rows j in [0, kv_len) : k/v + b*kv_batch_stride  + j*k_stride/v_stride + h*head_dim
 *   out rows i                : out + b*out_batch_stride + i*out_stride + h*head_dim
 * Query i sits at position q_offset + i of the key sequence; with causal set it sees keys
 * j <= q_offset + i (prefill: q_offset = 0; one decode step against a cache of T: q_len = 1,
 * q_offset = T - 1). key_mask (host, [batch][kv_len], may be NULL) marks usable keys with 1 and
 * padding with 0. A query that can see no key at all (a left-padding row) gets a zero output.
 * Scores are q.k * scale; softmax in f32. out must not overlap q, k or v. */
typedef struct emu2_attention_args {
    size_t batch, n_heads, head_dim;
    size_t q_len, kv_len, q_offset;
    int causal;
    float scale; /* usually 1/sqrt(head_dim) */
    const float *q, *k, *v;
    float *out;
    size_t q_stride, k_stride, v_stride, out_stride;                   /* floats between rows */
    size_t q_batch_stride, kv_batch_stride, out_batch_stride;          /* floats between batches */
    const uint8_t *key_mask;
} emu2_attention_args;

/* Pooling grids: a [H*W, C] token-major buffer (one row per grid cell, cells row-major; the ViT's
 * own output) or a [C, H*W] channel-major one (one row per channel). Both give the result of
 * PyTorch's avg_pool2d(kernel=k, stride=k) on the [C, H, W] view, laid out the same way as the
 * input: [(H/k)*(W/k), C] or [C, (H/k)*(W/k)]. Trailing cells that do not fill a window are
 * dropped (floor mode). */
typedef enum emu2_grid_layout { EMU2_GRID_TOKEN_MAJOR = 0, EMU2_GRID_CHANNEL_MAJOR } emu2_grid_layout;

/* RoPE cos/sin tables: computed in f32 (HF: inv_freq = 1/theta^(2i/d), angle = pos*inv_freq);
 * with this flag also rounded to bf16 as the bf16 reference does before use. */
#define EMU2_ROPE_TABLE_BF16 1u

typedef struct emu2_ops {
    const char *name; /* "cpu", "cuda" */

    /* ---------------------------------------------------------- lifetime and memory */
    void (*destroy)(emu2_backend *be);
    /* Activation buffers of n floats, aligned for the backend's vectors. NULL on failure (err set). */
    float *(*alloc)(emu2_backend *be, size_t n, emu2_error *err);
    void (*free)(emu2_backend *be, float *p);
    /* Copies between host memory and backend memory (memcpy on the CPU). */
    emu2_status (*upload)(emu2_backend *be, float *dst, const float *host_src, size_t n, emu2_error *err);
    emu2_status (*download)(emu2_backend *be, float *host_dst, const float *src, size_t n, emu2_error *err);
    /* Waits until every op issued so far has finished (a no-op on the CPU, whose ops are synchronous). */
    emu2_status (*sync)(emu2_backend *be, emu2_error *err);
    /* Makes a weight view usable by this backend: the CPU returns it unchanged (no copy); CUDA
     * uploads it once and returns a view of device memory. release_weight undoes it. */
    emu2_status (*prepare_weight)(emu2_backend *be, const emu2_tensor_view *host, emu2_tensor_view *out,
                                  emu2_error *err);
    void (*release_weight)(emu2_backend *be, emu2_tensor_view *prepared);

    /* ---------------------------------------------------------- ops */
    /* y[M,N] = x[M,K] . W^T (+ bias[N]); W [N,K] any float dtype, bias F32/F16/BF16 or NULL.
     * x rows are x_stride floats apart, y rows y_stride apart (both >= their width). y must not
     * overlap x. */
    emu2_status (*linear)(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                          const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                          emu2_error *err);
    /* Plain f32 matmul: C[M,N] = A[M,K] . B^T with B [N,K] row-major (both activations). */
    emu2_status (*matmul_nt)(emu2_backend *be, size_t M, size_t K, size_t N, const float *A, const float *B,
                             float *C, emu2_error *err);
    /* y = (x - mean) / sqrt(var + eps) * weight + bias over each row of n (weight, bias [n], any
     * float dtype; bias may be NULL). Biased variance, as PyTorch. */
    emu2_status (*layernorm)(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                             const emu2_tensor_view *bias, float eps, float *y, emu2_error *err);
    /* y = x / sqrt(mean(x^2) + eps) * weight, per row (LLaMA RMSNorm). */
    emu2_status (*rmsnorm)(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                           float eps, float *y, emu2_error *err);
    /* In-place rotary embedding, HF rotate-half layout (dims i and i + head_dim/2 paired) on each
     * of n_heads heads of each row; row r is at x + r*stride and has position positions[r] (host). */
    emu2_status (*rope)(emu2_backend *be, size_t rows, size_t n_heads, size_t head_dim, float *x, size_t stride,
                        const int32_t *positions, float theta, unsigned flags, emu2_error *err);
    emu2_status (*attention)(emu2_backend *be, const emu2_attention_args *args, emu2_error *err);
    /* y = x * 0.5 * (1 + erf(x / sqrt 2)), n elements (exact GELU). */
    emu2_status (*gelu)(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err);
    /* y = silu(a) * b = a / (1 + exp(-a)) * b, n elements. */
    emu2_status (*silu_mul)(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
    /* Row-wise softmax / log-softmax over n columns (f32, max-subtracted). */
    emu2_status (*softmax)(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err);
    emu2_status (*log_softmax)(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err);
    /* out[i, :] = table[ids[i], :] as f32; table [V, D] any float dtype; ids (host) checked < V. */
    emu2_status (*embedding)(emu2_backend *be, size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                             float *out, emu2_error *err);
    /* k x k average pool over an H x W grid of C channels (see emu2_grid_layout). */
    emu2_status (*avgpool2d)(emu2_backend *be, emu2_grid_layout layout, size_t C, size_t H, size_t W, size_t k,
                             const float *x, float *y, emu2_error *err);
    /* Non-overlapping p x p patches of a [C, H, W] image as rows: out[(py*(W/p) + px), c*p*p + ky*p + kx]
     * = img[c, py*p + ky, px*p + kx] (the flattening order of a Conv2d weight [O, C, p, p]), so a
     * stride-p convolution (the ViT patch embedding) is patchify + linear. Floor mode. */
    emu2_status (*patchify)(emu2_backend *be, size_t C, size_t H, size_t W, size_t p, const float *img, float *out,
                            emu2_error *err);
    /* y = a + b, n elements (y may be a or b: that is add-in-place). */
    emu2_status (*add)(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
    /* For i < n_rows: dst row (dst_rows ? dst_rows[i] : i) = src row (src_rows ? src_rows[i] : i); rows
     * of `cols` floats, strides in floats, index arrays on the host and checked against the row
     * counts. Scatter (splicing visual embeddings into token embeddings), gather (reordering a KV
     * cache by beam), or both. src and dst must not overlap. */
    emu2_status (*copy_rows)(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                             size_t src_n_rows, const int32_t *src_rows, float *dst, size_t dst_stride,
                             size_t dst_n_rows, const int32_t *dst_rows, emu2_error *err);

    /* ---------------------------------------------------------- diffusion ops (Emu2-Gen UNet, VAE)
     * Feature maps are token-major: [H*W, C], one row per pixel (pixels row-major), the layout the
     * transformer blocks read. A backend may leave these NULL: callers then fail with
     * EMU2_ERR_UNSUPPORTED naming the op and the backend. */
    /* 2-D convolution with zero padding: y[Ho*Wo, O] from x[H*W, C], W->w = [O, C, k, k] (PyTorch's
     * Conv2d layout, any float dtype), bias [O] or NULL; Ho = (H + 2*pad - k)/stride + 1 (same for
     * Wo). y must not overlap x. */
    emu2_status (*conv2d)(emu2_backend *be, size_t C, size_t H, size_t W, const float *x, const emu2_op_weight *Wt,
                          const emu2_tensor_view *bias, size_t k, size_t stride, size_t pad, float *y,
                          emu2_error *err);
    /* GroupNorm over x[rows, C] (rows = pixels): C/groups consecutive channels per group, statistics
     * over all rows of a group (biased variance, in double), then * weight + bias ([C], any float
     * dtype); apply_silu != 0 follows it with SiLU (the GN -> SiLU pairs of resnets). */
    emu2_status (*group_norm)(emu2_backend *be, size_t rows, size_t C, size_t groups, const float *x,
                              const emu2_tensor_view *weight, const emu2_tensor_view *bias, float eps, int apply_silu,
                              float *y, emu2_error *err);
    /* Nearest-neighbour resize of x[H*W, C] to y[Ho*Wo, C] (PyTorch mode "nearest": source index
     * floor(dst * H / Ho)); the UNet / VAE use it for 2x upsampling. y must not overlap x. */
    emu2_status (*upsample_nearest)(emu2_backend *be, size_t C, size_t H, size_t W, size_t Ho, size_t Wo,
                                    const float *x, float *y, emu2_error *err);
    /* y = x / (1 + exp(-x)), n elements. */
    emu2_status (*silu)(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err);
    /* y = a * b, n elements (y may be a or b). */
    emu2_status (*mul)(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
    /* y[r, :] = x[r, :] + v[:] for rows of n floats; v is backend memory [n] (the time embedding
     * a resnet adds to every pixel). y may be x. */
    emu2_status (*add_row_vector)(emu2_backend *be, size_t rows, size_t n, const float *x, const float *v, float *y,
                                  emu2_error *err);

    /* ---------------------------------------------------------- layer split (docs/CUDA.md); NULL = one device */
    /* Where what comes next belongs: decoder layer `layer` of n_layers (-1: before the layers, the
     * vision tower and embeddings; n_layers: after them, final norm and lm_head). The weight binder
     * calls it before preparing each layer's weights, the decoder before allocating each layer's KV
     * cache; the split backend (core/ops/split_backend.c) places them on that layer's device. */
    emu2_status (*set_layer)(emu2_backend *be, long layer, size_t n_layers, emu2_error *err);
    /* Makes be's later work wait for everything issued so far on `other` (a backend of the same
     * kind, possibly another GPU; enables peer access between the two). NULL: ops are synchronous. */
    emu2_status (*wait_for)(emu2_backend *be, emu2_backend *other, emu2_error *err);

    /* ---------------------------------------------------------- top-k of rows (docs/OPS.md); NULL = not provided
     * For each of `rows` rows of n floats at x (backend memory, rows n floats apart): the k best
     * values and their column indices, best first, into HOST memory values[rows*k], ids[rows*k]
     * (so only k candidates per row leave the device). Order: NaN > +inf > finite > -inf, -0 == +0,
     * all NaNs equal; ties go to the lower index. With EMU2_TOPK_LOG_SOFTMAX the values ranked and
     * returned are log_softmax(row) = (x - max) - logf((float)sum_double expf(x - max)) (the CPU
     * computes it exactly as core/generate's emu2_log_softmax), and a row holding a NaN or +inf or
     * no value above -inf gives NaN values with ids 0..k-1. 1 <= k <= min(n, EMU2_TOPK_MAX_K). */
    emu2_status (*top_k)(emu2_backend *be, size_t rows, size_t n, const float *x, size_t k, unsigned flags,
                         float *values, int32_t *ids, emu2_error *err);

    /* --------------------------------------------------- decode-step graphs (docs/CUDA_GRAPHS.md); NULL = not provided
     * The decoder brackets the ops of one decode step with these. `key` names the step's shape:
     * equal keys issue the same ops with the same launch shapes, only argument values differ.
     * step_begin returns 1 when the ops issued until step_end are recorded instead of run (CUDA:
     * stream capture into a graph), 0 when they run as usual (graphs off, or the first step of a
     * new key). A recording issues no sync, allocation or copy between host and device memory.
     * step_cut (may be NULL), within a recording: launches the part recorded since step_begin or
     * the last cut and records the rest separately, so the device runs that part while the host
     * records the next; returns EMU2_STEP_CUT_LAUNCHED when the part was launched, and
     * EMU2_STEP_CUT_RECORDING when the rest is still recorded (else it runs as usual). A part not
     * launched did not run: the caller issues it again as usual.
     * step_end(ok) closes a recording (ok = 0: an op failed, the recording is dropped) and returns
     * 1 when the part recorded since the last cut was launched, 0 when nothing of it ran: the
     * caller then issues it again as usual. Failures turn graphs off for the backend's lifetime,
     * the reason in be->device; never a wrong result. */
    int (*step_begin)(emu2_backend *be, uint64_t key);
    int (*step_cut)(emu2_backend *be);
    int (*step_end)(emu2_backend *be, int ok);
} emu2_ops;

/* step_cut's result bits */
#define EMU2_STEP_CUT_LAUNCHED 1
#define EMU2_STEP_CUT_RECORDING 2

#define EMU2_TOPK_LOG_SOFTMAX 1u
#define EMU2_TOPK_MAX_K 256

/* The common head of every backend; each backend puts its private state after it. */
struct emu2_backend {
    const emu2_ops *ops;
    int threads;          /* CPU threads in use (1 for device backends) */
    emu2_cpu_isa isa;     /* CPU: the instruction set chosen (EMU2_ISA_AUTO for device backends) */
    void *library;        /* dlopen handle of a loaded backend library (emu2_backend_close releases it) */
    char device[192];     /* what runs, for reports: "cuda:0 (NVIDIA H100 ...)", "cpu (cuda unavailable: ...)" */
};

/* Opens a backend by device name: "cpu"; "cuda" / "cuda:N" (dlopen of libemu2_cuda.so, fails with
 * a clear message when it or a GPU is missing); "auto" or NULL: CUDA when available, else CPU.
 * opts may be NULL (defaults). */
emu2_status emu2_backend_open(const char *device, const emu2_backend_options *opts, emu2_backend **out,
                              emu2_error *err);
void emu2_backend_close(emu2_backend *be);

/* set_layer where the backend splits layers over devices; nothing (EMU2_OK) on a single device. */
static inline emu2_status emu2_backend_set_layer(emu2_backend *be, long layer, size_t n_layers, emu2_error *err)
{
    return be->ops->set_layer ? be->ops->set_layer(be, layer, n_layers, err) : EMU2_OK;
}

/* The CPU backend directly (what "cpu" opens). */
emu2_status emu2_cpu_backend_open(const emu2_backend_options *opts, emu2_backend **out, emu2_error *err);
const char *emu2_cpu_isa_name(emu2_cpu_isa isa);

/* Symbol a CUDA backend library exports; same contract as emu2_cpu_backend_open. */
#define EMU2_CUDA_BACKEND_SYMBOL "emu2_cuda_backend_open"
#define EMU2_CUDA_BACKEND_LIBRARY "libemu2_cuda.so"
typedef emu2_status (*emu2_backend_open_fn)(const emu2_backend_options *opts, emu2_backend **out, emu2_error *err);

#endif
