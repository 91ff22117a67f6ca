/* test_ops_util.h: shared helpers for the op tests: a seeded RNG, weights in every dtype, the
 * list of backend configurations to run (each ISA path this CPU has x 1 and 3 threads), and a
 * tolerance check against double-precision references. */
#ifndef EMU2_TEST_OPS_UTIL_H
#define EMU2_TEST_OPS_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tensor.h"
#include "ops/ops.h"

/* ---------------------------------------------------------------- random numbers (splitmix64) */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline float rng_uniform(float lo, float hi) /* [lo, hi) */
{
    return lo + (hi - lo) * (float)((rng_next() >> 40) * (1.0 / 16777216.0));
}
static inline void fill_uniform(float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        p[i] = rng_uniform(lo, hi);
}

/* ---------------------------------------------------------------- weights in any dtype */
/* A view over freshly allocated data holding `values` rounded to dt; `values` is overwritten
 * with the rounded numbers, so references use exactly what the backend reads. */
typedef struct test_weight {
    emu2_tensor_view view;
    void *data;
} test_weight;

static inline void test_weight_make(test_weight *tw, emu2_dtype dt, int ndim, int64_t d0, int64_t d1, float *values)
{
    size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    size_t es = emu2_dtype_size(dt);
    tw->data = malloc(n * es + 1);
    for (size_t i = 0; i < n; i++) {
        if (dt == EMU2_DT_F32) {
            ((float *)tw->data)[i] = values[i];
        } else if (dt == EMU2_DT_BF16) {
            uint16_t h = emu2_f32_to_bf16(values[i]);
            ((uint16_t *)tw->data)[i] = h;
            values[i] = emu2_bf16_to_f32(h);
        } else {
            uint16_t h = emu2_f32_to_f16(values[i]);
            ((uint16_t *)tw->data)[i] = h;
            values[i] = emu2_f16_to_f32(h);
        }
    }
    memset(&tw->view, 0, sizeof tw->view);
    tw->view.dtype = dt;
    tw->view.ndim = ndim;
    tw->view.shape[0] = d0;
    tw->view.shape[1] = ndim == 2 ? d1 : 0;
    tw->view.data = tw->data;
    tw->view.nbytes = n * es;
}
static inline void test_weight_free(test_weight *tw)
{
    free(tw->data);
    tw->data = NULL;
}

static const emu2_dtype test_float_dtypes[] = {EMU2_DT_F32, EMU2_DT_F16, EMU2_DT_BF16};

/* ---------------------------------------------------------------- backend configurations */
typedef struct test_config {
    emu2_cpu_isa isa;
    int threads;
    char name[32];
} test_config;

/* Fills cfg with every ISA path this CPU supports x {1, 3} threads; returns how many. Paths the CPU
 * lacks are listed in *missing (for a note). */
static inline int test_configs(test_config cfg[8], char *missing, size_t missing_size)
{
    static const emu2_cpu_isa isas[] = {EMU2_ISA_SCALAR, EMU2_ISA_AVX2, EMU2_ISA_AVX512};
    static const int threads[] = {1, 3};
    int n = 0;
    missing[0] = '\0';
    for (size_t i = 0; i < 3; i++) {
        emu2_backend_options o;
        emu2_backend_options_init(&o);
        o.max_isa = isas[i];
        o.threads = 1;
        emu2_backend *be = NULL;
        if (emu2_cpu_backend_open(&o, &be, NULL) != EMU2_OK)
            continue;
        int have = be->isa == isas[i];
        emu2_backend_close(be);
        if (!have) {
            size_t len = strlen(missing);
            snprintf(missing + len, missing_size - len, "%s%s", len ? "," : "", emu2_cpu_isa_name(isas[i]));
            continue;
        }
        for (size_t t = 0; t < 2; t++) {
            cfg[n].isa = isas[i];
            cfg[n].threads = threads[t];
            snprintf(cfg[n].name, sizeof cfg[n].name, "%s/%dt", emu2_cpu_isa_name(isas[i]), threads[t]);
            n++;
        }
    }
    return n;
}

static inline emu2_backend *test_open(const test_config *c)
{
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.max_isa = c->isa;
    o.threads = c->threads;
    emu2_backend *be = NULL;
    emu2_error err = {0};
    if (emu2_cpu_backend_open(&o, &be, &err) != EMU2_OK) {
        printf("    cannot open %s: %s\n", c->name, err.message);
        return NULL;
    }
    return be;
}

/* ---------------------------------------------------------------- comparisons */
/* Largest |got - ref| / (|ref| + mag) over n values; mag[i] (the size of the terms that were
 * summed into ref[i]) when given, else the RMS of ref, so cancellation does not inflate errors. */
static inline double max_rel_err(const float *got, const double *ref, const double *mag, size_t n, size_t *where)
{
    double rms = 0;
    for (size_t i = 0; i < n; i++)
        rms += ref[i] * ref[i];
    rms = sqrt(rms / (double)(n ? n : 1));
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double m = mag ? mag[i] : rms;
        double e = fabs((double)got[i] - ref[i]) / (fabs(ref[i]) + m + 1e-30);
        if (!(e <= worst)) { /* also catches NaN */
            worst = isnan(e) ? INFINITY : e;
            if (where)
                *where = i;
        }
    }
    return worst;
}

/* One linear case against a double reference: x [M, K] (row stride K + x_pad) and W [N, K] in wdt
 * uniform in [-1, 1), bias [N] in bdt in [-2, 2) when use_bias, y with row stride N + y_pad whose
 * padding must keep its 12345 sentinel (*pad_ok); odd M + K read W from a misaligned copy
 * (checkpoint data need not be aligned). round_x (may be NULL) rounds each activation for the
 * reference, as the backend does; *err_unrounded (if not NULL) is the error against the reference
 * without it. Returns the worst relative error, INFINITY when linear fails (message printed). */
static inline double test_linear_case(emu2_backend *be, size_t M, size_t K, size_t N, size_t x_pad, size_t y_pad,
                                      emu2_dtype wdt, emu2_dtype bdt, int use_bias, float (*round_x)(float),
                                      int *pad_ok, double *err_unrounded)
{
    size_t ldx = K + x_pad, ldy = N + y_pad;
    float *x = malloc(M * ldx * sizeof(float)), *wv = malloc(N * K * sizeof(float));
    float *bv = malloc(N * sizeof(float)), *y = malloc(M * ldy * sizeof(float));
    float *got = malloc(M * N * sizeof(float));
    double *ref = malloc(M * N * sizeof(double)), *ref32 = malloc(M * N * sizeof(double));
    double *mag = malloc(M * N * sizeof(double));
    fill_uniform(x, M * ldx, -1, 1);
    fill_uniform(wv, N * K, -1, 1);
    fill_uniform(bv, N, -2, 2);
    for (size_t i = 0; i < M * ldy; i++)
        y[i] = 12345.0f;
    test_weight tw, tb;
    test_weight_make(&tw, wdt, 2, (int64_t)N, (int64_t)K, wv);
    test_weight_make(&tb, bdt, 1, (int64_t)N, 0, bv);
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double s = use_bias ? bv[n] : 0, s32 = s, a = use_bias ? fabs(bv[n]) : 0;
            for (size_t k = 0; k < K; k++) {
                float xv = x[m * ldx + k];
                double t = (double)(round_x ? round_x(xv) : xv) * wv[n * K + k];
                s += t;
                s32 += (double)xv * wv[n * K + k];
                a += fabs(t);
            }
            ref[m * N + n] = s;
            ref32[m * N + n] = s32;
            mag[m * N + n] = a;
        }
    char *shifted = NULL;
    emu2_op_weight w = {.w = tw.view};
    if ((M + K) % 2) {
        shifted = malloc(tw.view.nbytes + 3);
        memcpy(shifted + 3, tw.data, tw.view.nbytes);
        w.w.data = shifted + 3;
    }
    emu2_error err = {0};
    double worst = INFINITY;
    *pad_ok = 1;
    if (be->ops->linear(be, M, K, N, x, ldx, &w, use_bias ? &tb.view : NULL, y, ldy, &err) == EMU2_OK) {
        for (size_t m = 0; m < M; m++) {
            memcpy(got + m * N, y + m * ldy, N * sizeof(float));
            for (size_t p = N; p < ldy; p++)
                if (y[m * ldy + p] != 12345.0f)
                    *pad_ok = 0;
        }
        worst = max_rel_err(got, ref, mag, M * N, NULL);
        if (err_unrounded)
            *err_unrounded = max_rel_err(got, ref32, mag, M * N, NULL);
    } else {
        printf("    linear failed: %s\n", err.message);
    }
    free(shifted);
    test_weight_free(&tw);
    test_weight_free(&tb);
    free(x), free(wv), free(bv), free(y), free(got), free(ref), free(ref32), free(mag);
    return worst;
}

#define TOL_F32 1e-5

#endif
