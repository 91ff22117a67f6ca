/* quant.c: reference quantization (see quant.h). Plain C on purpose: it runs once per weight (load
 * or convert), and being the single definition is what makes load-time and converted weights equal. */
#include "quant/quant.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/op_checks.h"
#include "ops/cpu/kernels.h" /* cpu_load_elem: F32/F16/BF16 elements as f32 */

emu2_status emu2_quant_parse(const char *name, emu2_quant_spec *out, emu2_error *err)
{
    memset(out, 0, sizeof *out);
    if (!name || !*name || !strcmp(name, "none"))
        return EMU2_OK;
    if (!strcmp(name, "int8")) {
        out->format = EMU2_WEIGHT_Q8;
        return EMU2_OK;
    }
    static const struct {
        const char *name;
        int group;
    } q4[] = {{"int4", EMU2_Q4_DEFAULT_GROUP}, {"int4-g32", 32}, {"int4-g64", 64}, {"int4-g128", 128}};
    for (size_t i = 0; i < sizeof q4 / sizeof q4[0]; i++)
        if (!strcmp(name, q4[i].name)) {
            out->format = EMU2_WEIGHT_Q4;
            out->group = q4[i].group;
            out->down_int8 = i == 0;
            return EMU2_OK;
        }
    return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                     "unknown quantization '%.64s' (want none, int8, int4, int4-g32, int4-g64 or int4-g128)", name);
}

const char *emu2_quant_name(emu2_quant_spec spec)
{
    switch (spec.format) {
    case EMU2_WEIGHT_Q8:
        return "int8";
    case EMU2_WEIGHT_Q4:
        if (spec.down_int8 && spec.group == EMU2_Q4_DEFAULT_GROUP)
            return "int4";
        return spec.group == 32 ? "int4-g32" : spec.group == 64 ? "int4-g64" : spec.group == 128 ? "int4-g128" : "int4-g?";
    default:
        return "none";
    }
}

emu2_quant_spec emu2_quant_spec_for(emu2_quant_spec spec, const char *base)
{
    size_t n = strlen(base), m = strlen(".mlp.down_proj");
    if (spec.format == EMU2_WEIGHT_Q4 && spec.down_int8 && n >= m && !strcmp(base + n - m, ".mlp.down_proj"))
        return (emu2_quant_spec){.format = EMU2_WEIGHT_Q8};
    if (spec.format == EMU2_WEIGHT_Q4 && !strcmp(base, "decoder.lm.lm_head"))
        return (emu2_quant_spec){.format = EMU2_WEIGHT_Q8}; /* the logits: int8 in every quantized mode */
    return spec;
}

size_t emu2_quant_scale_row_count(emu2_quant_spec spec, size_t K)
{
    if (spec.format == EMU2_WEIGHT_Q8)
        return 1;
    if (spec.format == EMU2_WEIGHT_Q4 && spec.group > 0)
        return (K + (size_t)spec.group - 1) / (size_t)spec.group;
    return 0;
}

size_t emu2_quant_q_row_bytes(emu2_quant_spec spec, size_t K)
{
    if (spec.format == EMU2_WEIGHT_Q8)
        return K;
    if (spec.format == EMU2_WEIGHT_Q4)
        return emu2_quant_scale_row_count(spec, K) * (size_t)spec.group / 2;
    return 0;
}

static emu2_status quantize_row_q8(const void *src, emu2_dtype dt, size_t base, size_t K, int8_t *q, void *scale,
                                   emu2_error *err)
{
    float amax = 0;
    for (size_t k = 0; k < K; k++) {
        float v = fabsf(cpu_load_elem(src, dt, base + k));
        if (!isfinite(v))
            return emu2_fail(err, EMU2_ERR_FORMAT, "a non-finite weight cannot be quantized");
        amax = v > amax ? v : amax;
    }
    float s = amax / 127.0f;
    memcpy(scale, &s, sizeof s); /* the scales of a file need not be aligned */
    for (size_t k = 0; k < K; k++) {
        float r = s > 0 ? rintf(cpu_load_elem(src, dt, base + k) / s) : 0.0f;
        q[k] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
    }
    return EMU2_OK;
}

/* Squared error of n values quantized with scale s (as stored: f16), into q when given. */
static double q4_error(const float *v, size_t n, float s, int *q)
{
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        float r = s != 0 ? rintf(v[i] / s) : 0.0f;
        int qi = (int)(r > 7 ? 7 : r < -8 ? -8 : r);
        double d = (double)v[i] - (double)qi * s;
        e += d * d;
        if (q)
            q[i] = qi;
    }
    return e;
}

/* Least-squares scale for fixed levels: sum(v q) / sum(q q), from the levels of scale s. */
static float q4_refit(const float *v, size_t n, float s)
{
    int q[128];
    q4_error(v, n, s, q);
    double vq = 0, qq = 0;
    for (size_t i = 0; i < n; i++) {
        vq += (double)v[i] * q[i];
        qq += (double)q[i] * q[i];
    }
    return qq > 0 ? (float)(vq / qq) : s;
}

static float f16_round(float f)
{
    return emu2_f16_to_f32(emu2_f32_to_f16(f));
}

/* The scale of one group: the best (least squared error, f16 as stored) of amax/7 (symmetric),
 * -vmax/8 (the largest magnitude lands on -8, using all 16 levels) and each one's least-squares
 * refit. Returns 0 for a group of zeros. */
static float q4_choose_scale(const float *v, size_t n)
{
    float amax = 0, vmax = 0;
    for (size_t i = 0; i < n; i++)
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            vmax = v[i];
        }
    if (amax == 0)
        return 0;
    float cand[4] = {amax / 7.0f, -vmax / 8.0f, 0, 0};
    cand[2] = q4_refit(v, n, f16_round(cand[0]));
    cand[3] = q4_refit(v, n, f16_round(cand[1]));
    float best = f16_round(cand[0]);
    double best_e = q4_error(v, n, best, NULL);
    for (int c = 1; c < 4; c++) {
        float sc = f16_round(cand[c]);
        double e = sc != 0 && isfinite(sc) ? q4_error(v, n, sc, NULL) : INFINITY;
        if (e < best_e) {
            best_e = e;
            best = sc;
        }
    }
    return best;
}

/* One row of Q4 groups: n elements, zero-padded to whole groups. */
static emu2_status quantize_row_q4(const void *src, emu2_dtype dt, size_t base, size_t K, size_t G, uint8_t *q,
                                   uint8_t *scale_bytes, emu2_error *err)
{
    size_t groups = (K + G - 1) / G, half = G / 2;
    float v[128];
    int lv[128];
    for (size_t g = 0; g < groups; g++) {
        size_t k0 = g * G, n = K - k0 < G ? K - k0 : G;
        for (size_t i = 0; i < G; i++) {
            v[i] = i < n ? cpu_load_elem(src, dt, base + k0 + i) : 0.0f;
            if (!isfinite(v[i]))
                return emu2_fail(err, EMU2_ERR_FORMAT, "a non-finite weight cannot be quantized");
        }
        float s = q4_choose_scale(v, n);
        if (!isfinite(s))
            return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "a weight group is too large for int4 f16 scales");
        uint16_t sh = emu2_f32_to_f16(s);
        memcpy(scale_bytes + 2 * g, &sh, sizeof sh);
        q4_error(v, G, s, lv); /* the padding is 0 and stays level 0 */
        uint8_t *qb = q + g * half;
        for (size_t i = 0; i < half; i++)
            qb[i] = (uint8_t)((lv[i] + 8) | (lv[i + half] + 8) << 4);
    }
    return EMU2_OK;
}

emu2_status emu2_quantize_rows(emu2_quant_spec spec, const void *src, emu2_dtype src_dt, size_t N, size_t K,
                               void *q, void *scales, emu2_error *err)
{
    if (src_dt != EMU2_DT_F32 && src_dt != EMU2_DT_F16 && src_dt != EMU2_DT_BF16)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "cannot quantize a %s tensor", emu2_dtype_name(src_dt));
    if (spec.format == EMU2_WEIGHT_Q4 && spec.group != 32 && spec.group != 64 && spec.group != 128)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "int4 group size %d (want 32, 64 or 128)", spec.group);
    size_t rb = emu2_quant_q_row_bytes(spec, K), sc = emu2_quant_scale_row_count(spec, K);
    for (size_t n = 0; n < N; n++) {
        emu2_status st;
        if (spec.format == EMU2_WEIGHT_Q8)
            st = quantize_row_q8(src, src_dt, n * K, K, (int8_t *)q + n * rb, (uint8_t *)scales + n * 4, err);
        else if (spec.format == EMU2_WEIGHT_Q4)
            st = quantize_row_q4(src, src_dt, n * K, K, (size_t)spec.group, (uint8_t *)q + n * rb,
                                 (uint8_t *)scales + n * sc * 2, err);
        else
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_quantize_rows: no quantized format given");
        if (st != EMU2_OK)
            return st;
    }
    return EMU2_OK;
}

struct quant_part {
    emu2_quant_spec spec;
    const void *src;
    emu2_dtype dt;
    size_t n0, n1, K;
    void *q, *scales;
    emu2_status st;
    emu2_error err;
};

static void *quant_part_run(void *p)
{
    struct quant_part *t = p;
    size_t rb = emu2_quant_q_row_bytes(t->spec, t->K), sc = emu2_quant_scale_row_count(t->spec, t->K);
    size_t ses = t->spec.format == EMU2_WEIGHT_Q8 ? 4 : 2;
    t->st = emu2_quantize_rows(t->spec, (const char *)t->src + t->n0 * t->K * emu2_dtype_size(t->dt), t->dt,
                               t->n1 - t->n0, t->K, (char *)t->q + t->n0 * rb, (char *)t->scales + t->n0 * sc * ses,
                               &t->err);
    return NULL;
}

emu2_status emu2_quantize_rows_threads(emu2_quant_spec spec, const void *src, emu2_dtype src_dt, size_t N, size_t K,
                                       void *q, void *scales, int threads, emu2_error *err)
{
    enum { MAX_T = 64 };
    size_t T = threads < 1 ? 1 : threads > MAX_T ? MAX_T : (size_t)threads;
    if (T > N / 16)
        T = N / 16 ? N / 16 : 1; /* not worth a thread below 16 rows each */
    if (T <= 1 || emu2_dtype_size(src_dt) == 0)
        return emu2_quantize_rows(spec, src, src_dt, N, K, q, scales, err);
    struct quant_part parts[MAX_T];
    pthread_t tid[MAX_T];
    int started[MAX_T] = {0};
    for (size_t t = 0; t < T; t++) {
        parts[t] = (struct quant_part){.spec = spec, .src = src, .dt = src_dt, .n0 = N * t / T, .n1 = N * (t + 1) / T,
                                       .K = K, .q = q, .scales = scales, .st = EMU2_OK};
        started[t] = t > 0 && pthread_create(&tid[t], NULL, quant_part_run, &parts[t]) == 0;
    }
    for (size_t t = 0; t < T; t++)
        if (!started[t])
            quant_part_run(&parts[t]); /* the caller's share, and any thread that could not start */
    for (size_t t = 0; t < T; t++)
        if (started[t])
            pthread_join(tid[t], NULL);
    for (size_t t = 0; t < T; t++)
        if (parts[t].st != EMU2_OK) {
            if (err)
                *err = parts[t].err;
            return parts[t].st;
        }
    return EMU2_OK;
}

void emu2_dequant_row(const emu2_op_weight *w, size_t K, size_t row, size_t k0, size_t n, float *out)
{
    if (w->format == EMU2_WEIGHT_Q8) {
        const int8_t *q = (const int8_t *)w->w.data + row * K + k0;
        float s;
        memcpy(&s, (const char *)w->scales.data + row * 4, 4);
        for (size_t i = 0; i < n; i++)
            out[i] = (float)q[i] * s;
        return;
    }
    emu2_quant_spec spec = {.format = EMU2_WEIGHT_Q4, .group = w->group};
    size_t G = (size_t)w->group, half = G / 2, rb = emu2_quant_q_row_bytes(spec, K);
    size_t sc = emu2_quant_scale_row_count(spec, K);
    const uint8_t *q = (const uint8_t *)w->w.data + row * rb;
    const uint8_t *sp = (const uint8_t *)w->scales.data + row * sc * 2;
    for (size_t i = 0; i < n; i++) {
        size_t k = k0 + i, g = k / G, e = k % G;
        uint16_t sh;
        memcpy(&sh, sp + g * 2, 2);
        uint8_t b = q[g * half + (e % half)];
        int v = (e < half ? b & 15 : b >> 4) - 8;
        out[i] = (float)v * emu2_f16_to_f32(sh);
    }
}

emu2_status emu2_quant_check_weight(const emu2_op_weight *w, size_t N, size_t K, emu2_error *err)
{
    return emu2_check_quant_weight(NULL, emu2_quant_name((emu2_quant_spec){.format = w->format, .group = w->group}), w,
                                   N, K, SIZE_MAX, err);
}
