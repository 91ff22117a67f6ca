/* test_split_backend.c: the layer-split backend (core/ops/split_backend.c) over CPU children, so
 * the placement hooks (weight binder, decoder KV cache), the routing of ops to the child holding
 * their weights, the hand-overs and the ownership of memory are tested without a GPU. Each child
 * is a "spy" that forwards to its own CPU backend and records what it was given. The tiny model's
 * logits through the split must equal a plain CPU backend's bit for bit. */
#include <stdint.h>

#include "check.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "model/decoder.h"
#include "model/weights.h"
#include "ops/device_split.h"
#include "ops/ops.h"

#define MAX_PTRS 4096

typedef struct spy {
    emu2_backend base; /* first */
    emu2_backend *inner;
    const void *prepared[MAX_PTRS];
    size_t n_prepared;
    long live_allocs, waits, foreign_weights, linears;
} spy;

static spy *spy_of(emu2_backend *be)
{
    return (spy *)be;
}

static int holds(const spy *s, const void *p)
{
    for (size_t i = 0; i < s->n_prepared; i++)
        if (s->prepared[i] == p)
            return 1;
    return 0;
}

static void spy_destroy(emu2_backend *be)
{
    emu2_backend_close(spy_of(be)->inner);
    free(be);
}

static float *spy_alloc(emu2_backend *be, size_t n, emu2_error *err)
{
    emu2_backend *in = spy_of(be)->inner;
    float *p = in->ops->alloc(in, n, err);
    spy_of(be)->live_allocs += p != NULL;
    return p;
}

static void spy_free(emu2_backend *be, float *p)
{
    emu2_backend *in = spy_of(be)->inner;
    spy_of(be)->live_allocs -= p != NULL;
    in->ops->free(in, p);
}

static emu2_status spy_prepare(emu2_backend *be, const emu2_tensor_view *host, emu2_tensor_view *out, emu2_error *err)
{
    spy *s = spy_of(be);
    emu2_status st = s->inner->ops->prepare_weight(s->inner, host, out, err);
    if (st == EMU2_OK && s->n_prepared < MAX_PTRS)
        s->prepared[s->n_prepared++] = out->data;
    return st;
}

static void spy_release(emu2_backend *be, emu2_tensor_view *v)
{
    spy *s = spy_of(be);
    for (size_t i = 0; i < s->n_prepared; i++)
        if (s->prepared[i] == v->data) {
            s->prepared[i] = s->prepared[--s->n_prepared];
            break;
        }
    s->inner->ops->release_weight(s->inner, v);
}

static emu2_status spy_wait_for(emu2_backend *be, emu2_backend *other, emu2_error *err)
{
    (void)other, (void)err;
    spy_of(be)->waits++;
    return EMU2_OK;
}

/* An op with a weight: the weight must be one this child prepared. */
#define CHECK_WEIGHT(p)                                                                                                \
    do {                                                                                                               \
        if ((p) && !holds(spy_of(be), (p)))                                                                            \
            spy_of(be)->foreign_weights++;                                                                             \
    } while (0)
#define IN emu2_backend *in = spy_of(be)->inner

static emu2_status spy_linear(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t xs,
                              const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t ys,
                              emu2_error *err)
{
    IN;
    CHECK_WEIGHT(W->w.data);
    spy_of(be)->linears++;
    return in->ops->linear(in, M, K, N, x, xs, W, bias, y, ys, err);
}

static emu2_status spy_rmsnorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *w,
                               float eps, float *y, emu2_error *err)
{
    IN;
    CHECK_WEIGHT(w->data);
    return in->ops->rmsnorm(in, rows, n, x, w, eps, y, err);
}

static emu2_status spy_embedding(emu2_backend *be, size_t n, const int32_t *ids, const emu2_tensor_view *t, float *out,
                                 emu2_error *err)
{
    IN;
    CHECK_WEIGHT(t->data);
    return in->ops->embedding(in, n, ids, t, out, err);
}

/* The rest forward unchanged. */
static emu2_status spy_upload(emu2_backend *be, float *d, const float *s, size_t n, emu2_error *err)
{
    IN;
    return in->ops->upload(in, d, s, n, err);
}
static emu2_status spy_download(emu2_backend *be, float *d, const float *s, size_t n, emu2_error *err)
{
    IN;
    return in->ops->download(in, d, s, n, err);
}
static emu2_status spy_sync(emu2_backend *be, emu2_error *err)
{
    IN;
    return in->ops->sync(in, err);
}
static emu2_status spy_rope(emu2_backend *be, size_t rows, size_t h, size_t hd, float *x, size_t stride,
                            const int32_t *pos, float theta, unsigned flags, emu2_error *err)
{
    IN;
    return in->ops->rope(in, rows, h, hd, x, stride, pos, theta, flags, err);
}
static emu2_status spy_attention(emu2_backend *be, const emu2_attention_args *a, emu2_error *err)
{
    IN;
    return in->ops->attention(in, a, err);
}
static emu2_status spy_silu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    IN;
    return in->ops->silu_mul(in, n, a, b, y, err);
}
static emu2_status spy_add(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    IN;
    return in->ops->add(in, n, a, b, y, err);
}
static emu2_status spy_top_k(emu2_backend *be, size_t rows, size_t n, const float *x, size_t k, unsigned flags,
                             float *values, int32_t *ids, emu2_error *err)
{
    IN;
    return in->ops->top_k(in, rows, n, x, k, flags, values, ids, err);
}
static emu2_status spy_copy_rows(emu2_backend *be, size_t n_rows, size_t cols, const float *src, size_t ss,
                                 size_t sn, const int32_t *sr, float *dst, size_t ds, size_t dn, const int32_t *dr,
                                 emu2_error *err)
{
    IN;
    return in->ops->copy_rows(in, n_rows, cols, src, ss, sn, sr, dst, ds, dn, dr, err);
}

static const emu2_ops spy_ops = {
    .name = "cpu",
    .destroy = spy_destroy,
    .alloc = spy_alloc,
    .free = spy_free,
    .upload = spy_upload,
    .download = spy_download,
    .sync = spy_sync,
    .prepare_weight = spy_prepare,
    .release_weight = spy_release,
    .linear = spy_linear,
    .rmsnorm = spy_rmsnorm,
    .rope = spy_rope,
    .attention = spy_attention,
    .silu_mul = spy_silu_mul,
    .embedding = spy_embedding,
    .add = spy_add,
    .copy_rows = spy_copy_rows,
    .top_k = spy_top_k,
    .wait_for = spy_wait_for,
};

static emu2_backend *spy_open(void)
{
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = 1;
    emu2_error err;
    spy *s = calloc(1, sizeof *s);
    if (!s || emu2_cpu_backend_open(&o, &s->inner, &err) != EMU2_OK) {
        free(s);
        return NULL;
    }
    s->base.ops = &spy_ops;
    s->base.threads = 1;
    return &s->base;
}

/* Prefill of a fixed prompt then 3 greedy-free steps (fixed ids); all logits into out. */
static int run_decoder(emu2_backend *be, const emu2_config *cfg, const emu2_model_weights *w, float *out, size_t T,
                       emu2_error *err)
{
    const size_t D = (size_t)cfg->hidden_size, V = (size_t)cfg->vocab_size;
    int32_t ids[16];
    uint8_t mask[16];
    for (size_t i = 0; i < T; i++)
        ids[i] = (int32_t)((i * 37 + 5) % V), mask[i] = 1;
    emu2_decoder_session *s = NULL;
    emu2_decoder_limits lim = {1, T + 4, 0};
    float *emb = be->ops->alloc(be, T * D, err);
    int ok = emb && be->ops->embedding(be, T, ids, &w->decoder.embed, emb, err) == EMU2_OK &&
             emu2_decoder_session_create(be, &w->decoder, cfg, &lim, &s, err) == EMU2_OK &&
             emu2_decoder_prefill(s, 1, T, emb, mask, out, NULL, err) == EMU2_OK;
    for (int step = 0; ok && step < 3; step++) {
        int32_t next = (int32_t)((step * 11 + 3) % V);
        ok = emu2_decoder_step(s, &next, out + (size_t)(step + 1) * V, NULL, err) == EMU2_OK;
    }
    emu2_decoder_session_free(s);
    if (emb)
        be->ops->free(be, emb);
    return ok;
}

TEST(tiny_model_through_a_two_way_split)
{
    emu2_error err;
    emu2_config cfg;
    emu2_checkpoint *ck = NULL;
    const char *dir = ROOT_PATH("models/emu2-tiny-digits");
    CHECKF(emu2_config_load(dir, &cfg, &err) == EMU2_OK && emu2_checkpoint_open(dir, &ck, &err) == EMU2_OK, "%s",
           err.message);
    const size_t V = (size_t)cfg.vocab_size, T = 9, L = (size_t)cfg.num_hidden_layers;
    float *want = calloc(4 * V, sizeof *want), *got = calloc(4 * V, sizeof *got);

    emu2_backend *cpu = NULL;
    emu2_model_weights *w = NULL;
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = 1;
    CHECK(emu2_cpu_backend_open(&o, &cpu, &err) == EMU2_OK);
    CHECKF(emu2_model_weights_bind(cpu, ck, &cfg, &w, &err) == EMU2_OK && run_decoder(cpu, &cfg, w, want, T, &err),
           "%s", err.message);
    emu2_model_weights_free(w);
    emu2_backend_close(cpu);

    emu2_backend *kids[2] = {spy_open(), spy_open()}, *split = NULL;
    CHECK(kids[0] && kids[1]);
    CHECKF(emu2_split_backend_create(kids, 2, &split, &err) == EMU2_OK, "%s", err.message);
    spy *s0 = spy_of(kids[0]), *s1 = spy_of(kids[1]);
    CHECK(s0->waits == 1 && s1->waits == 1); /* each pair once at creation */
    CHECK(!strcmp(split->ops->name, "cpu") && split->ops->set_layer && !split->ops->wait_for);
    CHECKF(emu2_model_weights_bind(split, ck, &cfg, &w, &err) == EMU2_OK, "%s", err.message);
    /* placement: vision and embeddings first, final norm and lm_head last, layers contiguous */
    CHECK(holds(s0, w->vision.patch.w.data) && holds(s0, w->decoder.embed.data));
    CHECK(holds(s1, w->decoder.final_norm.data) && holds(s1, w->decoder.lm_head.w.data));
    size_t on_first = 0;
    int contiguous = 1;
    for (size_t l = 0; l < L; l++) {
        const emu2_decoder_layer_weights *lw = &w->decoder.layers[l];
        spy *h = holds(s0, lw->input_norm.data) ? s0 : s1;
        contiguous &= holds(h, lw->q.w.data) && holds(h, lw->down.w.data) && holds(h, lw->post_norm.data);
        if (h == s0) {
            contiguous &= on_first == l;
            on_first++;
        }
    }
    printf("    %zu of %zu layers on the first child\n", on_first, L);
    CHECK(contiguous && on_first >= 1 && on_first < L);
    long waits_before = s0->waits + s1->waits;
    CHECKF(run_decoder(split, &cfg, w, got, T, &err), "%s", err.message);
    CHECK(s0->linears > 0 && s1->linears > 0);                  /* both ran layers */
    CHECK(s0->foreign_weights == 0 && s1->foreign_weights == 0); /* each op where its weight is */
    CHECK(s0->waits + s1->waits > waits_before);                  /* hand-overs happened */
    CHECK(!memcmp(want, got, 4 * V * sizeof *want));
    /* the search's top-k goes to the current child (the logits' one): best id = argmax per row */
    float *dev = split->ops->alloc(split, 4 * V, &err);
    float tv[4 * 3];
    int32_t ti[4 * 3];
    CHECK(dev && split->ops->upload(split, dev, got, 4 * V, &err) == EMU2_OK && split->ops->top_k &&
          split->ops->top_k(split, 4, V, dev, 3, 0, tv, ti, &err) == EMU2_OK);
    for (size_t r = 0; r < 4; r++) {
        size_t best = 0;
        for (size_t v = 1; v < V; v++)
            best = got[r * V + v] > got[r * V + best] ? v : best;
        CHECKF(ti[r * 3] == (int32_t)best && tv[r * 3] == got[r * V + best] && tv[r * 3] >= tv[r * 3 + 1] &&
                   tv[r * 3 + 1] >= tv[r * 3 + 2],
               "row %zu: top id %d, argmax %zu", r, ti[r * 3], best);
    }
    split->ops->free(split, dev);
    emu2_model_weights_free(w);
    CHECK(s0->n_prepared == 0 && s1->n_prepared == 0);   /* every weight released by its owner */
    CHECK(s0->live_allocs == 0 && s1->live_allocs == 0); /* every buffer freed by its owner */
    emu2_backend_close(split); /* closes the children */
    emu2_checkpoint_close(ck);
    free(want), free(got);
}

TEST(bad_children)
{
    emu2_error err;
    emu2_backend *out = (emu2_backend *)1;
    CHECK(emu2_split_backend_create(NULL, 2, &out, &err) == EMU2_ERR_INVALID_ARGUMENT && out == NULL);
    emu2_backend *kids[2] = {spy_open(), NULL};
    CHECK(emu2_split_backend_create(kids, 2, &out, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_split_backend_create(kids, 0, &out, &err) == EMU2_ERR_INVALID_ARGUMENT);
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    CHECK(emu2_cpu_backend_open(&o, &kids[1], &err) == EMU2_OK);
    /* another kind of backend */
    CHECK(emu2_split_backend_create(kids, 2, &out, &err) == EMU2_ERR_INVALID_ARGUMENT);
    emu2_backend_close(kids[0]);
    emu2_backend_close(kids[1]);
}

int main(void)
{
    RUN(tiny_model_through_a_two_way_split);
    RUN(bad_children);
    return check_finish();
}
