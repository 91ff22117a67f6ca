/* elementwise.c: activations, adds and row softmaxes (f32; softmax sums in double). */
#include <math.h>

#include "common/error.h"
#include "ops/cpu/cpu_internal.h"

#define ELEM_CHUNK 8192

struct ew_job {
    const cpu_kernels *k;
    const float *a, *b;
    float *y;
    size_t n; /* row width for the row ops */
};

static void gelu_range(void *p, size_t i0, size_t i1, int thread)
{
    (void)thread;
    const struct ew_job *j = p;
    j->k->gelu(j->a + i0, j->y + i0, i1 - i0);
}

static void silu_mul_range(void *p, size_t i0, size_t i1, int thread)
{
    (void)thread;
    const struct ew_job *j = p;
    for (size_t i = i0; i < i1; i++) {
        float v = j->a[i];
        j->y[i] = v / (1.0f + expf(-v)) * j->b[i];
    }
}

static void add_range(void *p, size_t i0, size_t i1, int thread)
{
    (void)thread;
    const struct ew_job *j = p;
    for (size_t i = i0; i < i1; i++)
        j->y[i] = j->a[i] + j->b[i];
}

emu2_status cpu_gelu(emu2_backend *be, size_t n, const float *x, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_elementwise_args("gelu", n, x, x, y, err);
    if (st != EMU2_OK)
        return st;
    struct ew_job j = {.k = cpu_of(be)->k, .a = x, .y = y};
    cpu_parallel_for(cpu_of(be), n, ELEM_CHUNK, gelu_range, &j);
    return EMU2_OK;
}

emu2_status cpu_silu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_elementwise_args("silu_mul", n, a, b, y, err);
    if (st != EMU2_OK)
        return st;
    struct ew_job j = {.k = cpu_of(be)->k, .a = a, .b = b, .y = y};
    cpu_parallel_for(cpu_of(be), n, ELEM_CHUNK, silu_mul_range, &j);
    return EMU2_OK;
}

emu2_status cpu_add(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    emu2_status st = emu2_check_elementwise_args("add", n, a, b, y, err);
    if (st != EMU2_OK)
        return st;
    struct ew_job j = {.k = cpu_of(be)->k, .a = a, .b = b, .y = y};
    cpu_parallel_for(cpu_of(be), n, ELEM_CHUNK, add_range, &j);
    return EMU2_OK;
}

/* want_log = 0: softmax; 1: log-softmax. */
static void softmax_rows(const struct ew_job *j, size_t r0, size_t r1, int want_log)
{
    for (size_t r = r0; r < r1; r++) {
        const float *x = j->a + r * j->n;
        float *y = j->y + r * j->n;
        float max = -INFINITY;
        for (size_t i = 0; i < j->n; i++)
            max = x[i] > max ? x[i] : max;
        double sum = 0;
        if (want_log) {
            for (size_t i = 0; i < j->n; i++)
                sum += exp((double)x[i] - max);
            /* all -inf (or an inf) rows: let IEEE arithmetic give -inf/NaN as torch does */
            float lse = isinf(max) ? max : (float)((double)max + log(sum));
            for (size_t i = 0; i < j->n; i++)
                y[i] = x[i] - lse;
        } else {
            for (size_t i = 0; i < j->n; i++) {
                float e = expf(x[i] - max);
                y[i] = e;
                sum += e;
            }
            float inv = (float)(1.0 / sum);
            for (size_t i = 0; i < j->n; i++)
                y[i] *= inv;
        }
    }
}

static void softmax_range(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    softmax_rows(p, r0, r1, 0);
}

static void log_softmax_range(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    softmax_rows(p, r0, r1, 1);
}

static emu2_status softmax_common(emu2_backend *be, const char *op, size_t rows, size_t n, const float *x, float *y,
                                  cpu_range_fn fn, emu2_error *err)
{
    emu2_status st = emu2_check_softmax_args(op, rows, n, x, y, err);
    if (st != EMU2_OK)
        return st;
    struct ew_job j = {.k = cpu_of(be)->k, .a = x, .y = y, .n = n};
    cpu_parallel_for(cpu_of(be), rows, 1 + ELEM_CHUNK / n, fn, &j);
    return EMU2_OK;
}

emu2_status cpu_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err)
{
    return softmax_common(be, "softmax", rows, n, x, y, softmax_range, err);
}

emu2_status cpu_log_softmax(emu2_backend *be, size_t rows, size_t n, const float *x, float *y, emu2_error *err)
{
    return softmax_common(be, "log_softmax", rows, n, x, y, log_softmax_range, err);
}
