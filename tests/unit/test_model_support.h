/* test_model_support.h: helpers for the network tests: a golden case (manifest.json through jansson,
 * tensors.safetensors through core/io's reader), a loaded model (config, checkpoint, bound weights on a
 * CPU backend with a given thread count), golden pixels, and the tolerance check. Test-only code. */
#ifndef EMU2_TEST_MODEL_SUPPORT_H
#define EMU2_TEST_MODEL_SUPPORT_H

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "image/image.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "ops/ops.h"

/* ---------------------------------------------------------------- golden cases */
typedef struct golden {
    json_t *manifest;
    emu2_mapped_file file;
    emu2_named_tensor *tensors;
    size_t n_tensors;
} golden;

static inline void golden_close(golden *g)
{
    if (g->manifest)
        json_decref(g->manifest);
    emu2_named_tensors_free(g->tensors, g->n_tensors);
    emu2_mapped_file_close(&g->file);
    memset(g, 0, sizeof *g);
}

/* Opens tests/reference/goldens/<name>/; prints why and returns 0 on failure. */
static inline int golden_open(const char *name, golden *g)
{
    memset(g, 0, sizeof *g);
    char rel[256];
    emu2_error err;
    snprintf(rel, sizeof rel, "tests/reference/goldens/%s/manifest.json", name);
    json_error_t jerr;
    g->manifest = json_load_file(ROOT_PATH(rel), 0, &jerr);
    if (!g->manifest) {
        printf("    %s: %s\n", rel, jerr.text);
        return 0;
    }
    snprintf(rel, sizeof rel, "tests/reference/goldens/%s/tensors.safetensors", name);
    if (emu2_mapped_file_open(ROOT_PATH(rel), &g->file, &err) != EMU2_OK ||
        emu2_safetensors_tensors(g->file.data, g->file.size, &g->tensors, &g->n_tensors, &err) != EMU2_OK) {
        printf("    %s: %s\n", rel, err.message);
        golden_close(g);
        return 0;
    }
    return 1;
}

/* The F32 (or U8) tensor NAME, or NULL (with a message). */
static inline const emu2_tensor_view *golden_tensor(const golden *g, const char *name)
{
    for (size_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name))
            return &g->tensors[i].view;
    printf("    golden tensor %s is missing\n", name);
    return NULL;
}

/* The manifest's tolerance value for tensor NAME (kind max_abs_over_ref_max_abs), or -1. */
static inline double golden_tolerance(const golden *g, const char *name)
{
    json_t *list = json_object_get(g->manifest, "tensors");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *t = json_array_get(list, i);
        const char *tname = json_string_value(json_object_get(t, "name"));
        if (!tname || strcmp(tname, name))
            continue;
        json_t *tol = json_object_get(t, "tolerance");
        const char *kind = json_string_value(json_object_get(tol, "kind"));
        if (!kind || strcmp(kind, "max_abs_over_ref_max_abs"))
            return -1;
        return json_number_value(json_object_get(tol, "value"));
    }
    return -1;
}

/* max |got - ref| / max |ref| over n floats. */
static inline double rel_max_err(const float *got, const float *ref, size_t n)
{
    double max_ref = 0, max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)ref[i]), d = fabs((double)got[i] - (double)ref[i]);
        if (r > max_ref)
            max_ref = r;
        if (d > max_diff || d != d)
            max_diff = d != d ? INFINITY : d;
    }
    return max_ref > 0 ? max_diff / max_ref : max_diff;
}

/* Compares got against golden tensor NAME (shape product must be n) with the manifest's tolerance:
 * 1 when within it; 0 when over it, or the tensor is missing or of another size. Prints one line
 * per comparison; *worst (may be NULL) keeps the largest error seen. */
static inline int golden_compare(const golden *g, const char *name, const float *got, size_t n, double *worst)
{
    const emu2_tensor_view *t = golden_tensor(g, name);
    if (!t || t->dtype != EMU2_DT_F32 || emu2_tensor_numel(t) != n) {
        printf("    %s: missing or %llu elements (want %zu)\n", name,
               t ? (unsigned long long)emu2_tensor_numel(t) : 0ull, n);
        return 0;
    }
    double e = rel_max_err(got, (const float *)t->data, n);
    double tol = golden_tolerance(g, name);
    int ok = tol >= 0 && e <= tol;
    if (worst && e > *worst)
        *worst = e;
    if (!ok || getenv("EMU2_TEST_VERBOSE"))
        printf("    %s %-44s max_abs/ref_max %.3g (tolerance %g)\n", ok ? "ok  " : "FAIL", name, e, tol);
    return ok;
}

/* ---------------------------------------------------------------- a model on a CPU backend */
typedef struct test_model {
    emu2_config cfg;
    emu2_checkpoint *ck;
    emu2_backend *be;
    emu2_model_weights *w;
} test_model;

static inline void test_model_close(test_model *m)
{
    emu2_model_weights_free(m->w);
    emu2_backend_close(m->be);
    emu2_checkpoint_close(m->ck);
    memset(m, 0, sizeof *m);
}

static inline int test_model_open(const char *rel_dir, int threads, test_model *m)
{
    memset(m, 0, sizeof *m);
    emu2_error err;
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = threads;
    const char *dir = ROOT_PATH(rel_dir);
    if (emu2_config_load(dir, &m->cfg, &err) != EMU2_OK || emu2_checkpoint_open(dir, &m->ck, &err) != EMU2_OK ||
        emu2_cpu_backend_open(&o, &m->be, &err) != EMU2_OK ||
        emu2_model_weights_bind(m->be, m->ck, &m->cfg, &m->w, &err) != EMU2_OK) {
        printf("    %s: %s\n", rel_dir, err.message);
        test_model_close(m);
        return 0;
    }
    return 1;
}

/* Normalized CHW pixels of golden image `s<size>.<name>.u8` from the pixels case (malloc'd). */
static inline float *golden_pixels(const golden *pixels, const char *u8_name, int size)
{
    const emu2_tensor_view *t = golden_tensor(pixels, u8_name);
    if (!t || t->dtype != EMU2_DT_U8 || emu2_tensor_numel(t) != (uint64_t)size * size * 3)
        return NULL;
    emu2_rgb_image img = {size, size, (uint8_t *)t->data};
    float *chw = malloc((size_t)3 * size * size * sizeof *chw);
    if (chw)
        emu2_image_normalize_clip(&img, chw);
    return chw;
}

/* A golden case opened with what every network test needs: its manifest and tensors, the shared
 * pixels case, and the model folder the manifest names, loaded with `threads`. */
typedef struct golden_case {
    golden g, px;
    test_model m;
    const char *dir; /* the model folder, relative to the repository */
} golden_case;

/* 1 when everything opened; on failure nothing is left open. */
static inline int golden_case_open(const char *name, int threads, golden_case *c)
{
    if (!golden_open(name, &c->g))
        return 0;
    if (!golden_open("pixels", &c->px)) {
        golden_close(&c->g);
        return 0;
    }
    c->dir = json_string_value(json_object_get(json_object_get(c->g.manifest, "model"), "dir"));
    if (!c->dir || !test_model_open(c->dir, threads, &c->m)) {
        golden_close(&c->g);
        golden_close(&c->px);
        return 0;
    }
    return 1;
}

static inline void golden_case_close(golden_case *c)
{
    test_model_close(&c->m);
    golden_close(&c->g);
    golden_close(&c->px);
}

/* The thread counts every network test runs with: one, and more than the cores (uneven splits). */
static const int test_thread_counts[] = {1, 3};

/* Runs case_fn once per thread count, stopping after the first run that fails a check. */
static inline void run_per_thread_count(void (*case_fn)(int threads))
{
    for (size_t i = 0; i < sizeof test_thread_counts / sizeof *test_thread_counts; i++) {
        case_fn(test_thread_counts[i]);
        if (check_cur_failed)
            return;
    }
}

/* Cosine similarity of a and b in double (0 when either is all zeros): how the quantized and bf16
 * goldens compare logits with the reference's. */
static inline double test_cosine(const float *a, const float *b, size_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

#endif
