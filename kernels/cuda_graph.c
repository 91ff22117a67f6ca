/* cuda_graph.c: decode steps as CUDA graphs (the step_begin / step_cut / step_end hooks of
 * core/ops/ops.h; decisions in graph_policy.c).
 *
 * A recorded step is a stream capture of the ops the decoder issues for one token per row, in
 * parts: step_cut ends the capture of one part, launches it and captures the next, so the GPU runs
 * a part while the host records the next (each part index has its own instantiated graph). Nothing
 * in a capture allocates, synchronises or copies between host and device memory:
 *   - the small host arrays the ops stage (ids, positions, cache rows, key masks, RoPE frequencies)
 *     are written to the pinned host ring only, at the offsets they would have had; before a part
 *     is launched, its share of the ring is copied to the device ring with one stream-ordered copy,
 *     so the kernels read them where they were recorded to read them;
 *   - the ring starts at 0 for each recording, after the stream is idle (the previous step ended in
 *     a download, so this costs nothing), and must hold the whole step: when it does not, the
 *     recording fails, the step runs op by op and the ring is grown before the next recording;
 *   - device scratch and cuBLASLt plans were sized by the previous (op-by-op) step of the same
 *     shape; a scratch that would still have to grow fails the recording the same way;
 *   - cuBLAS and cuBLASLt run with the fixed workspace set at open (cuda_backend.c).
 * Every step is recorded again (kv_len, the KV-cache buffers swapped by beam reordering, and the
 * staged offsets change), and each part's instantiated graph is updated in place
 * (cudaGraphExecUpdate) as long as its topology holds; a refused update instantiates afresh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "cuda_internal.h"

#define EMU2_CUDA_EXPORT __attribute__((visibility("default")))

/* base.device gets " [cuda graphs off: why]" while graphs are off. */
static void note_state(cuda_backend *cb)
{
    char *d = cb->base.device;
    size_t cap = sizeof cb->base.device, base = cb->graph.device_len < cap ? cb->graph.device_len : cap - 1;
    d[base] = '\0';
    if (cb->graph.policy.off)
        snprintf(d + base, cap - base, " [cuda graphs off: %s]", cb->graph.policy.reason);
    cb->graph.noted_off = cb->graph.policy.off;
}

static void drop_part(cuda_backend *cb, int part)
{
    if (cb->graph.exec[part]) {
        cudaGraphExecDestroy(cb->graph.exec[part]);
        cb->graph.exec[part] = NULL;
    }
}

static void drop_exec(cuda_backend *cb)
{
    for (int i = 0; i < CUDA_GRAPH_MAX_PARTS; i++)
        drop_part(cb, i);
}

void cuda_graph_init(cuda_backend *cb)
{
    memset(&cb->graph, 0, sizeof cb->graph);
    cuda_graph_policy_init(&cb->graph.policy, getenv("EMU2_CUDA_GRAPHS"));
    cb->graph.device_len = strlen(cb->base.device);
    note_state(cb);
}

void cuda_graph_release(cuda_backend *cb)
{
    if (cb->graph.capturing) { /* a recording left open by a failed caller */
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(cb->stream, &g) == cudaSuccess && g)
            cudaGraphDestroy(g);
        (void)cudaGetLastError();
        cb->graph.capturing = 0;
    }
    drop_exec(cb);
}

/* Graphs off after a failure (reason kept by the policy); the step then runs op by op. */
static int give_up(cuda_backend *cb, int transient, const char *what, cudaError_t e)
{
    char why[160];
    if (e != cudaSuccess)
        snprintf(why, sizeof why, "%s: %s", what, cudaGetErrorName(e));
    else
        snprintf(why, sizeof why, "%s", what);
    (void)cudaGetLastError(); /* clear a non-sticky error: the op-by-op step must not inherit it */
    if (cuda_graph_policy_failed(&cb->graph.policy, transient, why)) {
        drop_exec(cb);
        note_state(cb);
    }
    return 0;
}

void *cuda_stage_recorded(cuda_backend *cb, const void *host, size_t n, size_t need, emu2_error *err)
{
    if (!cb->stage_host || need > cb->stage_cap - cb->stage_used) {
        /* the recording stops here, short of the step's total: leave room to spare */
        size_t want = 2 * (cb->stage_used + need), grown = cb->stage_cap * 2;
        cb->graph.stage_overflow = 1;
        cb->graph.stage_want = want > grown ? want : grown;
        emu2_fail(err, EMU2_ERR_UNSUPPORTED, "cuda backend: the staging ring is too small for a recorded step");
        return NULL;
    }
    unsigned char *h = cb->stage_host + cb->stage_used, *d = cb->stage_dev + cb->stage_used;
    memcpy(h, host, n);
    cb->stage_used += need;
    return d;
}

/* Fresh rings of `bytes` (the stream is idle). */
static int grow_stage(cuda_backend *cb, size_t bytes)
{
    size_t cap = (bytes + 4095) & ~(size_t)4095;
    cuda_stage_release(cb);
    if (cudaHostAlloc((void **)&cb->stage_host, cap, cudaHostAllocDefault) != cudaSuccess ||
        cudaMalloc((void **)&cb->stage_dev, cap) != cudaSuccess) {
        if (cb->stage_host)
            cudaFreeHost(cb->stage_host);
        cb->stage_host = NULL;
        (void)cudaGetLastError();
        return 0; /* cuda_stage allocates again when it next needs the ring */
    }
    cb->stage_cap = cap;
    return 1;
}

static double seconds_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int cuda_step_begin(emu2_backend *be, uint64_t key)
{
    cuda_backend *cb = cuda_of(be);
    if (!cuda_graph_policy_begin(&cb->graph.policy, key, seconds_now())) {
        if (cb->graph.policy.off != cb->graph.noted_off) { /* the trial just turned graphs off */
            cuda_use(cb);
            drop_exec(cb);
            note_state(cb);
        }
        return 0;
    }
    cuda_use(cb);
    cudaError_t e = cudaStreamSynchronize(cb->stream); /* the ring's earlier readers are done */
    if (e != cudaSuccess)
        return give_up(cb, 0, "stream synchronize before recording", e);
    if (cb->graph.stage_want > cb->stage_cap && !grow_stage(cb, cb->graph.stage_want))
        return give_up(cb, 0, "growing the staging ring", cudaSuccess);
    cb->graph.stage_want = 0;
    cb->stage_used = 0;
    cb->graph.stage_part = 0;
    cb->graph.part = 0;
    cb->graph.stage_overflow = cb->graph.scratch_refused = 0;
    if ((e = cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal)) != cudaSuccess)
        return give_up(cb, 0, "cudaStreamBeginCapture", e);
    cb->graph.capturing = 1;
    return 1;
}

/* Updates or instantiates the current part's graph from a recording; 1 on success (*updated says which). */
static int install(cuda_backend *cb, cudaGraph_t graph, int *updated)
{
    cudaGraphExec_t *exec = &cb->graph.exec[cb->graph.part];
    cudaError_t e;
    *updated = 0;
    if (*exec) {
        cudaGraphExecUpdateResultInfo info;
        memset(&info, 0, sizeof info);
        if ((e = cudaGraphExecUpdate(*exec, graph, &info)) == cudaSuccess) {
            *updated = 1;
            return 1;
        }
        (void)cudaGetLastError();
        drop_part(cb, cb->graph.part);
        if (!cuda_graph_policy_update_refused(&cb->graph.policy)) {
            /* the runtime's word on the last refusal goes with the reason (docs/CUDA_GRAPHS.md) */
            char *r = cb->graph.policy.reason;
            size_t len = strlen(r);
            snprintf(r + len, sizeof cb->graph.policy.reason - len, " (last: %s, cudaGraphExecUpdateResult %d)",
                     cudaGetErrorName(e), (int)info.result);
            drop_exec(cb);
            note_state(cb);
            return 0;
        }
    }
    if ((e = cudaGraphInstantiate(exec, graph, 0)) != cudaSuccess) {
        *exec = NULL;
        give_up(cb, 0, "cudaGraphInstantiate", e);
        return 0;
    }
    return 1;
}

/* Ends the capture of the current part and launches it: 1 when launched, 0 when nothing of it ran. */
static int finish_part(cuda_backend *cb, int ok)
{
    cuda_use(cb);
    /* invalidated: an op did what a recording cannot (a sync, an allocation, another stream) */
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusActive;
    cudaError_t q = cudaStreamIsCapturing(cb->stream, &cs);
    int broken = q != cudaSuccess || cs == cudaStreamCaptureStatusInvalidated;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cb->stream, &graph);
    cb->graph.capturing = 0;
    if (e != cudaSuccess || !ok || !graph) {
        if (graph)
            cudaGraphDestroy(graph);
        if (cb->graph.stage_overflow || cb->graph.scratch_refused)
            return give_up(cb, 1, cb->graph.stage_overflow ? "staging ring too small" : "scratch too small",
                           cudaSuccess);
        if (broken || ok) /* ok with no graph: the capture failed at its end */
            return give_up(cb, 0, broken ? "stream capture invalidated by an op" : "stream capture",
                           e != cudaSuccess ? e : q);
        (void)cudaGetLastError();
        if (cuda_graph_policy_dropped(&cb->graph.policy)) { /* the step's own error: the rerun reports it */
            drop_exec(cb);
            note_state(cb);
        }
        return 0;
    }
    int updated = 0, installed = install(cb, graph, &updated);
    cudaGraphDestroy(graph); /* the exec holds what it needs */
    if (!installed)
        return 0;
    size_t from = cb->graph.stage_part, n = cb->stage_used - from; /* this part's staged arrays */
    if (n && (e = cudaMemcpyAsync(cb->stage_dev + from, cb->stage_host + from, n, cudaMemcpyHostToDevice,
                                  cb->stream)) != cudaSuccess)
        return give_up(cb, 0, "copying the staged arrays", e);
    if ((e = cudaGraphLaunch(cb->graph.exec[cb->graph.part], cb->stream)) != cudaSuccess)
        return give_up(cb, 0, "cudaGraphLaunch", e);
    cuda_graph_policy_launched(&cb->graph.policy, updated);
    return 1;
}

int cuda_step_cut(emu2_backend *be)
{
    cuda_backend *cb = cuda_of(be);
    if (!cb->graph.capturing)
        return 0;
    if (cb->graph.part + 1 >= CUDA_GRAPH_MAX_PARTS) /* no part left: this one goes on */
        return EMU2_STEP_CUT_RECORDING;
    if (!finish_part(cb, 1))
        return 0;
    /* the rest: a new part, its staged arrays after this one's (the ring is not reused within a step) */
    cb->graph.part++;
    cb->graph.stage_part = cb->stage_used;
    cudaError_t e = cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        give_up(cb, 0, "cudaStreamBeginCapture", e);
        return EMU2_STEP_CUT_LAUNCHED;
    }
    cb->graph.capturing = 1;
    return EMU2_STEP_CUT_LAUNCHED | EMU2_STEP_CUT_RECORDING;
}

int cuda_step_end(emu2_backend *be, int ok)
{
    cuda_backend *cb = cuda_of(be);
    return cb->graph.capturing ? finish_part(cb, ok) : 0;
}

/* ---------------------------------------------------------------- for tests and benchmarks (dlsym) */

/* The counters, and whether graphs are on (reason: why not, when off; may be NULL). */
EMU2_CUDA_EXPORT emu2_status emu2_cuda_graph_stats(emu2_backend *be, cuda_graph_counters *out, int *on,
                                                   char *reason, size_t reason_size, emu2_error *err)
{
    if (!be || !out || be->ops->step_begin != cuda_step_begin)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda graph stats: not a CUDA backend");
    const cuda_graph_policy *p = &cuda_of(be)->graph.policy;
    *out = p->c;
    if (on)
        *on = !p->off;
    if (reason && reason_size)
        snprintf(reason, reason_size, "%s", p->off ? p->reason : "");
    return EMU2_OK;
}

/* Sets this backend's graph mode afresh: 0 off, 1 on (no trial), 2 auto (the same model compared
 * both ways; counters kept). */
EMU2_CUDA_EXPORT emu2_status emu2_cuda_graphs_enable(emu2_backend *be, int mode, emu2_error *err)
{
    if (!be || be->ops->step_begin != cuda_step_begin)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda graphs: not a CUDA backend");
    if (mode < CUDA_GRAPHS_OFF || mode > CUDA_GRAPHS_AUTO)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda graphs: mode %d (0 off, 1 on, 2 auto)", mode);
    cuda_backend *cb = cuda_of(be);
    if (cb->graph.capturing)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "cuda graphs: a step is being recorded");
    cuda_use(cb);
    drop_exec(cb);
    cuda_graph_policy_set(&cb->graph.policy, (cuda_graph_mode)mode);
    note_state(cb);
    return EMU2_OK;
}
