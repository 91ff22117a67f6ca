/* graph_bench.c: decode steps with CUDA graphs on and off on one model (kernels/cuda_graph.c),
 * alternating in the same process: per batch, `rounds` rounds each timing `steps` steps of
 * emu2_decoder_step with graphs off and on (which goes first alternates), median of each; the
 * graph counters say how many timed steps really ran as graphs (and in how many launches); then
 * mode auto (the default) on the same session, and what its trial decided.
 * One JSON object per line on stdout; a readable line per batch on stderr.
 *
 *   graph_bench MODEL_DIR [--random] [--batches 1,8,32] [--steps 32] [--rounds 5]
 * --random: MODEL_DIR holds only a config (random bf16 weights built on the device).
 * Built and run by tests/gpu/run.sh. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../kernels/graph_policy.h"
#include "api/model_internal.h"
#include "emu2.h"
#include "model/decoder.h"
#include "model/embed_splice.h"

#define PROMPT 16
#define MAX_ROUNDS 64

typedef emu2_status (*stats_fn)(emu2_backend *be, cuda_graph_counters *out, int *on, char *reason,
                                size_t reason_size, emu2_error *err);
typedef emu2_status (*enable_fn)(emu2_backend *be, int on, emu2_error *err);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* `steps` decoder steps; seconds per step, or -1 on error. */
static double timed_steps(emu2_decoder_session *s, size_t rows, size_t V, int steps, int32_t *ids, float *logits,
                          emu2_error *err)
{
    double t0 = now();
    for (int k = 0; k < steps; k++) {
        for (size_t i = 0; i < rows; i++)
            ids[i] = (int32_t)((i * 31 + (size_t)k * 7 + 3) % V);
        if (emu2_decoder_step(s, ids, logits, NULL, err) != EMU2_OK) /* logits come back: synced */
            return -1;
    }
    return (now() - t0) / steps;
}

static int bench_batch(emu2_model *m, size_t rows, int steps, int rounds, stats_fn stats, enable_fn enable)
{
    emu2_backend *be = m->be;
    const size_t V = (size_t)m->cfg.vocab_size, D = (size_t)m->cfg.hidden_size;
    emu2_error err = {0};
    enum { AUTO_STEPS = 4 * CUDA_GRAPH_TRIAL_SAMPLES + 8 }; /* enough for mode auto's trial to decide */
    emu2_decoder_limits lim = {rows, PROMPT + (size_t)(2 * rounds * (steps + 2)) + AUTO_STEPS + 2, 0};
    emu2_decoder_session *s = NULL;
    float *logits = malloc(rows * V * sizeof *logits);
    int32_t *ids = malloc(rows * PROMPT * sizeof *ids);
    float *emb = be->ops->alloc(be, rows * PROMPT * D, &err);
    int ok = logits && ids && emb;
    for (size_t i = 0; ok && i < rows * PROMPT; i++)
        ids[i] = (int32_t)(3 + (i * 7919) % (V - 3));
    ok = ok && emu2_embed_tokens(be, &m->w->decoder.embed, ids, rows * PROMPT, emb, &err) == EMU2_OK &&
         emu2_decoder_session_create(be, &m->w->decoder, &m->cfg, &lim, &s, &err) == EMU2_OK &&
         emu2_decoder_prefill(s, rows, PROMPT, emb, NULL, logits, NULL, &err) == EMU2_OK;
    double t_off[MAX_ROUNDS], t_on[MAX_ROUNDS];
    uint64_t timed_on = 0, graphed_on = 0, launched_on = 0;
    for (int r = 0; ok && r < rounds; r++)
        for (int half = 0; ok && half < 2; half++) {
            int on = (r + half) % 2; /* alternate which goes first */
            cuda_graph_counters a, b;
            ok = enable(be, on, &err) == EMU2_OK;
            /* two untimed steps: the first of a shape runs op by op, the second instantiates */
            ok = ok && timed_steps(s, rows, V, 2, ids, logits, &err) >= 0;
            ok = ok && stats(be, &a, NULL, NULL, 0, &err) == EMU2_OK;
            double t = ok ? timed_steps(s, rows, V, steps, ids, logits, &err) : -1;
            ok = ok && t >= 0 && stats(be, &b, NULL, NULL, 0, &err) == EMU2_OK;
            (on ? t_on : t_off)[r] = t;
            if (ok && on) { /* recorded steps none of whose parts fell back */
                uint64_t rec = b.recorded - a.recorded, fell = b.fallbacks - a.fallbacks;
                timed_on += (uint64_t)steps;
                graphed_on += rec > fell ? rec - fell : 0;
                launched_on += b.launched - a.launched;
            }
        }
    /* mode auto (the default) on the same steps: what its trial decides here */
    int on_now = 0;
    char reason[200] = "";
    cuda_graph_counters c;
    memset(&c, 0, sizeof c);
    ok = ok && enable(be, 2, &err) == EMU2_OK && timed_steps(s, rows, V, AUTO_STEPS, ids, logits, &err) >= 0;
    if (ok)
        stats(be, &c, &on_now, reason, sizeof reason, &err);
    if (!ok) {
        fprintf(stderr, "graph_bench: batch %zu: %s\n", rows, err.message[0] ? err.message : "out of memory");
    } else {
        double off = median(t_off, rounds), on = median(t_on, rounds);
        double frac = timed_on ? (double)graphed_on / (double)timed_on : 0;
        double per_step = graphed_on ? (double)launched_on / (double)graphed_on : 0;
        printf("{\"bench\":\"decode_graphs\",\"batch\":%zu,\"unit\":\"tokens/s\",\"rate\":%.6g,\"off\":%.6g,"
               "\"speedup\":%.4f,\"launched_fraction\":%.4f,\"launches_per_step\":%.2f,\"auto_on\":%d,"
               "\"auto_graph_us\":%.1f,\"auto_eager_us\":%.1f,\"device\":\"%s\"}\n",
               rows, rows / on, rows / off, off / on, frac, per_step, on_now, c.graph_us, c.eager_us, be->device);
        fprintf(stderr, "decode batch %3zu: graphs on %10.1f tokens/s (%.1f us/step), off %10.1f (%.1f us/step): "
                        "%.3fx; %.0f%% of timed steps ran as graphs (%.1f launches each); auto: %s (trial %.1f vs "
                        "%.1f us/step)%s%s\n",
                rows, rows / on, on * 1e6, rows / off, off * 1e6, off / on, 100 * frac, per_step,
                on_now ? "on" : "off", c.graph_us, c.eager_us, reason[0] ? ", " : "", reason);
        fflush(stdout);
    }
    emu2_decoder_session_free(s);
    if (emb)
        be->ops->free(be, emb);
    free(logits);
    free(ids);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    int random = 0, steps = 32, rounds = 5, batches[8] = {1, 8, 32}, n_batches = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--random")) {
            random = 1;
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--batches") && i + 1 < argc) {
            n_batches = 0;
            for (char *p = argv[++i]; *p && n_batches < 8;) {
                batches[n_batches++] = (int)strtol(p, &p, 10);
                if (*p == ',')
                    p++;
                else if (*p)
                    break;
            }
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "usage: graph_bench MODEL_DIR [--random] [--batches 1,8,32] [--steps 32] [--rounds 5]\n");
            return 2;
        }
    }
    if (!dir || steps < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: graph_bench MODEL_DIR [--random] [--batches 1,8,32] [--steps 32] [--rounds 5]\n");
        return 2;
    }
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.device = "cuda";
    if (random) {
        o.flags = EMU2_LOAD_RANDOM_WEIGHTS;
        o.random_seed = 1;
    }
    emu2_model *m = NULL;
    emu2_error err;
    if (emu2_model_load(dir, &o, &m, &err) != EMU2_OK) {
        fprintf(stderr, "graph_bench: %s\n", err.message);
        return 1;
    }
    void *sym_s = m->be->library ? dlsym(m->be->library, "emu2_cuda_graph_stats") : NULL;
    void *sym_e = m->be->library ? dlsym(m->be->library, "emu2_cuda_graphs_enable") : NULL;
    stats_fn stats;
    enable_fn enable;
    memcpy(&stats, &sym_s, sizeof sym_s);
    memcpy(&enable, &sym_e, sizeof sym_e);
    if (!stats || !enable) {
        fprintf(stderr, "graph_bench: %s is not a CUDA backend with graph controls\n", m->be->device);
        emu2_model_free(m);
        return 1;
    }
    fprintf(stderr, "graph_bench: %s (%d layers, hidden %d) on %s\n", dir, m->cfg.num_hidden_layers,
            m->cfg.hidden_size, m->be->device);
    int rc = 0;
    for (int b = 0; b < n_batches; b++)
        if (batches[b] > 0)
            rc |= bench_batch(m, (size_t)batches[b], steps, rounds, stats, enable);
    emu2_model_free(m);
    return rc;
}
