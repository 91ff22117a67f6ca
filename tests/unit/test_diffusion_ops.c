/* test_diffusion_ops.c: the CPU diffusion ops (conv2d, group_norm, upsample_nearest, silu, mul,
 * add_row_vector) against double-precision references, on every ISA path this CPU has x 1 and 3
 * threads and every weight dtype; argument errors; and the "op not available on backend" check the
 * UNet/VAE make before running. */
#include "check.h"
#include "diffusion/blocks.h"
#include "test_ops_util.h"

static test_config cfgs[8];
static int n_cfgs;

/* A conv weight [O, C, k, k] in dtype dt (values rounded in place). */
static void conv_weight(test_weight *tw, emu2_dtype dt, size_t O, size_t C, size_t k, float *values)
{
    test_weight_make(tw, dt, 2, (int64_t)O, (int64_t)(C * k * k), values);
    tw->view.ndim = 4;
    tw->view.shape[1] = (int64_t)C;
    tw->view.shape[2] = tw->view.shape[3] = (int64_t)k;
}

/* y[(oy*Wo+ox), o] reference in double, token-major x. */
static void conv_ref(size_t C, size_t H, size_t W, const float *x, size_t O, size_t k, size_t s, size_t p,
                     const float *w, const float *b, double *ref, double *mag)
{
    size_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
    for (size_t oy = 0; oy < Ho; oy++)
        for (size_t ox = 0; ox < Wo; ox++)
            for (size_t o = 0; o < O; o++) {
                double acc = b ? b[o] : 0, m = b ? fabs(b[o]) : 0;
                for (size_t c = 0; c < C; c++)
                    for (size_t ky = 0; ky < k; ky++)
                        for (size_t kx = 0; kx < k; kx++) {
                            long iy = (long)(oy * s + ky) - (long)p, ix = (long)(ox * s + kx) - (long)p;
                            if (iy < 0 || ix < 0 || iy >= (long)H || ix >= (long)W)
                                continue;
                            double t = (double)x[((size_t)iy * W + (size_t)ix) * C + c] *
                                       w[((o * C + c) * k + ky) * k + kx];
                            acc += t;
                            m += fabs(t);
                        }
                ref[(oy * Wo + ox) * O + o] = acc;
                mag[(oy * Wo + ox) * O + o] = m;
            }
}

static int conv_case(emu2_backend *be, emu2_dtype dt, size_t C, size_t H, size_t W, size_t O, size_t k, size_t s,
                     size_t p, int with_bias)
{
    size_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1, ny = Ho * Wo * O;
    float *x = malloc(H * W * C * sizeof *x), *w = malloc(O * C * k * k * sizeof *w), *b = malloc(O * sizeof *b);
    float *y = malloc(ny * sizeof *y);
    double *ref = malloc(ny * sizeof *ref), *mag = malloc(ny * sizeof *mag);
    fill_uniform(x, H * W * C, -1, 1);
    fill_uniform(w, O * C * k * k, -1, 1);
    fill_uniform(b, O, -1, 1);
    test_weight tw, tb;
    conv_weight(&tw, dt, O, C, k, w);
    test_weight_make(&tb, dt, 1, (int64_t)O, 0, b);
    emu2_op_weight W4;
    memset(&W4, 0, sizeof W4);
    W4.w = tw.view;
    emu2_error err;
    int ok = be->ops->conv2d(be, C, H, W, x, &W4, with_bias ? &tb.view : NULL, k, s, p, y, &err) == EMU2_OK;
    if (!ok)
        printf("    conv2d: %s\n", err.message);
    conv_ref(C, H, W, x, O, k, s, p, w, with_bias ? b : NULL, ref, mag);
    double e = ok ? max_rel_err(y, ref, mag, ny, NULL) : 1;
    if (e > TOL_F32) {
        printf("    conv2d %s C%zu %zux%zu O%zu k%zu s%zu p%zu: rel err %.3g\n", emu2_dtype_name(dt), C, H, W, O, k, s,
               p, e);
        ok = 0;
    }
    test_weight_free(&tw);
    test_weight_free(&tb);
    free(x);
    free(w);
    free(b);
    free(y);
    free(ref);
    free(mag);
    return ok;
}

TEST(conv2d_matches_reference)
{
    const size_t g[][7] = {{3, 5, 7, 4, 3, 1, 1}, {5, 8, 6, 3, 3, 2, 1}, {4, 3, 3, 6, 1, 1, 0},
                           {2, 7, 5, 2, 3, 2, 1}, {1, 1, 1, 2, 3, 1, 1}, {6, 4, 9, 5, 3, 1, 0}};
    for (int c = 0; c < n_cfgs; c++) {
        emu2_backend *be = test_open(&cfgs[c]);
        CHECK(be);
        for (size_t d = 0; d < 3; d++)
            for (size_t i = 0; i < sizeof g / sizeof *g; i++)
                if (!conv_case(be, test_float_dtypes[d], g[i][0], g[i][1], g[i][2], g[i][3], g[i][4], g[i][5], g[i][6],
                               (int)(i % 2 == 0))) {
                    emu2_backend_close(be);
                    CHECKF(0, "%s", cfgs[c].name);
                }
        emu2_backend_close(be);
    }
}

TEST(conv2d_large_image_in_chunks)
{
    /* 96x96 pixels x 64 channels: more patch rows than one im2col chunk holds */
    test_config c = cfgs[n_cfgs - 1];
    emu2_backend *be = test_open(&c);
    CHECK(be);
    int ok = conv_case(be, EMU2_DT_BF16, 64, 96, 96, 8, 3, 1, 1, 1);
    emu2_backend_close(be);
    CHECK(ok);
}

static int gn_case(emu2_backend *be, emu2_dtype dt, size_t rows, size_t C, size_t G, int silu, int with_bias)
{
    size_t n = rows * C, cg = C / G;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *w = malloc(C * sizeof *w), *b = malloc(C * sizeof *b);
    double *ref = malloc(n * sizeof *ref);
    fill_uniform(x, n, -3, 5);
    fill_uniform(w, C, 0.5f, 1.5f);
    fill_uniform(b, C, -1, 1);
    test_weight tw, tb;
    test_weight_make(&tw, dt, 1, (int64_t)C, 0, w);
    test_weight_make(&tb, dt, 1, (int64_t)C, 0, b);
    for (size_t g = 0; g < G; g++) {
        double s = 0, ss = 0;
        for (size_t r = 0; r < rows; r++)
            for (size_t c = g * cg; c < (g + 1) * cg; c++)
                s += x[r * C + c];
        double mean = s / (double)(rows * cg);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = g * cg; c < (g + 1) * cg; c++)
                ss += (x[r * C + c] - mean) * (x[r * C + c] - mean);
        double inv = 1.0 / sqrt(ss / (double)(rows * cg) + 1e-6);
        for (size_t r = 0; r < rows; r++)
            for (size_t c = g * cg; c < (g + 1) * cg; c++) {
                double v = (x[r * C + c] - mean) * inv * w[c] + (with_bias ? b[c] : 0);
                ref[r * C + c] = silu ? v / (1 + exp(-v)) : v;
            }
    }
    emu2_error err;
    int ok = be->ops->group_norm(be, rows, C, G, x, &tw.view, with_bias ? &tb.view : NULL, 1e-6f, silu, y, &err) ==
             EMU2_OK;
    double e = ok ? max_rel_err(y, ref, NULL, n, NULL) : 1;
    if (e > TOL_F32) {
        printf("    group_norm %s rows %zu C %zu G %zu silu %d: rel err %.3g\n", emu2_dtype_name(dt), rows, C, G, silu, e);
        ok = 0;
    }
    /* in place gives the same numbers */
    ok = ok && be->ops->group_norm(be, rows, C, G, x, &tw.view, with_bias ? &tb.view : NULL, 1e-6f, silu, x, &err) ==
                   EMU2_OK &&
         !memcmp(x, y, n * sizeof *x);
    test_weight_free(&tw);
    test_weight_free(&tb);
    free(x);
    free(y);
    free(w);
    free(b);
    free(ref);
    return ok;
}

TEST(group_norm_matches_reference)
{
    for (int c = 0; c < n_cfgs; c++) {
        emu2_backend *be = test_open(&cfgs[c]);
        CHECK(be);
        int ok = 1;
        for (size_t d = 0; d < 3 && ok; d++)
            ok = gn_case(be, test_float_dtypes[d], 37, 12, 3, 0, 1) && gn_case(be, test_float_dtypes[d], 5, 32, 8, 1, 1) &&
                 gn_case(be, test_float_dtypes[d], 1, 16, 16, 1, 0) && gn_case(be, test_float_dtypes[d], 300, 24, 4, 1, 1);
        emu2_backend_close(be);
        CHECKF(ok, "%s", cfgs[c].name);
    }
}

TEST(small_ops_match_reference)
{
    emu2_backend *be = test_open(&cfgs[n_cfgs - 1]);
    CHECK(be);
    emu2_error err;
    float x[3 * 5 * 2], up[7 * 9 * 2], a[40], b2[40], y[40], v[8];
    fill_uniform(x, 30, -2, 2);
    int ok = be->ops->upsample_nearest(be, 2, 3, 5, 6, 10, x, up, &err) == EMU2_OK;
    for (size_t oy = 0; oy < 6 && ok; oy++)
        for (size_t ox = 0; ox < 10; ox++)
            for (size_t c = 0; c < 2; c++)
                ok = ok && up[(oy * 10 + ox) * 2 + c] == x[((oy / 2) * 5 + ox / 2) * 2 + c];
    CHECKF(ok, "upsample x2");
    ok = be->ops->upsample_nearest(be, 2, 3, 5, 7, 9, x, up, &err) == EMU2_OK;
    for (size_t oy = 0; oy < 7 && ok; oy++)
        for (size_t ox = 0; ox < 9; ox++)
            ok = ok && up[(oy * 9 + ox) * 2 + 1] == x[((oy * 3 / 7) * 5 + ox * 5 / 9) * 2 + 1];
    CHECKF(ok, "upsample to 7x9");
    fill_uniform(a, 40, -8, 8);
    fill_uniform(b2, 40, -2, 2);
    fill_uniform(v, 8, -1, 1);
    CHECK(be->ops->silu(be, 40, a, y, &err) == EMU2_OK);
    for (int i = 0; i < 40; i++)
        CHECKF(fabs(y[i] - a[i] / (1 + exp(-(double)a[i]))) <= 1e-6 * (1 + fabs(a[i])), "silu[%d]", i);
    CHECK(be->ops->mul(be, 40, a, b2, y, &err) == EMU2_OK);
    for (int i = 0; i < 40; i++)
        CHECK(y[i] == a[i] * b2[i]);
    CHECK(be->ops->add_row_vector(be, 5, 8, a, v, y, &err) == EMU2_OK);
    for (int i = 0; i < 40; i++)
        CHECK(y[i] == a[i] + v[i % 8]);
    emu2_backend_close(be);
}

TEST(bad_arguments_are_errors)
{
    emu2_backend *be = test_open(&cfgs[0]);
    CHECK(be);
    emu2_error err;
    float x[64] = {0}, y[64], w[64] = {0};
    test_weight tw;
    conv_weight(&tw, EMU2_DT_F32, 2, 3, 3, w);
    emu2_op_weight W4;
    memset(&W4, 0, sizeof W4);
    W4.w = tw.view;
    int ok = be->ops->conv2d(be, 4, 2, 2, x, &W4, NULL, 3, 1, 1, y, &err) == EMU2_ERR_MISMATCH; /* C 4 vs 3 */
    ok = ok && be->ops->conv2d(be, 3, 2, 2, x, &W4, NULL, 3, 0, 1, y, &err) == EMU2_ERR_INVALID_ARGUMENT;
    ok = ok && be->ops->conv2d(be, 3, 1, 1, x, &W4, NULL, 3, 1, 0, y, &err) == EMU2_ERR_INVALID_ARGUMENT;
    ok = ok && be->ops->conv2d(be, 3, 2, 2, NULL, &W4, NULL, 3, 1, 1, y, &err) == EMU2_ERR_INVALID_ARGUMENT;
    test_weight tg;
    test_weight_make(&tg, EMU2_DT_F32, 1, 6, 0, w);
    ok = ok && be->ops->group_norm(be, 2, 6, 4, x, &tg.view, NULL, 1e-6f, 0, y, &err) == EMU2_ERR_INVALID_ARGUMENT;
    ok = ok && be->ops->group_norm(be, 2, 8, 4, x, &tg.view, NULL, 1e-6f, 0, y, &err) == EMU2_ERR_MISMATCH;
    ok = ok && be->ops->upsample_nearest(be, 0, 2, 2, 4, 4, x, y, &err) == EMU2_ERR_INVALID_ARGUMENT;
    ok = ok && be->ops->silu(be, 0, x, y, &err) == EMU2_ERR_INVALID_ARGUMENT;
    test_weight_free(&tw);
    test_weight_free(&tg);
    emu2_backend_close(be);
    CHECK(ok);
}

TEST(missing_op_is_unsupported)
{
    emu2_backend *be = test_open(&cfgs[0]);
    CHECK(be);
    emu2_error err;
    CHECK(dif_check_ops(be, &err) == EMU2_OK);
    const emu2_ops *real = be->ops;
    emu2_ops partial = *real;
    partial.group_norm = NULL;
    be->ops = &partial;
    emu2_status st = dif_check_ops(be, &err);
    be->ops = real;
    emu2_backend_close(be);
    CHECK(st == EMU2_ERR_UNSUPPORTED);
    CHECKF(strstr(err.message, "op group_norm not available on backend cpu"), "%s", err.message);
}

int main(void)
{
    char missing[64];
    n_cfgs = test_configs(cfgs, missing, sizeof missing);
    if (missing[0])
        printf("note: this CPU lacks %s; those paths are not tested here\n", missing);
    RUN(conv2d_matches_reference);
    RUN(conv2d_large_image_in_chunks);
    RUN(group_norm_matches_reference);
    RUN(small_ops_match_reference);
    RUN(bad_arguments_are_errors);
    RUN(missing_op_is_unsupported);
    return check_finish();
}
