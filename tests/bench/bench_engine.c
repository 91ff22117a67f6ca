/* bench_engine.c: end-to-end CPU throughput of the engine on one model folder:
 *   memcpy  the machine's copy and read bandwidth and f32 FMA peak at the same thread count (roofline.c)
 *   vision  emu2_vision_encode of N images            -> images/s, GFLOP/s
 *   prefill emu2_decoder_prefill of P tokens (1 row)  -> tokens/s, GFLOP/s
 *   decode  emu2_decoder_step at batch 1 and 8        -> tokens/s, bytes per step, GB/s, share of read BW
 * Inputs are deterministic pseudo-random (pixels, embeddings, ids): throughput does not depend on them.
 * Output: one JSON object per line on stdout (tests/bench/run.sh reads them), a readable summary on stderr.
 *
 *   build/bench/bench_engine MODEL_DIR [--threads T] [--repeats R] [--images N] [--prompt P]
 *                            [--steps S] [--batches 1,8] [--only memcpy,vision,prefill,decode]
 *                            [--precision f32|bf16]   (bf16: the "bf16" precision, rows tagged "emu2-bf16")
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "decode_bytes.h"

#include "io/checkpoint.h"
#include "io/config.h"
#include "model/decoder.h"
#include "model/vision_tower.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "roofline.h"

#define MAX_REPEATS 64
#define MAX_BATCHES 8

typedef struct bench_args {
    const char *dir;
    int threads, repeats, images, prompt, steps;
    int batches[MAX_BATCHES];
    int n_batches;
    const char *only;
    int bf16; /* --precision bf16 */
} bench_args;

static double median(const double *v, int n)
{
    double s[MAX_REPEATS];
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, bench_cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static double maximum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* Deterministic values in [-scale, scale): inputs must not depend on the run. */
static void fill(float *x, size_t n, uint64_t seed, float scale)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = scale * ((float)(s >> 40) / (float)(1u << 23) - 1.0f);
    }
}

/* One JSON line: the times of every repeat (seconds) plus the work one repeat does; rates follow. */
/* "emu2", or "emu2-bf16" under --precision bf16 (set once in main, before any output) */
static const char *impl_name = "emu2";

static void emit(const char *bench, int batch, const char *unit, double items, double flop, double bytes,
                 const double *t, int n, int threads)
{
    printf("{\"impl\":\"%s\",\"bench\":\"%s\",\"batch\":%d,\"threads\":%d,\"unit\":\"%s\",\"items\":%.9g,"
           "\"flop\":%.6g,\"bytes\":%.6g,\"times_s\":[",
           impl_name, bench, batch, threads, unit, items, flop, bytes);
    for (int i = 0; i < n; i++)
        printf("%s%.6f", i ? "," : "", t[i]);
    double med = median(t, n);
    printf("],\"median_s\":%.6f,\"rate\":%.4f}\n", med, items / med);
    fflush(stdout);
    fprintf(stderr, "%-8s batch %d: %9.3f %-9s (min %.3f max %.3f)", bench, batch, items / med, unit,
            items / maximum(t, n), items / minimum(t, n));
    if (flop > 0)
        fprintf(stderr, "  %7.2f GFLOP/s", flop / med * 1e-9);
    if (bytes > 0)
        fprintf(stderr, "  %7.1f MB/step  %6.2f GB/s", bytes * 1e-6, bytes / (med / items * batch) * 1e-9);
    fprintf(stderr, "\n");
}

/* ------------------------------------------------------------------ the machine's limits */

/* Copy bandwidth (read + written bytes, the STREAM "copy" convention), read bandwidth and the f32 FMA peak, at the
 * thread count the engine uses: the denominators of "fraction of bandwidth / of peak". */
static int bench_roofline(const bench_args *a)
{
    size_t n = (size_t)256 << 20;
    int reps = a->repeats < 5 ? 5 : a->repeats;
    double t[MAX_REPEATS];
    for (int r = 0; r < reps; r++)
        if ((t[r] = roofline_copy_seconds(a->threads, n)) < 0) {
            fprintf(stderr, "bench_engine: no memory for the copy test\n");
            return 1;
        }
    emit("memcpy", 1, "GB/s", 2.0 * n * 1e-9, 0, 0, t, reps, a->threads); /* items = GB moved */
    for (int r = 0; r < reps; r++)
        if ((t[r] = roofline_read_seconds(a->threads, n)) < 0) {
            fprintf(stderr, "bench_engine: no memory for the read test\n");
            return 1;
        }
    if (t[0] > 0)
        emit("read_bw", 1, "GB/s", n * 1e-9, 0, 0, t, reps, a->threads);
    const char *isa = "none";
    double flop = 2e9 * a->threads;
    for (int r = 0; r < reps; r++)
        t[r] = roofline_fma_seconds(a->threads, flop, &isa);
    if (t[0] > 0)
        emit(strcmp(isa, "avx512") ? "fma_peak_avx2" : "fma_peak", 1, "GFLOP/s", flop * 1e-9, 0, 0, t, reps,
             a->threads);
    return 0;
}

/* ------------------------------------------------------------------ FLOP and byte counts */

/* Multiply-adds x 2 of the EVA tower, pooling and project_up for one image. */
static double vision_flop(const emu2_config *c)
{
    const emu2_vision_config *v = &c->vision;
    double N = v->n_tokens, W = v->width, I = v->intermediate_size, g2 = (double)v->grid * v->grid;
    double patch = 2.0 * g2 * 3.0 * v->patch_size * v->patch_size * W;
    double block = 2.0 * N * W * (4.0 * W + 2.0 * I) + 4.0 * N * N * W; /* qkv+proj+mlp, QK^T + AV */
    return patch + v->layers * block + 2.0 * v->n_query * W * c->hidden_size;
}

static double layer_params(const emu2_config *c)
{
    double D = c->hidden_size, I = c->intermediate_size, kv = (double)c->num_key_value_heads * c->head_dim;
    return D * D * 2 + D * kv * 2 + 3.0 * D * I;
}

/* Prefill of P positions of one row, last-position logits only (what emu2_decoder_prefill computes). */
static double prefill_flop(const emu2_config *c, int P)
{
    double D = c->hidden_size;
    double per_layer = 2.0 * P * layer_params(c) + 4.0 * D * P * (P + 1) / 2.0; /* causal attention */
    return c->num_hidden_layers * per_layer + 2.0 * D * c->vocab_size;
}

/* ------------------------------------------------------------------ the measurements */

static int run_vision(const bench_args *a, emu2_backend *be, const emu2_model_weights *w, const emu2_config *c)
{
    size_t S = c->vision.image_size, n_img = a->images;
    size_t n_px = n_img * 3 * S * S, n_out = n_img * c->vision.n_query * (size_t)c->hidden_size;
    float *px = malloc(n_px * sizeof *px);
    emu2_error err = {0};
    float *out = be->ops->alloc(be, n_out, &err);
    if (!px || !out) {
        fprintf(stderr, "bench_engine: vision buffers: %s\n", err.message);
        free(px);
        be->ops->free(be, out);
        return 1;
    }
    fill(px, n_px, 1, 2.0f);
    double t[MAX_REPEATS];
    int rc = 0;
    /* one untimed warm-up run: page in the mapped weights */
    for (int r = -1; r < a->repeats && !rc; r++) {
        double t0 = bench_now();
        if (emu2_vision_encode(be, &w->vision, c, px, n_img, c->vision.n_query, out, NULL, &err) != EMU2_OK) {
            fprintf(stderr, "bench_engine: vision: %s\n", err.message);
            rc = 1;
        }
        if (r >= 0)
            t[r] = bench_now() - t0;
    }
    if (!rc)
        emit("vision", (int)n_img, "images/s", (double)n_img, vision_flop(c) * n_img, 0, t, a->repeats,
             be->threads);
    free(px);
    be->ops->free(be, out);
    return rc;
}

/* Uploads rows x T deterministic embeddings (the scale of real token embeddings). */
static float *make_embeds(emu2_backend *be, size_t n, uint64_t seed, emu2_error *err)
{
    float *host = malloc(n * sizeof *host), *dev = be->ops->alloc(be, n, err);
    if (host && dev) {
        fill(host, n, seed, 0.05f);
        if (be->ops->upload(be, dev, host, n, err) == EMU2_OK) {
            free(host);
            return dev;
        }
    }
    free(host);
    be->ops->free(be, dev);
    return NULL;
}

static int run_prefill(const bench_args *a, emu2_backend *be, const emu2_model_weights *w, const emu2_config *c)
{
    size_t P = a->prompt, D = c->hidden_size;
    emu2_error err = {0};
    emu2_decoder_session *s = NULL;
    emu2_decoder_limits lim = {.max_rows = 1, .max_len = P, .prefill_chunk = P};
    float *logits = malloc((size_t)c->vocab_size * sizeof *logits);
    float *emb = make_embeds(be, P * D, 2, &err);
    int rc = !logits || !emb || emu2_decoder_session_create(be, &w->decoder, c, &lim, &s, &err) != EMU2_OK;
    double t[MAX_REPEATS];
    for (int r = -1; r < a->repeats && !rc; r++) {
        double t0 = bench_now();
        rc = emu2_decoder_prefill(s, 1, P, emb, NULL, logits, NULL, &err) != EMU2_OK;
        if (r >= 0)
            t[r] = bench_now() - t0;
    }
    if (rc)
        fprintf(stderr, "bench_engine: prefill: %s\n", err.message[0] ? err.message : "out of memory");
    else
        emit("prefill", 1, "tokens/s", (double)P, prefill_flop(c, (int)P), 0, t, a->repeats, be->threads);
    emu2_decoder_session_free(s);
    be->ops->free(be, emb);
    free(logits);
    return rc;
}

/* Decode: a short prompt (16 positions) per row, then `steps` timed steps; one time = all steps. */
static int run_decode(const bench_args *a, int rows, emu2_backend *be, const emu2_model_weights *w,
                      const emu2_config *c)
{
    size_t P0 = 16, D = c->hidden_size, V = c->vocab_size;
    emu2_error err = {0};
    emu2_decoder_session *s = NULL;
    emu2_decoder_limits lim = {.max_rows = rows, .max_len = P0 + a->steps + 1};
    float *logits = malloc(rows * V * sizeof *logits);
    int32_t *ids = malloc(rows * sizeof *ids);
    float *emb = make_embeds(be, rows * P0 * D, 3, &err);
    int rc = !logits || !ids || !emb || emu2_decoder_session_create(be, &w->decoder, c, &lim, &s, &err) != EMU2_OK;
    double t[MAX_REPEATS];
    for (int r = -1; r < a->repeats && !rc; r++) {
        rc = emu2_decoder_prefill(s, rows, P0, emb, NULL, logits, NULL, &err) != EMU2_OK;
        double t0 = bench_now();
        for (int k = 0; k < a->steps && !rc; k++) {
            for (int i = 0; i < rows; i++) /* fixed ids: greedy argmax would only add noise */
                ids[i] = (int32_t)((7919u * (k + 1) + 104729u * i) % V);
            rc = emu2_decoder_step(s, ids, logits, NULL, &err) != EMU2_OK;
        }
        if (r >= 0)
            t[r] = bench_now() - t0;
    }
    if (rc) {
        fprintf(stderr, "bench_engine: decode: %s\n", err.message[0] ? err.message : "out of memory");
    } else {
        /* KV bytes of one step, at the middle of the timed window: rows x len x 2 x layers x kv width, f32 */
        double kv_w = (double)c->num_key_value_heads * c->head_dim;
        double kv = rows * (P0 + a->steps / 2.0) * 2.0 * c->num_hidden_layers * kv_w * 4.0;
        double wb = decode_weight_bytes(&w->decoder, rows);
        double flop = a->steps * rows * (2.0 * c->num_hidden_layers * layer_params(c) + 2.0 * D * V);
        emit("decode", rows, "tokens/s", (double)a->steps * rows, flop, wb + kv, t, a->repeats, be->threads);
        printf("{\"impl\":\"%s\",\"bench\":\"decode_bytes\",\"batch\":%d,\"weight_bytes\":%.6g,"
               "\"kv_bytes\":%.6g}\n",
               impl_name, rows, wb, kv);
    }
    emu2_decoder_session_free(s);
    be->ops->free(be, emb);
    free(logits);
    free(ids);
    return rc;
}

/* ------------------------------------------------------------------ arguments */

static int parse_args(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){.threads = 0, .repeats = 3, .images = 2, .prompt = 64, .steps = 16,
                      .batches = {1, 8}, .n_batches = 2, .only = "memcpy,vision,prefill,decode"};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = NULL;
        int kind = bench_next_arg(argc, argv, &i, "bench_engine", &a->dir, &v);
        if (kind < 0)
            return 1;
        if (kind == 0)
            continue;
        if (!strcmp(o, "--threads"))
            a->threads = atoi(v);
        else if (!strcmp(o, "--repeats"))
            a->repeats = atoi(v);
        else if (!strcmp(o, "--images"))
            a->images = atoi(v);
        else if (!strcmp(o, "--prompt"))
            a->prompt = atoi(v);
        else if (!strcmp(o, "--steps"))
            a->steps = atoi(v);
        else if (!strcmp(o, "--only"))
            a->only = v;
        else if (!strcmp(o, "--precision") && (!strcmp(v, "f32") || !strcmp(v, "bf16")))
            a->bf16 = !strcmp(v, "bf16");
        else if (!strcmp(o, "--batches")) {
            a->n_batches = 0;
            for (char *p = (char *)v; *p && a->n_batches < MAX_BATCHES;) {
                a->batches[a->n_batches++] = (int)strtol(p, &p, 10);
                p += *p == ',';
            }
        } else {
            fprintf(stderr, "bench_engine: unknown option %s\n", o);
            return 1;
        }
    }
    if (!a->dir || a->threads < 0 || a->repeats < 1 || a->repeats > MAX_REPEATS || a->images < 1 ||
        a->prompt < 1 || a->steps < 1) {
        fprintf(stderr, "usage: bench_engine MODEL_DIR [--threads T] [--repeats 1..%d] [--images N] "
                        "[--prompt P] [--steps S] [--batches 1,8] [--only memcpy,vision,prefill,decode]\n",
                MAX_REPEATS);
        return 1;
    }
    for (int i = 0; i < a->n_batches; i++)
        if (a->batches[i] < 1) {
            fprintf(stderr, "bench_engine: batch sizes must be >= 1\n");
            return 1;
        }
    return 0;
}

int main(int argc, char **argv)
{
    bench_args a;
    if (parse_args(argc, argv, &a))
        return 2;
    emu2_error err = {0};
    emu2_config cfg;
    emu2_checkpoint *ck = NULL;
    emu2_backend *be = NULL;
    emu2_model_weights *w = NULL;
    emu2_backend_options bo;
    emu2_backend_options_init(&bo);
    bo.threads = a.threads;
    bo.bf16_dot = a.bf16;
    if (a.bf16)
        impl_name = "emu2-bf16";
    double t0 = bench_now();
    if (emu2_config_load(a.dir, &cfg, &err) != EMU2_OK || emu2_checkpoint_open(a.dir, &ck, &err) != EMU2_OK ||
        emu2_cpu_backend_open(&bo, &be, &err) != EMU2_OK || emu2_model_weights_bind(be, ck, &cfg, &w, &err) != EMU2_OK) {
        fprintf(stderr, "bench_engine: %s: %s\n", a.dir, err.message);
        emu2_backend_close(be);
        emu2_checkpoint_close(ck);
        return 1;
    }
    a.threads = be->threads;
    fprintf(stderr, "bench_engine: %s  isa=%s threads=%d  load %.2f s%s%s\n", a.dir, emu2_cpu_isa_name(be->isa),
            be->threads, bench_now() - t0, be->device[0] ? "  " : "", be->device);
    printf("{\"impl\":\"%s\",\"bench\":\"setup\",\"threads\":%d,\"isa\":\"%s\",\"load_s\":%.3f}\n", impl_name, be->threads,
           emu2_cpu_isa_name(be->isa), bench_now() - t0);
    int rc = 0;
    if (strstr(a.only, "memcpy"))
        rc |= bench_roofline(&a);
    if (!rc && strstr(a.only, "vision"))
        rc |= run_vision(&a, be, w, &cfg);
    if (!rc && strstr(a.only, "prefill"))
        rc |= run_prefill(&a, be, w, &cfg);
    for (int i = 0; !rc && strstr(a.only, "decode") && i < a.n_batches; i++)
        rc |= run_decode(&a, a.batches[i], be, w, &cfg);
    emu2_model_weights_free(w);
    emu2_backend_close(be);
    emu2_checkpoint_close(ck);
    return rc;
}
