/* bench_quant.c: CPU decode at batch 1 with the LLM linears in bf16, int8 and int4, in ONE run on
 * one random model (EMU2_LOAD_RANDOM_WEIGHTS' generator, core/model/random_weights.h), formats
 * interleaved round after round so machine load hits them alike. Prints tokens/s per format
 * (median of the rounds) and the speed-ups over bf16 (issue 8: int8 >= 1.7x, int4 >= 2.5x).
 *
 *   cc -std=c11 -O2 -pthread -Icore/include -Icore -D_DEFAULT_SOURCE tests/bench/bench_quant.c \
 *      build/libemu2.a -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl \
 *      -o build/bench/bench_quant
 *   build/bench/bench_quant [--hidden 2048 --inter 5504 --layers 16 --heads 16 --vocab 32000]
 *                           [--threads T] [--rounds R] [--steps S] [--quant none,int8,int4] [--prefill P]
 * (a format "int4:exact" runs int4 with EMU2_CPU_QUANT_EXACT=1: f32 activations instead of the
 * default int8 ones on AVX-512 VNNI, for an A/B; "int4:legacy" with EMU2_CPU_QUANT_DECODE=legacy:
 * the decode kernels before the plain-load rewrite; --prefill P also times a P-position prefill) 
 * Defaults: a ~1B-parameter LLaMA (0.94 B: 16 layers of 2048/5504, vocab 32000) on the tiny model's
 * config for everything else (the vision tower is built but not timed). Output: one JSON line per
 * format on stdout, a readable summary on stderr. */
#define _POSIX_C_SOURCE 200112L /* clock_gettime, setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#include "io/config.h"
#include "model/decoder.h"
#include "model/random_weights.h"
#include "model/weights.h"
#include "ops/ops.h"

#define MAX_Q 8
#define MAX_ROUNDS 32

/* Bytes of the layer matrices one decode step reads (values + scales). */
static double linear_bytes(const emu2_decoder_weights *w)
{
    double b = 0;
    for (size_t l = 0; l < w->n_layers; l++)
        for (int m = 0; m < 7; m++) {
            const emu2_op_weight *o = &(&w->layers[l].q)[m];
            b += (double)o->w.nbytes + (double)o->scales.nbytes;
        }
    return b;
}

/* A batch-1 decoder session with P uploaded embedding rows (made-up values) and room for max_len
 * positions: the setup both rates share. */
typedef struct bench_session {
    emu2_decoder_session *s;
    float *emb, *logits;
    emu2_error err;
} bench_session;

/* 1 when ready; else 0, with r->err saying why (empty: out of memory). Always close with bench_session_close. */
static int bench_session_open(bench_session *r, emu2_backend *be, const emu2_model_weights *w, const emu2_config *c,
                              size_t P, size_t max_len)
{
    const size_t D = (size_t)c->hidden_size, V = (size_t)c->vocab_size;
    emu2_decoder_limits lim = {.max_rows = 1, .max_len = max_len};
    memset(r, 0, sizeof *r);
    r->emb = be->ops->alloc(be, P * D, &r->err);
    r->logits = malloc(V * sizeof(float));
    float *host = malloc(P * D * sizeof(float));
    int ok = 0;
    if (r->emb && r->logits && host &&
        emu2_decoder_session_create(be, &w->decoder, c, &lim, &r->s, &r->err) == EMU2_OK) {
        for (size_t i = 0; i < P * D; i++)
            host[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        ok = be->ops->upload(be, r->emb, host, P * D, &r->err) == EMU2_OK;
    }
    free(host);
    return ok;
}

static void bench_session_close(bench_session *r, emu2_backend *be, const char *what, double rate)
{
    if (rate < 0)
        fprintf(stderr, "bench_quant: %s: %s\n", what, r->err.message[0] ? r->err.message : "out of memory");
    emu2_decoder_session_free(r->s);
    if (r->emb)
        be->ops->free(be, r->emb);
    free(r->logits);
}

/* Decode steps/s at batch 1 after a 16-position prefill. */
static double decode_rate(emu2_backend *be, const emu2_model_weights *w, const emu2_config *c, int steps)
{
    const size_t P = 16, V = (size_t)c->vocab_size;
    bench_session r;
    double rate = -1;
    if (bench_session_open(&r, be, w, c, P, P + (size_t)steps + 1) &&
        emu2_decoder_prefill(r.s, 1, P, r.emb, NULL, r.logits, NULL, &r.err) == EMU2_OK) {
        int ok = 1;
        double t0 = bench_now();
        for (int i = 0; ok && i < steps; i++) {
            int32_t id = (int32_t)((i * 7919) % (int)V);
            ok = emu2_decoder_step(r.s, &id, r.logits, NULL, &r.err) == EMU2_OK;
        }
        if (ok)
            rate = steps / (bench_now() - t0);
    }
    bench_session_close(&r, be, "decode", rate);
    return rate;
}

/* Prefill positions/s: one P-position prefill at batch 1 (the quantized GEMM paths, M = P). */
static double prefill_rate(emu2_backend *be, const emu2_model_weights *w, const emu2_config *c, size_t P)
{
    bench_session r;
    double rate = -1;
    if (bench_session_open(&r, be, w, c, P, P + 1)) {
        double t0 = bench_now();
        if (emu2_decoder_prefill(r.s, 1, P, r.emb, NULL, r.logits, NULL, &r.err) == EMU2_OK)
            rate = (double)P / (bench_now() - t0);
    }
    bench_session_close(&r, be, "prefill", rate);
    return rate;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    int hidden = 2048, inter = 5504, layers = 16, heads = 16, vocab = 32000, threads = 0, rounds = 5, steps = 16;
    int prefill = 0;
    const char *quants = "none,int8,int4";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        int n = atoi(v);
        if (!strcmp(o, "--hidden")) hidden = n;
        else if (!strcmp(o, "--inter")) inter = n;
        else if (!strcmp(o, "--layers")) layers = n;
        else if (!strcmp(o, "--heads")) heads = n;
        else if (!strcmp(o, "--vocab")) vocab = n;
        else if (!strcmp(o, "--threads")) threads = n;
        else if (!strcmp(o, "--rounds")) rounds = n;
        else if (!strcmp(o, "--steps")) steps = n;
        else if (!strcmp(o, "--quant")) quants = v;
        else if (!strcmp(o, "--prefill")) prefill = n;
        else {
            fprintf(stderr, "bench_quant: unknown option %s (see the header of tests/bench/bench_quant.c)\n", o);
            return 2;
        }
    }
    if (argc % 2 == 0 || hidden < 16 || heads < 1 || hidden % heads || inter < 16 || layers < 1 || vocab < 16 ||
        rounds < 1 || rounds > MAX_ROUNDS || steps < 1 || prefill < 0) {
        fprintf(stderr, "bench_quant: bad arguments (see the header of tests/bench/bench_quant.c)\n");
        return 2;
    }
    emu2_config cfg;
    emu2_error err = {0};
    if (emu2_config_load("models/emu2-tiny-digits", &cfg, &err) != EMU2_OK) {
        fprintf(stderr, "bench_quant: run from the repository root: %s\n", err.message);
        return 1;
    }
    cfg.hidden_size = hidden;
    cfg.intermediate_size = inter;
    cfg.num_hidden_layers = layers;
    cfg.num_attention_heads = cfg.num_key_value_heads = heads;
    cfg.head_dim = hidden / heads;
    cfg.vocab_size = vocab;
    cfg.max_position_embeddings = 4096;
    emu2_backend_options bo;
    emu2_backend_options_init(&bo);
    bo.threads = threads;
    emu2_backend *be = NULL;
    emu2_checkpoint *ck = NULL;
    if (emu2_cpu_backend_open(&bo, &be, &err) != EMU2_OK || emu2_random_checkpoint(be, &cfg, 1, &ck, &err) != EMU2_OK) {
        fprintf(stderr, "bench_quant: %s\n", err.message);
        emu2_backend_close(be);
        return 1;
    }
    const char *names[MAX_Q];
    const char *env_name[MAX_Q] = {0}, *env_value[MAX_Q] = {0}; /* set while that format runs */
    emu2_model_weights *w[MAX_Q];
    char *base[MAX_Q]; /* the format without its suffix */
    int owner[MAX_Q];  /* whether w[q] was bound for this entry (else shared with an earlier one) */
    int nq = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", quants);
    for (char *tok = strtok(list, ","); tok && nq < MAX_Q; tok = strtok(NULL, ",")) {
        double t0 = bench_now();
        names[nq] = strcmp(tok, "none") ? strdup(tok) : "bf16";
        char *colon = strchr(tok, ':'); /* "int4:exact": f32 activations; "int4:legacy": the old decode kernels */
        if (colon) {
            if (!strcmp(colon, ":exact"))
                env_name[nq] = "EMU2_CPU_QUANT_EXACT", env_value[nq] = "1";
            else if (!strcmp(colon, ":legacy"))
                env_name[nq] = "EMU2_CPU_QUANT_DECODE", env_value[nq] = "legacy";
            else {
                fprintf(stderr, "bench_quant: %s: the suffixes are \":exact\" and \":legacy\"\n", tok);
                return 2;
            }
            *colon = '\0';
        }
        base[nq] = strdup(tok);
        owner[nq] = 1;
        for (int e = 0; e < nq; e++) /* "int4" and "int4:legacy" run the same bound weights */
            if (!strcmp(base[e], tok) && owner[e]) {
                w[nq] = w[e];
                owner[nq] = 0;
            }
        if (owner[nq] && emu2_model_weights_bind_quant(be, ck, &cfg, tok, &w[nq], &err) != EMU2_OK) {
            fprintf(stderr, "bench_quant: %s: %s\n", tok, err.message);
            return 1;
        }
        fprintf(stderr, "bench_quant: %-6s bound in %.2f s, layer matrices %.1f MB\n", names[nq], bench_now() - t0,
                linear_bytes(&w[nq]->decoder) / 1e6);
        nq++;
    }
    double params = (double)layers * (4.0 * hidden * hidden + 3.0 * hidden * inter) + 2.0 * vocab * hidden;
    fprintf(stderr, "bench_quant: %.2f B LLM parameters, isa=%s threads=%d, %d rounds x %d steps\n", params / 1e9,
            emu2_cpu_isa_name(be->isa), be->threads, rounds, steps);
    double r[MAX_Q][MAX_ROUNDS], pr[MAX_Q][MAX_ROUNDS];
    for (int q = 0; q < nq; q++) /* warm-up: page in and first-touch every format */
        decode_rate(be, w[q], &cfg, 2);
    for (int k = 0; k < rounds; k++)
        for (int q = 0; q < nq; q++) {
            if (env_name[q])
                setenv(env_name[q], env_value[q], 1);
            r[q][k] = decode_rate(be, w[q], &cfg, steps);
            pr[q][k] = prefill ? prefill_rate(be, w[q], &cfg, (size_t)prefill) : 0;
            if (env_name[q])
                unsetenv(env_name[q]);
            if (r[q][k] < 0 || pr[q][k] < 0)
                return 1;
        }
    double med[MAX_Q], pmed[MAX_Q];
    for (int q = 0; q < nq; q++) {
        med[q] = median(r[q], rounds);
        pmed[q] = median(pr[q], rounds);
    }
    for (int q = 0; q < nq; q++) {
        double speedup = med[q] / med[0];
        fprintf(stderr, "  decode batch 1  %-6s %8.2f tokens/s  (min %.2f max %.2f)  %.2fx %s\n", names[q], med[q],
                r[q][0], r[q][rounds - 1], speedup, names[0]);
        printf("{\"impl\":\"emu2\",\"bench\":\"decode_quant\",\"quant\":\"%s\",\"batch\":1,\"tokens_per_s\":%.4f,"
               "\"min\":%.4f,\"max\":%.4f,\"speedup_vs_first\":%.4f,\"threads\":%d,\"isa\":\"%s\",\"params\":%.0f}\n",
               names[q], med[q], r[q][0], r[q][rounds - 1], speedup, be->threads, emu2_cpu_isa_name(be->isa), params);
    }
    for (int q = 0; prefill && q < nq; q++) {
        fprintf(stderr, "  prefill %4d     %-6s %8.2f tokens/s  (min %.2f max %.2f)  %.2fx %s\n", prefill, names[q],
                pmed[q], pr[q][0], pr[q][rounds - 1], pmed[q] / pmed[0], names[0]);
        printf("{\"impl\":\"emu2\",\"bench\":\"prefill_quant\",\"quant\":\"%s\",\"positions\":%d,"
               "\"tokens_per_s\":%.4f,\"min\":%.4f,\"max\":%.4f,\"threads\":%d,\"isa\":\"%s\"}\n",
               names[q], prefill, pmed[q], pr[q][0], pr[q][rounds - 1], be->threads, emu2_cpu_isa_name(be->isa));
    }
    for (int q = 0; q < nq; q++) {
        if (owner[q])
            emu2_model_weights_free(w[q]);
        free(base[q]);
    }
    emu2_checkpoint_close(ck);
    emu2_backend_close(be);
    return 0;
}
