/* bench_topk.c: what the search's top-k path (core/generate/search_topk.c over the backend's top_k
 * op) saves per decode step, on a model folder (the bench model: tests/bench/run.sh writes it to
 * /tmp/emu2-bench/emu2-random-1b-bf16, vocab 32272). For greedy at batch 1 and 8 and beam 5 it runs
 * the real search over a decoder session, the full-logits path and the top-k path alternating round
 * after round, and times per decode step:
 *   stepper  time inside the stepper (decoder layers, lm_head, then the download of [rows, vocab]
 *            logits, or the top_k op and the download of rows x k candidates)
 *   host     the search's own time between steps (logit checks, log_softmax, candidate selection;
 *            the first choice, from the prefill's full logits, is in it: use enough steps)
 *   reorder  beam search's KV-cache reordering (decoder work, the same on both paths)
 * and the bytes that leave the backend per step. On the CPU backend the op runs on the host too; on
 * a GPU it runs on the device and only the candidates cross PCIe. Medians over rounds.
 *
 *   cc -O2 -std=c11 -Icore/include -Icore -Itests/bench tests/bench/bench_topk.c build/libemu2.a \
 *      -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl -o build/bench/bench_topk
 *   build/bench/bench_topk MODEL_DIR [--threads T] [--steps S] [--rounds R] [--device cpu|cuda[:N]]
 *                          [--random-weights 1]   (the config's shapes with random weights, built on the
 *                                                  device: a config-only folder such as the full-size Emu2)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#include "generate/generate.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "model/decoder.h"
#include "model/decoder_stepper.h"
#include "model/random_weights.h"
#include "model/weights.h"
#include "ops/ops.h"

#define MAX_ROUNDS 32

/* The decoder stepper with a clock around every call. */
typedef struct timed_lm {
    emu2_lm_stepper inner;
    double t_step, t_reorder;
    size_t bytes;
} timed_lm;

static emu2_status t_step(void *u, const int32_t *tok, size_t n, float *logits, emu2_error *err)
{
    timed_lm *t = u;
    double t0 = bench_now();
    emu2_status st = t->inner.step(t->inner.user, tok, n, logits, err);
    t->t_step += bench_now() - t0;
    t->bytes += n * (size_t)t->inner.vocab * sizeof(float);
    return st;
}

static emu2_status t_step_topk(void *u, const int32_t *tok, size_t n, size_t k, int lsm, float *v, int32_t *ids,
                               emu2_error *err)
{
    timed_lm *t = u;
    double t0 = bench_now();
    emu2_status st = t->inner.step_topk(t->inner.user, tok, n, k, lsm, v, ids, err);
    t->t_step += bench_now() - t0;
    t->bytes += n * k * (sizeof(float) + sizeof(int32_t));
    return st;
}

static emu2_status t_last(void *u, float *logits, emu2_error *err)
{
    timed_lm *t = u;
    double t0 = bench_now();
    emu2_status st = t->inner.last_logits(t->inner.user, logits, err);
    t->t_step += bench_now() - t0;
    return st;
}

static emu2_status t_reorder(void *u, const int32_t *src, size_t n, emu2_error *err)
{
    timed_lm *t = u;
    double t0 = bench_now();
    emu2_status st = t->inner.reorder(t->inner.user, src, n, err);
    t->t_reorder += bench_now() - t0;
    return st;
}

typedef struct one_run {
    double step_ms, host_ms, reorder_ms, bytes;
    size_t steps, topk_steps;
} one_run;

/* One search of `steps` tokens from a random prompt of one item, per-step figures. */
static int run_search(emu2_backend *be, const emu2_model_weights *w, const emu2_config *c, int beams, int batch,
                      int steps, int topk, one_run *out)
{
    const size_t P0 = 16, D = (size_t)c->hidden_size, V = (size_t)c->vocab_size, rows = (size_t)batch;
    emu2_error err = {0};
    emu2_decoder_limits lim = {.max_rows = rows * (size_t)beams, .max_len = P0 + (size_t)steps + 1};
    emu2_decoder_session *s = NULL;
    float *logits = malloc(rows * V * sizeof *logits), *host = malloc(rows * P0 * D * sizeof *host);
    float *emb = be->ops->alloc(be, rows * P0 * D, &err);
    int rc = !logits || !host || !emb || emu2_decoder_session_create(be, &w->decoder, c, &lim, &s, &err) != EMU2_OK;
    uint64_t x = 12345;
    for (size_t i = 0; !rc && i < rows * P0 * D; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        host[i] = ((float)(x >> 40) / 16777216.0f - 0.5f) * 0.1f;
    }
    rc = rc || be->ops->upload(be, emb, host, rows * P0 * D, &err) != EMU2_OK ||
         emu2_decoder_prefill(s, rows, P0, emb, NULL, logits, NULL, &err) != EMU2_OK;
    if (topk)
        unsetenv("EMU2_SEARCH_FULL_LOGITS");
    else
        setenv("EMU2_SEARCH_FULL_LOGITS", "1", 1);
    timed_lm t = {0};
    emu2_decoder_stepper(s, &t.inner);
    emu2_lm_stepper lm = {.user = &t, .vocab = t.inner.vocab, .step = t_step, .reorder = t_reorder};
    if (t.inner.step_topk) {
        lm.step_topk = t_step_topk;
        lm.last_logits = t_last;
        lm.topk_max = t.inner.topk_max;
    }
    emu2_gen_options o;
    emu2_gen_options_init(&o);
    o.num_beams = beams;
    o.max_new_tokens = steps + 1;
    o.min_length = 0;
    emu2_search_result r = {0};
    /* EOS = an id the random model practically never picks first: the search runs every step */
    emu2_search_ids ids = {c->bos_token_id, (int32_t)(V - 1), c->pad_token_id >= 0 ? c->pad_token_id : 0};
    double t0 = bench_now();
    if (!rc)
        rc = emu2_search(&lm, logits, rows, &o, ids, NULL, NULL, &r, &err) != EMU2_OK;
    double total = bench_now() - t0;
    if (!rc && r.decoder_steps) {
        out->steps = r.decoder_steps;
        out->topk_steps = r.topk_steps;
        out->step_ms = 1e3 * t.t_step / (double)r.decoder_steps;
        out->host_ms = 1e3 * (total - t.t_step - t.t_reorder) / (double)r.decoder_steps;
        out->reorder_ms = 1e3 * t.t_reorder / (double)r.decoder_steps;
        out->bytes = (double)t.bytes / (double)r.decoder_steps;
    } else if (rc) {
        fprintf(stderr, "bench_topk: %s\n", err.message);
    }
    emu2_search_result_free(&r);
    emu2_decoder_session_free(s);
    if (emb)
        be->ops->free(be, emb);
    free(logits);
    free(host);
    return rc;
}

/* The op alone vs the copy it replaces, on random rows of the model's vocab: what a step spends on
 * it (on the CPU backend it runs on the host; on a GPU on the device). */
static void op_alone(emu2_backend *be, size_t V)
{
    static const size_t cases[][3] = {{1, 1, 0}, {8, 1, 0}, {5, 11, 1}, {40, 11, 1}}; /* rows, k, log_softmax */
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t rows = cases[c][0], k = cases[c][1], n = rows * V;
        float *x = malloc(n * sizeof *x), *copy = malloc(n * sizeof *copy), *v = malloc(rows * k * sizeof *v);
        int32_t *ids = malloc(rows * k * sizeof *ids);
        if (!x || !copy || !v || !ids)
            return;
        uint64_t z = 99;
        for (size_t i = 0; i < n; i++) {
            z = z * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = ((float)(z >> 40) / 16777216.0f - 0.5f) * 20.0f;
        }
        emu2_error err = {0};
        float *dx = be->ops->alloc(be, n, &err);
        if (!dx || be->ops->upload(be, dx, x, n, &err) != EMU2_OK || !be->ops->top_k) {
            if (dx)
                be->ops->free(be, dx);
            free(x), free(copy), free(v), free(ids);
            return;
        }
        double t_op[9], t_copy[9];
        for (int r = 0; r < 9; r++) {
            be->ops->sync(be, &err);
            double t0 = bench_now();
            be->ops->top_k(be, rows, V, dx, k, cases[c][2] ? EMU2_TOPK_LOG_SOFTMAX : 0u, v, ids, &err);
            double t1 = bench_now();
            be->ops->download(be, copy, dx, n, &err);
            t_op[r] = t1 - t0;
            t_copy[r] = bench_now() - t1;
        }
        qsort(t_op, 9, sizeof(double), bench_cmp_double);
        qsort(t_copy, 9, sizeof(double), bench_cmp_double);
        fprintf(stderr, "  op alone: %2zu rows k %2zu%s: top_k %.4f ms, download of the full rows %.4f ms\n", rows, k,
                cases[c][2] ? " log_softmax" : "", 1e3 * t_op[4], 1e3 * t_copy[4]);
        printf("{\"bench\":\"topk_op\",\"rows\":%zu,\"k\":%zu,\"log_softmax\":%d,\"op_ms\":%.4f,\"copy_ms\":%.4f}\n",
               rows, k, (int)cases[c][2], 1e3 * t_op[4], 1e3 * t_copy[4]);
        be->ops->free(be, dx);
        free(x), free(copy), free(v), free(ids);
    }
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *device = "cpu";
    int threads = 0, steps = 8, rounds = 3, random_weights = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int k = bench_next_arg(argc, argv, &i, "bench_topk", &dir, &v);
        if (k < 0)
            return 2;
        if (k == 0)
            continue;
        if (!strcmp(argv[i - 1], "--threads"))
            threads = atoi(v);
        else if (!strcmp(argv[i - 1], "--steps"))
            steps = atoi(v);
        else if (!strcmp(argv[i - 1], "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(argv[i - 1], "--device"))
            device = v;
        else if (!strcmp(argv[i - 1], "--random-weights"))
            random_weights = atoi(v);
        else {
            fprintf(stderr, "bench_topk: unknown option %s\n", argv[i - 1]);
            return 2;
        }
    }
    if (!dir || steps < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_topk MODEL_DIR [--threads T] [--steps S] [--rounds R<=%d] [--device D] "
                        "[--random-weights 1]\n",
                MAX_ROUNDS);
        return 2;
    }
    emu2_error err = {0};
    emu2_config cfg;
    emu2_checkpoint *ck = NULL;
    emu2_backend *be = NULL;
    emu2_model_weights *w = NULL;
    emu2_backend_options bo;
    emu2_backend_options_init(&bo);
    bo.threads = threads;
    if (emu2_config_load(dir, &cfg, &err) != EMU2_OK || emu2_backend_open(device, &bo, &be, &err) != EMU2_OK ||
        (random_weights ? emu2_random_checkpoint(be, &cfg, 1, &ck, &err) : emu2_checkpoint_open(dir, &ck, &err)) ||
        emu2_model_weights_bind(be, ck, &cfg, &w, &err) != EMU2_OK) {
        fprintf(stderr, "bench_topk: %s: %s\n", dir, err.message);
        emu2_backend_close(be);
        emu2_checkpoint_close(ck);
        return 1;
    }
    fprintf(stderr, "bench_topk: %s  vocab %d  %s  threads %d  steps %d  rounds %d  top_k op: %s\n", dir,
            cfg.vocab_size, be->device[0] ? be->device : be->ops->name, be->threads, steps, rounds,
            be->ops->top_k ? "yes" : "no");
    op_alone(be, (size_t)cfg.vocab_size);
    static const int modes[][2] = {{1, 1}, {1, 8}, {5, 1}}; /* beams, batch */
    int rc = 0;
    for (size_t m = 0; m < sizeof modes / sizeof modes[0] && !rc; m++) {
        double step[2][MAX_ROUNDS], host[2][MAX_ROUNDS], reorder[2][MAX_ROUNDS];
        one_run last[2] = {{0}};
        run_search(be, w, &cfg, modes[m][0], modes[m][1], 1, 1, &last[1]); /* warm-up: page the weights in */
        for (int r = 0; r < rounds && !rc; r++)
            for (int path = 0; path < 2 && !rc; path++) { /* alternating: full, top-k, full, ... */
                rc = run_search(be, w, &cfg, modes[m][0], modes[m][1], steps, path, &last[path]);
                step[path][r] = last[path].step_ms;
                host[path][r] = last[path].host_ms;
                reorder[path][r] = last[path].reorder_ms;
            }
        if (rc)
            break;
        for (int path = 0; path < 2; path++) {
            double sm = median(step[path], rounds), hm = median(host[path], rounds), rm = median(reorder[path], rounds);
            printf("{\"bench\":\"topk\",\"beams\":%d,\"batch\":%d,\"path\":\"%s\",\"steps\":%zu,\"topk_steps\":%zu,"
                   "\"stepper_ms\":%.3f,\"host_ms\":%.4f,\"reorder_ms\":%.4f,\"bytes_per_step\":%.0f}\n",
                   modes[m][0], modes[m][1], path ? "topk" : "full", last[path].steps, last[path].topk_steps, sm, hm,
                   rm, last[path].bytes);
            fprintf(stderr, "  beams %d batch %d %-4s: stepper %8.3f ms/step  host %7.4f ms/step  reorder %7.4f ms/step"
                            "  %9.0f bytes/step out (%zu of %zu steps top-k)\n",
                    modes[m][0], modes[m][1], path ? "topk" : "full", sm, hm, rm, last[path].bytes,
                    last[path].topk_steps, last[path].steps);
        }
    }
    emu2_model_weights_free(w);
    emu2_backend_close(be);
    emu2_checkpoint_close(ck);
    return rc;
}
