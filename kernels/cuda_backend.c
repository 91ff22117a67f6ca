/* cuda_backend.c: the CUDA backend's lifetime, memory, weight uploads and op table; the library's
 * exported entry points (emu2_cuda_backend_open, emu2_cuda_random_fill). One stream per backend:
 * ops are asynchronous on it, download and sync wait for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "cuda_internal.h"
#include "cuda_topk.h"
#include "model/random_weights.h"

#define EMU2_CUDA_EXPORT __attribute__((visibility("default")))
#define LT_WORKSPACE_BYTES ((size_t)32 << 20)
#define STAGE_INITIAL_BYTES ((size_t)1 << 20)

emu2_status cuda_fail(emu2_error *err, cudaError_t e, const char *what)
{
    return emu2_fail(err, e == cudaErrorMemoryAllocation ? EMU2_ERR_NOMEM : EMU2_ERR_INTERNAL,
                     "cuda backend: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

emu2_status cuda_blas_fail(emu2_error *err, int blas_status, const char *what)
{
    return emu2_fail(err, blas_status == CUBLAS_STATUS_ALLOC_FAILED ? EMU2_ERR_NOMEM : EMU2_ERR_INTERNAL,
                     "cuda backend: %s: cuBLAS status %d (%s)", what, blas_status,
                     cublasGetStatusString((cublasStatus_t)blas_status));
}

emu2_status cuda_launched(emu2_error *err, cudaError_t launch, const char *op)
{
    if (launch != cudaSuccess)
        return cuda_fail(err, launch, op);
    return EMU2_OK;
}

/* ---------------------------------------------------------------- device memory */

int cuda_is_device_ptr(const void *p)
{
    struct cudaPointerAttributes a;
    if (!p || cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear a non-sticky error from an unknown pointer */
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/* ---------------------------------------------------------------- staging and scratch */

void cuda_stage_release(cuda_backend *cb)
{
    if (cb->stage_host)
        cudaFreeHost(cb->stage_host);
    if (cb->stage_dev)
        cudaFree(cb->stage_dev);
    cb->stage_host = cb->stage_dev = NULL;
    cb->stage_cap = cb->stage_used = 0;
}

void *cuda_stage(cuda_backend *cb, const void *host, size_t n, emu2_error *err)
{
    cuda_use(cb);
    size_t need = (n + 255) & ~(size_t)255; /* keep every staged array 256-byte aligned */
    cudaError_t e;
    if (need < n) {
        emu2_fail(err, EMU2_ERR_LIMIT, "cuda backend: staging %zu bytes overflows", n);
        return NULL;
    }
    if (cb->graph.capturing) /* a recorded step: no copy (and no wrap) now */
        return cuda_stage_recorded(cb, host, n, need, err);
    if (need > cb->stage_cap - cb->stage_used || !cb->stage_host) {
        /* wrap (or grow): everything queued so far may still read the rings */
        if ((e = cudaStreamSynchronize(cb->stream)) != cudaSuccess) {
            cuda_fail(err, e, "staging: stream synchronize");
            return NULL;
        }
        cb->stage_used = 0;
        if (need > cb->stage_cap || !cb->stage_host) {
            size_t cap = cb->stage_cap ? cb->stage_cap : STAGE_INITIAL_BYTES;
            while (cap < need)
                cap *= 2;
            cuda_stage_release(cb);
            if ((e = cudaHostAlloc((void **)&cb->stage_host, cap, cudaHostAllocDefault)) != cudaSuccess ||
                (e = cudaMalloc((void **)&cb->stage_dev, cap)) != cudaSuccess) {
                cuda_stage_release(cb);
                cuda_fail(err, e, "staging: allocation");
                return NULL;
            }
            cb->stage_cap = cap;
        }
    }
    unsigned char *h = cb->stage_host + cb->stage_used, *d = cb->stage_dev + cb->stage_used;
    memcpy(h, host, n);
    if ((e = cudaMemcpyAsync(d, h, n, cudaMemcpyHostToDevice, cb->stream)) != cudaSuccess) {
        cuda_fail(err, e, "staging: copy to the device");
        return NULL;
    }
    cb->stage_used += need;
    return d;
}

void *cuda_scratch(cuda_backend *cb, int slot, size_t n, emu2_error *err)
{
    if (n <= cb->scratch_bytes[slot])
        return cb->scratch[slot];
    cudaError_t e;
    if (cb->graph.capturing) { /* a recording may not allocate: the step reruns op by op, which grows it */
        cb->graph.scratch_refused = 1;
        emu2_fail(err, EMU2_ERR_UNSUPPORTED, "cuda backend: device scratch must grow while a step is recorded");
        return NULL;
    }
    if (cb->scratch[slot]) {
        cudaFree(cb->scratch[slot]); /* cudaFree waits for the kernels that may still use it */
        cb->scratch[slot] = NULL;
        cb->scratch_bytes[slot] = 0;
    }
    size_t bytes = (n + 4095) & ~(size_t)4095;
    if ((e = cudaMalloc(&cb->scratch[slot], bytes)) != cudaSuccess) {
        cb->scratch[slot] = NULL;
        cuda_fail(err, e, "device scratch");
        return NULL;
    }
    cb->scratch_bytes[slot] = bytes;
    return cb->scratch[slot];
}

/* ---------------------------------------------------------------- memory */

static float *cuda_alloc(emu2_backend *be, size_t n, emu2_error *err)
{
    cuda_backend *cb = cuda_of(be);
    cuda_use(cb);
    size_t bytes;
    if (!emu2_mul_size(n ? n : 1, sizeof(float), &bytes)) {
        emu2_fail(err, EMU2_ERR_LIMIT, "cuda backend: activation buffer of %zu floats is too large", n);
        return NULL;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        emu2_fail(err, EMU2_ERR_NOMEM, "cuda backend: out of device memory for %zu bytes (%s)", bytes,
                  cudaGetErrorString(e));
        return NULL;
    }
    if (!cuda_ptr_set_add(&cb->buffers, p)) {
        cudaFree(p);
        emu2_fail(err, EMU2_ERR_NOMEM, "cuda backend: out of host memory");
        return NULL;
    }
    return p;
}

static void cuda_free_buffer(emu2_backend *be, float *p)
{
    cuda_backend *cb = cuda_of(be);
    cuda_use(cb);
    if (p && cuda_ptr_set_remove(&cb->buffers, p))
        cudaFree(p);
}

static emu2_status cuda_copy(cuda_backend *cb, void *dst, const void *src, size_t n, int wait, const char *what,
                             emu2_error *err)
{
    size_t bytes;
    if (n && (!dst || !src))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda %s: NULL buffer", what);
    if (!emu2_mul_size(n, sizeof(float), &bytes))
        return emu2_fail(err, EMU2_ERR_LIMIT, "cuda %s: %zu floats is too large", what, n);
    if (!n || dst == src)
        return EMU2_OK;
    cuda_use(cb);
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, cb->stream);
    if (e == cudaSuccess && wait)
        e = cudaStreamSynchronize(cb->stream);
    return e == cudaSuccess ? EMU2_OK : cuda_fail(err, e, what);
}

/* Both wait: the caller may reuse or read its host buffer as soon as they return. */
static emu2_status cuda_upload(emu2_backend *be, float *dst, const float *src, size_t n, emu2_error *err)
{
    return cuda_copy(cuda_of(be), dst, src, n, 1, "upload", err);
}

static emu2_status cuda_download(emu2_backend *be, float *dst, const float *src, size_t n, emu2_error *err)
{
    return cuda_copy(cuda_of(be), dst, src, n, 1, "download", err);
}

static emu2_status cuda_sync(emu2_backend *be, emu2_error *err)
{
    cudaError_t e = cudaStreamSynchronize(cuda_stream_of(be));
    return e == cudaSuccess ? EMU2_OK : cuda_fail(err, e, "sync");
}

/* ---------------------------------------------------------------- weights */

/* Uploads a host view once (bytes as they are: BF16/F16 stay 16-bit, F32 stays F32). A view that
 * already lies in device memory (random weights built on the device, a slice of a prepared view)
 * is used in place and not owned. */
static emu2_status cuda_prepare_weight(emu2_backend *be, const emu2_tensor_view *host, emu2_tensor_view *out,
                                       emu2_error *err)
{
    cuda_backend *cb = cuda_of(be);
    if (!host || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "prepare_weight: NULL view");
    size_t es = emu2_dtype_size(host->dtype);
    uint64_t numel = emu2_tensor_numel(host), need;
    if (!es || !emu2_mul_u64(numel, es, &need) || host->nbytes < need || (need && !host->data))
        return emu2_fail(err, EMU2_ERR_MISMATCH, "prepare_weight: view of %llu bytes is smaller than its shape",
                         (unsigned long long)host->nbytes);
    *out = *host;
    if (!need || cuda_is_device_ptr(host->data))
        return EMU2_OK;
    cuda_use(cb);
    void *d = NULL;
    cudaError_t e = cudaMalloc(&d, (size_t)need);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return emu2_fail(err, EMU2_ERR_NOMEM, "cuda backend: out of device memory uploading %llu bytes of weights",
                         (unsigned long long)need);
    }
    e = cudaMemcpy(d, host->data, (size_t)need, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        cudaFree(d);
        return cuda_fail(err, e, "weight upload");
    }
    if (!cuda_ptr_set_add(&cb->weights, d)) {
        cudaFree(d);
        return emu2_fail(err, EMU2_ERR_NOMEM, "cuda backend: out of host memory");
    }
    out->data = d;
    out->nbytes = need;
    return EMU2_OK;
}

static void cuda_release_weight(emu2_backend *be, emu2_tensor_view *prepared)
{
    cuda_backend *cb = cuda_of(be);
    if (!prepared || !prepared->data)
        return;
    cuda_use(cb);
    if (cuda_ptr_set_remove(&cb->weights, (void *)prepared->data))
        cudaFree((void *)prepared->data);
    prepared->data = NULL;
}

/* ---------------------------------------------------------------- lifetime */

static void free_set(cuda_ptr_set *s)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i])
            cudaFree(s->slots[i]);
    cuda_ptr_set_free(s);
}

static void cuda_destroy(emu2_backend *be)
{
    if (!be)
        return;
    cuda_backend *cb = cuda_of(be);
    cudaSetDevice(cb->device);
    if (cb->stream)
        cudaStreamSynchronize(cb->stream);
    cuda_graph_release(cb);
    free_set(&cb->buffers); /* buffers still live (random weights, forgotten ones) go with the backend */
    free_set(&cb->weights);
    cuda_stage_release(cb);
    for (size_t i = 0; i < sizeof cb->scratch / sizeof cb->scratch[0]; i++)
        if (cb->scratch[i])
            cudaFree(cb->scratch[i]);
    if (cb->lt_workspace)
        cudaFree(cb->lt_workspace);
    if (cb->handoff)
        cudaEventDestroy(cb->handoff);
    if (cb->lt)
        cublasLtDestroy(cb->lt);
    if (cb->blas)
        cublasDestroy(cb->blas);
    if (cb->stream)
        cudaStreamDestroy(cb->stream);
    free(cb);
}

/* ---------------------------------------------------------------- layer split */

/* Lets device `from` read and write GPU `to`'s memory (once per pair). */
static emu2_status enable_peer(cuda_backend *from, int to, emu2_error *err)
{
    if (from->device == to || (to < 64 && (from->peers_enabled >> to & 1)))
        return EMU2_OK;
    int can = 0;
    cudaError_t e = cudaDeviceCanAccessPeer(&can, from->device, to);
    if (e != cudaSuccess)
        return cuda_fail(err, e, "peer access query");
    if (!can)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "cuda backend: GPU %d cannot access GPU %d's memory (no peer access); the layer split needs it",
                         from->device, to);
    cudaSetDevice(from->device);
    e = cudaDeviceEnablePeerAccess(to, 0);
    if (e == cudaErrorPeerAccessAlreadyEnabled)
        (void)cudaGetLastError();
    else if (e != cudaSuccess)
        return cuda_fail(err, e, "enabling peer access");
    if (to < 64)
        from->peers_enabled |= (uint64_t)1 << to;
    return EMU2_OK;
}

/* be's stream waits for everything issued so far on other's (any GPU), peer access both ways. */
static emu2_status cuda_wait_for(emu2_backend *be, emu2_backend *other, emu2_error *err)
{
    if (!other || other == be)
        return EMU2_OK;
    if (other->ops != be->ops)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda backend: wait_for another kind of backend");
    cuda_backend *cb = cuda_of(be), *ob = cuda_of(other);
    emu2_status st;
    if ((st = enable_peer(cb, ob->device, err)) != EMU2_OK || (st = enable_peer(ob, cb->device, err)) != EMU2_OK)
        return st;
    cudaError_t e;
    cuda_use(ob);
    if ((e = cudaEventRecord(ob->handoff, ob->stream)) != cudaSuccess)
        return cuda_fail(err, e, "handoff event");
    cuda_use(cb);
    if ((e = cudaStreamWaitEvent(cb->stream, ob->handoff, 0)) != cudaSuccess)
        return cuda_fail(err, e, "handoff wait");
    return EMU2_OK;
}

static const emu2_ops cuda_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .alloc = cuda_alloc,
    .free = cuda_free_buffer,
    .upload = cuda_upload,
    .download = cuda_download,
    .sync = cuda_sync,
    .prepare_weight = cuda_prepare_weight,
    .release_weight = cuda_release_weight,
    .linear = cuda_linear,
    .matmul_nt = cuda_matmul_nt,
    .layernorm = cuda_layernorm,
    .rmsnorm = cuda_rmsnorm,
    .rope = cuda_rope,
    .attention = cuda_attention,
    .gelu = cuda_gelu,
    .silu_mul = cuda_silu_mul,
    .softmax = cuda_softmax,
    .log_softmax = cuda_log_softmax,
    .embedding = cuda_embedding,
    .avgpool2d = cuda_avgpool2d,
    .patchify = cuda_patchify,
    .add = cuda_add,
    .copy_rows = cuda_copy_rows,
    .conv2d = cuda_conv2d,
    .group_norm = cuda_group_norm,
    .upsample_nearest = cuda_upsample_nearest,
    .silu = cuda_silu,
    .mul = cuda_mul,
    .add_row_vector = cuda_add_row_vector,
    .wait_for = cuda_wait_for,
    .step_begin = cuda_step_begin,
    .step_cut = cuda_step_cut,
    .step_end = cuda_step_end,
    .top_k = cuda_top_k,
};

/* Why no GPU can be used, in the words emu2 reports ("cpu (cuda unavailable: ...)"). */
static emu2_status unavailable(emu2_error *err, cudaError_t e)
{
    const char *why;
    switch (e) {
    case cudaErrorNoDevice: why = "no GPU"; break;
    case cudaErrorInsufficientDriver: why = "no CUDA driver, or one older than this CUDA runtime"; break;
    default: why = cudaGetErrorString(e); break;
    }
    return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s", why);
}

static emu2_status open_handles(cuda_backend *cb, emu2_error *err)
{
    cudaError_t e;
    cublasStatus_t b;
    if ((e = cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking)) != cudaSuccess)
        return cuda_fail(err, e, "stream");
    if ((e = cudaEventCreateWithFlags(&cb->handoff, cudaEventDisableTiming)) != cudaSuccess)
        return cuda_fail(err, e, "handoff event");
    if ((b = cublasCreate(&cb->blas)) != CUBLAS_STATUS_SUCCESS)
        return cuda_blas_fail(err, b, "cublasCreate");
    if ((b = cublasSetStream(cb->blas, cb->stream)) != CUBLAS_STATUS_SUCCESS)
        return cuda_blas_fail(err, b, "cublasSetStream");
    /* the default mode keeps f32 products in f32 (TF32 only with CUBLAS_TF32_TENSOR_OP_MATH): the
     * CPU backend's precision rules hold (unless NVIDIA_TF32_OVERRIDE=1 is set in the environment) */
    if ((b = cublasSetMathMode(cb->blas, CUBLAS_DEFAULT_MATH)) != CUBLAS_STATUS_SUCCESS)
        return cuda_blas_fail(err, b, "cublasSetMathMode");
    if ((b = cublasLtCreate(&cb->lt)) != CUBLAS_STATUS_SUCCESS)
        return cuda_blas_fail(err, b, "cublasLtCreate");
    if ((e = cudaMalloc(&cb->lt_workspace, LT_WORKSPACE_BYTES)) != cudaSuccess)
        return cuda_fail(err, e, "cuBLASLt workspace");
    cb->lt_workspace_size = LT_WORKSPACE_BYTES;
    if ((b = cublasSetWorkspace(cb->blas, cb->lt_workspace, cb->lt_workspace_size)) != CUBLAS_STATUS_SUCCESS)
        return cuda_blas_fail(err, b, "cublasSetWorkspace");
    return EMU2_OK;
}

EMU2_CUDA_EXPORT emu2_status emu2_cuda_backend_open(const emu2_backend_options *opts, emu2_backend **out,
                                                    emu2_error *err)
{
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda backend: NULL output pointer");
    *out = NULL;
    emu2_backend_options o; /* (emu2_backend_options_init lives in libemu2, which this library does not link) */
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    if (opts) {
        size_t n = opts->struct_size < sizeof o ? opts->struct_size : sizeof o;
        if (n < sizeof(size_t))
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda backend: options.struct_size is not set");
        memcpy(&o, opts, n);
    }
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return unavailable(err, e);
    }
    if (count <= 0)
        return unavailable(err, cudaErrorNoDevice);
    if (o.device_index < 0 || o.device_index >= count)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda backend: no GPU cuda:%d (this machine has %d: 0..%d)",
                         o.device_index, count, count - 1);
    struct cudaDeviceProp prop;
    if ((e = cudaSetDevice(o.device_index)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&prop, o.device_index)) != cudaSuccess)
        return cuda_fail(err, e, "opening the device");
    if (prop.major < 8)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "cuda backend: %s has compute capability %d.%d; this build needs 8.0 or newer", prop.name,
                         prop.major, prop.minor);

    cuda_backend *cb = calloc(1, sizeof *cb);
    if (!cb)
        return emu2_fail(err, EMU2_ERR_NOMEM, "cuda backend: out of memory");
    cb->base.ops = &cuda_ops;
    cb->base.threads = 1;
    cb->base.isa = EMU2_ISA_AUTO;
    cb->device = o.device_index;
    cb->sm_count = prop.multiProcessorCount;
    cb->max_smem_optin = prop.sharedMemPerBlockOptin;
    snprintf(cb->base.device, sizeof cb->base.device, "cuda:%d (%.120s, %.0f GiB)", o.device_index, prop.name,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    cuda_graph_init(cb);
    emu2_status st = open_handles(cb, err);
    if (st != EMU2_OK) {
        cuda_destroy(&cb->base);
        return st;
    }
    *out = &cb->base;
    return EMU2_OK;
}

/* Random weights built in device memory (core/model/random_weights.c finds this with dlsym). */
EMU2_CUDA_EXPORT emu2_status emu2_cuda_random_fill(emu2_backend *be, void *dst, size_t n, emu2_dtype dt,
                                                   uint64_t key, float scale, float constant, emu2_error *err)
{
    if (!be || be->ops != &cuda_ops)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda random fill: not a CUDA backend");
    if (!emu2_is_float_dtype(dt))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "cuda random fill: dtype %s", emu2_dtype_name(dt));
    if (n && !cuda_is_device_ptr(dst))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda random fill: destination is not device memory");
    if (!n)
        return EMU2_OK;
    return cuda_launched(err, emu2k_random_fill(cuda_stream_of(be), dst, n, (int)dt, key, scale, constant), "random fill");
}
