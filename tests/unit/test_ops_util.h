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

#define TOL_F32 1e-5

#endif
