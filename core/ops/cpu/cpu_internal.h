/* cpu_internal.h: the CPU backend's state and the helpers its op files share. */
#ifndef EMU2_OPS_CPU_INTERNAL_H
#define EMU2_OPS_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "ops/cpu/buffer_cache.h"
#include "ops/cpu/kernels.h"
#include "ops/cpu/thread_pool.h"
#include "ops/op_checks.h"
#include "ops/ops.h"

typedef struct cpu_backend {
    emu2_backend base; /* first: an emu2_backend* is a cpu_backend* */
    cpu_pool *pool;
    const cpu_kernels *k;
    int bf16_dot; /* the "bf16" precision is on and the CPU has AVX512_BF16 (bf16_gemm.h) */
    void *bf16_x; /* bf16_gemm.c: the activations rounded to bf16, grown on demand (64-byte aligned) */
    size_t bf16_x_bytes;
    /* per-thread scratch: threads slices of scratch_per_thread floats, grown on demand by the
     * calling thread before a parallel run (the backend has one caller at a time) */
    float *scratch;
    size_t scratch_per_thread;
    cpu_buffer_cache buffers; /* freed activation buffers, kept for reuse */
} cpu_backend;

static inline cpu_backend *cpu_of(emu2_backend *be)
{
    return (cpu_backend *)be;
}

/* Makes sure every thread has at least per_thread floats of scratch (64-byte aligned slices);
 * returns the base (thread t uses base + t * cpu_scratch_stride(be)) or NULL (err set). */
float *cpu_scratch(cpu_backend *cb, size_t per_thread, emu2_error *err);
static inline size_t cpu_scratch_stride(const cpu_backend *cb)
{
    return cb->scratch_per_thread;
}

/* Runs fn over [0, n) in contiguous chunks: fn(ctx, begin, end, thread). Chunks hold at least
 * min_chunk items, and there are a few per thread so uneven work still balances. */
typedef void (*cpu_range_fn)(void *ctx, size_t begin, size_t end, int thread);
void cpu_parallel_for(cpu_backend *cb, size_t n, size_t min_chunk, cpu_range_fn fn, void *ctx);

/* The GEMMs' work split (packed_gemm.c, bf16_gemm.c): tasks are (N block, M chunk) pairs, M split
 * too when there are too few of the n_blocks N blocks to go round (2 tasks per thread). Sets
 * *m_chunk (rows, a multiple of tile_m) and returns the number of M chunks. */
size_t cpu_gemm_m_chunks(const cpu_backend *cb, size_t n_blocks, size_t M, size_t tile_m, size_t *m_chunk);

/* Argument checks: ops/op_checks.h (shared with the CUDA backend).
 * Element i of a float vector of any float dtype (for small vectors: biases, norm weights); inline
 * because the norms and GEMM epilogues call it per element. */
static inline float cpu_vec_elem(const emu2_tensor_view *v, size_t i)
{
    return cpu_load_elem(v->data, v->dtype, i);
}

/* The ops, one file per family. */
emu2_status cpu_linear(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t x_stride,
                       const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t y_stride,
                       emu2_error *err);
emu2_status cpu_matmul_nt(emu2_backend *be, size_t M, size_t K, size_t N, const float *A, const float *B, float *C,
                          emu2_error *err);
emu2_status cpu_layernorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                          const emu2_tensor_view *bias, float eps, float *y, emu2_error *err);
emu2_status cpu_rmsnorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *weight,
                        float eps, float *y, emu2_error *err);
emu2_status cpu_rope(emu2_backend *be, size_t rows, size_t n_heads, size_t head_dim, float *x, size_t stride,
                     const int32_t *positions, float theta, unsigned flags, emu2_error *err);
emu2_status cpu_attention(emu2_backend *be, const emu2_attention_args *args, emu2_error *err);
emu2_status cpu_gelu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err);
emu2_status cpu_silu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
emu2_status cpu_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err);
emu2_status cpu_log_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err);
emu2_status cpu_embedding(emu2_backend *be, size_t n_ids, const int32_t *ids, const emu2_tensor_view *table,
                          float *out, emu2_error *err);
emu2_status cpu_avgpool2d(emu2_backend *be, emu2_grid_layout layout, size_t C, size_t H, size_t W, size_t k,
                          const float *x, float *y, emu2_error *err);
emu2_status cpu_patchify(emu2_backend *be, size_t C, size_t H, size_t W, size_t p, const float *img, float *out,
                         emu2_error *err);
emu2_status cpu_add(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err);
emu2_status cpu_copy_rows(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t src_stride,
                          size_t src_n_rows, const int32_t *src_rows, float *dst, size_t dst_stride, size_t dst_n_rows,
                          const int32_t *dst_rows, emu2_error *err);

#endif
