/* test_quant_kernels.c: the int8 / int4 linear (core/ops/cpu/linear_q8q4.c + kern_q8q4_*.c +
 * kern_q4_vnni.c + kern_q8_vnni.c + the bf16 prefill: bf16_gemm.c, kern_bf16dot.c) on every ISA
 * path this CPU has (EMU2_CPU_ISA caps) and 1 or 3 threads, against a double-precision reference
 * over the dequantized weights (emu2_dequant_row), with the activations (and weights) rounded as
 * the path taken does: on AVX512_BF16 at M >= 40, x and the dequantized weights rounded to bf16; on
 * AVX-512 VNNI otherwise (int4 at any M, int8 at M >= 8), x quantized to int8 blocks;
 * EMU2_CPU_QUANT_EXACT=1 keeps them f32, EMU2_CPU_QUANT_BF16=0 turns the bf16 path off (so the VNNI
 * tiles are tested on a BF16 CPU too): random shapes with odd K and N, partial int4 groups, K past
 * the bf16 GEMM's 1024-column slices, decode (M 1), beams (M 3, 4, 5) and prefill (M >= 8,
 * ragged, past the VNNI paths' 128-row passes), bias, strides and misaligned data; plus argument
 * checks. */
#include "check.h"
#include "ops/cpu/bf16_gemm.h"
#include "ops/cpu/kern_bf16dot.h"
#include "ops/cpu/kern_q8q4.h"
#include "quant/quant.h"
#include "test_ops_util.h"

typedef struct qweight {
    emu2_op_weight w;
    uint8_t *q, *s; /* allocations (data may start 1 byte in: misaligned) */
} qweight;

/* Quantizes random [N, K] values; misalign shifts both buffers by one byte. */
static int qweight_make(qweight *qw, emu2_quant_spec spec, size_t N, size_t K, int misalign)
{
    memset(qw, 0, sizeof *qw);
    float *v = malloc(N * K * sizeof *v);
    size_t rb = emu2_quant_q_row_bytes(spec, K), sc = emu2_quant_scale_row_count(spec, K);
    size_t ses = spec.format == EMU2_WEIGHT_Q8 ? 4 : 2;
    qw->q = malloc(N * rb + 1);
    qw->s = malloc(N * sc * ses + 1);
    if (!v || !qw->q || !qw->s) {
        free(v);
        return 0;
    }
    fill_uniform(v, N * K, -1.0f, 1.0f);
    for (size_t i = 0; i < N * K; i += 7) /* some outliers, as real weights have */
        v[i] *= 3.0f;
    uint8_t *q = qw->q + misalign, *s = qw->s + misalign;
    emu2_error err;
    int ok = emu2_quantize_rows(spec, v, EMU2_DT_F32, N, K, q, s, &err) == EMU2_OK;
    free(v);
    emu2_op_weight *w = &qw->w;
    w->format = spec.format;
    w->group = spec.group;
    w->w.dtype = spec.format == EMU2_WEIGHT_Q8 ? EMU2_DT_I8 : EMU2_DT_U8;
    w->w.ndim = 2;
    w->w.shape[0] = (int64_t)N;
    w->w.shape[1] = (int64_t)rb;
    w->w.data = q;
    w->w.nbytes = N * rb;
    w->scales.dtype = spec.format == EMU2_WEIGHT_Q8 ? EMU2_DT_F32 : EMU2_DT_F16;
    w->scales.ndim = spec.format == EMU2_WEIGHT_Q8 ? 1 : 2;
    w->scales.shape[0] = (int64_t)N;
    w->scales.shape[1] = spec.format == EMU2_WEIGHT_Q8 ? 0 : (int64_t)sc;
    w->scales.data = s;
    w->scales.nbytes = N * sc * ses;
    return ok;
}

static void qweight_free(qweight *qw)
{
    free(qw->q);
    free(qw->s);
}

static int env_is(const char *name, const char *value)
{
    const char *e = getenv(name);
    return e && !strcmp(e, value);
}

/* How the path this call takes rounds the activations: the reference does the same. */
typedef enum { X_F32, X_INT8, X_BF16 } x_rounding;

static x_rounding path_rounding(emu2_backend *be, emu2_quant_spec spec, size_t M)
{
    if (be->isa != EMU2_ISA_AVX512 || env_is("EMU2_CPU_QUANT_EXACT", "1"))
        return X_F32;
    if (M >= CPU_BF16_QUANT_MIN_M && cpu_bf16dot_supported() && !env_is("EMU2_CPU_QUANT_BF16", "0"))
        return X_BF16; /* bf16_gemm.c: x and the dequantized weights rounded to bf16 */
    if ((spec.format == EMU2_WEIGHT_Q4 || M >= 8) && cpu_q4_vnni_supported())
        return X_INT8; /* kern_q4_vnni.c (int4, any M), kern_q8_vnni.c (int8, M >= 8) */
    return X_F32;
}

static float round_bf16(float v)
{
    return emu2_bf16_to_f32(emu2_f32_to_bf16(v));
}

/* x as the int8 VNNI path sees it: blocks of 32 consecutive values, s = amax/127,
 * q = rint(x * (1/s)), x' = q * s. */
static void x_like_vnni8(const float *x, size_t K, float *out)
{
    for (size_t k0 = 0; k0 < K; k0 += 32) {
        size_t n = K - k0 < 32 ? K - k0 : 32;
        float amax = 0;
        for (size_t i = 0; i < n; i++)
            amax = fmaxf(amax, fabsf(x[k0 + i]));
        float sc = amax / 127.0f, inv = sc > 0 ? 1.0f / sc : 0.0f;
        for (size_t i = 0; i < n; i++)
            out[k0 + i] = rintf(x[k0 + i] * inv) * sc;
    }
}

/* x as the VNNI path sees it: per block of the 16 low-nibble and 16 high-nibble elements of one
 * 16-byte chunk of a weight row, s = amax/127, q = rint(x * (1/s)), x' = q * s. */
static void x_like_vnni(const float *x, size_t K, size_t G, float *out)
{
    size_t half = G / 2, rb = (K + G - 1) / G * half;
    for (size_t ch = 0; ch * 16 < rb; ch++) {
        size_t g = ch * 16 / half, c = ch * 16 % half, idx[32];
        float amax = 0;
        for (size_t i = 0; i < 32; i++) {
            idx[i] = g * G + (i < 16 ? c + i : half + c + i - 16);
            if (idx[i] < K)
                amax = fmaxf(amax, fabsf(x[idx[i]]));
        }
        float sc = amax / 127.0f, inv = sc > 0 ? 1.0f / sc : 0.0f;
        for (size_t i = 0; i < 32; i++)
            if (idx[i] < K)
                out[idx[i]] = rintf(x[idx[i]] * inv) * sc;
    }
}

/* One linear call against the reference; returns the relative error (INFINITY on failure). */
static double run_case(emu2_backend *be, emu2_quant_spec spec, size_t M, size_t K, size_t N, int with_bias,
                       int misalign, char *why, size_t why_size)
{
    qweight qw;
    size_t ldx = K + (M % 3), ldy = N + (M % 2); /* some strides wider than the rows */
    float *x = malloc(M * ldx * sizeof *x), *y = malloc(M * ldy * sizeof *y), *row = malloc(K * sizeof *row);
    float *bias = malloc(N * sizeof *bias);
    double *ref = malloc(M * N * sizeof *ref), *mag = malloc(M * N * sizeof *mag);
    float *got = malloc(M * N * sizeof *got);
    double e = INFINITY;
    if (!qweight_make(&qw, spec, N, K, misalign) || !x || !y || !row || !bias || !ref || !mag || !got) {
        snprintf(why, why_size, "setup failed");
        goto done;
    }
    fill_uniform(x, M * ldx, -1.0f, 1.0f);
    fill_uniform(bias, N, -0.5f, 0.5f);
    emu2_tensor_view bv = {.dtype = EMU2_DT_F32, .ndim = 1, .shape = {(int64_t)N}, .data = bias,
                           .nbytes = N * sizeof(float)};
    float *xr = malloc(M * ldx * sizeof *xr);
    if (!xr)
        goto done;
    memcpy(xr, x, M * ldx * sizeof *xr);
    x_rounding xround = path_rounding(be, spec, M);
    if (xround == X_BF16)
        for (size_t i = 0; i < M * ldx; i++)
            xr[i] = round_bf16(xr[i]);
    if (xround == X_INT8)
        for (size_t m = 0; m < M; m++) {
            if (spec.format == EMU2_WEIGHT_Q8)
                x_like_vnni8(x + m * ldx, K, xr + m * ldx);
            else
                x_like_vnni(x + m * ldx, K, (size_t)spec.group, xr + m * ldx);
        }
    for (size_t n = 0; n < N; n++) {
        emu2_dequant_row(&qw.w, K, n, 0, K, row);
        if (xround == X_BF16)
            for (size_t k = 0; k < K; k++)
                row[k] = round_bf16(row[k]);
        for (size_t m = 0; m < M; m++) {
            double acc = with_bias ? bias[n] : 0, a = with_bias ? fabs(bias[n]) : 0;
            for (size_t k = 0; k < K; k++) {
                acc += (double)xr[m * ldx + k] * row[k];
                a += fabs((double)xr[m * ldx + k] * row[k]);
            }
            ref[m * N + n] = acc;
            mag[m * N + n] = a;
        }
    }
    free(xr);
    emu2_error err = {0};
    if (be->ops->linear(be, M, K, N, x, ldx, &qw.w, with_bias ? &bv : NULL, y, ldy, &err) != EMU2_OK) {
        snprintf(why, why_size, "linear failed: %s", err.message);
        goto done;
    }
    for (size_t m = 0; m < M; m++)
        memcpy(got + m * N, y + m * ldy, N * sizeof(float));
    size_t where = 0;
    e = max_rel_err(got, ref, mag, M * N, &where);
    snprintf(why, why_size, "worst at [%zu, %zu]: got %g want %g", where / N, where % N, got[where], ref[where]);
done:
    qweight_free(&qw);
    free(x), free(y), free(row), free(bias), free(ref), free(mag), free(got);
    return e;
}

static void shapes_on_every_path(emu2_quant_spec spec)
{
    test_config cfg[8];
    char missing[64];
    int n = test_configs(cfg, missing, sizeof missing);
    CHECK(n > 0);
    if (missing[0])
        printf("    (this CPU lacks %s: those paths are not tested here)\n", missing);
    /* M: 1 (decode), 3, 5 (beams), 8, 13 (prefill, ragged); K odd, not a multiple of the group,
     * and round; N odd and round */
    /* decode rows of 256-byte steps plus whole 64-byte blocks (K 1408, 5504 in int4-g32), plus a
     * partial block (K 1100), aligned and misaligned (index % 3 == 1) */
    static const size_t shapes[][3] = {{1, 64, 4},  {1, 77, 9},    {1, 1000, 33}, {3, 130, 17}, {5, 256, 64},
                                       {1, 33, 1},  {8, 96, 40},   {13, 1100, 70}, {9, 31, 5},  {1, 2048, 130},
                                       {133, 160, 11}, {4, 200, 7},  {48, 2100, 150}, {1, 1408, 37}, {1, 1100, 6},
                                       {1, 5504, 7}, {1, 1408, 5}};
    for (int c = 0; c < n; c++) {
        emu2_backend *be = test_open(&cfg[c]);
        CHECK(be);
        double worst = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            char why[640];
            double e = run_case(be, spec, shapes[s][0], shapes[s][1], shapes[s][2], (int)(s % 2), (int)(s % 3 == 1),
                                why, sizeof why);
            if (!(e <= TOL_F32)) {
                emu2_backend_close(be);
                CHECKF(0, "%s %s M=%zu K=%zu N=%zu: rel err %g (%s)", emu2_quant_name(spec), cfg[c].name,
                       shapes[s][0], shapes[s][1], shapes[s][2], e, why);
            }
            worst = e > worst ? e : worst;
        }
        printf("    %s %-10s worst rel err %.2g\n", emu2_quant_name(spec), cfg[c].name, worst);
        emu2_backend_close(be);
    }
}

TEST(int8_matches_reference) { shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q8}); }
TEST(int4_g32_matches_reference) { shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 32}); }
TEST(int4_g64_matches_reference) { shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 64}); }
TEST(int4_g128_matches_reference) { shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 128}); }

/* f32 activations (EMU2_CPU_QUANT_EXACT=1): on a VNNI CPU the paths the default skips (int4 at
 * every M, int8 prefill). */
TEST(exact_activations)
{
    setenv("EMU2_CPU_QUANT_EXACT", "1", 1);
    shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q8});
    shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 32});
    shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 64});
    unsetenv("EMU2_CPU_QUANT_EXACT");
}

/* The VNNI tiles at M >= 40 on a CPU with AVX512_BF16 (where the default takes the bf16 path). */
TEST(vnni_tiles_without_bf16)
{
    if (!cpu_bf16dot_supported())
        SKIP("this CPU has no AVX512_BF16: the default tests above already took the VNNI tiles");
    setenv("EMU2_CPU_QUANT_BF16", "0", 1);
    shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q8});
    shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 32});
    shapes_on_every_path((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 128});
    unsetenv("EMU2_CPU_QUANT_BF16");
}

/* On a VNNI CPU the default path really is the int8-activation one (its results differ from the
 * exact path's in the last bits, both within the bound of their own reference above): int4 at M 1
 * and 5, int8 at M 9 and 40 (at 40 on an AVX512_BF16 CPU the bf16 path, which differs too); and for
 * int4 the row kernel (one x row) and the tile kernel (several) agree. */
static void vnni_differs_from_exact(emu2_backend *be, emu2_quant_spec spec, size_t M, int compare_row_kernel)
{
    const size_t K = 1000, N = 37;
    qweight qw;
    float *x = malloc(M * K * sizeof *x), *y = malloc(M * N * sizeof *y), *y1 = malloc(N * sizeof *y1);
    float *ye = malloc(M * N * sizeof *ye);
    CHECK(x && y && y1 && ye && qweight_make(&qw, spec, N, K, 0));
    fill_uniform(x, M * K, -1.0f, 1.0f);
    emu2_error err = {0};
    CHECK(be->ops->linear(be, M, K, N, x, K, &qw.w, NULL, y, N, &err) == EMU2_OK);
    CHECK(be->ops->linear(be, 1, K, N, x + 2 * K, K, &qw.w, NULL, y1, N, &err) == EMU2_OK);
    setenv("EMU2_CPU_QUANT_EXACT", "1", 1);
    CHECK(be->ops->linear(be, M, K, N, x, K, &qw.w, NULL, ye, N, &err) == EMU2_OK);
    unsetenv("EMU2_CPU_QUANT_EXACT");
    size_t differ = 0;
    double worst = 0, big = 0; /* the largest difference, relative to the largest output */
    for (size_t i = 0; i < M * N; i++)
        differ += y[i] != ye[i];
    for (size_t n = 0; n < N; n++) {
        worst = fmax(worst, fabs((double)y1[n] - y[2 * N + n]));
        big = fmax(big, fabs((double)y1[n]));
    }
    worst /= big;
    qweight_free(&qw);
    free(x), free(y), free(y1), free(ye);
    CHECKF(differ > M * N / 2, "%s M=%zu: only %zu of %zu outputs differ from the exact path: VNNI not used?",
           emu2_quant_name(spec), M, differ, M * N);
    if (compare_row_kernel)
        CHECKF(worst < 1e-5, "%s: row kernel vs tile kernel: rel diff %g", emu2_quant_name(spec), worst);
}

/* The decode kernels against the previous ones (EMU2_CPU_QUANT_DECODE=legacy): int4's VNNI row
 * kernel (the same integer dots and scale products) and the AVX-512 int8 dot (the same f32
 * products), summed in another order, so equal to float rounding; over the shapes of their loops
 * (int4: 256-byte steps, whole 64-byte blocks, a partial block, every group size; int8: 64-column
 * steps and the K % 64 tail). */
static void compare_with_legacy(emu2_backend *be, emu2_quant_spec spec, size_t K, size_t N)
{
    qweight qw;
    float *x = malloc(K * sizeof *x), *y = malloc(N * sizeof *y), *yl = malloc(N * sizeof *yl);
    CHECK(x && y && yl && qweight_make(&qw, spec, N, K, (int)(K % 2)));
    fill_uniform(x, K, -1.0f, 1.0f);
    emu2_error err = {0};
    CHECK(be->ops->linear(be, 1, K, N, x, K, &qw.w, NULL, y, N, &err) == EMU2_OK);
    setenv("EMU2_CPU_QUANT_DECODE", "legacy", 1);
    CHECK(be->ops->linear(be, 1, K, N, x, K, &qw.w, NULL, yl, N, &err) == EMU2_OK);
    unsetenv("EMU2_CPU_QUANT_DECODE");
    double worst = 0, big = 0;
    for (size_t n = 0; n < N; n++) {
        worst = fmax(worst, fabs((double)y[n] - yl[n]));
        big = fmax(big, fabs((double)yl[n]));
    }
    qweight_free(&qw);
    free(x), free(y), free(yl);
    CHECKF(big > 0 && worst / big < 1e-5, "%s K=%zu N=%zu: new vs legacy row kernel: rel diff %g",
           emu2_quant_name(spec), K, N, worst / big);
}

TEST(row_kernel_matches_legacy)
{
    if (!cpu_q4_vnni_supported())
        SKIP("this CPU has no AVX-512 VNNI");
    emu2_backend *be = NULL;
    CHECK(emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK);
    static const size_t shapes[][2] = {{2048, 9}, {5504, 6}, {1408, 5}, {1100, 7}, {77, 3}, {256, 4}, {4000, 1}};
    static const int groups[] = {32, 64, 128};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t g = 0; g < 3; g++)
            compare_with_legacy(be, (emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = groups[g]}, shapes[s][0],
                                shapes[s][1]);
        compare_with_legacy(be, (emu2_quant_spec){.format = EMU2_WEIGHT_Q8}, shapes[s][0], shapes[s][1]);
    }
    emu2_backend_close(be);
}

TEST(vnni_is_the_default)
{
    if (!cpu_q4_vnni_supported())
        SKIP("this CPU has no AVX-512 VNNI");
    emu2_backend *be = NULL;
    CHECK(emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK);
    vnni_differs_from_exact(be, (emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 32}, 5, 1);
    vnni_differs_from_exact(be, (emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 128}, 3, 1);
    vnni_differs_from_exact(be, (emu2_quant_spec){.format = EMU2_WEIGHT_Q8}, 9, 0);
    vnni_differs_from_exact(be, (emu2_quant_spec){.format = EMU2_WEIGHT_Q8}, 40, 0);
    vnni_differs_from_exact(be, (emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 32}, 40, 0);
    emu2_backend_close(be);
}

/* Wrong dtypes, shapes, group sizes and short buffers are refused with a message, never read. */
TEST(bad_weights_are_refused)
{
    emu2_backend *be = NULL;
    CHECK(emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK);
    qweight qw;
    emu2_quant_spec q4 = {.format = EMU2_WEIGHT_Q4, .group = 32};
    CHECK(qweight_make(&qw, q4, 8, 64, 0));
    float x[64] = {0}, y[8];
    emu2_error err = {0};
    emu2_op_weight w = qw.w;
    emu2_status wrong_k = be->ops->linear(be, 1, 96, 8, x, 96, &w, NULL, y, 8, &err); /* K 96 needs 48-byte rows */
    w.group = 48;
    emu2_status bad_group = be->ops->linear(be, 1, 64, 8, x, 64, &w, NULL, y, 8, &err);
    w = qw.w;
    w.scales.nbytes -= 2;
    emu2_status short_scales = be->ops->linear(be, 1, 64, 8, x, 64, &w, NULL, y, 8, &err);
    w = qw.w;
    w.w.dtype = EMU2_DT_I8;
    emu2_status wrong_dtype = be->ops->linear(be, 1, 64, 8, x, 64, &w, NULL, y, 8, &err);
    w = qw.w;
    w.format = (emu2_weight_format)7;
    emu2_status bad_format = be->ops->linear(be, 1, 64, 8, x, 64, &w, NULL, y, 8, &err);
    w = qw.w;
    emu2_status good = be->ops->linear(be, 1, 64, 8, x, 64, &w, NULL, y, 8, &err);
    qweight_free(&qw);
    emu2_backend_close(be);
    CHECKF(wrong_k == EMU2_ERR_MISMATCH, "wrong K: %d", wrong_k);
    CHECKF(bad_group == EMU2_ERR_MISMATCH, "group 48: %d", bad_group);
    CHECKF(short_scales == EMU2_ERR_MISMATCH, "short scales: %d", short_scales);
    CHECKF(wrong_dtype == EMU2_ERR_MISMATCH, "I8 int4 values: %d", wrong_dtype);
    CHECKF(bad_format != EMU2_OK, "unknown format accepted");
    CHECKF(good == EMU2_OK, "the untouched weight fails: %s", err.message);
}

int main(void)
{
    RUN(int8_matches_reference);
    RUN(int4_g32_matches_reference);
    RUN(int4_g64_matches_reference);
    RUN(int4_g128_matches_reference);
    RUN(exact_activations);
    RUN(vnni_tiles_without_bf16);
    RUN(vnni_is_the_default);
    RUN(row_kernel_matches_legacy);
    RUN(bad_weights_are_refused);
    return check_finish();
}
