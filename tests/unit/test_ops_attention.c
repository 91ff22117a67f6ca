/* test_ops_attention.c: attention (vision: non-causal over all tokens; decoder: causal with left
 * padding; decode steps against a KV cache; q, k, v read from a fused qkv row) and rotary
 * embedding, on every ISA path and thread count, against double references. */
#include "check.h"
#include "test_ops_util.h"

/* Reference attention in double, same argument struct; rows that see no key give zeros. */
static void ref_attention(const emu2_attention_args *a, double *out, double *mag)
{
    size_t hd = a->head_dim, D = a->n_heads * hd;
    double *s = malloc(a->kv_len * sizeof(double));
    for (size_t b = 0; b < a->batch; b++)
        for (size_t h = 0; h < a->n_heads; h++)
            for (size_t i = 0; i < a->q_len; i++) {
                const float *q = a->q + b * a->q_batch_stride + i * a->q_stride + h * hd;
                size_t vis = a->causal ? a->q_offset + i + 1 : a->kv_len;
                double max = -INFINITY;
                for (size_t t = 0; t < vis; t++) {
                    s[t] = -INFINITY;
                    if (a->key_mask && !a->key_mask[b * a->kv_len + t])
                        continue;
                    const float *k = a->k + b * a->kv_batch_stride + t * a->k_stride + h * hd;
                    double d = 0;
                    for (size_t e = 0; e < hd; e++)
                        d += (double)q[e] * k[e];
                    s[t] = d * a->scale;
                    if (s[t] > max)
                        max = s[t];
                }
                double sum = 0;
                for (size_t t = 0; t < vis; t++) {
                    s[t] = max == -INFINITY ? 0 : exp(s[t] - max);
                    sum += s[t];
                }
                double *o = out + ((b * a->q_len) + i) * D + h * hd;
                double *m = mag + ((b * a->q_len) + i) * D + h * hd;
                for (size_t e = 0; e < hd; e++) {
                    double acc = 0, g = 0;
                    for (size_t t = 0; t < vis; t++) {
                        double v = a->v[b * a->kv_batch_stride + t * a->v_stride + h * hd + e];
                        acc += s[t] * v;
                        g += s[t] * fabs(v);
                    }
                    o[e] = sum > 0 ? acc / sum : 0;
                    m[e] = sum > 0 ? g / sum : 0;
                }
            }
    free(s);
}

typedef struct attn_case {
    const char *what;
    size_t batch, heads, hd, q_len, kv_len, q_offset;
    int causal, fused_qkv, left_pad;
} attn_case;

static const attn_case attn_cases[] = {
    {"vision: non-causal, fused qkv", 1, 3, 20, 37, 37, 0, 0, 1, 0},
    {"vision: EVA head size 112", 2, 2, 112, 9, 9, 0, 0, 1, 0},
    {"decoder prefill, causal, left padding", 3, 2, 16, 11, 11, 0, 1, 0, 1},
    {"decode step, q_len 1 vs cache", 2, 4, 128, 1, 23, 22, 1, 0, 1},
    {"decode chunk, q_len 3 vs cache", 2, 2, 24, 3, 19, 16, 1, 0, 1},
    {"odd head dim, one key", 1, 1, 7, 1, 1, 0, 1, 0, 0},
    /* the blocked schedule (q_len >= 8): several 64-query blocks, 64-key panels, 2 value panels */
    {"blocked: non-causal, 3 query blocks", 1, 2, 80, 150, 150, 0, 0, 1, 0},
    {"blocked: causal prefill, left padding", 2, 3, 64, 130, 130, 0, 1, 0, 1},
    {"blocked: chunk of 10 vs cache of 75", 2, 2, 72, 10, 75, 65, 1, 0, 1},
};

/* Builds the case's buffers, runs it on be, returns the worst relative error (INFINITY on failure). */
static double run_attn(emu2_backend *be, const attn_case *c, int *zero_rows_ok)
{
    size_t D = c->heads * c->hd;
    emu2_attention_args a = {.batch = c->batch, .n_heads = c->heads, .head_dim = c->hd, .q_len = c->q_len,
                             .kv_len = c->kv_len, .q_offset = c->q_offset, .causal = c->causal,
                             .scale = (float)(1.0 / sqrt((double)c->hd))};
    float *qbuf, *kbuf, *vbuf;
    if (c->fused_qkv) { /* one [T, 3D] buffer per batch element, as the EVA qkv linear leaves it */
        qbuf = malloc(c->batch * c->q_len * 3 * D * sizeof(float));
        fill_uniform(qbuf, c->batch * c->q_len * 3 * D, -2, 2);
        kbuf = qbuf + D;
        vbuf = qbuf + 2 * D;
        a.q_stride = a.k_stride = a.v_stride = 3 * D;
        a.q_batch_stride = a.kv_batch_stride = c->q_len * 3 * D;
    } else { /* separate q, and a KV cache with room for more rows (stride > width) */
        qbuf = malloc(c->batch * c->q_len * D * sizeof(float));
        kbuf = malloc(c->batch * (c->kv_len + 2) * (D + 3) * sizeof(float));
        vbuf = malloc(c->batch * (c->kv_len + 2) * (D + 3) * sizeof(float));
        fill_uniform(qbuf, c->batch * c->q_len * D, -2, 2);
        fill_uniform(kbuf, c->batch * (c->kv_len + 2) * (D + 3), -2, 2);
        fill_uniform(vbuf, c->batch * (c->kv_len + 2) * (D + 3), -2, 2);
        a.q_stride = D;
        a.k_stride = a.v_stride = D + 3;
        a.q_batch_stride = c->q_len * D;
        a.kv_batch_stride = (c->kv_len + 2) * (D + 3);
    }
    a.q = qbuf, a.k = kbuf, a.v = vbuf;
    uint8_t *mask = NULL;
    if (c->left_pad) { /* batch b has b*3 padding keys on the left (fewer when the cache is short) */
        mask = malloc(c->batch * c->kv_len);
        for (size_t b = 0; b < c->batch; b++)
            for (size_t t = 0; t < c->kv_len; t++)
                mask[b * c->kv_len + t] = t >= b * 3;
        a.key_mask = mask;
    }
    size_t n = c->batch * c->q_len * D;
    float *out = malloc(n * sizeof(float));
    a.out = out;
    a.out_stride = D;
    a.out_batch_stride = c->q_len * D;
    double *ref = malloc(n * sizeof(double)), *mag = malloc(n * sizeof(double));
    ref_attention(&a, ref, mag);
    emu2_error err = {0};
    double worst = INFINITY;
    *zero_rows_ok = 1;
    if (be->ops->attention(be, &a, &err) == EMU2_OK) {
        worst = max_rel_err(out, ref, mag, n, NULL);
        for (size_t i = 0; i < n; i++) /* rows that see only padding must be exact zeros */
            if (mag[i] == 0 && ref[i] == 0 && out[i] != 0.0f)
                *zero_rows_ok = 0;
    } else {
        printf("    attention failed: %s\n", err.message);
    }
    free(qbuf);
    if (!c->fused_qkv)
        free(kbuf), free(vbuf);
    free(mask), free(out), free(ref), free(mag);
    return worst;
}

TEST(attention_matches_reference_on_every_path)
{
    test_config cfg[8];
    char missing[64];
    int ncfg = test_configs(cfg, missing, sizeof missing);
    CHECK(ncfg >= 2);
    for (int ci = 0; ci < ncfg; ci++) {
        emu2_backend *be = test_open(&cfg[ci]);
        CHECK(be != NULL);
        for (size_t i = 0; i < sizeof attn_cases / sizeof attn_cases[0]; i++) {
            int zeros_ok;
            double e = run_attn(be, &attn_cases[i], &zeros_ok);
            if (!(e <= TOL_F32) || !zeros_ok)
                emu2_backend_close(be);
            CHECKF(e <= TOL_F32, "%s, %s: rel err %.3g", cfg[ci].name, attn_cases[i].what, e);
            CHECKF(zeros_ok, "%s, %s: fully masked rows are not zero", cfg[ci].name, attn_cases[i].what);
        }
        emu2_backend_close(be);
    }
}

/* Causal decoding one token at a time must equal the matching rows of a causal prefill. */
TEST(attention_decode_steps_equal_prefill_rows)
{
    emu2_backend *be = NULL;
    CHECK(emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK);
    size_t T = 13, H = 2, hd = 32, D = H * hd;
    float *q = malloc(T * D * 4), *k = malloc(T * D * 4), *v = malloc(T * D * 4);
    float *full = malloc(T * D * 4), *step = malloc(D * 4);
    fill_uniform(q, T * D, -1, 1);
    fill_uniform(k, T * D, -1, 1);
    fill_uniform(v, T * D, -1, 1);
    emu2_attention_args a = {.batch = 1, .n_heads = H, .head_dim = hd, .q_len = T, .kv_len = T, .causal = 1,
                             .scale = 0.25f, .q = q, .k = k, .v = v, .out = full, .q_stride = D, .k_stride = D,
                             .v_stride = D, .out_stride = D};
    CHECK(be->ops->attention(be, &a, NULL) == EMU2_OK);
    double worst = 0;
    for (size_t t = 0; t < T; t++) {
        emu2_attention_args s = a;
        s.q = q + t * D, s.q_len = 1, s.kv_len = t + 1, s.q_offset = t, s.out = step;
        CHECK(be->ops->attention(be, &s, NULL) == EMU2_OK);
        for (size_t e = 0; e < D; e++)
            worst = fmax(worst, fabs(step[e] - full[t * D + e]));
    }
    free(q), free(k), free(v), free(full), free(step);
    emu2_backend_close(be);
    CHECKF(worst <= 1e-6, "decode differs from prefill by %.3g", worst);
}

TEST(attention_rejects_bad_arguments)
{
    emu2_backend *be = NULL;
    CHECK(emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK);
    float buf[64] = {0}, out[64];
    emu2_attention_args a = {.batch = 1, .n_heads = 2, .head_dim = 4, .q_len = 2, .kv_len = 2, .causal = 1,
                             .scale = 0.5f, .q = buf, .k = buf, .v = buf, .out = out, .q_stride = 8, .k_stride = 8,
                             .v_stride = 8, .out_stride = 8};
    emu2_error err = {0};
    CHECK(be->ops->attention(be, &a, &err) == EMU2_OK);
    emu2_attention_args b = a;
    b.q_offset = 1; /* queries at 1..2 but only 2 keys */
    CHECKF(be->ops->attention(be, &b, &err) == EMU2_ERR_INVALID_ARGUMENT, "%s", err.message);
    b = a;
    b.k_stride = 7;
    CHECK(be->ops->attention(be, &b, &err) == EMU2_ERR_INVALID_ARGUMENT);
    b = a;
    b.out = buf + 4; /* overlaps q */
    CHECK(be->ops->attention(be, &b, &err) == EMU2_ERR_INVALID_ARGUMENT);
    b = a;
    b.head_dim = 0;
    CHECK(be->ops->attention(be, &b, &err) == EMU2_ERR_INVALID_ARGUMENT);
    emu2_backend_close(be);
}

/* ---------------------------------------------------------------- rope */

static void ref_rope(size_t rows, size_t heads, size_t hd, double *x, size_t stride, const int32_t *pos, float theta,
                     int bf16)
{
    size_t half = hd / 2;
    for (size_t r = 0; r < rows; r++)
        for (size_t i = 0; i < half; i++) {
            /* HF: inv_freq and the angle are f32 products; cos/sin of that f32 angle */
            float inv = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
            float ang = (float)pos[r] * inv;
            double c = cos((double)ang), s = sin((double)ang);
            if (bf16) {
                c = emu2_bf16_to_f32(emu2_f32_to_bf16((float)c));
                s = emu2_bf16_to_f32(emu2_f32_to_bf16((float)s));
            }
            for (size_t h = 0; h < heads; h++) {
                double *a = x + r * stride + h * hd;
                double x1 = a[i], x2 = a[i + half];
                a[i] = x1 * c - x2 * s;
                a[i + half] = x2 * c + x1 * s;
            }
        }
}

TEST(rope_matches_reference_on_every_path)
{
    test_config cfg[8];
    char missing[64];
    int ncfg = test_configs(cfg, missing, sizeof missing);
    static const size_t dims[][2] = {{1, 2}, {3, 8}, {2, 128}, {52, 128}};
    for (int ci = 0; ci < ncfg; ci++) {
        emu2_backend *be = test_open(&cfg[ci]);
        CHECK(be != NULL);
        for (size_t di = 0; di < 4; di++)
            for (int bf16 = 0; bf16 < 2; bf16++) {
                size_t heads = dims[di][0], hd = dims[di][1], rows = 9, stride = heads * hd + 5;
                float *x = malloc(rows * stride * 4);
                double *ref = malloc(rows * stride * 8);
                /* repeats too: a decode batch shares positions, and rope keeps the last table */
                int32_t pos[9] = {0, 1, 1, 7, 100, 100, 2048, 2048, 3};
                fill_uniform(x, rows * stride, -2, 2);
                for (size_t i = 0; i < rows * stride; i++)
                    ref[i] = x[i];
                ref_rope(rows, heads, hd, ref, stride, pos, 10000.0f, bf16);
                emu2_error err = {0};
                emu2_status st =
                    be->ops->rope(be, rows, heads, hd, x, stride, pos, 10000.0f, bf16 ? EMU2_ROPE_TABLE_BF16 : 0, &err);
                double e = st == EMU2_OK ? max_rel_err(x, ref, NULL, rows * stride, NULL) : INFINITY;
                free(x), free(ref);
                if (!(e <= TOL_F32))
                    emu2_backend_close(be);
                CHECKF(e <= TOL_F32, "%s heads=%zu hd=%zu bf16=%d: rel err %.3g %s", cfg[ci].name, heads, hd, bf16, e,
                       err.message);
            }
        emu2_backend_close(be);
    }
}

TEST(rope_rejects_bad_arguments)
{
    emu2_backend *be = NULL;
    CHECK(emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK);
    float x[16] = {0};
    int32_t pos[2] = {0, -1};
    emu2_error err = {0};
    CHECK(be->ops->rope(be, 2, 1, 8, x, 8, pos, 10000.0f, 0, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECKF(strstr(err.message, "negative") != NULL, "%s", err.message);
    pos[1] = 1;
    CHECK(be->ops->rope(be, 2, 1, 7, x, 8, pos, 10000.0f, 0, &err) == EMU2_ERR_UNSUPPORTED);
    CHECK(be->ops->rope(be, 2, 1, 8, x, 7, pos, 10000.0f, 0, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(be->ops->rope(be, 2, 1, 8, x, 8, pos, 10000.0f, 0x10, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(be->ops->rope(be, 2, 1, 8, x, 8, pos, 10000.0f, 0, &err) == EMU2_OK);
    emu2_backend_close(be);
}

int main(void)
{
    RUN(attention_matches_reference_on_every_path);
    RUN(attention_decode_steps_equal_prefill_rows);
    RUN(attention_rejects_bad_arguments);
    RUN(rope_matches_reference_on_every_path);
    RUN(rope_rejects_bad_arguments);
    return check_finish();
}
