/* test_cuda_ops.c: every op of the CUDA backend against the CPU backend on random inputs, with
 * poisoned (NaN) outputs so an unwritten element fails. Tolerances, relative to the RMS of the
 * CPU result: 1e-5 for f32 arithmetic (f32 weights, and bf16/f16 weights at M <= 8, which the GPU
 * reads exactly like the CPU); 2e-2 (bf16) / 4e-3 (f16) for M > 8 with 16-bit weights, where the
 * GPU rounds activations to the weight dtype for cuBLASLt; exact for the ops that move data;
 * quantized (int8/int4) linears: see quantized_linear_matches_cpu. Skips, saying why, without a
 * usable GPU. */
#include "quant/quant.h"
#include "test_cuda_support.h"

#define TOL_F32 1e-5

/* y = x W^T + b on both backends; returns the error (INFINITY on a failed call). */
static double linear_case(emu2_dtype dt, size_t M, size_t K, size_t N, int with_bias, size_t xs, size_t ys)
{
    float *x = tc_random(M * xs, -1, 1), *w = tc_random(N * K, -0.5f, 0.5f), *b = tc_random(N, -1, 1);
    tc_view W, B;
    double e = INFINITY;
    if (!tc_view_make(&W, dt, 2, (int64_t)N, (int64_t)K, w) || !tc_view_make(&B, dt, 1, (int64_t)N, 0, b))
        return e;
    float *y_cpu = calloc(M * ys, sizeof *y_cpu);
    float *dx = tc_dev(x, M * xs), *dy = tc_dev(NULL, M * ys);
    emu2_error err;
    emu2_op_weight wc = {.w = W.host}, wg = {.w = W.dev};
    if (tc_cpu->ops->linear(tc_cpu, M, K, N, x, xs, &wc, with_bias ? &B.host : NULL, y_cpu, ys, &err) == EMU2_OK &&
        tc_gpu->ops->linear(tc_gpu, M, K, N, dx, xs, &wg, with_bias ? &B.dev : NULL, dy, ys, &err) == EMU2_OK) {
        float *y = tc_host(dy, M * ys);
        if (y)
            e = tc_err_rows(y, y_cpu, M, N, ys);
        free(y);
    } else
        printf("    linear: %s\n", err.message);
    tc_free(dx);
    tc_free(dy);
    tc_view_free(&W);
    tc_view_free(&B);
    free(x), free(w), free(b), free(y_cpu);
    return e;
}

TEST(linear_matches_cpu)
{
    TC_NEED_GPU();
    const emu2_dtype dts[] = {EMU2_DT_F32, EMU2_DT_F16, EMU2_DT_BF16};
    const size_t Ms[] = {1, 3, 8, 9, 70};
    const size_t Ks[] = {64, 100}; /* 100: not a multiple of 8 (the gemv kernel's scalar path) */
    for (size_t d = 0; d < 3; d++)
        for (size_t m = 0; m < 5; m++)
            for (size_t k = 0; k < 2; k++) {
                size_t M = Ms[m], K = Ks[k], N = 48;
                double tol = (dts[d] == EMU2_DT_F32 || M <= 8) ? TOL_F32 : dts[d] == EMU2_DT_BF16 ? 2e-2 : 4e-3;
                double e1 = linear_case(dts[d], M, K, N, 1, K, N);
                /* strided rows, no bias, N not a multiple of the gemv kernel's rows per warp */
                double e2 = linear_case(dts[d], M, K, N + 2, 0, K + 4, N + 5);
                CHECKF(e1 <= tol && e2 <= tol, "%s M=%zu K=%zu: errors %.3g %.3g (tolerance %g)",
                       emu2_dtype_name(dts[d]), M, K, e1, e2, tol);
            }
}

TEST(matmul_nt_matches_cpu)
{
    TC_NEED_GPU();
    size_t M = 33, K = 64, N = 40;
    float *a = tc_random(M * K, -1, 1), *b = tc_random(N * K, -1, 1), *c = calloc(M * N, sizeof *c);
    float *da = tc_dev(a, M * K), *db = tc_dev(b, N * K), *dc = tc_dev(NULL, M * N);
    emu2_error err;
    CHECK(tc_cpu->ops->matmul_nt(tc_cpu, M, K, N, a, b, c, &err) == EMU2_OK);
    CHECKF(tc_gpu->ops->matmul_nt(tc_gpu, M, K, N, da, db, dc, &err) == EMU2_OK, "%s", err.message);
    float *g = tc_host(dc, M * N);
    double e = g ? tc_err(g, c, M * N) : INFINITY;
    free(g), free(a), free(b), free(c);
    tc_free(da), tc_free(db), tc_free(dc);
    CHECKF(e <= TOL_F32, "error %.3g", e);
}

/* A quantized [N, K] weight built from random values with core/quant (the code load and convert
 * use), as host views and as prepared device views. */
typedef struct tc_qweight {
    emu2_op_weight host, dev;
    void *q, *scales;
} tc_qweight;

static int tc_qweight_make(tc_qweight *t, emu2_weight_format format, int group, size_t N, size_t K)
{
    emu2_quant_spec spec = {.format = format, .group = group};
    size_t rb = emu2_quant_q_row_bytes(spec, K), sc = emu2_quant_scale_row_count(spec, K);
    size_t ss = format == EMU2_WEIGHT_Q8 ? 4 : 2;
    float *w = tc_random(N * K, -0.5f, 0.5f);
    memset(t, 0, sizeof *t);
    t->q = malloc(N * rb);
    t->scales = malloc(N * sc * ss);
    emu2_error err;
    int ok = emu2_quantize_rows(spec, w, EMU2_DT_F32, N, K, t->q, t->scales, &err) == EMU2_OK;
    free(w);
    if (!ok) {
        printf("    quantize: %s\n", err.message);
        return 0;
    }
    emu2_op_weight *h = &t->host;
    h->format = format;
    h->group = format == EMU2_WEIGHT_Q4 ? group : 0;
    h->w = (emu2_tensor_view){.dtype = format == EMU2_WEIGHT_Q8 ? EMU2_DT_I8 : EMU2_DT_U8, .ndim = 2,
                              .shape = {(int64_t)N, (int64_t)rb}, .data = t->q, .nbytes = N * rb};
    if (format == EMU2_WEIGHT_Q8)
        h->scales = (emu2_tensor_view){.dtype = EMU2_DT_F32, .ndim = 1, .shape = {(int64_t)N}, .data = t->scales,
                                       .nbytes = N * 4};
    else
        h->scales = (emu2_tensor_view){.dtype = EMU2_DT_F16, .ndim = 2, .shape = {(int64_t)N, (int64_t)sc},
                                       .data = t->scales, .nbytes = N * sc * 2};
    t->dev = *h;
    if (tc_gpu->ops->prepare_weight(tc_gpu, &h->w, &t->dev.w, &err) != EMU2_OK ||
        tc_gpu->ops->prepare_weight(tc_gpu, &h->scales, &t->dev.scales, &err) != EMU2_OK) {
        printf("    prepare_weight: %s\n", err.message);
        return 0;
    }
    return 1;
}

static void tc_qweight_free(tc_qweight *t)
{
    tc_gpu->ops->release_weight(tc_gpu, &t->dev.w);
    tc_gpu->ops->release_weight(tc_gpu, &t->dev.scales);
    free(t->q), free(t->scales);
}

/* y = x W^T + b with a quantized W on both backends. *e_ref: the GPU against a double-precision
 * sum over the dequantized weights (emu2_dequant_row, the format's definition); *e_cpu: the GPU
 * against the CPU backend's linear. INFINITY on a failed call. */
static void quant_linear_case(emu2_weight_format format, int group, size_t M, size_t K, size_t N, int with_bias,
                              size_t xs, size_t ys, double *e_ref, double *e_cpu)
{
    tc_qweight W;
    tc_view B;
    *e_ref = *e_cpu = INFINITY;
    float *x = tc_random(M * xs, -1, 1), *b = tc_random(N, -1, 1), *y_cpu = calloc(M * ys, sizeof *y_cpu);
    float *y_ref = calloc(M * ys, sizeof *y_ref), *row = malloc(K * sizeof *row);
    if (!tc_qweight_make(&W, format, group, N, K) || !tc_view_make(&B, EMU2_DT_BF16, 1, (int64_t)N, 0, b)) {
        free(x), free(b), free(y_cpu), free(y_ref), free(row);
        return;
    }
    for (size_t n = 0; n < N; n++) {
        emu2_dequant_row(&W.host, K, n, 0, K, row);
        for (size_t m = 0; m < M; m++) {
            double acc = with_bias ? (double)b[n] : 0.0;
            for (size_t k = 0; k < K; k++)
                acc += (double)x[m * xs + k] * row[k];
            y_ref[m * ys + n] = (float)acc;
        }
    }
    float *dx = tc_dev(x, M * xs), *dy = tc_dev(NULL, M * ys);
    emu2_error err;
    if (tc_cpu->ops->linear(tc_cpu, M, K, N, x, xs, &W.host, with_bias ? &B.host : NULL, y_cpu, ys, &err) ==
            EMU2_OK &&
        tc_gpu->ops->linear(tc_gpu, M, K, N, dx, xs, &W.dev, with_bias ? &B.dev : NULL, dy, ys, &err) == EMU2_OK) {
        float *y = tc_host(dy, M * ys);
        if (y) {
            *e_ref = tc_err_rows(y, y_ref, M, N, ys);
            *e_cpu = tc_err_rows(y, y_cpu, M, N, ys);
        }
        free(y);
    } else
        printf("    quantized linear: %s\n", err.message);
    tc_free(dx), tc_free(dy);
    tc_qweight_free(&W);
    tc_view_free(&B);
    free(x), free(b), free(y_cpu), free(y_ref), free(row);
}

/* Tolerances, relative to the RMS of the result. Against the exact reference: 1e-5 at M <= 8
 * (f32 sums of the exact weights), 2e-2 above, where the activations (and the int4 weights,
 * scaled) are rounded to bf16 for cuBLASLt. Against the CPU backend: 2e-2 everywhere (its int4
 * path may quantize activations to int8 on AVX-512 VNNI CPUs; EMU2_CPU_QUANT_EXACT=1 is set by
 * main, so it normally is f32 too). K = 100 and 200 take the scalar paths (K not a multiple of
 * 16; a partial last int4 group); N = 50 is not a multiple of the rows per warp; the strided
 * case has row strides wider than the rows. */
TEST(quantized_linear_matches_cpu)
{
    TC_NEED_GPU();
    const struct { emu2_weight_format f; int g; } fmts[] = {
        {EMU2_WEIGHT_Q8, 0}, {EMU2_WEIGHT_Q4, 32}, {EMU2_WEIGHT_Q4, 64}, {EMU2_WEIGHT_Q4, 128}};
    const size_t Ms[] = {1, 2, 5, 8, 9, 40};
    const size_t Ks[] = {256, 100, 200};
    for (size_t f = 0; f < 4; f++)
        for (size_t m = 0; m < 6; m++)
            for (size_t k = 0; k < 3; k++) {
                size_t M = Ms[m], K = Ks[k];
                double tol = M <= 8 ? 1e-5 : 2e-2, r1, c1, r2, c2;
                quant_linear_case(fmts[f].f, fmts[f].g, M, K, 48, 1, K, 48, &r1, &c1);
                quant_linear_case(fmts[f].f, fmts[f].g, M, K, 50, 0, K + 4, 55, &r2, &c2);
                CHECKF(r1 <= tol && r2 <= tol && c1 <= 2e-2 && c2 <= 2e-2,
                       "%s g%d M=%zu K=%zu: errors %.3g %.3g (tolerance %g), vs cpu %.3g %.3g (2e-2)",
                       fmts[f].f == EMU2_WEIGHT_Q8 ? "int8" : "int4", fmts[f].g, M, K, r1, r2, tol, c1, c2);
            }
}

/* A large-M linear whose weight needs several widening chunks (CUDA_QUANT_CHUNK_BYTES = 16 MiB of
 * bf16 rows): 4100 rows of K 2048 = 16.4 MiB, so two chunks, the second of 4 rows. */
TEST(quantized_linear_in_chunks)
{
    TC_NEED_GPU();
    double r8, c8, r4, c4;
    quant_linear_case(EMU2_WEIGHT_Q8, 0, 20, 2048, 4100, 1, 2048, 4100, &r8, &c8);
    quant_linear_case(EMU2_WEIGHT_Q4, 32, 20, 2048, 4100, 1, 2048, 4100, &r4, &c4);
    CHECKF(r8 <= 2e-2 && r4 <= 2e-2 && c8 <= 2e-2 && c4 <= 2e-2, "int8 %.3g (cpu %.3g), int4 %.3g (cpu %.3g)", r8,
           c8, r4, c4);
}

TEST(linear_rejects_what_it_cannot_run)
{
    TC_NEED_GPU();
    float *w = tc_random(16 * 8, -1, 1);
    tc_view W;
    CHECK(tc_view_make(&W, EMU2_DT_BF16, 2, 16, 8, w));
    float *dx = tc_dev(w, 4 * 8), *dy = tc_dev(NULL, 4 * 16);
    emu2_error err;
    emu2_op_weight host = {.w = W.host}, quant = {.w = W.dev, .format = EMU2_WEIGHT_Q8};
    emu2_status s_host = tc_gpu->ops->linear(tc_gpu, 4, 8, 16, dx, 8, &host, NULL, dy, 16, &err);
    int host_msg = strstr(err.message, "prepare_weight") != NULL;
    /* a bf16 view labelled int8: the quantized checks refuse its dtype */
    emu2_status s_quant = tc_gpu->ops->linear(tc_gpu, 4, 8, 16, dx, 8, &quant, NULL, dy, 16, &err);
    int quant_msg = strstr(err.message, "int8 weight values must be I8") != NULL;
    /* a quantized weight left in host memory */
    tc_qweight Q;
    CHECK(tc_qweight_make(&Q, EMU2_WEIGHT_Q4, 32, 16, 64));
    float *dx64 = tc_dev(NULL, 64);
    emu2_status s_qhost = tc_gpu->ops->linear(tc_gpu, 1, 64, 16, dx64, 64, &Q.host, NULL, dy, 16, &err);
    int qhost_msg = strstr(err.message, "prepare_weight") != NULL;
    emu2_op_weight bad_group = Q.dev;
    bad_group.group = 48;
    emu2_status s_group = tc_gpu->ops->linear(tc_gpu, 1, 64, 16, dx64, 64, &bad_group, NULL, dy, 16, &err);
    tc_free(dx64);
    tc_qweight_free(&Q);
    emu2_op_weight ok = {.w = W.dev};
    emu2_status s_overlap = tc_gpu->ops->linear(tc_gpu, 4, 8, 16, dx, 8, &ok, NULL, dx, 16, &err);
    tc_free(dx), tc_free(dy);
    tc_view_free(&W);
    free(w);
    CHECK(s_host == EMU2_ERR_INVALID_ARGUMENT && host_msg);
    CHECKF(s_quant == EMU2_ERR_MISMATCH && quant_msg, "%d", (int)s_quant);
    CHECK(s_qhost == EMU2_ERR_INVALID_ARGUMENT && qhost_msg);
    CHECK(s_group == EMU2_ERR_MISMATCH);
    CHECK(s_overlap == EMU2_ERR_INVALID_ARGUMENT);
}

TEST(norms_match_cpu)
{
    TC_NEED_GPU();
    size_t rows = 5, n = 300;
    float *x = tc_random(rows * n, -3, 5), *w = tc_random(n, 0.5f, 1.5f), *b = tc_random(n, -1, 1);
    tc_view W, B;
    CHECK(tc_view_make(&W, EMU2_DT_BF16, 1, (int64_t)n, 0, w) && tc_view_make(&B, EMU2_DT_F32, 1, (int64_t)n, 0, b));
    float *ln = malloc(rows * n * sizeof *ln), *rms = malloc(rows * n * sizeof *rms);
    emu2_error err;
    CHECK(tc_cpu->ops->layernorm(tc_cpu, rows, n, x, &W.host, &B.host, 1e-6f, ln, &err) == EMU2_OK);
    CHECK(tc_cpu->ops->rmsnorm(tc_cpu, rows, n, x, &W.host, 1e-6f, rms, &err) == EMU2_OK);
    float *dx = tc_dev(x, rows * n), *dy = tc_dev(NULL, rows * n);
    CHECKF(tc_gpu->ops->layernorm(tc_gpu, rows, n, dx, &W.dev, &B.dev, 1e-6f, dy, &err) == EMU2_OK, "%s",
           err.message);
    float *g_ln = tc_host(dy, rows * n);
    CHECKF(tc_gpu->ops->rmsnorm(tc_gpu, rows, n, dx, &W.dev, 1e-6f, dx, &err) == EMU2_OK, "%s", err.message);
    float *g_rms = tc_host(dx, rows * n); /* in place */
    double e1 = tc_err(g_ln, ln, rows * n), e2 = tc_err(g_rms, rms, rows * n);
    emu2_status host_w = tc_gpu->ops->rmsnorm(tc_gpu, rows, n, dy, &W.host, 1e-6f, dy, &err);
    tc_free(dx), tc_free(dy);
    tc_view_free(&W), tc_view_free(&B);
    free(x), free(w), free(b), free(ln), free(rms), free(g_ln), free(g_rms);
    CHECKF(e1 <= TOL_F32 && e2 <= TOL_F32, "layernorm %.3g rmsnorm %.3g", e1, e2);
    CHECK(host_w == EMU2_ERR_INVALID_ARGUMENT);
}

TEST(rope_matches_cpu)
{
    TC_NEED_GPU();
    size_t rows = 6, heads = 3, hd = 64, stride = 200;
    int32_t pos[6] = {0, 1, 17, 513, 2047, 4000};
    for (unsigned flags = 0; flags <= EMU2_ROPE_TABLE_BF16; flags += EMU2_ROPE_TABLE_BF16) {
        float *x = tc_random(rows * stride, -2, 2);
        float *dx = tc_dev(x, rows * stride);
        emu2_error err;
        CHECK(tc_cpu->ops->rope(tc_cpu, rows, heads, hd, x, stride, pos, 10000.0f, flags, &err) == EMU2_OK);
        CHECKF(tc_gpu->ops->rope(tc_gpu, rows, heads, hd, dx, stride, pos, 10000.0f, flags, &err) == EMU2_OK, "%s",
               err.message);
        float *g = tc_host(dx, rows * stride);
        double e = tc_err(g, x, rows * stride); /* includes the untouched tail of each row */
        free(g), free(x);
        tc_free(dx);
        CHECKF(e <= TOL_F32, "flags %u: error %.3g", flags, e);
    }
}

typedef struct attn_case {
    const char *name;
    size_t batch, heads, hd, q_len, kv_len, q_offset;
    int causal, masked;
    size_t extra_stride; /* rows wider than heads*hd (fused qkv, cache rows) */
} attn_case;

static double attention_case(const attn_case *c)
{
    size_t width = c->heads * c->hd, qs = width + c->extra_stride, ks = width + 2 * c->extra_stride;
    size_t qn = c->batch * c->q_len * qs, kn = c->batch * c->kv_len * ks, on = c->batch * c->q_len * width;
    float *q = tc_random(qn, -1, 1), *k = tc_random(kn, -1, 1), *v = tc_random(kn, -1, 1);
    float *out = malloc(on * sizeof *out);
    uint8_t *mask = NULL;
    if (c->masked) { /* left padding in batch 1 (its first 5 keys), a hole in batch 0 */
        mask = malloc(c->batch * c->kv_len);
        memset(mask, 1, c->batch * c->kv_len);
        for (size_t j = 0; j < 5 && j < c->kv_len; j++)
            mask[(c->batch > 1 ? 1 : 0) * c->kv_len + j] = 0;
        mask[c->kv_len / 2] = 0;
    }
    emu2_attention_args a = {
        .batch = c->batch, .n_heads = c->heads, .head_dim = c->hd, .q_len = c->q_len, .kv_len = c->kv_len,
        .q_offset = c->q_offset, .causal = c->causal, .scale = 1.0f / sqrtf((float)c->hd),
        .q = q, .k = k, .v = v, .out = out, .q_stride = qs, .k_stride = ks, .v_stride = ks, .out_stride = width,
        .q_batch_stride = c->q_len * qs, .kv_batch_stride = c->kv_len * ks, .out_batch_stride = c->q_len * width,
        .key_mask = mask,
    };
    emu2_error err;
    double e = INFINITY;
    if (tc_cpu->ops->attention(tc_cpu, &a, &err) != EMU2_OK) {
        printf("    %s (cpu): %s\n", c->name, err.message);
        goto out;
    }
    float *dq = tc_dev(q, qn), *dk = tc_dev(k, kn), *dv = tc_dev(v, kn), *dout = tc_dev(NULL, on);
    emu2_attention_args g = a;
    g.q = dq, g.k = dk, g.v = dv, g.out = dout;
    if (tc_gpu->ops->attention(tc_gpu, &g, &err) == EMU2_OK) {
        float *h = tc_host(dout, on);
        if (h)
            e = tc_err(h, out, on);
        free(h);
    } else
        printf("    %s (cuda): %s\n", c->name, err.message);
    tc_free(dq), tc_free(dk), tc_free(dv), tc_free(dout);
out:
    free(q), free(k), free(v), free(out), free(mask);
    return e;
}

TEST(attention_matches_cpu)
{
    TC_NEED_GPU();
    const attn_case cases[] = {
        {"vision (non-causal, fused qkv rows, hd 112)", 2, 3, 112, 70, 70, 0, 0, 0, 2 * 336},
        {"prefill (causal, left padding)", 2, 2, 128, 40, 40, 0, 1, 1, 0},
        {"decode (q_len 1 on a cache)", 3, 4, 64, 1, 50, 49, 1, 1, 16},
        {"decode, 3 rows", 2, 2, 128, 3, 33, 30, 1, 0, 0},
        {"chunked prefill (q_offset > 0)", 1, 2, 64, 20, 45, 25, 1, 0, 0},
        {"small head_dim 32", 1, 4, 32, 9, 9, 0, 0, 0, 0},
        {"head_dim 160 (row kernel)", 1, 2, 160, 10, 12, 0, 0, 0, 0},
        {"long keys (flash tiles)", 1, 1, 128, 100, 1000, 900, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double e = attention_case(&cases[i]);
        CHECKF(e <= TOL_F32, "%s: error %.3g", cases[i].name, e);
    }
}

/* out = op(a[, b]) for the elementwise and softmax ops, on both backends. */
enum ew { EW_GELU, EW_SILU_MUL, EW_ADD_INPLACE, EW_SOFTMAX, EW_LOG_SOFTMAX };

static double elementwise_case(enum ew op, size_t rows, size_t n)
{
    size_t total = rows * n;
    float *a = tc_random(total, -8, 8), *b = tc_random(total, -2, 2), *y = malloc(total * sizeof *y);
    float *da = tc_dev(a, total), *db = tc_dev(b, total), *dy = tc_dev(NULL, total);
    emu2_error err;
    emu2_status s1 = EMU2_OK, s2 = EMU2_OK;
    float *cpu_out = y, *gpu_out = dy;
    switch (op) {
    case EW_GELU:
        s1 = tc_cpu->ops->gelu(tc_cpu, total, a, y, &err);
        s2 = tc_gpu->ops->gelu(tc_gpu, total, da, dy, &err);
        break;
    case EW_SILU_MUL:
        s1 = tc_cpu->ops->silu_mul(tc_cpu, total, a, b, y, &err);
        s2 = tc_gpu->ops->silu_mul(tc_gpu, total, da, db, dy, &err);
        break;
    case EW_ADD_INPLACE: /* y = a + b written over a */
        s1 = tc_cpu->ops->add(tc_cpu, total, a, b, a, &err);
        s2 = tc_gpu->ops->add(tc_gpu, total, da, db, da, &err);
        cpu_out = a, gpu_out = da;
        break;
    case EW_SOFTMAX:
        s1 = tc_cpu->ops->softmax(tc_cpu, rows, n, a, y, &err);
        s2 = tc_gpu->ops->softmax(tc_gpu, rows, n, da, dy, &err);
        break;
    case EW_LOG_SOFTMAX:
        s1 = tc_cpu->ops->log_softmax(tc_cpu, rows, n, a, y, &err);
        s2 = tc_gpu->ops->log_softmax(tc_gpu, rows, n, da, dy, &err);
        break;
    }
    double e = INFINITY;
    if (s1 == EMU2_OK && s2 == EMU2_OK) {
        float *h = tc_host(gpu_out, total);
        if (h)
            e = tc_err(h, cpu_out, total);
        free(h);
    } else
        printf("    op %d: %s\n", (int)op, err.message);
    tc_free(da), tc_free(db), tc_free(dy);
    free(a), free(b), free(y);
    return e;
}

TEST(elementwise_and_softmax_match_cpu)
{
    TC_NEED_GPU();
    const char *names[] = {"gelu", "silu_mul", "add (in place)", "softmax", "log_softmax"};
    for (int op = EW_GELU; op <= EW_LOG_SOFTMAX; op++) {
        double e = elementwise_case((enum ew)op, 3, 517);
        double e_big = elementwise_case((enum ew)op, 2, 40000); /* vocab-sized rows */
        CHECKF(e <= TOL_F32 && e_big <= TOL_F32, "%s: errors %.3g %.3g", names[op], e, e_big);
    }
}

TEST(data_movement_is_exact)
{
    TC_NEED_GPU();
    emu2_error err;
    /* embedding from a bf16 table */
    size_t V = 50, D = 70;
    float *table = tc_random(V * D, -1, 1);
    tc_view T;
    CHECK(tc_view_make(&T, EMU2_DT_BF16, 2, (int64_t)V, (int64_t)D, table));
    int32_t ids[7] = {0, 49, 3, 3, 17, 48, 1};
    float *e_cpu = malloc(7 * D * sizeof *e_cpu), *de = tc_dev(NULL, 7 * D);
    CHECK(tc_cpu->ops->embedding(tc_cpu, 7, ids, &T.host, e_cpu, &err) == EMU2_OK);
    CHECKF(tc_gpu->ops->embedding(tc_gpu, 7, ids, &T.dev, de, &err) == EMU2_OK, "%s", err.message);
    float *e_gpu = tc_host(de, 7 * D);
    int emb_ok = e_gpu && !memcmp(e_gpu, e_cpu, 7 * D * sizeof *e_cpu);
    int32_t bad[1] = {50};
    emu2_status bad_id = tc_gpu->ops->embedding(tc_gpu, 1, bad, &T.dev, de, &err);

    /* copy_rows: gather + scatter with strides */
    size_t cols = 33, srows = 9, drows = 12, ss = 40, ds = 35;
    float *src = tc_random(srows * ss, -1, 1), *dst = tc_random(drows * ds, -1, 1);
    float *dsrc = tc_dev(src, srows * ss), *ddst = tc_dev(dst, drows * ds);
    int32_t from[4] = {8, 0, 3, 3}, to[4] = {11, 2, 0, 5};
    CHECK(tc_cpu->ops->copy_rows(tc_cpu, 4, cols, src, ss, srows, from, dst, ds, drows, to, &err) == EMU2_OK);
    CHECKF(tc_gpu->ops->copy_rows(tc_gpu, 4, cols, dsrc, ss, srows, from, ddst, ds, drows, to, &err) == EMU2_OK,
           "%s", err.message);
    float *g_dst = tc_host(ddst, drows * ds);
    int copy_ok = g_dst && !memcmp(g_dst, dst, drows * ds * sizeof *dst);

    /* patchify */
    size_t C = 3, H = 26, W = 28, p = 7, pn = (H / p) * (W / p) * C * p * p;
    float *img = tc_random(C * H * W, -1, 1), *pc = malloc(pn * sizeof *pc);
    float *dimg = tc_dev(img, C * H * W), *dp = tc_dev(NULL, pn);
    CHECK(tc_cpu->ops->patchify(tc_cpu, C, H, W, p, img, pc, &err) == EMU2_OK);
    CHECKF(tc_gpu->ops->patchify(tc_gpu, C, H, W, p, dimg, dp, &err) == EMU2_OK, "%s", err.message);
    float *pg = tc_host(dp, pn);
    int patch_ok = pg && !memcmp(pg, pc, pn * sizeof *pc);

    tc_free(de), tc_free(dsrc), tc_free(ddst), tc_free(dimg), tc_free(dp);
    tc_view_free(&T);
    free(table), free(e_cpu), free(e_gpu), free(src), free(dst), free(g_dst), free(img), free(pc), free(pg);
    CHECK(emb_ok);
    CHECK(bad_id == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(copy_ok);
    CHECK(patch_ok);
}

TEST(avgpool_matches_cpu)
{
    TC_NEED_GPU();
    size_t C = 7, H = 9, W = 10, k = 3, on = C * (H / k) * (W / k);
    for (int layout = 0; layout < 2; layout++) {
        float *x = tc_random(C * H * W, -1, 1), *y = malloc(on * sizeof *y);
        float *dx = tc_dev(x, C * H * W), *dy = tc_dev(NULL, on);
        emu2_error err;
        CHECK(tc_cpu->ops->avgpool2d(tc_cpu, (emu2_grid_layout)layout, C, H, W, k, x, y, &err) == EMU2_OK);
        CHECKF(tc_gpu->ops->avgpool2d(tc_gpu, (emu2_grid_layout)layout, C, H, W, k, dx, dy, &err) == EMU2_OK, "%s",
               err.message);
        float *g = tc_host(dy, on);
        double e = tc_err(g, y, on);
        free(x), free(y), free(g);
        tc_free(dx), tc_free(dy);
        CHECKF(e <= 1e-6, "layout %d: error %.3g", layout, e);
    }
}

/* The Emu2-Gen ops (NULL in a table that lacks them: then there is nothing to compare). */
static double conv_case(size_t C, size_t H, size_t W, size_t O, size_t k, size_t stride, size_t pad, emu2_dtype dt)
{
    size_t Ho = (H + 2 * pad - k) / stride + 1, Wo = (W + 2 * pad - k) / stride + 1, on = Ho * Wo * O;
    float *x = tc_random(H * W * C, -1, 1), *w = tc_random(O * C * k * k, -0.3f, 0.3f), *b = tc_random(O, -1, 1);
    float *y = malloc(on * sizeof *y);
    tc_view Wv, Bv;
    double e = INFINITY;
    if (tc_view_make(&Wv, dt, 2, (int64_t)O, (int64_t)(C * k * k), w) && tc_view_make(&Bv, EMU2_DT_F32, 1, (int64_t)O, 0, b)) {
        emu2_op_weight wc = {.w = Wv.host}, wg = {.w = Wv.dev};
        wc.w.ndim = wg.w.ndim = 4; /* [O, C, k, k] */
        wc.w.shape[1] = wg.w.shape[1] = (int64_t)C;
        wc.w.shape[2] = wg.w.shape[2] = wc.w.shape[3] = wg.w.shape[3] = (int64_t)k;
        float *dx = tc_dev(x, H * W * C), *dy = tc_dev(NULL, on);
        emu2_error err;
        if (tc_cpu->ops->conv2d(tc_cpu, C, H, W, x, &wc, &Bv.host, k, stride, pad, y, &err) == EMU2_OK &&
            tc_gpu->ops->conv2d(tc_gpu, C, H, W, dx, &wg, &Bv.dev, k, stride, pad, dy, &err) == EMU2_OK) {
            float *g = tc_host(dy, on);
            e = g ? tc_err(g, y, on) : INFINITY;
            free(g);
        } else
            printf("    conv2d: %s\n", err.message);
        tc_free(dx), tc_free(dy);
    }
    tc_view_free(&Wv), tc_view_free(&Bv);
    free(x), free(w), free(b), free(y);
    return e;
}

TEST(diffusion_ops_match_cpu)
{
    TC_NEED_GPU();
    if (!tc_cpu->ops->conv2d || !tc_gpu->ops->conv2d || !tc_gpu->ops->group_norm || !tc_gpu->ops->upsample_nearest ||
        !tc_gpu->ops->silu || !tc_gpu->ops->mul || !tc_gpu->ops->add_row_vector)
        SKIP("a backend has no diffusion ops");
    double c1 = conv_case(5, 9, 11, 7, 3, 1, 1, EMU2_DT_F32), c2 = conv_case(4, 10, 10, 6, 3, 2, 1, EMU2_DT_F32);
    double c3 = conv_case(8, 6, 5, 3, 1, 1, 0, EMU2_DT_F32), c4 = conv_case(6, 12, 12, 16, 3, 1, 1, EMU2_DT_BF16);
    CHECKF(c1 <= TOL_F32 && c2 <= TOL_F32 && c3 <= TOL_F32 && c4 <= 2e-2, "conv2d errors %.3g %.3g %.3g %.3g", c1, c2,
           c3, c4);
    emu2_error err;
    size_t rows = 70, C = 12, G = 4, n = rows * C;
    float *x = tc_random(n, -2, 3), *w = tc_random(C, 0.5f, 1.5f), *b = tc_random(C, -1, 1), *y = malloc(n * sizeof *y);
    tc_view Wv, Bv;
    CHECK(tc_view_make(&Wv, EMU2_DT_BF16, 1, (int64_t)C, 0, w) && tc_view_make(&Bv, EMU2_DT_F32, 1, (int64_t)C, 0, b));
    float *dx = tc_dev(x, n), *dy = tc_dev(NULL, n);
    double e_gn[2] = {INFINITY, INFINITY};
    for (int silu = 0; silu < 2; silu++) {
        CHECK(tc_cpu->ops->group_norm(tc_cpu, rows, C, G, x, &Wv.host, &Bv.host, 1e-5f, silu, y, &err) == EMU2_OK);
        CHECKF(tc_gpu->ops->group_norm(tc_gpu, rows, C, G, dx, &Wv.dev, &Bv.dev, 1e-5f, silu, dy, &err) == EMU2_OK,
               "%s", err.message);
        float *g = tc_host(dy, n);
        e_gn[silu] = g ? tc_err(g, y, n) : INFINITY;
        free(g);
    }
    /* upsample 5x6 -> 10x12 of C channels (rows = 30 pixels of the 70 are the input) */
    size_t up_n = 10 * 12 * C;
    float *up = malloc(up_n * sizeof *up), *dup = tc_dev(NULL, up_n);
    CHECK(tc_cpu->ops->upsample_nearest(tc_cpu, C, 5, 6, 10, 12, x, up, &err) == EMU2_OK);
    CHECKF(tc_gpu->ops->upsample_nearest(tc_gpu, C, 5, 6, 10, 12, dx, dup, &err) == EMU2_OK, "%s", err.message);
    float *gup = tc_host(dup, up_n);
    int up_ok = gup && !memcmp(gup, up, up_n * sizeof *up);
    /* silu, mul (in place over b), add_row_vector */
    float *bb = tc_random(n, -1, 1), *v = tc_random(C, -1, 1);
    float *dbb = tc_dev(bb, n), *dv = tc_dev(v, C);
    CHECK(tc_cpu->ops->silu(tc_cpu, n, x, y, &err) == EMU2_OK);
    CHECK(tc_gpu->ops->silu(tc_gpu, n, dx, dy, &err) == EMU2_OK);
    float *g_silu = tc_host(dy, n);
    double e_silu = g_silu ? tc_err(g_silu, y, n) : INFINITY;
    CHECK(tc_cpu->ops->mul(tc_cpu, n, x, bb, bb, &err) == EMU2_OK);
    CHECK(tc_gpu->ops->mul(tc_gpu, n, dx, dbb, dbb, &err) == EMU2_OK);
    float *g_mul = tc_host(dbb, n);
    int mul_ok = g_mul && !memcmp(g_mul, bb, n * sizeof *bb);
    CHECK(tc_cpu->ops->add_row_vector(tc_cpu, rows, C, x, v, y, &err) == EMU2_OK);
    CHECK(tc_gpu->ops->add_row_vector(tc_gpu, rows, C, dx, dv, dy, &err) == EMU2_OK);
    float *g_add = tc_host(dy, n);
    int add_ok = g_add && !memcmp(g_add, y, n * sizeof *y);
    tc_free(dx), tc_free(dy), tc_free(dup), tc_free(dbb), tc_free(dv);
    tc_view_free(&Wv), tc_view_free(&Bv);
    free(x), free(w), free(b), free(y), free(up), free(gup), free(bb), free(v), free(g_silu), free(g_mul), free(g_add);
    CHECKF(e_gn[0] <= TOL_F32 && e_gn[1] <= TOL_F32, "group_norm errors %.3g %.3g", e_gn[0], e_gn[1]);
    CHECK(up_ok);
    CHECKF(e_silu <= TOL_F32, "silu error %.3g", e_silu);
    CHECK(mul_ok);
    CHECK(add_ok);
}

/* Thousands of ops with staged host arrays: the staging ring wraps many times and every result
 * must still be right (a region reused too early would corrupt the ids of a queued op). */
TEST(staging_ring_wraps_safely)
{
    TC_NEED_GPU();
    size_t V = 64, D = 8, n_ids = 200, rounds = 3000;
    float *table = tc_random(V * D, -1, 1);
    tc_view T;
    CHECK(tc_view_make(&T, EMU2_DT_F32, 2, (int64_t)V, (int64_t)D, table));
    float *out = tc_dev(NULL, rounds * n_ids * D);
    int32_t *ids = malloc(n_ids * sizeof *ids);
    emu2_error err;
    int ok = 1;
    for (size_t r = 0; ok && r < rounds; r++) {
        for (size_t i = 0; i < n_ids; i++)
            ids[i] = (int32_t)((r * 7 + i * 13) % V);
        ok = tc_gpu->ops->embedding(tc_gpu, n_ids, ids, &T.dev, out + r * n_ids * D, &err) == EMU2_OK;
    }
    float *h = ok ? tc_host(out, rounds * n_ids * D) : NULL;
    for (size_t r = 0; h && ok && r < rounds; r++)
        for (size_t i = 0; ok && i < n_ids; i++) {
            size_t id = (r * 7 + i * 13) % V;
            ok = !memcmp(h + (r * n_ids + i) * D, (const float *)T.data + id * D, D * sizeof(float));
        }
    free(h), free(ids), free(table);
    tc_free(out);
    tc_view_free(&T);
    CHECKF(ok, "%s", err.message);
}

TEST(memory_and_weights)
{
    TC_NEED_GPU();
    emu2_error err;
    float host[5] = {1, -2, 3.5f, 1e-30f, 7}, back[5] = {0};
    float *d = tc_dev(host, 5);
    CHECK(d != NULL);
    CHECK(tc_gpu->ops->download(tc_gpu, back, d, 5, &err) == EMU2_OK && !memcmp(host, back, sizeof host));
    CHECK(tc_gpu->ops->sync(tc_gpu, &err) == EMU2_OK);
    /* a view already in device memory is used in place (random weights are built there) */
    emu2_tensor_view dv = {.dtype = EMU2_DT_F32, .ndim = 1, .shape = {5}, .data = d, .nbytes = 20}, prepared;
    CHECK(tc_gpu->ops->prepare_weight(tc_gpu, &dv, &prepared, &err) == EMU2_OK && prepared.data == d);
    tc_gpu->ops->release_weight(tc_gpu, &prepared); /* must not free d */
    CHECK(tc_gpu->ops->download(tc_gpu, back, d, 5, &err) == EMU2_OK && !memcmp(host, back, sizeof host));
    tc_free(d);
    emu2_tensor_view short_view = {.dtype = EMU2_DT_F32, .ndim = 1, .shape = {5}, .data = host, .nbytes = 8};
    CHECK(tc_gpu->ops->prepare_weight(tc_gpu, &short_view, &prepared, &err) == EMU2_ERR_MISMATCH);
    CHECK(tc_gpu->ops->alloc(tc_gpu, (size_t)1 << 62, &err) == NULL && err.status != EMU2_OK);
}

int main(void)
{
    setenv("EMU2_CPU_QUANT_EXACT", "1", 1); /* the CPU's int4 with f32 activations, as the GPU's */
    tc_open();
    RUN(linear_matches_cpu);
    RUN(matmul_nt_matches_cpu);
    RUN(quantized_linear_matches_cpu);
    RUN(quantized_linear_in_chunks);
    RUN(linear_rejects_what_it_cannot_run);
    RUN(norms_match_cpu);
    RUN(rope_matches_cpu);
    RUN(attention_matches_cpu);
    RUN(elementwise_and_softmax_match_cpu);
    RUN(data_movement_is_exact);
    RUN(avgpool_matches_cpu);
    RUN(diffusion_ops_match_cpu);
    RUN(staging_ring_wraps_safely);
    RUN(memory_and_weights);
    if (tc_gpu)
        tc_close();
    else if (tc_cpu)
        emu2_backend_close(tc_cpu);
    return check_finish();
}
