/* test_ops_bf16dot.c: the "bf16" precision's linear (bf16_gemm.c on AVX512_BF16) against a double
 * reference that rounds the activations to bf16 the same way (round to nearest even): odd M, K, N
 * (not multiples of the 6 x 64 tile), K across the 1024-column block, strided rows, bias in every
 * dtype, 1 and 3 threads; that it really rounds (and that f32 precision does not); that M < 8, F32/F16
 * weights keep f32 activations; and the fallback when AVX-512 is off. Skips with the reason when the
 * CPU has no AVX512_BF16. */
#include "check.h"
#include "ops/cpu/kern_bf16dot.h"
#include "test_ops_util.h"

typedef struct bf_case {
    size_t M, K, N, x_pad, y_pad;
} bf_case;

static const bf_case bf_cases[] = {
    {8, 1, 1, 0, 0},     {8, 33, 65, 2, 3},    {9, 1030, 70, 0, 1}, {13, 2049, 131, 1, 0}, {100, 47, 200, 0, 5},
    {12, 64, 64, 0, 0},  {7 + 8, 2, 129, 3, 0}, {64, 1024, 128, 0, 0}, {257, 96, 192, 0, 0}, {11, 1025, 63, 5, 2},
};

static emu2_backend *open_bf16(int threads, emu2_cpu_isa isa)
{
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = threads;
    o.max_isa = isa;
    o.bf16_dot = 1;
    emu2_backend *be = NULL;
    emu2_error err = {0};
    if (emu2_cpu_backend_open(&o, &be, &err) != EMU2_OK)
        printf("    cannot open: %s\n", err.message);
    return be;
}

static float round_bf16(float v)
{
    return emu2_bf16_to_f32(emu2_f32_to_bf16(v));
}

/* Worst relative error of one case against the reference with x rounded to bf16 (and in
 * *err_unrounded, without the rounding). */
static double run_case(emu2_backend *be, const bf_case *c, emu2_dtype bdt, int use_bias, int *pad_ok,
                       double *err_unrounded)
{
    return test_linear_case(be, c->M, c->K, c->N, c->x_pad, c->y_pad, EMU2_DT_BF16, bdt, use_bias, round_bf16, pad_ok,
                            err_unrounded);
}

TEST(bf16_linear_matches_rounded_reference)
{
    if (!cpu_bf16dot_supported())
        SKIP("this CPU has no AVX512_BF16 (the bf16 precision falls back to f32 here)");
    static const int threads[] = {1, 3};
    for (size_t t = 0; t < 2; t++) {
        emu2_backend *be = open_bf16(threads[t], EMU2_ISA_AUTO);
        CHECK(be != NULL);
        CHECKF(strstr(be->device, "precision bf16") && !strstr(be->device, "unavailable"), "device '%s'", be->device);
        for (size_t i = 0; i < sizeof bf_cases / sizeof bf_cases[0]; i++) {
            const bf_case *c = &bf_cases[i];
            int use_bias = (i + t) % 3 != 0;
            emu2_dtype bdt = test_float_dtypes[i % 3];
            int pad_ok;
            double e32 = 0, e = run_case(be, c, bdt, use_bias, &pad_ok, &e32);
            if (!(e <= TOL_F32) || !pad_ok)
                emu2_backend_close(be);
            CHECKF(e <= TOL_F32, "%dt M=%zu K=%zu N=%zu bias=%s: rel err %.3g (vs unrounded x: %.3g)", threads[t],
                   c->M, c->K, c->N, use_bias ? emu2_dtype_name(bdt) : "none", e, e32);
            CHECKF(pad_ok, "M=%zu K=%zu N=%zu: wrote past N into row padding", c->M, c->K, c->N);
        }
        emu2_backend_close(be);
    }
}

/* x = 1 + 2^-10 is not a bf16 (it rounds to 1): 16 of them against ones give 16 with rounding,
 * 16.015625 without. */
static float sum_of_ones(emu2_backend *be, size_t M, emu2_dtype wdt)
{
    enum { K = 16, N = 3 };
    float x[16 * K], wv[N * K], y[16 * N];
    for (size_t i = 0; i < M * K; i++)
        x[i] = 1.0f + 1.0f / 1024.0f;
    for (size_t i = 0; i < N * K; i++)
        wv[i] = 1.0f;
    test_weight tw;
    test_weight_make(&tw, wdt, 2, N, K, wv);
    emu2_op_weight w = {.w = tw.view};
    emu2_error err = {0};
    float r = NAN;
    if (be->ops->linear(be, M, K, N, x, K, &w, NULL, y, N, &err) == EMU2_OK)
        r = y[(M - 1) * N + N - 1];
    else
        printf("    linear failed: %s\n", err.message);
    test_weight_free(&tw);
    return r;
}

TEST(bf16_rounds_only_where_it_applies)
{
    if (!cpu_bf16dot_supported())
        SKIP("this CPU has no AVX512_BF16");
    const float rounded = 16.0f, exact = 16.0f + 16.0f / 1024.0f;
    emu2_backend *be = open_bf16(1, EMU2_ISA_AUTO);
    CHECK(be != NULL);
    float big = sum_of_ones(be, 8, EMU2_DT_BF16), small = sum_of_ones(be, 7, EMU2_DT_BF16);
    float f32w = sum_of_ones(be, 8, EMU2_DT_F32), f16w = sum_of_ones(be, 12, EMU2_DT_F16);
    emu2_backend_close(be);
    CHECKF(big == rounded, "M=8, BF16 weights: %.9g, want %.9g", big, rounded);
    CHECKF(small == exact, "M=7 (decode path): %.9g, want %.9g", small, exact);
    CHECKF(f32w == exact && f16w == exact, "F32 / F16 weights: %.9g / %.9g, want %.9g", f32w, f16w, exact);
    emu2_backend_options o;
    emu2_backend_options_init(&o); /* f32 precision: the default */
    CHECK(emu2_cpu_backend_open(&o, &be, NULL) == EMU2_OK);
    float dflt = sum_of_ones(be, 8, EMU2_DT_BF16);
    emu2_backend_close(be);
    CHECKF(dflt == exact, "default precision, M=8: %.9g, want %.9g", dflt, exact);
}

TEST(bf16_falls_back_to_f32_with_a_reason)
{
    /* AVX-512 capped off: the bf16 kernels cannot run, so f32 with the reason in device[] */
    emu2_backend *be = open_bf16(1, EMU2_ISA_AVX2);
    if (!be)
        SKIP("no AVX2 backend here");
    int avx2 = be->isa == EMU2_ISA_AVX2;
    float r = sum_of_ones(be, 8, EMU2_DT_BF16);
    char device[sizeof be->device];
    snprintf(device, sizeof device, "%s", be->device);
    emu2_backend_close(be);
    if (!avx2)
        SKIP("this CPU has no AVX2");
    CHECKF(strstr(device, "unavailable") != NULL, "device '%s' gives no reason", device);
    CHECKF(r == 16.0f + 16.0f / 1024.0f, "fallback result %.9g is not f32", r);
}

int main(void)
{
    RUN(bf16_linear_matches_rounded_reference);
    RUN(bf16_rounds_only_where_it_applies);
    RUN(bf16_falls_back_to_f32_with_a_reason);
    return check_finish();
}
