/* test_cuda_support.h: helpers for the CUDA tests (test_cuda_*.c): the CPU and CUDA backends
 * side by side, device copies of host arrays, output poisoning, and the error measure the
 * tolerances are stated in. Every test skips, saying why, when no CUDA backend opens. */
#ifndef EMU2_TEST_CUDA_SUPPORT_H
#define EMU2_TEST_CUDA_SUPPORT_H

#include <math.h>
#include <stdint.h>

#include "check.h"
#include "common/tensor.h"
#include "ops/ops.h"

static emu2_backend *tc_cpu, *tc_gpu;
static char tc_why[512];

/* Opens both backends once; returns 0 (tc_why says why) when CUDA is unavailable. */
static inline int tc_open(void)
{
    emu2_error err;
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = 2;
    if (emu2_backend_open("cpu", &o, &tc_cpu, &err) != EMU2_OK) {
        snprintf(tc_why, sizeof tc_why, "cpu backend: %.400s", err.message);
        return 0;
    }
    if (emu2_backend_open("cuda", NULL, &tc_gpu, &err) != EMU2_OK) {
        snprintf(tc_why, sizeof tc_why, "no CUDA backend here: %.400s", err.message);
        tc_gpu = NULL;
        return 0;
    }
    printf("  device: %s\n", tc_gpu->device);
    return 1;
}

static inline void tc_close(void)
{
    emu2_backend_close(tc_gpu);
    emu2_backend_close(tc_cpu);
}

#define TC_NEED_GPU()                                                                                                 \
    do {                                                                                                               \
        if (!tc_gpu)                                                                                                   \
            SKIP("%.250s", tc_why);                                                                                        \
    } while (0)

/* A device buffer holding host[0..n) (NULL host: NaN everywhere, to catch unwritten outputs). */
static inline float *tc_dev(const float *host, size_t n)
{
    emu2_error err;
    float *d = tc_gpu->ops->alloc(tc_gpu, n, &err);
    if (!d)
        return NULL;
    float *tmp = NULL;
    if (!host) {
        tmp = malloc(n * sizeof *tmp);
        for (size_t i = 0; i < n; i++)
            tmp[i] = NAN;
        host = tmp;
    }
    emu2_status st = tc_gpu->ops->upload(tc_gpu, d, host, n, &err);
    free(tmp);
    if (st != EMU2_OK) {
        tc_gpu->ops->free(tc_gpu, d);
        return NULL;
    }
    return d;
}

/* Downloads n floats into a new host array (NULL on failure). */
static inline float *tc_host(const float *dev, size_t n)
{
    emu2_error err;
    float *h = malloc(n * sizeof *h);
    if (h && tc_gpu->ops->download(tc_gpu, h, dev, n, &err) != EMU2_OK) {
        printf("    download: %s\n", err.message);
        free(h);
        return NULL;
    }
    return h;
}

static inline void tc_free(float *dev)
{
    if (dev)
        tc_gpu->ops->free(tc_gpu, dev);
}

/* max |got - want| / (RMS(want) + tiny) over n values; NaN anywhere counts as infinitely wrong. */
static inline double tc_err(const float *got, const float *want, size_t n)
{
    double rms = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        rms += (double)want[i] * want[i];
    rms = sqrt(rms / (double)(n ? n : 1)) + 1e-30;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) != isnan(want[i]))
            return INFINITY;
        if (isnan(got[i]))
            continue;
        double e = fabs((double)got[i] - want[i]) / rms;
        worst = e > worst ? e : worst;
    }
    return worst;
}

/* Same comparison over a strided [rows, cols] region. */
static inline double tc_err_rows(const float *got, const float *want, size_t rows, size_t cols, size_t stride)
{
    double worst = 0;
    float *g = malloc(rows * cols * sizeof *g), *w = malloc(rows * cols * sizeof *w);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            g[r * cols + c] = got[r * stride + c];
            w[r * cols + c] = want[r * stride + c];
        }
    worst = tc_err(g, w, rows * cols);
    free(g);
    free(w);
    return worst;
}

static uint64_t tc_rng = 0x2545f4914f6cdd1dULL;
static inline float tc_uniform(float lo, float hi)
{
    uint64_t z = (tc_rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 40) / 16777216.0);
}

static inline float *tc_random(size_t n, float lo, float hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++)
        p[i] = tc_uniform(lo, hi);
    return p;
}

/* A host tensor view of `values` stored as dt (values rounded in place to what dt holds). */
typedef struct tc_view {
    emu2_tensor_view host, dev; /* dev: prepared on the GPU */
    void *data;
} tc_view;

static inline int tc_view_make(tc_view *v, emu2_dtype dt, int ndim, int64_t d0, int64_t d1, float *values)
{
    size_t n = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1), es = emu2_dtype_size(dt);
    memset(v, 0, sizeof *v);
    v->data = malloc(n * es);
    for (size_t i = 0; i < n; i++) {
        if (dt == EMU2_DT_F32) {
            ((float *)v->data)[i] = values[i];
        } else if (dt == EMU2_DT_BF16) {
            uint16_t h = emu2_f32_to_bf16(values[i]);
            ((uint16_t *)v->data)[i] = h;
            values[i] = emu2_bf16_to_f32(h);
        } else {
            uint16_t h = emu2_f32_to_f16(values[i]);
            ((uint16_t *)v->data)[i] = h;
            values[i] = emu2_f16_to_f32(h);
        }
    }
    v->host.dtype = dt;
    v->host.ndim = ndim;
    v->host.shape[0] = d0;
    v->host.shape[1] = ndim == 2 ? d1 : 0;
    v->host.data = v->data;
    v->host.nbytes = n * es;
    emu2_error err;
    if (tc_gpu->ops->prepare_weight(tc_gpu, &v->host, &v->dev, &err) != EMU2_OK) {
        printf("    prepare_weight: %s\n", err.message);
        return 0;
    }
    return 1;
}

static inline void tc_view_free(tc_view *v)
{
    tc_gpu->ops->release_weight(tc_gpu, &v->dev);
    free(v->data);
}

#endif
