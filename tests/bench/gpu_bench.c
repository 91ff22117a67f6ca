/* gpu_bench.c: the engine's throughput on a device backend, with the two ceilings measured in
 * the same run:
 *   copy    device-to-device copy bandwidth (bytes read + written / s): the decode ceiling
 *   matmul  bf16 [M,K]x[K,N] through the backend's linear (cuBLASLt): the vision ceiling
 *   decode  emu2_decoder_step at each batch: tokens/s, and bytes moved per step (weights + KV
 *           cache) / step time as a fraction of the copy bandwidth
 *   vision  emu2_vision_encode of 1 and 8 images: images/s, and FLOP/s as a fraction of matmul
 * The model is MODEL_DIR's config with random bf16 weights built on the device
 * (EMU2_LOAD_RANDOM_WEIGHTS), so any config (the full-size Emu2) is measured without its weights.
 * One JSON object per line on stdout; a readable line per measurement on stderr.
 *
 *   gpu_bench MODEL_DIR [--device cuda] [--batches 1,8,32] [--images 1,8] [--steps 32] [--repeats 3]
 *                       [--only copy,matmul,decode,vision]
 * Built and run by tests/gpu/run.sh. */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "bench_device.h"
#include "decode_bytes.h"

#include "api/model_internal.h"
#include "emu2.h"
#include "model/decoder.h"
#include "model/vision_tower.h"
#include "ops/ops.h"

#define MAX_LIST 8
#define PROMPT 16

typedef struct args {
    const char *dir, *device, *only;
    int batches[MAX_LIST], n_batches, images[MAX_LIST], n_images, steps, repeats;
} args;

static int wants(const args *a, const char *what)
{
    return strstr(a->only, what) != NULL;
}

static void emit(const char *what, int batch, const char *unit, double rate, const char *frac_of, double frac,
                 double extra, const char *extra_name, const char *device)
{
    printf("{\"bench\":\"%s\",\"batch\":%d,\"unit\":\"%s\",\"rate\":%.6g,\"fraction_of\":\"%s\",\"fraction\":%.4f,"
           "\"%s\":%.6g,\"device\":\"%s\"}\n",
           what, batch, unit, rate, frac_of, frac, extra_name, extra, device);
    fprintf(stderr, "%-7s batch %3d  %10.2f %-9s %5.1f%% of %s  (%s %.4g)\n", what, batch, rate, unit, 100 * frac,
            frac_of, extra_name, extra);
    fflush(stdout);
}

/* Deterministic host values (the scale of real activations). */
static void fill(float *p, size_t n, uint64_t seed, float scale)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        z ^= z << 13, z ^= z >> 7, z ^= z << 17;
        p[i] = ((float)(z >> 40) / 16777216.0f * 2.0f - 1.0f) * scale;
    }
}

static float *device_copy_of_random(emu2_backend *be, size_t n, uint64_t seed, float scale, emu2_error *err)
{
    float *host = malloc(n * sizeof *host), *dev = be->ops->alloc(be, n, err);
    if (host && dev) {
        fill(host, n, seed, scale);
        if (be->ops->upload(be, dev, host, n, err) == EMU2_OK) {
            free(host);
            return dev;
        }
    }
    free(host);
    if (dev)
        be->ops->free(be, dev);
    return NULL;
}

/* Device-to-device copy of 1 GiB (upload with a device source is a device copy); best of 5. */
static double measure_copy(emu2_backend *be, emu2_error *err)
{
    size_t n = (size_t)1 << 28;
    float *a = device_copy_of_random(be, n, 1, 1.0f, err), *b = be->ops->alloc(be, n, err);
    return bench_copy_bandwidth(be, b, a, n, err);
}

/* bf16 weights [8192, 8192] x activations [8192, 8192] through linear; best of 5 (FLOP/s). */
static double measure_matmul(emu2_backend *be, uint64_t seed, emu2_error *err)
{
    const size_t M = 8192, K = 8192, N = 8192;
    size_t wbytes = N * K * 2;
    float *x = device_copy_of_random(be, M * K, seed, 1.0f, err), *y = be->ops->alloc(be, M * N, err);
    double best = 0;
    if (x && y) {
        /* bf16 weights from host bits (the values do not matter, only that they are not zeros) */
        uint16_t *h = malloc(wbytes);
        for (size_t i = 0; h && i < N * K; i++)
            h[i] = (uint16_t)(0x3c00u + (uint16_t)((i * 2654435761u) >> 24)); /* ~[0.0078, 0.0156) */
        emu2_tensor_view host = {.dtype = EMU2_DT_BF16, .ndim = 2, .shape = {(int64_t)N, (int64_t)K}, .data = h,
                                 .nbytes = wbytes},
                         dev;
        if (h && be->ops->prepare_weight(be, &host, &dev, err) == EMU2_OK) {
            emu2_op_weight w = {.w = dev};
            for (int r = 0; r < 6; r++) {
                be->ops->sync(be, err);
                double t0 = bench_now();
                if (be->ops->linear(be, M, K, N, x, K, &w, NULL, y, N, err) != EMU2_OK ||
                    be->ops->sync(be, err) != EMU2_OK)
                    break;
                double f = 2.0 * M * N * K / (bench_now() - t0);
                if (r > 0 && f > best)
                    best = f;
            }
            be->ops->release_weight(be, &dev);
        }
        free(h);
    }
    if (x)
        be->ops->free(be, x);
    if (y)
        be->ops->free(be, y);
    return best;
}

static int run_decode(const args *a, emu2_model *m, double copy_bw)
{
    emu2_backend *be = m->be;
    const emu2_config *c = &m->cfg;
    size_t D = (size_t)c->hidden_size, V = (size_t)c->vocab_size;
    for (int bi = 0; bi < a->n_batches; bi++) {
        size_t rows = (size_t)a->batches[bi];
        emu2_error err = {0};
        emu2_decoder_limits lim = {.max_rows = rows, .max_len = PROMPT + (size_t)a->steps * (a->repeats + 1) + 1};
        emu2_decoder_session *s = NULL;
        float *logits = malloc(rows * V * sizeof *logits);
        int32_t *ids = malloc(rows * sizeof *ids);
        float *emb = device_copy_of_random(be, rows * PROMPT * D, 7, 0.05f, &err);
        int rc = !logits || !ids || !emb || emu2_decoder_session_create(be, &m->w->decoder, c, &lim, &s, &err);
        if (!rc)
            rc = emu2_decoder_prefill(s, rows, PROMPT, emb, NULL, logits, NULL, &err) != EMU2_OK;
        double best = 1e30;
        /* one untimed round (warm-up), then `repeats` timed rounds of `steps` steps; best round */
        for (int r = 0; r <= a->repeats && !rc; r++) {
            double t0 = bench_now();
            for (int k = 0; k < a->steps && !rc; k++) {
                for (size_t i = 0; i < rows; i++)
                    ids[i] = (int32_t)((i * 31 + (size_t)k * 7 + 3) % V);
                rc = emu2_decoder_step(s, ids, logits, NULL, &err) != EMU2_OK; /* logits come back: synced */
            }
            double t = (bench_now() - t0) / a->steps;
            if (r > 0 && t < best)
                best = t;
        }
        if (rc) {
            fprintf(stderr, "gpu_bench: decode batch %zu: %s\n", rows, err.message[0] ? err.message : "out of memory");
        } else {
            double len = PROMPT + a->steps * (a->repeats + 1) / 2.0; /* mean cache length over the run */
            double kv = rows * len * 2.0 * c->num_hidden_layers * D * 4.0;
            double bytes = decode_weight_bytes(&m->w->decoder, (int)rows) + kv;
            emit("decode", (int)rows, "tokens/s", rows / best, "copy bandwidth", bytes / best / copy_bw,
                 bytes / best / 1e9, "GB/s", be->device);
        }
        emu2_decoder_session_free(s);
        if (emb)
            be->ops->free(be, emb);
        free(logits);
        free(ids);
        if (rc)
            return 1;
    }
    return 0;
}

static double vision_flop(const emu2_config *c)
{
    const emu2_vision_config *v = &c->vision;
    double N = v->n_tokens, W = v->width, I = v->intermediate_size, g2 = (double)v->grid * v->grid;
    double patch = 2.0 * g2 * 3.0 * v->patch_size * v->patch_size * W;
    double block = 2.0 * N * W * (4.0 * W + 2.0 * I) + 4.0 * N * N * W;
    return patch + v->layers * block + 2.0 * v->n_query * W * c->hidden_size;
}

static int run_vision(const args *a, emu2_model *m, double mm_flops)
{
    emu2_backend *be = m->be;
    const emu2_config *c = &m->cfg;
    size_t S = (size_t)c->vision.image_size;
    for (int ii = 0; ii < a->n_images; ii++) {
        size_t n = (size_t)a->images[ii], n_px = n * 3 * S * S, n_out = n * c->vision.n_query * c->hidden_size;
        emu2_error err = {0};
        float *px = malloc(n_px * sizeof *px), *out = be->ops->alloc(be, n_out, &err);
        int rc = !px || !out;
        if (!rc)
            fill(px, n_px, 3, 2.0f);
        double best = 1e30;
        for (int r = 0; r <= a->repeats && !rc; r++) {
            double t0 = bench_now();
            rc = emu2_vision_encode(be, &m->w->vision, c, px, n, c->vision.n_query, out, NULL, &err) != EMU2_OK ||
                 be->ops->sync(be, &err) != EMU2_OK;
            double t = bench_now() - t0;
            if (r > 0 && t < best)
                best = t;
        }
        if (rc)
            fprintf(stderr, "gpu_bench: vision %zu images: %s\n", n, err.message[0] ? err.message : "out of memory");
        else
            emit("vision", (int)n, "images/s", n / best, "bf16 matmul", vision_flop(c) * n / best / mm_flops,
                 vision_flop(c) * n / best / 1e12, "TFLOP/s", be->device);
        free(px);
        if (out)
            be->ops->free(be, out);
        if (rc)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    args a = {.device = "cuda", .only = "copy,matmul,decode,vision", .batches = {1, 8, 32}, .n_batches = 3,
              .images = {1, 8}, .n_images = 2, .steps = 32, .repeats = 3};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = NULL;
        int kind = bench_next_arg(argc, argv, &i, "gpu_bench", &a.dir, &v);
        if (kind < 0)
            return 2;
        if (kind == 0)
            continue;
        if (!strcmp(o, "--device"))
            a.device = v;
        else if (!strcmp(o, "--batches"))
            a.n_batches = bench_parse_ints(v, a.batches, MAX_LIST);
        else if (!strcmp(o, "--images"))
            a.n_images = bench_parse_ints(v, a.images, MAX_LIST);
        else if (!strcmp(o, "--steps"))
            a.steps = atoi(v);
        else if (!strcmp(o, "--repeats"))
            a.repeats = atoi(v);
        else if (!strcmp(o, "--only"))
            a.only = v;
        else {
            fprintf(stderr, "gpu_bench: unknown option %s\n", o);
            return 2;
        }
    }
    if (!a.dir || a.steps < 1 || a.repeats < 1) {
        fprintf(stderr, "usage: gpu_bench MODEL_DIR [--device cuda] [--batches 1,8,32] [--images 1,8] [--steps 32] "
                        "[--repeats 3] [--only copy,matmul,decode,vision]\n");
        return 2;
    }
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.device = a.device;
    o.flags = EMU2_LOAD_RANDOM_WEIGHTS;
    o.random_seed = 1;
    emu2_model *m = NULL;
    emu2_error err = {0};
    double t0 = bench_now();
    if (emu2_model_load(a.dir, &o, &m, &err) != EMU2_OK) {
        fprintf(stderr, "gpu_bench: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "gpu_bench: %s: %llu random parameters built in %.1f s on %s\n", a.dir,
            (unsigned long long)m->n_params, bench_now() - t0, m->be->device);
    double copy_bw = 0, mm = 0;
    int rc = 0;
    if (wants(&a, "copy") || wants(&a, "decode")) {
        copy_bw = measure_copy(m->be, &err);
        if (copy_bw <= 0)
            rc = fprintf(stderr, "gpu_bench: copy: %s\n", err.message) > 0;
        else
            emit("copy", 0, "GB/s", copy_bw / 1e9, "itself", 1.0, copy_bw / 1e9, "GB/s", m->be->device);
    }
    if (!rc && (wants(&a, "matmul") || wants(&a, "vision"))) {
        mm = measure_matmul(m->be, 5, &err);
        if (mm <= 0)
            rc = fprintf(stderr, "gpu_bench: matmul: %s\n", err.message) > 0;
        else
            emit("matmul", 8192, "TFLOP/s", mm / 1e12, "itself", 1.0, mm / 1e12, "TFLOP/s", m->be->device);
    }
    if (!rc && wants(&a, "decode"))
        rc = run_decode(&a, m, copy_bw);
    if (!rc && wants(&a, "vision"))
        rc = run_vision(&a, m, mm);
    emu2_model_free(m);
    return rc;
}
