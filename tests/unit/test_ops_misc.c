/* test_ops_misc.c: norms, activations, softmaxes, embedding, pooling, row copies, adds, backend
 * selection and the thread pool, against double references, on every ISA path and thread count. */
#include <stdatomic.h>
#include <time.h>

#include "check.h"
#include "ops/cpu/kernels.h"
#include "ops/cpu/thread_pool.h"
#include "test_ops_util.h"

/* Runs the following block once per configuration with `be` open (NULL if opening failed: the block
 * must CHECK it) and `cfgname` naming it; the backend is closed after the block. */
#define FOR_EACH_CONFIG(be, cfgname)                                                                           \
    test_config cfg_[8];                                                                                       \
    char missing_[64];                                                                                         \
    int ncfg_ = test_configs(cfg_, missing_, sizeof missing_);                                                 \
    CHECK(ncfg_ >= 2);                                                                                         \
    for (int ci_ = 0; ci_ < ncfg_; ci_++)                                                                      \
        for (int once_ = 1; once_;)                                                                            \
            for (emu2_backend *be = test_open(&cfg_[ci_]); once_; once_ = 0, emu2_backend_close(be))           \
            for (const char *cfgname = cfg_[ci_].name; cfgname; cfgname = NULL)

static const size_t widths[] = {1, 7, 37, 1792};

/* ---------------------------------------------------------------- norms */

static double norm_case(emu2_backend *be, int layer, size_t rows, size_t n, emu2_dtype wdt, int with_bias, float offset)
{
    float *x = malloc(rows * n * 4), *y = malloc(rows * n * 4), *wv = malloc(n * 4), *bv = malloc(n * 4);
    double *ref = malloc(rows * n * 8);
    fill_uniform(x, rows * n, offset - 1, offset + 1);
    fill_uniform(wv, n, -2, 2);
    fill_uniform(bv, n, -1, 1);
    test_weight tw, tb;
    test_weight_make(&tw, wdt, 1, (int64_t)n, 0, wv);
    test_weight_make(&tb, test_float_dtypes[(wdt + 1) % 3], 1, (int64_t)n, 0, bv);
    const double eps = 1e-6;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        double mean = 0, var = 0;
        for (size_t i = 0; i < n; i++)
            mean += xr[i];
        mean = layer ? mean / (double)n : 0; /* RMSNorm: no centering */
        for (size_t i = 0; i < n; i++)
            var += (xr[i] - mean) * (xr[i] - mean);
        double inv = 1.0 / sqrt(var / (double)n + eps);
        for (size_t i = 0; i < n; i++)
            ref[r * n + i] = (xr[i] - mean) * inv * wv[i] + (layer && with_bias ? bv[i] : 0);
    }
    emu2_error err = {0};
    emu2_status st = layer ? be->ops->layernorm(be, rows, n, x, &tw.view, with_bias ? &tb.view : NULL, (float)eps,
                                                y, &err)
                           : be->ops->rmsnorm(be, rows, n, x, &tw.view, (float)eps, y, &err);
    double e = st == EMU2_OK ? max_rel_err(y, ref, NULL, rows * n, NULL) : INFINITY;
    if (st != EMU2_OK)
        printf("    %s\n", err.message);
    test_weight_free(&tw), test_weight_free(&tb);
    free(x), free(y), free(wv), free(bv), free(ref);
    return e;
}

TEST(norms_match_reference)
{
    FOR_EACH_CONFIG(be, name)
    {
        CHECK(be != NULL);
        for (size_t wi = 0; wi < 4; wi++)
            for (int d = 0; d < 3; d++)
                for (int layer = 0; layer < 2; layer++) {
                    /* offset 50: a large mean that naive one-pass variance would get wrong */
                    float offset = wi % 2 ? 50.0f : 0.0f;
                    double e = norm_case(be, layer, 5, widths[wi], test_float_dtypes[d], d != 1, offset);
                    CHECKF(e <= TOL_F32, "%s %s n=%zu w=%s: rel err %.3g", name, layer ? "layernorm" : "rmsnorm",
                           widths[wi], emu2_dtype_name(test_float_dtypes[d]), e);
                }
    }
}

/* ---------------------------------------------------------------- activations and add */

TEST(activations_and_add_match_reference)
{
    size_t n = 10007;
    float *a = malloc(n * 4), *b = malloc(n * 4), *y = malloc(n * 4);
    double *ref = malloc(n * 8);
    FOR_EACH_CONFIG(be, name)
    {
        CHECK(be != NULL);
        fill_uniform(a, n, -12, 12);
        fill_uniform(b, n, -3, 3);
        CHECK(be->ops->gelu(be, n, a, y, NULL) == EMU2_OK);
        for (size_t i = 0; i < n; i++)
            ref[i] = 0.5 * a[i] * (1.0 + erf(a[i] / sqrt(2.0)));
        double e = max_rel_err(y, ref, NULL, n, NULL);
        CHECKF(e <= TOL_F32, "%s gelu: rel err %.3g", name, e);

        CHECK(be->ops->silu_mul(be, n, a, b, y, NULL) == EMU2_OK);
        for (size_t i = 0; i < n; i++)
            ref[i] = a[i] / (1.0 + exp(-(double)a[i])) * b[i];
        e = max_rel_err(y, ref, NULL, n, NULL);
        CHECKF(e <= TOL_F32, "%s silu_mul: rel err %.3g", name, e);

        for (size_t i = 0; i < n; i++)
            ref[i] = (double)a[i] + b[i];
        CHECK(be->ops->add(be, n, a, b, a, NULL) == EMU2_OK); /* in place */
        e = max_rel_err(a, ref, NULL, n, NULL);
        CHECKF(e <= TOL_F32, "%s add in place: rel err %.3g", name, e);

        for (size_t i = 0; i < n; i++) /* in-place gelu too */
            ref[i] = 0.5 * a[i] * (1.0 + erf(a[i] / sqrt(2.0)));
        CHECK(be->ops->gelu(be, n, a, a, NULL) == EMU2_OK);
        e = max_rel_err(a, ref, NULL, n, NULL);
        CHECKF(e <= TOL_F32, "%s gelu in place: rel err %.3g", name, e);
    }
    free(a), free(b), free(y), free(ref);
}

/* ---------------------------------------------------------------- softmax */

TEST(softmax_and_log_softmax_match_reference)
{
    static const size_t ns[] = {1, 7, 32272};
    FOR_EACH_CONFIG(be, name)
    {
        CHECK(be != NULL);
        for (size_t ni = 0; ni < 3; ni++) {
            size_t rows = 3, n = ns[ni];
            float *x = malloc(rows * n * 4), *y = malloc(rows * n * 4);
            double *ref = malloc(rows * n * 8), *lref = malloc(rows * n * 8);
            fill_uniform(x, rows * n, -30, 30);
            x[0] = 88.0f; /* exp would overflow without the max subtracted */
            for (size_t r = 0; r < rows; r++) {
                double max = -INFINITY, sum = 0;
                for (size_t i = 0; i < n; i++)
                    max = fmax(max, x[r * n + i]);
                for (size_t i = 0; i < n; i++)
                    sum += exp(x[r * n + i] - max);
                for (size_t i = 0; i < n; i++) {
                    ref[r * n + i] = exp(x[r * n + i] - max) / sum;
                    lref[r * n + i] = x[r * n + i] - max - log(sum);
                }
            }
            int ok = be->ops->softmax(be, rows, n, x, y, NULL) == EMU2_OK;
            /* probabilities: relative to each value itself (tiny ones matter for sampling) */
            double e1 = 0;
            for (size_t i = 0; ok && i < rows * n; i++)
                e1 = fmax(e1, fabs(y[i] - ref[i]) / (ref[i] + 1e-37));
            ok = ok && be->ops->log_softmax(be, rows, n, x, x, NULL) == EMU2_OK; /* in place */
            double e2 = max_rel_err(x, lref, NULL, rows * n, NULL);
            free(x), free(y), free(ref), free(lref);
            CHECK(ok);
            CHECKF(e1 <= 1e-5, "%s softmax n=%zu: rel err %.3g", name, n, e1);
            CHECKF(e2 <= TOL_F32, "%s log_softmax n=%zu: rel err %.3g", name, n, e2);
        }
    }
}

/* The SIMD exp behind attention's softmax, on every path: relative error against double exp over
 * the whole range softmax feeds it (x - max in [-100, 0]), exact zeros for -inf and underflow. */
TEST(kernel_exp_sum_is_accurate)
{
    static const emu2_cpu_isa isas[] = {EMU2_ISA_SCALAR, EMU2_ISA_AVX2, EMU2_ISA_AVX512};
    size_t n = 4099;
    float *x = malloc(n * 4), *y = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        x[i] = -100.0f + 100.0f * (float)i / (float)(n - 1) + 3.0f; /* x - max in [-100, 0] with max 3 */
    x[7] = -INFINITY;
    for (size_t ii = 0; ii < 3; ii++) {
        const cpu_kernels *k = cpu_kernels_select(isas[ii]);
        if (k->isa != isas[ii])
            continue; /* this CPU lacks the path */
        memcpy(y, x, n * 4);
        float sum = k->exp_sum(y, n, 3.0f);
        double want_sum = 0, worst = 0;
        for (size_t i = 0; i < n; i++) {
            double e = exp((double)x[i] - 3.0);
            want_sum += e;
            if (e > 1e-37)
                worst = fmax(worst, fabs(y[i] - e) / e);
            else if (y[i] > 1e-37f || y[i] < 0 || isnan(y[i]))
                worst = INFINITY;
        }
        double sum_err = fabs(sum - want_sum) / want_sum;
        CHECKF(worst <= 1e-6 && y[7] == 0.0f, "%s: exp rel err %.3g, exp(-inf)=%g", emu2_cpu_isa_name(isas[ii]),
               worst, y[7]);
        CHECKF(sum_err <= 1e-5, "%s: sum rel err %.3g", emu2_cpu_isa_name(isas[ii]), sum_err);
    }
    free(x), free(y);
}

/* GELU kernels per element over [-20, 20]: relative accuracy where the value matters, tiny absolute
 * error in the far negative tail (where every version loses relative accuracy to underflow). */
TEST(kernel_gelu_is_accurate)
{
    static const emu2_cpu_isa isas[] = {EMU2_ISA_SCALAR, EMU2_ISA_AVX2, EMU2_ISA_AVX512};
    size_t n = 40003;
    float *x = malloc(n * 4), *y = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        x[i] = -20.0f + 40.0f * (float)i / (float)(n - 1);
    for (size_t ii = 0; ii < 3; ii++) {
        const cpu_kernels *k = cpu_kernels_select(isas[ii]);
        if (k->isa != isas[ii])
            continue;
        k->gelu(x, y, n);
        double worst = 0;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            double v = x[i], g = 0.5 * v * erfc(-v / sqrt(2.0));
            double e = fabs(y[i] - g) / (4e-6 * fabs(g) + 1e-12); /* <= 1 passes */
            if (!(e <= worst))
                worst = e, at = i;
        }
        CHECKF(worst <= 1.0, "%s: gelu(%g) = %.9g, want %.9g", emu2_cpu_isa_name(isas[ii]), x[at], y[at],
               0.5 * x[at] * erfc(-x[at] / sqrt(2.0)));
    }
    free(x), free(y);
}

/* ---------------------------------------------------------------- embedding and row copies */

TEST(embedding_gathers_rows_of_any_dtype)
{
    size_t V = 50, D = 37, n = 9;
    int32_t ids[9] = {0, 49, 3, 3, 17, 1, 48, 0, 25};
    FOR_EACH_CONFIG(be, name)
    {
        CHECK(be != NULL);
        for (int d = 0; d < 3; d++) {
            float *tv = malloc(V * D * 4), *out = malloc(n * D * 4);
            fill_uniform(tv, V * D, -5, 5);
            test_weight tw;
            test_weight_make(&tw, test_float_dtypes[d], 2, (int64_t)V, (int64_t)D, tv);
            int ok = be->ops->embedding(be, n, ids, &tw.view, out, NULL) == EMU2_OK;
            for (size_t i = 0; ok && i < n; i++)
                ok = memcmp(out + i * D, tv + (size_t)ids[i] * D, D * 4) == 0; /* exact: conversion is exact */
            emu2_error err = {0};
            int32_t bad[2] = {1, 50};
            emu2_status st = be->ops->embedding(be, 2, bad, &tw.view, out, &err);
            test_weight_free(&tw);
            free(tv), free(out);
            CHECKF(ok, "%s embedding %s: wrong rows", name, emu2_dtype_name(test_float_dtypes[d]));
            CHECKF(st == EMU2_ERR_INVALID_ARGUMENT && strstr(err.message, "id 50"), "%s: %s", name, err.message);
        }
    }
}

TEST(copy_rows_scatters_and_gathers)
{
    emu2_backend *be = NULL;
    CHECK(emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK);
    float dst[6 * 5], src[3 * 4];
    for (int i = 0; i < 30; i++)
        dst[i] = (float)-i;
    for (int i = 0; i < 12; i++)
        src[i] = (float)(100 + i);
    /* scatter (splice): src rows 0,1,2 -> dst rows 4,1,2; only 3 of the 5 columns */
    int32_t rows[3] = {4, 1, 2};
    emu2_error err = {0};
    CHECK(be->ops->copy_rows(be, 3, 3, src, 4, 3, NULL, dst, 5, 6, rows, &err) == EMU2_OK);
    for (int r = 0; r < 6; r++)
        for (int c = 0; c < 5; c++) {
            float want = (float)-(r * 5 + c);
            for (int i = 0; i < 3; i++)
                if (rows[i] == r && c < 3)
                    want = src[i * 4 + c];
            CHECKF(dst[r * 5 + c] == want, "scatter: dst[%d][%d]=%g want %g", r, c, dst[r * 5 + c], want);
        }
    /* gather (beam reorder): out row i = dst row pick[i] */
    int32_t pick[4] = {5, 5, 0, 3};
    float out[4 * 5];
    CHECK(be->ops->copy_rows(be, 4, 5, dst, 5, 6, pick, out, 5, 4, NULL, &err) == EMU2_OK);
    for (int i = 0; i < 4; i++)
        CHECKF(memcmp(out + i * 5, dst + pick[i] * 5, 5 * sizeof(float)) == 0, "gather: row %d", i);
    /* bad indices, too many rows, overlap */
    rows[2] = 6;
    CHECK(be->ops->copy_rows(be, 3, 3, src, 4, 3, NULL, dst, 5, 6, rows, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(err.message, "destination row 6") != NULL, "%s", err.message);
    pick[0] = -1;
    CHECK(be->ops->copy_rows(be, 4, 5, dst, 5, 6, pick, out, 5, 4, NULL, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(err.message, "source row -1") != NULL, "%s", err.message);
    CHECK(be->ops->copy_rows(be, 4, 3, src, 4, 3, NULL, dst, 5, 6, NULL, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(be->ops->copy_rows(be, 2, 5, dst, 5, 2, NULL, dst + 10, 5, 2, NULL, &err) == EMU2_OK);
    CHECK(be->ops->copy_rows(be, 2, 5, dst, 5, 3, NULL, dst + 10, 5, 2, NULL, &err) == EMU2_ERR_INVALID_ARGUMENT);
    emu2_backend_close(be);
}

/* ---------------------------------------------------------------- pooling */

/* PyTorch avg_pool2d(k, stride k) on a [C, H, W] array, floor mode. */
static void ref_pool(const double *chw, size_t C, size_t H, size_t W, size_t k, double *out)
{
    size_t OH = H / k, OW = W / k;
    for (size_t c = 0; c < C; c++)
        for (size_t oy = 0; oy < OH; oy++)
            for (size_t ox = 0; ox < OW; ox++) {
                double s = 0;
                for (size_t dy = 0; dy < k; dy++)
                    for (size_t dx = 0; dx < k; dx++)
                        s += chw[(c * H + oy * k + dy) * W + ox * k + dx];
                out[(c * OH + oy) * OW + ox] = s / (double)(k * k);
            }
}

TEST(avgpool2d_matches_reference_in_both_layouts)
{
    static const size_t shapes[][4] = {{5, 32, 32, 4}, {3, 32, 32, 2}, {4, 7, 9, 2}, {1792, 8, 8, 4}, {2, 3, 3, 3}};
    FOR_EACH_CONFIG(be, name)
    {
        CHECK(be != NULL);
        for (size_t si = 0; si < 5; si++) {
            size_t C = shapes[si][0], H = shapes[si][1], W = shapes[si][2], k = shapes[si][3];
            size_t OH = H / k, OW = W / k;
            float *tok = malloc(H * W * C * 4), *chw = malloc(H * W * C * 4);
            float *yt = malloc(OH * OW * C * 4), *yc = malloc(OH * OW * C * 4);
            double *dchw = malloc(H * W * C * 8), *ref = malloc(OH * OW * C * 8), *reft = malloc(OH * OW * C * 8);
            fill_uniform(tok, H * W * C, -4, 4);
            for (size_t p = 0; p < H * W; p++) /* the ViT's [H*W, C] rows, permuted to [C, H, W] */
                for (size_t c = 0; c < C; c++)
                    dchw[c * H * W + p] = chw[c * H * W + p] = tok[p * C + c];
            ref_pool(dchw, C, H, W, k, ref);
            for (size_t q = 0; q < OH * OW; q++)
                for (size_t c = 0; c < C; c++)
                    reft[q * C + c] = ref[c * OH * OW + q];
            int ok = be->ops->avgpool2d(be, EMU2_GRID_TOKEN_MAJOR, C, H, W, k, tok, yt, NULL) == EMU2_OK &&
                     be->ops->avgpool2d(be, EMU2_GRID_CHANNEL_MAJOR, C, H, W, k, chw, yc, NULL) == EMU2_OK;
            double e1 = ok ? max_rel_err(yt, reft, NULL, OH * OW * C, NULL) : INFINITY;
            double e2 = ok ? max_rel_err(yc, ref, NULL, OH * OW * C, NULL) : INFINITY;
            free(tok), free(chw), free(yt), free(yc), free(dchw), free(ref), free(reft);
            CHECKF(e1 <= TOL_F32 && e2 <= TOL_F32, "%s C=%zu %zux%zu k=%zu: rel err %.3g / %.3g", name, C, H, W, k,
                   e1, e2);
        }
    }
    emu2_backend *be = NULL;
    CHECK(emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK);
    float x[4], y[4];
    emu2_status st = be->ops->avgpool2d(be, EMU2_GRID_TOKEN_MAJOR, 1, 2, 2, 3, x, y, NULL);
    emu2_backend_close(be);
    CHECK(st == EMU2_ERR_INVALID_ARGUMENT);
}

/* ---------------------------------------------------------------- patchify (+ linear = conv) */

/* A stride-p convolution with bias, computed directly in double, against patchify + linear. */
TEST(patchify_plus_linear_is_the_patch_convolution)
{
    static const size_t shapes[][4] = {{3, 28, 28, 14}, {3, 30, 29, 14}, {2, 9, 6, 3}}; /* C H W p; 2nd drops edges */
    FOR_EACH_CONFIG(be, name)
    {
        CHECK(be != NULL);
        for (size_t si = 0; si < 3; si++) {
            size_t C = shapes[si][0], H = shapes[si][1], W = shapes[si][2], p = shapes[si][3], O = 5;
            size_t PH = H / p, PW = W / p, K = C * p * p;
            float *img = malloc(C * H * W * 4), *wv = malloc(O * K * 4), *bv = malloc(O * 4);
            float *rows = malloc(PH * PW * K * 4), *y = malloc(PH * PW * O * 4);
            double *ref = malloc(PH * PW * O * 8), *mag = malloc(PH * PW * O * 8);
            fill_uniform(img, C * H * W, -1, 1);
            fill_uniform(wv, O * K, -1, 1);
            fill_uniform(bv, O, -1, 1);
            for (size_t py = 0; py < PH; py++)
                for (size_t px = 0; px < PW; px++)
                    for (size_t o = 0; o < O; o++) {
                        double s = bv[o], g = fabs(bv[o]);
                        for (size_t c = 0; c < C; c++)
                            for (size_t ky = 0; ky < p; ky++)
                                for (size_t kx = 0; kx < p; kx++) {
                                    double t = (double)wv[((o * C + c) * p + ky) * p + kx] *
                                               img[(c * H + py * p + ky) * W + px * p + kx];
                                    s += t;
                                    g += fabs(t);
                                }
                        ref[(py * PW + px) * O + o] = s;
                        mag[(py * PW + px) * O + o] = g;
                    }
            emu2_op_weight w = {.w = {.dtype = EMU2_DT_F32, .ndim = 2, .shape = {(int64_t)O, (int64_t)K},
                                      .data = wv, .nbytes = O * K * 4}};
            emu2_tensor_view bias = {.dtype = EMU2_DT_F32, .ndim = 1, .shape = {(int64_t)O}, .data = bv,
                                     .nbytes = O * 4};
            int ok = be->ops->patchify(be, C, H, W, p, img, rows, NULL) == EMU2_OK &&
                     be->ops->linear(be, PH * PW, K, O, rows, K, &w, &bias, y, O, NULL) == EMU2_OK;
            double e = ok ? max_rel_err(y, ref, mag, PH * PW * O, NULL) : INFINITY;
            free(img), free(wv), free(bv), free(rows), free(y), free(ref), free(mag);
            CHECKF(e <= TOL_F32, "%s C=%zu %zux%zu p=%zu: rel err %.3g", name, C, H, W, p, e);
        }
    }
}

/* ---------------------------------------------------------------- backend selection, memory, pool */

TEST(backend_open_by_device_name)
{
    emu2_backend *be = NULL;
    emu2_error err = {0};
    CHECK(emu2_backend_open("cpu", NULL, &be, &err) == EMU2_OK);
    CHECK(strcmp(be->ops->name, "cpu") == 0 && be->threads >= 1);
    float *buf = be->ops->alloc(be, 1000, &err);
    CHECK(buf != NULL && ((uintptr_t)buf % 64) == 0);
    float host[3] = {1, 2, 3}, back[3] = {0};
    CHECK(be->ops->upload(be, buf, host, 3, &err) == EMU2_OK);
    CHECK(be->ops->download(be, back, buf, 3, &err) == EMU2_OK && back[2] == 3.0f);
    CHECK(be->ops->sync(be, &err) == EMU2_OK);
    be->ops->free(be, buf);
    emu2_backend_close(be);

    CHECK(emu2_backend_open("auto", NULL, &be, &err) == EMU2_OK); /* falls back to the CPU without CUDA */
    CHECK(be != NULL);
    emu2_backend_close(be);

    be = NULL;
    emu2_status st = emu2_backend_open("tpu", NULL, &be, &err);
    CHECKF(st == EMU2_ERR_INVALID_ARGUMENT && be == NULL && strstr(err.message, "tpu"), "%s", err.message);
    st = emu2_backend_open("cuda:0", NULL, &be, &err);
    if (st == EMU2_OK) { /* a CUDA backend is installed here: that is fine too */
        emu2_backend_close(be);
    } else {
        CHECKF(st == EMU2_ERR_UNSUPPORTED && strstr(err.message, "libemu2_cuda.so"), "%s", err.message);
    }

    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = -2;
    CHECK(emu2_cpu_backend_open(&o, &be, &err) == EMU2_ERR_INVALID_ARGUMENT);
    o.threads = 2;
    o.max_isa = EMU2_ISA_SCALAR;
    CHECK(emu2_cpu_backend_open(&o, &be, &err) == EMU2_OK);
    CHECK(be->isa == EMU2_ISA_SCALAR && be->threads == 2);
    emu2_backend_close(be);

    /* with max_isa AUTO, $EMU2_CPU_ISA caps the path */
    o.max_isa = EMU2_ISA_AUTO;
    setenv("EMU2_CPU_ISA", "scalar", 1);
    st = emu2_cpu_backend_open(&o, &be, &err);
    unsetenv("EMU2_CPU_ISA");
    CHECK(st == EMU2_OK);
    emu2_cpu_isa isa = be->isa;
    emu2_backend_close(be);
    CHECKF(isa == EMU2_ISA_SCALAR, "isa=%s", emu2_cpu_isa_name(isa));
}

struct count_ctx {
    atomic_int *hits;
    atomic_int bad_thread;
    int threads;
};

static void count_task(void *p, size_t task, int thread)
{
    struct count_ctx *c = p;
    atomic_fetch_add(&c->hits[task], 1);
    if (thread < 0 || thread >= c->threads)
        atomic_store(&c->bad_thread, 1);
}

TEST(thread_pool_runs_every_task_once)
{
    for (int threads = 1; threads <= 4; threads++) {
        cpu_pool *pool = NULL;
        CHECK(cpu_pool_create(threads, &pool, NULL) == EMU2_OK);
        for (size_t n = 0; n < 300; n += 37) {
            atomic_int *hits = calloc(n + 1, sizeof *hits);
            struct count_ctx c = {hits, 0, threads};
            cpu_pool_run(pool, n, count_task, &c);
            int ok = !atomic_load(&c.bad_thread);
            for (size_t i = 0; i < n; i++)
                ok = ok && atomic_load(&hits[i]) == 1;
            free(hits);
            if (!ok)
                cpu_pool_destroy(pool);
            CHECKF(ok, "threads=%d tasks=%zu: a task ran twice, never, or on a bad thread index", threads, n);
        }
        cpu_pool_destroy(pool);
    }
    cpu_pool *pool = NULL;
    CHECK(cpu_pool_create(0, &pool, NULL) == EMU2_ERR_INVALID_ARGUMENT && pool == NULL);
}

struct sleepy_ctx {
    atomic_int workers_ran;
};

static void sleepy_task(void *p, size_t task, int thread)
{
    (void)task;
    struct sleepy_ctx *c = p;
    struct timespec ts = {0, 2000000}; /* 2 ms: the caller cannot take every task before a worker wakes */
    nanosleep(&ts, NULL);
    if (thread != 0)
        atomic_fetch_add(&c->workers_ran, 1);
}

/* The workers really take part (the caller alone would also give right answers). */
TEST(thread_pool_workers_take_tasks)
{
    cpu_pool *pool = NULL;
    CHECK(cpu_pool_create(3, &pool, NULL) == EMU2_OK);
    struct sleepy_ctx c = {0};
    cpu_pool_run(pool, 12, sleepy_task, &c);
    cpu_pool_destroy(pool);
    CHECKF(atomic_load(&c.workers_ran) > 0, "no task ran on a worker thread");
}

int main(void)
{
    RUN(norms_match_reference);
    RUN(activations_and_add_match_reference);
    RUN(softmax_and_log_softmax_match_reference);
    RUN(kernel_exp_sum_is_accurate);
    RUN(kernel_gelu_is_accurate);
    RUN(embedding_gathers_rows_of_any_dtype);
    RUN(copy_rows_scatters_and_gathers);
    RUN(avgpool2d_matches_reference_in_both_layouts);
    RUN(patchify_plus_linear_is_the_patch_convolution);
    RUN(backend_open_by_device_name);
    RUN(thread_pool_runs_every_task_once);
    RUN(thread_pool_workers_take_tasks);
    return check_finish();
}
