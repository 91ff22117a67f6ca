/* test_ops_linear.c: linear / matmul_nt on every ISA path and thread count against a double
 * reference: odd sizes, M=1 (decode) through the packed path (M >= 8), K across the 1024-column
 * block, N across the 64-row block, every weight and bias dtype, strided rows; f32 weights that
 * the packed path reads in place (K <= 1024, a multiple of 16) with partial 4-row tiles. */
#include "check.h"
#include "test_ops_util.h"

typedef struct lin_case {
    size_t M, K, N, x_pad, y_pad;
} lin_case;

static const lin_case lin_cases[] = {
    {1, 1, 1, 0, 0},    {1, 17, 5, 3, 2},   {1, 100, 33, 0, 0}, {2, 31, 9, 0, 1},     {3, 64, 7, 0, 0},
    {5, 129, 13, 5, 0}, {7, 16, 4, 0, 0},   {8, 33, 65, 0, 0},  {9, 1030, 70, 2, 3},  {13, 8, 3, 0, 0},
    {33, 257, 131, 1, 0}, {64, 2100, 9, 0, 0}, {100, 47, 200, 0, 5},
    /* f32 weights read in place (K <= 1024, a multiple of 16): partial last 4-row tiles, N < 4,
     * two 64-row blocks, K exactly one block */
    {8, 64, 70, 0, 0},  {40, 128, 131, 1, 2}, {12, 1024, 5, 0, 0}, {9, 16, 3, 0, 1},
};

/* Runs one case on one backend; returns the worst relative error (or INFINITY on a failure). */
static double run_case(emu2_backend *be, const lin_case *c, emu2_dtype wdt, emu2_dtype bdt, int use_bias, int *pad_ok)
{
    return test_linear_case(be, c->M, c->K, c->N, c->x_pad, c->y_pad, wdt, bdt, use_bias, NULL, pad_ok, NULL);
}

TEST(linear_matches_reference_on_every_path)
{
    test_config cfg[8];
    char missing[64];
    int ncfg = test_configs(cfg, missing, sizeof missing);
    CHECK(ncfg >= 2);
    if (missing[0])
        printf("    note: this CPU lacks %s; those paths are not covered here\n", missing);
    for (int ci = 0; ci < ncfg; ci++) {
        emu2_backend *be = test_open(&cfg[ci]);
        CHECK(be != NULL);
        for (size_t i = 0; i < sizeof lin_cases / sizeof lin_cases[0]; i++)
            for (size_t d = 0; d < 3; d++) {
                const lin_case *c = &lin_cases[i];
                int use_bias = (i + d) % 2 == 0;
                emu2_dtype bdt = test_float_dtypes[(i + 2 * d) % 3];
                int pad_ok;
                double e = run_case(be, c, test_float_dtypes[d], bdt, use_bias, &pad_ok);
                if (!(e <= TOL_F32) || !pad_ok)
                    emu2_backend_close(be);
                CHECKF(e <= TOL_F32, "%s M=%zu K=%zu N=%zu w=%s bias=%s: rel err %.3g", cfg[ci].name, c->M, c->K,
                       c->N, emu2_dtype_name(test_float_dtypes[d]), use_bias ? emu2_dtype_name(bdt) : "none", e);
                CHECKF(pad_ok, "%s M=%zu K=%zu N=%zu: wrote past N into row padding", cfg[ci].name, c->M, c->K, c->N);
            }
        emu2_backend_close(be);
    }
}

/* All paths must agree closely with each other too (same f32 inputs, different summation order). */
TEST(matmul_nt_matches_reference)
{
    test_config cfg[8];
    char missing[64];
    int ncfg = test_configs(cfg, missing, sizeof missing);
    size_t M = 19, K = 77, N = 23;
    float *a = malloc(M * K * 4), *b = malloc(N * K * 4), *c = malloc(M * N * 4);
    double *ref = malloc(M * N * 8), *mag = malloc(M * N * 8);
    fill_uniform(a, M * K, -3, 3);
    fill_uniform(b, N * K, -3, 3);
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double s = 0, g = 0;
            for (size_t k = 0; k < K; k++) {
                s += (double)a[m * K + k] * b[n * K + k];
                g += fabs((double)a[m * K + k] * b[n * K + k]);
            }
            ref[m * N + n] = s;
            mag[m * N + n] = g;
        }
    int ok = 1;
    for (int ci = 0; ci < ncfg && ok; ci++) {
        emu2_backend *be = test_open(&cfg[ci]);
        emu2_error err = {0};
        ok = be && be->ops->matmul_nt(be, M, K, N, a, b, c, &err) == EMU2_OK &&
             max_rel_err(c, ref, mag, M * N, NULL) <= TOL_F32;
        if (!ok)
            printf("    %s: %s\n", cfg[ci].name, err.message);
        emu2_backend_close(be);
    }
    free(a), free(b), free(c), free(ref), free(mag);
    CHECK(ok);
}

TEST(linear_rejects_bad_arguments)
{
    emu2_backend *be = NULL;
    emu2_error err = {0};
    CHECK(emu2_cpu_backend_open(NULL, &be, &err) == EMU2_OK);
    float x[12] = {0}, y[12] = {0};
    float wdata[12] = {0};
    emu2_op_weight w = {.w = {.dtype = EMU2_DT_F32, .ndim = 2, .shape = {3, 4}, .data = wdata, .nbytes = 48}};
    emu2_status st;
    /* wrong K */
    st = be->ops->linear(be, 1, 5, 3, x, 5, &w, NULL, y, 3, &err);
    CHECKF(st == EMU2_ERR_MISMATCH && strstr(err.message, "weight must be"), "st=%d msg=%s", st, err.message);
    /* unsupported dtype */
    w.w.dtype = EMU2_DT_I8;
    st = be->ops->linear(be, 1, 4, 3, x, 4, &w, NULL, y, 3, &err);
    CHECKF(st == EMU2_ERR_UNSUPPORTED, "st=%d msg=%s", st, err.message);
    w.w.dtype = EMU2_DT_F32;
    /* too few bytes for the shape */
    w.w.nbytes = 40;
    st = be->ops->linear(be, 1, 4, 3, x, 4, &w, NULL, y, 3, &err);
    CHECKF(st == EMU2_ERR_MISMATCH, "st=%d msg=%s", st, err.message);
    w.w.nbytes = 48;
    /* stride narrower than K, output overlapping input, bias of the wrong length */
    CHECK(be->ops->linear(be, 2, 4, 3, x, 3, &w, NULL, y, 3, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(be->ops->linear(be, 1, 4, 3, x, 4, &w, NULL, x + 2, 3, &err) == EMU2_ERR_INVALID_ARGUMENT);
    emu2_tensor_view bias = {.dtype = EMU2_DT_F32, .ndim = 1, .shape = {2}, .data = wdata, .nbytes = 8};
    CHECK(be->ops->linear(be, 1, 4, 3, x, 4, &w, &bias, y, 3, &err) == EMU2_ERR_MISMATCH);
    CHECK(be->ops->linear(be, 0, 4, 3, x, 4, &w, NULL, y, 3, &err) == EMU2_ERR_INVALID_ARGUMENT);
    /* and the good call works */
    CHECK(be->ops->linear(be, 1, 4, 3, x, 4, &w, NULL, y, 3, &err) == EMU2_OK);
    emu2_backend_close(be);
}

int main(void)
{
    RUN(linear_matches_reference_on_every_path);
    RUN(matmul_nt_matches_reference);
    RUN(linear_rejects_bad_arguments);
    return check_finish();
}
