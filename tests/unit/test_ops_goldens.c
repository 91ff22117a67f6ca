/* test_ops_goldens.c: the CPU ops against outputs of the real PyTorch / transformers 4.31 code
 * (tests/data/ops/goldens.bin, written by tests/reference/gen_ops_goldens.py): HF RoPE (f32 and bf16
 * cos/sin caches), LlamaRMSNorm, LayerNorm, GELU, SiLU, softmaxes, 4.31 causal + padding masks,
 * Emu2's encode_image pooling, Conv2d patch embedding. These pin the conventions, not just the
 * arithmetic. */
#include "check.h"
#include "test_ops_util.h"

#define MAX_RECORDS 64

typedef struct golden {
    char name[64];
    uint32_t n;
    float *data;
} golden;

static golden goldens[MAX_RECORDS];
static size_t n_goldens;
static char load_error[256];

/* Reads the record file (u32 name_len, name, u32 count, count f32), checking every length. */
static int load_goldens(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(load_error, sizeof load_error, "cannot open %s", path);
        return 0;
    }
    int ok = 1;
    for (;;) {
        uint32_t len, n;
        if (fread(&len, 4, 1, f) != 1)
            break; /* clean end of file */
        golden *g = &goldens[n_goldens];
        if (n_goldens >= MAX_RECORDS || len == 0 || len >= sizeof g->name || fread(g->name, 1, len, f) != len ||
            fread(&n, 4, 1, f) != 1 || n > (1u << 20)) {
            ok = 0;
            break;
        }
        g->name[len] = '\0';
        g->n = n;
        g->data = malloc((size_t)n * 4 + 4);
        if (!g->data || fread(g->data, 4, n, f) != n) {
            ok = 0;
            break;
        }
        n_goldens++;
    }
    fclose(f);
    if (!ok)
        snprintf(load_error, sizeof load_error, "%s is truncated or malformed (record %zu)", path, n_goldens);
    return ok;
}

/* The record `name` with exactly n values, or NULL. */
static const float *G(const char *name, size_t n)
{
    for (size_t i = 0; i < n_goldens; i++)
        if (!strcmp(goldens[i].name, name))
            return goldens[i].n == n ? goldens[i].data : NULL;
    return NULL;
}

static double rel_err_vs(const float *got, const float *want, size_t n)
{
    double *ref = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        ref[i] = want[i];
    double e = max_rel_err(got, ref, NULL, n, NULL);
    free(ref);
    return e;
}

static emu2_backend *open_default(void)
{
    emu2_backend *be = NULL;
    return emu2_cpu_backend_open(NULL, &be, NULL) == EMU2_OK ? be : NULL;
}

static emu2_tensor_view f32_vec(const float *p, size_t n)
{
    emu2_tensor_view v = {.dtype = EMU2_DT_F32, .ndim = 1, .shape = {(int64_t)n}, .data = p, .nbytes = n * 4};
    return v;
}

#define NEED_GOLDENS()                                                                                         \
    do {                                                                                                       \
        if (!n_goldens)                                                                                        \
            SKIP("%s", load_error);                                                                            \
    } while (0)

TEST(rope_matches_transformers)
{
    NEED_GOLDENS();
    const size_t rows = 5, heads = 2, hd = 16, n = rows * heads * hd;
    const float *x = G("rope.x", n), *posf = G("rope.pos", rows);
    CHECK(x && posf);
    int32_t pos[5];
    for (size_t r = 0; r < rows; r++)
        pos[r] = (int32_t)posf[r];
    emu2_backend *be = open_default();
    CHECK(be);
    static const char *names[2] = {"rope.out_f32", "rope.out_bf16"};
    for (int bf16 = 0; bf16 < 2; bf16++) {
        const float *want = G(names[bf16], n);
        float got[5 * 2 * 16];
        memcpy(got, x, sizeof got);
        emu2_status st = be->ops->rope(be, rows, heads, hd, got, heads * hd, pos, 10000.0f,
                                       bf16 ? EMU2_ROPE_TABLE_BF16 : 0, NULL);
        double e = want && st == EMU2_OK ? rel_err_vs(got, want, n) : INFINITY;
        if (!(e <= TOL_F32))
            emu2_backend_close(be);
        CHECKF(e <= TOL_F32, "%s: rel err %.3g", names[bf16], e);
    }
    emu2_backend_close(be);
}

TEST(norms_match_torch)
{
    NEED_GOLDENS();
    const float *x = G("rmsnorm.x", 120), *rw = G("rmsnorm.w", 40), *rout = G("rmsnorm.out", 120);
    const float *lw = G("layernorm.w", 40), *lb = G("layernorm.b", 40), *lout = G("layernorm.out", 120);
    CHECK(x && rw && rout && lw && lb && lout);
    emu2_backend *be = open_default();
    CHECK(be);
    float y[120];
    emu2_tensor_view w = f32_vec(rw, 40), lwv = f32_vec(lw, 40), lbv = f32_vec(lb, 40);
    int ok = be->ops->rmsnorm(be, 3, 40, x, &w, 1e-6f, y, NULL) == EMU2_OK;
    double e1 = ok ? rel_err_vs(y, rout, 120) : INFINITY;
    ok = be->ops->layernorm(be, 3, 40, x, &lwv, &lbv, 1e-6f, y, NULL) == EMU2_OK;
    double e2 = ok ? rel_err_vs(y, lout, 120) : INFINITY;
    emu2_backend_close(be);
    CHECKF(e1 <= TOL_F32, "rmsnorm: rel err %.3g", e1);
    CHECKF(e2 <= TOL_F32, "layernorm: rel err %.3g", e2);
}

TEST(activations_and_softmax_match_torch)
{
    NEED_GOLDENS();
    const float *a = G("act.a", 97), *b = G("act.b", 97), *gelu = G("act.gelu", 97), *sm = G("act.silu_mul", 97);
    const float *sx = G("softmax.x", 100), *so = G("softmax.out", 100), *sl = G("softmax.log", 100);
    CHECK(a && b && gelu && sm && sx && so && sl);
    emu2_backend *be = open_default();
    CHECK(be);
    float y[100];
    double e[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
    if (be->ops->gelu(be, 97, a, y, NULL) == EMU2_OK)
        e[0] = rel_err_vs(y, gelu, 97);
    if (be->ops->silu_mul(be, 97, a, b, y, NULL) == EMU2_OK)
        e[1] = rel_err_vs(y, sm, 97);
    if (be->ops->softmax(be, 2, 50, sx, y, NULL) == EMU2_OK)
        e[2] = rel_err_vs(y, so, 100);
    if (be->ops->log_softmax(be, 2, 50, sx, y, NULL) == EMU2_OK)
        e[3] = rel_err_vs(y, sl, 100);
    emu2_backend_close(be);
    CHECKF(e[0] <= TOL_F32 && e[1] <= TOL_F32, "gelu %.3g silu_mul %.3g", e[0], e[1]);
    CHECKF(e[2] <= TOL_F32 && e[3] <= TOL_F32, "softmax %.3g log_softmax %.3g", e[2], e[3]);
}

TEST(causal_padded_attention_matches_transformers)
{
    NEED_GOLDENS();
    enum { B = 2, T = 6, H = 2, D = 8, W = H * D };
    const float *q = G("attn.q", B * T * W), *k = G("attn.k", B * T * W), *v = G("attn.v", B * T * W);
    const float *want = G("attn.out", B * T * W), *maskf = G("attn.mask", B * T);
    CHECK(q && k && v && want && maskf);
    uint8_t mask[B * T];
    for (int i = 0; i < B * T; i++)
        mask[i] = maskf[i] != 0.0f;
    float out[B * T * W];
    emu2_attention_args a = {.batch = B, .n_heads = H, .head_dim = D, .q_len = T, .kv_len = T, .causal = 1,
                             .scale = (float)(1.0 / sqrt((double)D)), .q = q, .k = k, .v = v, .out = out,
                             .q_stride = W, .k_stride = W, .v_stride = W, .out_stride = W,
                             .q_batch_stride = T * W, .kv_batch_stride = T * W, .out_batch_stride = T * W,
                             .key_mask = mask};
    emu2_backend *be = open_default();
    CHECK(be);
    emu2_status st = be->ops->attention(be, &a, NULL);
    emu2_backend_close(be);
    CHECK(st == EMU2_OK);
    /* rows of padding queries are never used (HF averages them, the engine zeroes them): compare
     * the rows of real tokens only */
    float got_rows[B * T * W], want_rows[B * T * W];
    size_t n = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++)
            if (mask[b * T + i]) {
                memcpy(got_rows + n, out + (b * T + i) * W, W * 4);
                memcpy(want_rows + n, want + (b * T + i) * W, W * 4);
                n += W;
            }
    CHECK(n == (size_t)(B * T - 2) * W);
    double e = rel_err_vs(got_rows, want_rows, n);
    CHECKF(e <= TOL_F32, "rel err %.3g", e);
}

TEST(eva_pooling_matches_emu2_encode_image)
{
    NEED_GOLDENS();
    const float *x = G("pool.x", 17 * 6), *want = G("pool.out", 4 * 6);
    CHECK(x && want);
    emu2_backend *be = open_default();
    CHECK(be);
    float y[24];
    /* drop the CLS row, pool the 4x4 token grid with k=2 */
    emu2_status st = be->ops->avgpool2d(be, EMU2_GRID_TOKEN_MAJOR, 6, 4, 4, 2, x + 6, y, NULL);
    emu2_backend_close(be);
    CHECK(st == EMU2_OK);
    double e = rel_err_vs(y, want, 24);
    CHECKF(e <= TOL_F32, "rel err %.3g", e);
}

TEST(patchify_linear_matches_torch_conv2d)
{
    NEED_GOLDENS();
    const float *img = G("conv.img", 3 * 8 * 12), *w = G("conv.w", 4 * 48), *b = G("conv.b", 4);
    const float *want = G("conv.out", 6 * 4);
    CHECK(img && w && b && want);
    emu2_backend *be = open_default();
    CHECK(be);
    float rows[6 * 48], y[6 * 4];
    emu2_op_weight wv = {.w = {.dtype = EMU2_DT_F32, .ndim = 2, .shape = {4, 48}, .data = w, .nbytes = 4 * 48 * 4}};
    emu2_tensor_view bv = f32_vec(b, 4);
    int ok = be->ops->patchify(be, 3, 8, 12, 4, img, rows, NULL) == EMU2_OK &&
             be->ops->linear(be, 6, 48, 4, rows, 48, &wv, &bv, y, 4, NULL) == EMU2_OK;
    emu2_backend_close(be);
    CHECK(ok);
    double e = rel_err_vs(y, want, 24);
    CHECKF(e <= TOL_F32, "rel err %.3g", e);
}

int main(void)
{
    if (!load_goldens(ROOT_PATH("tests/data/ops/goldens.bin")))
        n_goldens = 0;
    RUN(rope_matches_transformers);
    RUN(norms_match_torch);
    RUN(activations_and_softmax_match_torch);
    RUN(causal_padded_attention_matches_transformers);
    RUN(eva_pooling_matches_emu2_encode_image);
    RUN(patchify_linear_matches_torch_conv2d);
    for (size_t i = 0; i < n_goldens; i++)
        free(goldens[i].data);
    return check_finish();
}
