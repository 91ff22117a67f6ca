/* graph_policy.h: the decisions behind the CUDA backend's decode-step graphs (kernels/cuda_graph.c
 * carries them out): record a step or run it op by op, reuse the instantiated graph through an
 * update or instantiate a new one, retry after a passing cause or give graphs up for the
 * backend's lifetime with a reason, and (mode auto, the default) measure whether graphs make the
 * steps faster on this machine before keeping them. Plain C without CUDA, so
 * tests/unit/test_cuda_graph_policy.c checks it on any machine.
 *
 * A step of a key seen for the first time (or after another key) runs op by op: it sizes the
 * backend's scratch, staging ring and cuBLASLt plans and loads the kernels outside any recording
 * (a recording may not allocate). Later steps of the same key are recorded, in parts (graph
 * segments: the device runs one while the host records the next); each part's recording updates
 * that part's instantiated graph in place when the runtime accepts it (same topology, new kernel
 * arguments), else a new graph is instantiated.
 *
 * Mode auto: a recorded step is captured afresh, so the GPU waits for the host to record the whole
 * step, where op by op it starts on the first launch; whether the shorter gaps between kernels win
 * depends on the model and the machine. So the first steps alternate in blocks between graphs and
 * op by op, the wall time from one step's start to the next (same key) is the sample, and after
 * CUDA_GRAPH_TRIAL_SAMPLES of each the medians decide: graphs stay on only when at least
 * CUDA_GRAPH_TRIAL_GAIN faster, else they go off with both times in the reason. */
#ifndef EMU2_KERNELS_GRAPH_POLICY_H
#define EMU2_KERNELS_GRAPH_POLICY_H

#include <stdint.h>

/* Refused updates in a row (every step a new topology) before graphs are given up: then each
 * step would pay a fresh instantiation, more than it saves. */
#define CUDA_GRAPH_MAX_REFUSALS 4
/* Recordings in a row lost to a passing cause (the staging ring grown for the next try) before
 * graphs are given up. */
#define CUDA_GRAPH_MAX_TRANSIENT 4
/* Recordings in a row dropped by an op's own error (each rerun op by op reports it) before graphs
 * are given up: an op that fails only while recorded (a capture-specific refusal that does not
 * invalidate the capture) would otherwise cost a recording and a rerun on every step. */
#define CUDA_GRAPH_MAX_DROPPED 4
/* Mode auto's trial: samples per side, steps per block of one side, and the gain graphs must show. */
#define CUDA_GRAPH_TRIAL_SAMPLES 12
#define CUDA_GRAPH_TRIAL_BLOCK 4
#define CUDA_GRAPH_TRIAL_GAIN 0.02

typedef enum cuda_graph_mode {
    CUDA_GRAPHS_OFF = 0,
    CUDA_GRAPHS_ON = 1,  /* always (no trial) */
    CUDA_GRAPHS_AUTO = 2 /* on after a trial shows them faster (the default) */
} cuda_graph_mode;

typedef struct cuda_graph_counters {
    uint64_t steps;          /* step_begin calls */
    uint64_t recorded;       /* steps recorded (stream capture begun) */
    uint64_t launched;       /* graph launches (one per recorded part of a step) */
    uint64_t updates;        /* of those, launches of an instantiated graph after an in-place update */
    uint64_t instantiations; /* of those, launches of a freshly instantiated graph */
    uint64_t eager;          /* steps begun op by op: graphs off, a new key, the trial's other side */
    uint64_t fallbacks;      /* recorded parts not launched (the caller ran them, and the rest, op by op) */
    double graph_us, eager_us; /* mode auto: the trial's median step times (0 until it ends) */
} cuda_graph_counters;

typedef struct cuda_graph_policy {
    int off;          /* graphs given up (or turned off) for the backend's lifetime */
    char reason[160]; /* why, when off */
    int trial;        /* mode auto, still measuring */
    int have_key;
    uint64_t key;     /* the previous step's key */
    unsigned refusals_in_row, transient_in_row, dropped_in_row;
    /* the trial: the previous step's start and how it ran; samples in seconds, [0] op by op, [1] graphs */
    double prev_start;
    int prev_valid, prev_graph;
    double samples[2][CUDA_GRAPH_TRIAL_SAMPLES];
    unsigned n_samples[2], block_pos, block_graph;
    cuda_graph_counters c;
} cuda_graph_policy;

/* env: the value of EMU2_CUDA_GRAPHS (NULL when unset): "0", "off", "no" or "false": off; "1",
 * "on", "yes" or "true": on without a trial; anything else (unset, "auto"): auto. */
void cuda_graph_policy_init(cuda_graph_policy *p, const char *env);
/* Sets the mode afresh (tests and benchmarks compare both on one model); forgets the instantiated
 * graph (the caller destroys it), the counters stay. */
void cuda_graph_policy_set(cuda_graph_policy *p, cuda_graph_mode mode);

/* A step of shape `key` begins at time `now` (seconds, monotonic): 1 = record it, 0 = run it op by op. */
int cuda_graph_policy_begin(cuda_graph_policy *p, uint64_t key, double now);
/* A recorded part had an instantiated graph (from an earlier step) and the runtime refused to
 * update it with the recording: 1 = instantiate the recording instead (the old graph is destroyed
 * by the caller either way), 0 = graphs are now off and the part runs op by op. */
int cuda_graph_policy_update_refused(cuda_graph_policy *p);
/* A recorded part was launched (updated: its graph updated in place; else freshly instantiated). */
void cuda_graph_policy_launched(cuda_graph_policy *p, int updated);
/* A recorded part was not launched and runs op by op, with the rest of the step. transient: a
 * cause that the next recording will not meet (resources grown meanwhile); what: the reason
 * graphs are given up otherwise. Returns 1 when graphs are now off (the caller destroys its graphs). */
int cuda_graph_policy_failed(cuda_graph_policy *p, int transient, const char *what);
/* A recorded part was dropped because an op of the step itself failed (bad arguments): it runs op
 * by op and reports that error; graphs stay as they are, unless CUDA_GRAPH_MAX_DROPPED recordings
 * in a row (no launch between) were dropped. Returns 1 when graphs are now off (the caller
 * destroys its graphs). */
int cuda_graph_policy_dropped(cuda_graph_policy *p);

#endif
