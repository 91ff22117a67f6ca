/* cpu_backend.c: the CPU backend's op table, its lifetime, memory, scratch and work splitting. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/buffer_cache.h"
#include "ops/cpu/cpu_diffusion.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/cpu_topk.h"
#include "ops/cpu/kern_bf16dot.h"

#define CPU_ALIGN 64

/* n floats (at least one) plus `extra` bytes, rounded up to whole CPU_ALIGN lines, into *bytes; 0
 * (err set) when that overflows. */
static int aligned_size(size_t n, size_t extra, size_t *bytes, emu2_error *err, const char *what)
{
    if (!emu2_mul_size(n ? n : 1, sizeof(float), bytes) || !emu2_add_size(*bytes, extra + CPU_ALIGN - 1, bytes)) {
        emu2_fail(err, EMU2_ERR_LIMIT, "cpu backend: %s of %zu floats is too large", what, n);
        return 0;
    }
    *bytes &= ~(size_t)(CPU_ALIGN - 1);
    return 1;
}

static void *aligned_block(size_t bytes, emu2_error *err, const char *what)
{
    void *p = aligned_alloc(CPU_ALIGN, bytes);
    if (!p)
        emu2_fail(err, EMU2_ERR_NOMEM, "cpu backend: out of memory for %s (%zu bytes)", what, bytes);
    return p;
}

float *cpu_scratch(cpu_backend *cb, size_t per_thread, emu2_error *err)
{
    per_thread = (per_thread + 15) & ~(size_t)15; /* keep every slice 64-byte aligned */
    if (per_thread <= cb->scratch_per_thread)
        return cb->scratch;
    size_t total;
    if (!emu2_mul_size(per_thread, (size_t)cb->base.threads, &total)) {
        emu2_fail(err, EMU2_ERR_LIMIT, "cpu backend: scratch of %zu floats per thread is too large", per_thread);
        return NULL;
    }
    size_t bytes;
    float *p = aligned_size(total, 0, &bytes, err, "scratch") ? aligned_block(bytes, err, "scratch") : NULL;
    if (!p)
        return NULL;
    free(cb->scratch);
    cb->scratch = p;
    cb->scratch_per_thread = per_thread;
    return p;
}

struct range_job {
    cpu_range_fn fn;
    void *ctx;
    size_t n, chunk;
};

static void range_task(void *p, size_t task, int thread)
{
    struct range_job *job = p;
    size_t begin = task * job->chunk;
    size_t end = begin + job->chunk < job->n ? begin + job->chunk : job->n;
    job->fn(job->ctx, begin, end, thread);
}

void cpu_parallel_for(cpu_backend *cb, size_t n, size_t min_chunk, cpu_range_fn fn, void *ctx)
{
    if (n == 0)
        return;
    size_t threads = (size_t)cb->base.threads;
    if (min_chunk == 0)
        min_chunk = 1;
    size_t chunk = (n + 4 * threads - 1) / (4 * threads);
    if (chunk < min_chunk)
        chunk = min_chunk;
    if (threads == 1 || chunk >= n) {
        fn(ctx, 0, n, 0);
        return;
    }
    struct range_job job = {fn, ctx, n, chunk};
    cpu_pool_run(cb->pool, (n + chunk - 1) / chunk, range_task, &job);
}

size_t cpu_gemm_m_chunks(const cpu_backend *cb, size_t n_blocks, size_t M, size_t tile_m, size_t *m_chunk)
{
    size_t want = 2 * (size_t)cb->base.threads, m_chunks = 1;
    if (n_blocks < want)
        m_chunks = (want + n_blocks - 1) / n_blocks;
    size_t m_tiles = (M + tile_m - 1) / tile_m;
    if (m_chunks > m_tiles)
        m_chunks = m_tiles;
    *m_chunk = (m_tiles + m_chunks - 1) / m_chunks * tile_m;
    return (M + *m_chunk - 1) / *m_chunk;
}

/* ---------------------------------------------------------------- memory */

/* Activation buffers carry their size in a CPU_ALIGN-byte header, so that a freed one can be kept
 * in the buffer cache (buffer_cache.h) for the next alloc of a like size. */
static float *cpu_alloc(emu2_backend *be, size_t n, emu2_error *err)
{
    size_t bytes;
    if (!aligned_size(n, CPU_ALIGN, &bytes, err, "activation buffer"))
        return NULL;
    char *block = cpu_cache_take(&cpu_of(be)->buffers, bytes);
    if (!block) {
        if (!(block = aligned_block(bytes, err, "an activation buffer")))
            return NULL;
        memcpy(block, &bytes, sizeof bytes);
    }
    return (float *)(void *)(block + CPU_ALIGN);
}

static void cpu_free(emu2_backend *be, float *p)
{
    if (!p)
        return;
    char *block = (char *)p - CPU_ALIGN;
    size_t bytes;
    memcpy(&bytes, block, sizeof bytes);
    cpu_cache_keep(&cpu_of(be)->buffers, block, bytes);
}

static emu2_status cpu_copy(emu2_backend *be, float *dst, const float *src, size_t n, emu2_error *err)
{
    (void)be;
    if (n && (!dst || !src))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cpu copy: NULL buffer");
    if (n && dst != src)
        memmove(dst, src, n * sizeof(float));
    return EMU2_OK;
}

static emu2_status cpu_sync(emu2_backend *be, emu2_error *err)
{
    (void)be;
    (void)err;
    return EMU2_OK;
}

static emu2_status cpu_prepare_weight(emu2_backend *be, const emu2_tensor_view *host, emu2_tensor_view *out,
                                      emu2_error *err)
{
    (void)be;
    if (!host || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "prepare_weight: NULL view");
    *out = *host; /* the CPU reads the mapped checkpoint in place */
    return EMU2_OK;
}

static void cpu_release_weight(emu2_backend *be, emu2_tensor_view *prepared)
{
    (void)be;
    (void)prepared;
}

/* ---------------------------------------------------------------- lifetime */

static void cpu_destroy(emu2_backend *be)
{
    if (!be)
        return;
    cpu_backend *cb = cpu_of(be);
    cpu_pool_destroy(cb->pool);
    cpu_cache_clear(&cb->buffers);
    free(cb->scratch);
    free(cb->bf16_x);
    free(cb);
}

static const emu2_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .prepare_weight = cpu_prepare_weight,
    .release_weight = cpu_release_weight,
    .linear = cpu_linear,
    .matmul_nt = cpu_matmul_nt,
    .layernorm = cpu_layernorm,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .gelu = cpu_gelu,
    .silu_mul = cpu_silu_mul,
    .softmax = cpu_softmax,
    .log_softmax = cpu_log_softmax,
    .embedding = cpu_embedding,
    .avgpool2d = cpu_avgpool2d,
    .patchify = cpu_patchify,
    .add = cpu_add,
    .copy_rows = cpu_copy_rows,
    .conv2d = cpu_conv2d,
    .group_norm = cpu_group_norm,
    .upsample_nearest = cpu_upsample_nearest,
    .silu = cpu_silu,
    .mul = cpu_mul,
    .add_row_vector = cpu_add_row_vector,
    .top_k = cpu_top_k,
};

/* $EMU2_CPU_ISA caps the instruction set when the options leave it to us (benchmarks, bug hunts). */
static emu2_cpu_isa isa_from_env(void)
{
    const char *s = getenv("EMU2_CPU_ISA");
    if (!s)
        return EMU2_ISA_AUTO;
    if (!strcasecmp(s, "scalar"))
        return EMU2_ISA_SCALAR;
    if (!strcasecmp(s, "avx2"))
        return EMU2_ISA_AVX2;
    if (!strcasecmp(s, "avx512"))
        return EMU2_ISA_AVX512;
    return EMU2_ISA_AUTO;
}

/* The cores this process may run on (its affinity mask: containers and taskset limit it), else online. */
static int usable_cores(void)
{
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n < 1)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

emu2_status emu2_cpu_backend_open(const emu2_backend_options *opts, emu2_backend **out, emu2_error *err)
{
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cpu backend: NULL output pointer");
    *out = NULL;
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    if (opts) {
        size_t n = opts->struct_size < sizeof o ? opts->struct_size : sizeof o;
        if (n < sizeof(size_t))
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cpu backend: options.struct_size is not set");
        memcpy(&o, opts, n);
    }
    int threads = o.threads;
    if (threads < 0 || threads > 1024)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cpu backend: threads=%d is out of range 0..1024", threads);
    if (threads == 0)
        threads = usable_cores();
    if (o.max_isa < EMU2_ISA_AUTO || o.max_isa > EMU2_ISA_AVX512)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cpu backend: unknown max_isa %d", (int)o.max_isa);
    emu2_cpu_isa cap = o.max_isa == EMU2_ISA_AUTO ? isa_from_env() : o.max_isa;

    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb)
        return emu2_fail(err, EMU2_ERR_NOMEM, "cpu backend: out of memory");
    cb->base.ops = &cpu_ops;
    cb->base.threads = threads;
    cb->k = cpu_kernels_select(cap);
    cb->base.isa = cb->k->isa;
    if (o.bf16_dot) { /* the reason it is off shows in reports (model info, --verbose) */
        cb->bf16_dot = cb->k->isa == EMU2_ISA_AVX512 && cpu_bf16dot_supported();
        snprintf(cb->base.device, sizeof cb->base.device, "precision bf16%s",
                 cb->bf16_dot                   ? ""
                 : cb->k->isa != EMU2_ISA_AVX512 ? " unavailable (AVX-512 is off): f32"
                                                 : " unavailable (no AVX512_BF16): f32");
    }
    emu2_status st = cpu_pool_create(threads, &cb->pool, err);
    if (st != EMU2_OK) {
        free(cb);
        return st;
    }
    *out = &cb->base;
    return EMU2_OK;
}
