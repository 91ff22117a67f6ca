/* quant_bench.c: decode-step linears of the full-size Emu2 LLM (LLaMA-33B shape: D 6656, I 17920,
 * 60 layers, lm_head 32272) through the backend's linear op, with bf16, int8 and int4 weights, at
 * batch 1/8/32. A step is every layer's q, k, v, o, gate, up, down and the lm_head once; its bytes
 * are the weights (values + scales) it reads. Printed per format and batch: tokens/s, bytes per
 * token and the weight bytes per second as a fraction of the measured device-to-device copy
 * bandwidth (the decode ceiling). Attention, norms and the KV cache are left out: this isolates
 * the weight-streaming kernels (tests/bench/gpu_bench.c times whole decode steps).
 *
 * Only `--distinct` layers (default 4) hold their own weights and the step cycles through them:
 * each layer (>= 250 MB even in int4) is far larger than any GPU's L2, so nothing is served from
 * cache, and the full 60 layers' weights need not fit in memory.
 *
 *   quant_bench [--device cuda] [--formats bf16,int8,int4,int4-g32] [--batches 1,8,32] [--repeats 5]
 *               [--hidden 6656] [--inter 17920] [--layers 60] [--vocab 32272] [--distinct 4]
 * One JSON line per measurement on stdout (as gpu_bench), a readable line on stderr. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bench/bench_util.h"
#include "../bench/bench_device.h"
#include "common/tensor.h"
#include "ops/ops.h"
#include "quant/quant.h"

#define MAX_LIST 8
#define MATS 7 /* q k v o gate up down */

typedef struct args {
    const char *device, *formats;
    int batches[MAX_LIST], n_batches, repeats;
    size_t D, I, L, V, distinct;
} args;

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t next_u64(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

/* One weight in the backend's memory. */
typedef struct bweight {
    emu2_op_weight w;
    size_t bytes;       /* values + scales */
    void *host, *hosts; /* the host bytes (the CPU backend uses them in place) */
} bweight;

/* A prepared [N, K] weight in `format` (EMU2_WEIGHT_FLOAT = bf16) from random bytes: the values do
 * not matter for speed, only the layout and the size. */
static int make_weight(emu2_backend *be, emu2_weight_format format, int group, size_t N, size_t K, bweight *out,
                       emu2_error *err)
{
    emu2_quant_spec spec = {.format = format, .group = group};
    size_t vbytes = format == EMU2_WEIGHT_FLOAT ? N * K * 2 : N * emu2_quant_q_row_bytes(spec, K);
    size_t sc = format == EMU2_WEIGHT_FLOAT ? 0 : emu2_quant_scale_row_count(spec, K);
    size_t sbytes = format == EMU2_WEIGHT_Q8 ? N * 4 : N * sc * 2;
    memset(out, 0, sizeof *out);
    unsigned char *host = out->host = malloc(vbytes);
    if (!host)
        return 0;
    for (size_t i = 0; i + 8 <= vbytes; i += 8) {
        uint64_t r = next_u64();
        if (format == EMU2_WEIGHT_FLOAT) /* bf16 values of magnitude < 2^-5: clear the top exponent bits */
            r &= 0x83ff83ff83ff83ffULL, r |= 0x3c003c003c003c00ULL;
        memcpy(host + i, &r, 8);
    }
    out->w.format = format;
    out->w.group = format == EMU2_WEIGHT_Q4 ? group : 0;
    emu2_tensor_view v = {.ndim = 2, .shape = {(int64_t)N, (int64_t)(vbytes / N)}, .data = host, .nbytes = vbytes};
    v.dtype = format == EMU2_WEIGHT_FLOAT ? EMU2_DT_BF16 : format == EMU2_WEIGHT_Q8 ? EMU2_DT_I8 : EMU2_DT_U8;
    if (format == EMU2_WEIGHT_FLOAT)
        v.shape[1] = (int64_t)K;
    if (be->ops->prepare_weight(be, &v, &out->w.w, err) != EMU2_OK)
        return 0;
    out->bytes = vbytes;
    if (format == EMU2_WEIGHT_FLOAT)
        return 1;
    /* scales: small positive f32 (int8) or f16 (int4) values */
    unsigned char *s = out->hosts = malloc(sbytes);
    if (!s)
        return 0;
    for (size_t i = 0; i < N * (format == EMU2_WEIGHT_Q8 ? 1 : sc); i++) {
        if (format == EMU2_WEIGHT_Q8) {
            float f = 1e-3f;
            memcpy(s + 4 * i, &f, 4);
        } else {
            uint16_t h = emu2_f32_to_f16(2e-3f);
            memcpy(s + 2 * i, &h, 2);
        }
    }
    emu2_tensor_view sv = {.dtype = format == EMU2_WEIGHT_Q8 ? EMU2_DT_F32 : EMU2_DT_F16, .data = s, .nbytes = sbytes};
    if (format == EMU2_WEIGHT_Q8) {
        sv.ndim = 1, sv.shape[0] = (int64_t)N;
    } else {
        sv.ndim = 2, sv.shape[0] = (int64_t)N, sv.shape[1] = (int64_t)sc;
    }
    int ok = be->ops->prepare_weight(be, &sv, &out->w.scales, err) == EMU2_OK;
    out->bytes += sbytes;
    return ok;
}

static void free_weight(emu2_backend *be, bweight *w)
{
    if (w->w.w.data)
        be->ops->release_weight(be, &w->w.w);
    if (w->w.scales.data)
        be->ops->release_weight(be, &w->w.scales);
    free(w->host), free(w->hosts);
}

/* "bf16", "int8", "int4" (g32, down_proj int8: the preset), "int4-g32" / "-g64" / "-g128". */
static int parse_format(const char *name, emu2_weight_format *f, int *group, int *down_int8)
{
    *group = 32, *down_int8 = 0;
    if (!strcmp(name, "bf16"))
        return *f = EMU2_WEIGHT_FLOAT, 1;
    if (!strcmp(name, "int8"))
        return *f = EMU2_WEIGHT_Q8, 1;
    *f = EMU2_WEIGHT_Q4;
    if (!strcmp(name, "int4"))
        return *down_int8 = 1, 1;
    if (!strncmp(name, "int4-g", 6)) {
        *group = atoi(name + 6);
        return *group == 32 || *group == 64 || *group == 128;
    }
    return 0;
}

static double measure_copy(emu2_backend *be, emu2_error *err)
{
    size_t n = (size_t)1 << 28;
    float *a = be->ops->alloc(be, n, err), *b = be->ops->alloc(be, n, err);
    return bench_copy_bandwidth(be, b, a, n, err);
}

/* One format: build the distinct layers, time the steps at every batch. 0 on success. */
static int run_format(const args *a, emu2_backend *be, const char *name, double copy_bw)
{
    emu2_weight_format f;
    int group, down_int8;
    if (!parse_format(name, &f, &group, &down_int8)) {
        fprintf(stderr, "quant_bench: unknown format %s\n", name);
        return 1;
    }
    emu2_error err;
    size_t D = a->D, I = a->I, big = D > I ? D : I, nl = a->distinct;
    bweight *w = calloc(nl * MATS, sizeof *w), head;
    const size_t Ns[MATS] = {D, D, D, D, I, I, D}, Ks[MATS] = {D, D, D, D, D, D, I};
    int ok = w != NULL;
    for (size_t l = 0; ok && l < nl; l++)
        for (int m = 0; ok && m < MATS; m++) {
            emu2_weight_format mf = (m == 6 && down_int8) ? EMU2_WEIGHT_Q8 : f;
            ok = make_weight(be, mf, group, Ns[m], Ks[m], &w[l * MATS + m], &err);
        }
    /* lm_head: int8 in every quantized mode (docs/QUANT.md), bf16 otherwise */
    memset(&head, 0, sizeof head);
    if (ok)
        ok = make_weight(be, f == EMU2_WEIGHT_FLOAT ? EMU2_WEIGHT_FLOAT : EMU2_WEIGHT_Q8, 32, a->V, D, &head, &err);
    int maxb = 1;
    for (int i = 0; i < a->n_batches; i++)
        maxb = a->batches[i] > maxb ? a->batches[i] : maxb;
    size_t ywide = a->V > big ? a->V : big;
    float *x = ok ? be->ops->alloc(be, (size_t)maxb * big, &err) : NULL;
    float *y = x ? be->ops->alloc(be, (size_t)maxb * ywide, &err) : NULL;
    if (y) { /* activations of the scale of a normed residual stream */
        float *hx = malloc((size_t)maxb * big * sizeof *hx);
        for (size_t i = 0; hx && i < (size_t)maxb * big; i++)
            hx[i] = (float)((int)(next_u64() >> 54) - 512) / 512.0f;
        ok = hx && be->ops->upload(be, x, hx, (size_t)maxb * big, &err) == EMU2_OK;
        free(hx);
    }
    ok = ok && y;
    double step_bytes = 0;
    for (size_t l = 0; ok && l < a->L; l++)
        for (int m = 0; m < MATS; m++)
            step_bytes += (double)w[(l % nl) * MATS + m].bytes;
    step_bytes += (double)head.bytes;
    for (int bi = 0; ok && bi < a->n_batches; bi++) {
        size_t B = (size_t)a->batches[bi];
        double best = 0;
        for (int r = 0; ok && r <= a->repeats; r++) { /* round 0 warms up (algorithm choice, scratch) */
            ok = be->ops->sync(be, &err) == EMU2_OK;
            double t0 = bench_now();
            for (size_t l = 0; ok && l < a->L; l++)
                for (int m = 0; ok && m < MATS; m++)
                    ok = be->ops->linear(be, B, Ks[m], Ns[m], x, Ks[m], &w[(l % nl) * MATS + m].w, NULL, y, Ns[m],
                                         &err) == EMU2_OK;
            ok = ok && be->ops->linear(be, B, D, a->V, x, D, &head.w, NULL, y, a->V, &err) == EMU2_OK;
            ok = ok && be->ops->sync(be, &err) == EMU2_OK;
            double t = bench_now() - t0;
            if (ok && r > 0 && (best == 0 || t < best))
                best = t;
        }
        if (!ok)
            break;
        char bench[64];
        snprintf(bench, sizeof bench, "linears_%s", name);
        double frac = copy_bw > 0 ? step_bytes / best / copy_bw : 0;
        printf("{\"bench\":\"%s\",\"batch\":%zu,\"unit\":\"tokens/s\",\"rate\":%.6g,\"fraction_of\":\"copy "
               "bandwidth\",\"fraction\":%.4f,\"bytes_per_token\":%.6g,\"step_ms\":%.4f,\"device\":\"%s\"}\n",
               bench, B, (double)B / best, frac, step_bytes / (double)B, 1e3 * best, be->device);
        fprintf(stderr, "%-16s batch %3zu  %9.1f tokens/s  step %8.3f ms  %6.3f GB/token  %5.1f%% of copy bandwidth\n",
                bench, B, (double)B / best, 1e3 * best, step_bytes / (double)B / 1e9, 100 * frac);
        fflush(stdout);
    }
    if (!ok)
        fprintf(stderr, "quant_bench %s: %s\n", name, err.message);
    if (x)
        be->ops->free(be, x);
    if (y)
        be->ops->free(be, y);
    for (size_t i = 0; w && i < nl * MATS; i++)
        free_weight(be, &w[i]);
    free_weight(be, &head);
    free(w);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    args a = {.device = "cuda", .formats = "bf16,int8,int4,int4-g32", .batches = {1, 8, 32}, .n_batches = 3,
              .repeats = 5, .D = 6656, .I = 17920, .L = 60, .V = 32272, .distinct = 4};
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "quant_bench: %s needs a value\n", argv[i]);
            return 2;
        }
        if (!strcmp(argv[i], "--device"))
            a.device = v;
        else if (!strcmp(argv[i], "--formats"))
            a.formats = v;
        else if (!strcmp(argv[i], "--batches"))
            a.n_batches = bench_parse_ints(v, a.batches, MAX_LIST);
        else if (!strcmp(argv[i], "--repeats"))
            a.repeats = atoi(v);
        else if (!strcmp(argv[i], "--hidden"))
            a.D = (size_t)atol(v);
        else if (!strcmp(argv[i], "--inter"))
            a.I = (size_t)atol(v);
        else if (!strcmp(argv[i], "--layers"))
            a.L = (size_t)atol(v);
        else if (!strcmp(argv[i], "--vocab"))
            a.V = (size_t)atol(v);
        else if (!strcmp(argv[i], "--distinct"))
            a.distinct = (size_t)atol(v);
        else {
            fprintf(stderr, "quant_bench: unknown option %s\n", argv[i]);
            return 2;
        }
        i++;
    }
    if (!a.D || !a.I || !a.L || !a.V || !a.distinct || a.repeats < 1 || a.n_batches < 1) {
        fprintf(stderr, "quant_bench: sizes, --repeats and --batches must be positive\n");
        return 2;
    }
    for (int i = 0; i < a.n_batches; i++)
        if (a.batches[i] < 1) {
            fprintf(stderr, "quant_bench: batch sizes must be positive\n");
            return 2;
        }
    emu2_backend *be = NULL;
    emu2_error err;
    if (emu2_backend_open(a.device, NULL, &be, &err) != EMU2_OK) {
        fprintf(stderr, "quant_bench: %s\n", err.message);
        return 1;
    }
    double copy_bw = measure_copy(be, &err);
    fprintf(stderr, "quant_bench on %s: copy bandwidth %.1f GB/s; D %zu I %zu layers %zu vocab %zu\n", be->device,
            copy_bw / 1e9, a.D, a.I, a.L, a.V);
    printf("{\"bench\":\"copy_quant\",\"batch\":0,\"unit\":\"GB/s\",\"rate\":%.6g,\"fraction_of\":\"itself\","
           "\"fraction\":1,\"device\":\"%s\"}\n", copy_bw / 1e9, be->device);
    int rc = 0;
    char list[256];
    snprintf(list, sizeof list, "%s", a.formats);
    for (char *save = NULL, *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save))
        rc |= run_format(&a, be, f, copy_bw);
    emu2_backend_close(be);
    return rc;
}
