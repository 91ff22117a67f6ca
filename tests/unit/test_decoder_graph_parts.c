/* test_decoder_graph_parts.c: the decoder's side of decode-step graphs (core/model/decoder.c with
 * the step_begin / step_cut / step_end hooks of ops.h), in CI without a GPU. A "recorder" backend
 * wraps the CPU backend the way stream capture treats the CUDA one: while recording, ops are not
 * run but kept, with copies of their host arrays taken at the call (as the CUDA backend stages
 * them), and run when a part is launched; argument errors still surface at the call. Its hooks
 * answer from a seeded script: steps recorded or not, parts launched or not (then the decoder must
 * issue them again op by op), recordings continued across cuts, ended early. Whatever the script,
 * the logits of 16 greedy steps of 3 rows (left padding, a beam-style reordering every third step)
 * must be bit-identical to the plain CPU backend's, and a bad token id must fail the step, leave
 * the session as it was, and not run anything twice. */
#include <stdint.h>

#include "check.h"
#include "model/decoder.h"
#include "model/embed_splice.h"
#include "ops/op_checks.h"
#include "test_model_support.h"

typedef enum { OP_EMBEDDING, OP_COPY_ROWS, OP_RMSNORM, OP_LINEAR, OP_ROPE, OP_ATTENTION, OP_ADD, OP_SILU_MUL } op_kind;

typedef struct kept_op {
    op_kind kind;
    size_t a, b, c, d, e, f; /* sizes and strides, per kind */
    const float *x, *y2;
    float *y;
    const emu2_op_weight *w;
    const emu2_tensor_view *v;
    float eps, theta;
    unsigned flags;
    int32_t *idx, *idx2; /* copies of host index arrays */
    emu2_attention_args att;
    uint8_t *mask; /* copy of the key mask */
} kept_op;

typedef struct recorder {
    emu2_backend base; /* first */
    emu2_backend *cpu;
    int recording;
    kept_op *ops;
    size_t n_ops, cap_ops;
    uint64_t rng;
    int script; /* 0: always record and launch; 1: random outcomes */
    size_t launches, reruns_asked;
} recorder;

static recorder *rec_of(emu2_backend *be)
{
    return (recorder *)be;
}

static unsigned roll(recorder *r, unsigned n)
{
    r->rng ^= r->rng << 13, r->rng ^= r->rng >> 7, r->rng ^= r->rng << 17;
    return (unsigned)(r->rng % n);
}

static int32_t *copy_ints(const int32_t *p, size_t n)
{
    if (!p)
        return NULL;
    int32_t *c = malloc(n * sizeof *c);
    memcpy(c, p, n * sizeof *c);
    return c;
}

static kept_op *keep(recorder *r, op_kind kind)
{
    if (r->n_ops == r->cap_ops) {
        r->cap_ops = r->cap_ops ? 2 * r->cap_ops : 64;
        r->ops = realloc(r->ops, r->cap_ops * sizeof *r->ops);
    }
    kept_op *k = &r->ops[r->n_ops++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    return k;
}

static emu2_status run_op(recorder *r, kept_op *k, emu2_error *err)
{
    emu2_backend *c = r->cpu;
    const emu2_ops *o = c->ops;
    switch (k->kind) {
    case OP_EMBEDDING: return o->embedding(c, k->a, k->idx, k->v, k->y, err);
    case OP_COPY_ROWS:
        return o->copy_rows(c, k->a, k->b, k->x, k->c, k->d, k->idx, k->y, k->e, k->f, k->idx2, err);
    case OP_RMSNORM: return o->rmsnorm(c, k->a, k->b, k->x, k->v, k->eps, k->y, err);
    case OP_LINEAR: return o->linear(c, k->a, k->b, k->c, k->x, k->d, k->w, NULL, k->y, k->e, err);
    case OP_ROPE: return o->rope(c, k->a, k->b, k->c, k->y, k->d, k->idx, k->theta, k->flags, err);
    case OP_ATTENTION: k->att.key_mask = k->mask; return o->attention(c, &k->att, err);
    case OP_ADD: return o->add(c, k->a, k->x, k->y2, k->y, err);
    case OP_SILU_MUL: return o->silu_mul(c, k->a, k->x, k->y2, k->y, err);
    }
    return EMU2_ERR_INTERNAL;
}

static void drop_kept(recorder *r)
{
    for (size_t i = 0; i < r->n_ops; i++) {
        free(r->ops[i].idx);
        free(r->ops[i].idx2);
        free(r->ops[i].mask);
    }
    r->n_ops = 0;
}

/* A launch: the kept ops, in order. */
static int launch(recorder *r)
{
    emu2_error err;
    int ok = 1;
    for (size_t i = 0; i < r->n_ops && ok; i++)
        ok = run_op(r, &r->ops[i], &err) == EMU2_OK;
    if (!ok)
        printf("    launched op failed: %s\n", err.message);
    drop_kept(r);
    r->launches++;
    return ok;
}

/* ---------------------------------------------------------------- the ops a step uses */

static emu2_status r_embedding(emu2_backend *be, size_t n, const int32_t *ids, const emu2_tensor_view *t, float *out,
                               emu2_error *err)
{
    recorder *r = rec_of(be);
    if (!r->recording)
        return r->cpu->ops->embedding(r->cpu, n, ids, t, out, err);
    emu2_status st = emu2_check_embedding_args(n, ids, t, out, NULL, err); /* errors at the call, as on CUDA */
    if (st != EMU2_OK)
        return st;
    kept_op *k = keep(r, OP_EMBEDDING);
    k->a = n, k->idx = copy_ints(ids, n), k->v = t, k->y = out;
    return EMU2_OK;
}

static emu2_status r_copy_rows(emu2_backend *be, size_t n, size_t cols, const float *src, size_t ss, size_t sn,
                               const int32_t *sr, float *dst, size_t ds, size_t dn, const int32_t *dr, emu2_error *err)
{
    recorder *r = rec_of(be);
    if (!r->recording)
        return r->cpu->ops->copy_rows(r->cpu, n, cols, src, ss, sn, sr, dst, ds, dn, dr, err);
    kept_op *k = keep(r, OP_COPY_ROWS);
    k->a = n, k->b = cols, k->x = src, k->c = ss, k->d = sn, k->idx = copy_ints(sr, n), k->y = dst, k->e = ds;
    k->f = dn, k->idx2 = copy_ints(dr, n);
    return EMU2_OK;
}

static emu2_status r_rmsnorm(emu2_backend *be, size_t rows, size_t n, const float *x, const emu2_tensor_view *w,
                             float eps, float *y, emu2_error *err)
{
    recorder *r = rec_of(be);
    if (!r->recording)
        return r->cpu->ops->rmsnorm(r->cpu, rows, n, x, w, eps, y, err);
    kept_op *k = keep(r, OP_RMSNORM);
    k->a = rows, k->b = n, k->x = x, k->v = w, k->eps = eps, k->y = y;
    return EMU2_OK;
}

static emu2_status r_linear(emu2_backend *be, size_t M, size_t K, size_t N, const float *x, size_t xs,
                            const emu2_op_weight *W, const emu2_tensor_view *bias, float *y, size_t ys, emu2_error *err)
{
    recorder *r = rec_of(be);
    if (!r->recording || bias)
        return r->recording ? EMU2_ERR_UNSUPPORTED : r->cpu->ops->linear(r->cpu, M, K, N, x, xs, W, bias, y, ys, err);
    kept_op *k = keep(r, OP_LINEAR);
    k->a = M, k->b = K, k->c = N, k->x = x, k->d = xs, k->w = W, k->y = y, k->e = ys;
    return EMU2_OK;
}

static emu2_status r_rope(emu2_backend *be, size_t rows, size_t heads, size_t hd, float *x, size_t stride,
                          const int32_t *pos, float theta, unsigned flags, emu2_error *err)
{
    recorder *r = rec_of(be);
    if (!r->recording)
        return r->cpu->ops->rope(r->cpu, rows, heads, hd, x, stride, pos, theta, flags, err);
    kept_op *k = keep(r, OP_ROPE);
    k->a = rows, k->b = heads, k->c = hd, k->y = x, k->d = stride, k->idx = copy_ints(pos, rows), k->theta = theta;
    k->flags = flags;
    return EMU2_OK;
}

static emu2_status r_attention(emu2_backend *be, const emu2_attention_args *a, emu2_error *err)
{
    recorder *r = rec_of(be);
    if (!r->recording)
        return r->cpu->ops->attention(r->cpu, a, err);
    kept_op *k = keep(r, OP_ATTENTION);
    k->att = *a;
    if (a->key_mask) {
        k->mask = malloc(a->batch * a->kv_len);
        memcpy(k->mask, a->key_mask, a->batch * a->kv_len);
    }
    return EMU2_OK;
}

static emu2_status r_add(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    recorder *r = rec_of(be);
    if (!r->recording)
        return r->cpu->ops->add(r->cpu, n, a, b, y, err);
    kept_op *k = keep(r, OP_ADD);
    k->a = n, k->x = a, k->y2 = b, k->y = y;
    return EMU2_OK;
}

static emu2_status r_silu_mul(emu2_backend *be, size_t n, const float *a, const float *b, float *y, emu2_error *err)
{
    recorder *r = rec_of(be);
    if (!r->recording)
        return r->cpu->ops->silu_mul(r->cpu, n, a, b, y, err);
    kept_op *k = keep(r, OP_SILU_MUL);
    k->a = n, k->x = a, k->y2 = b, k->y = y;
    return EMU2_OK;
}

/* ---------------------------------------------------------------- pass-through and the hooks */

static float *r_alloc(emu2_backend *be, size_t n, emu2_error *err)
{
    return rec_of(be)->cpu->ops->alloc(rec_of(be)->cpu, n, err);
}
static void r_free(emu2_backend *be, float *p)
{
    rec_of(be)->cpu->ops->free(rec_of(be)->cpu, p);
}
static emu2_status r_download(emu2_backend *be, float *h, const float *src, size_t n, emu2_error *err)
{
    if (rec_of(be)->recording)
        return EMU2_ERR_UNSUPPORTED; /* a recording never copies to the host */
    return rec_of(be)->cpu->ops->download(rec_of(be)->cpu, h, src, n, err);
}

static int r_step_begin(emu2_backend *be, uint64_t key)
{
    (void)key;
    recorder *r = rec_of(be);
    r->recording = r->script == 0 || roll(r, 5) != 0;
    return r->recording;
}

static int r_step_cut(emu2_backend *be)
{
    recorder *r = rec_of(be);
    unsigned what = r->script ? roll(r, 10) : 0;
    if (what < 7) /* launched, the rest recorded */
        return launch(r) ? EMU2_STEP_CUT_LAUNCHED | EMU2_STEP_CUT_RECORDING : 0;
    if (what == 7) { /* not launched: the decoder issues it again, and the rest, op by op */
        drop_kept(r);
        r->recording = 0;
        r->reruns_asked++;
        return 0;
    }
    if (what == 8) { /* launched, the rest op by op */
        r->recording = 0;
        return launch(r) ? EMU2_STEP_CUT_LAUNCHED : 0;
    }
    return EMU2_STEP_CUT_RECORDING; /* the part goes on */
}

static int r_step_end(emu2_backend *be, int ok)
{
    recorder *r = rec_of(be);
    r->recording = 0;
    if (!ok || (r->script && roll(r, 6) == 0)) {
        drop_kept(r);
        r->reruns_asked++;
        return 0;
    }
    return launch(r);
}

static emu2_ops rec_ops;

static recorder *recorder_open(emu2_backend *cpu, int script, uint64_t seed)
{
    rec_ops = *cpu->ops;
    rec_ops.name = "recorder";
    rec_ops.alloc = r_alloc;
    rec_ops.free = r_free;
    rec_ops.download = r_download;
    rec_ops.embedding = r_embedding;
    rec_ops.copy_rows = r_copy_rows;
    rec_ops.rmsnorm = r_rmsnorm;
    rec_ops.linear = r_linear;
    rec_ops.rope = r_rope;
    rec_ops.attention = r_attention;
    rec_ops.add = r_add;
    rec_ops.silu_mul = r_silu_mul;
    rec_ops.step_begin = r_step_begin;
    rec_ops.step_cut = r_step_cut;
    rec_ops.step_end = r_step_end;
    recorder *r = calloc(1, sizeof *r);
    r->base = *cpu;
    r->base.ops = &rec_ops;
    r->cpu = cpu;
    r->script = script;
    r->rng = seed | 1;
    return r;
}

static void recorder_close(recorder *r)
{
    drop_kept(r);
    free(r->ops);
    free(r);
}

/* ---------------------------------------------------------------- the runs */

enum { ROWS = 3, PROMPT = 5, STEPS = 16 };

/* Prefill (row 0 left-padded) and STEPS greedy steps on `be` with the model's weights; a
 * beam-style reordering after every third step. logits: [(STEPS + 1) * ROWS * V]. */
static int decode_run(test_model *m, emu2_backend *be, float *logits, emu2_error *err)
{
    const size_t V = (size_t)m->cfg.vocab_size, D = (size_t)m->cfg.hidden_size;
    int32_t ids[ROWS * PROMPT];
    uint8_t mask[ROWS * PROMPT];
    for (size_t i = 0; i < ROWS * PROMPT; i++) {
        ids[i] = (int32_t)(3 + (i * 7919) % (V - 3));
        mask[i] = i != 0;
    }
    emu2_decoder_limits lim = {ROWS, PROMPT + STEPS, 0};
    emu2_decoder_session *s = NULL;
    float *emb = be->ops->alloc(be, ROWS * PROMPT * D, err);
    int ok = emb && emu2_embed_tokens(be, &m->w->decoder.embed, ids, ROWS * PROMPT, emb, err) == EMU2_OK &&
             emu2_decoder_session_create(be, &m->w->decoder, &m->cfg, &lim, &s, err) == EMU2_OK &&
             emu2_decoder_prefill(s, ROWS, PROMPT, emb, mask, logits, NULL, err) == EMU2_OK;
    for (size_t step = 0; ok && step < STEPS; step++) {
        int32_t next[ROWS];
        const float *last = logits + step * ROWS * V;
        for (size_t r = 0; r < ROWS; r++) {
            size_t best = 0;
            for (size_t v = 1; v < V; v++)
                if (last[r * V + v] > last[r * V + best])
                    best = v;
            next[r] = (int32_t)best;
        }
        if (step % 3 == 2) {
            int32_t src[ROWS] = {1, 0, 1}, moved[ROWS] = {next[1], next[0], next[1]};
            ok = emu2_decoder_select_rows(s, ROWS, src, err) == EMU2_OK;
            memcpy(next, moved, sizeof moved);
        }
        ok = ok && emu2_decoder_step(s, next, logits + (step + 1) * ROWS * V, NULL, err) == EMU2_OK;
    }
    emu2_decoder_session_free(s);
    if (emb)
        be->ops->free(be, emb);
    return ok;
}

TEST(recorded_parts_give_the_same_logits)
{
    test_model m;
    CHECK(test_model_open("models/emu2-tiny-digits", 1, &m));
    const size_t V = (size_t)m.cfg.vocab_size, n = (STEPS + 1) * ROWS * V;
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    emu2_error err;
    int ok = want && got && decode_run(&m, m.be, want, &err);
    if (!ok)
        printf("    plain cpu: %s\n", err.message);
    size_t launches = 0, reruns = 0;
    for (int script = 0; ok && script < 2; script++)
        for (uint64_t seed = 1; ok && seed <= (script ? 6u : 1u); seed++) {
            recorder *r = recorder_open(m.be, script, seed * 0x9e3779b97f4a7c15ULL);
            memset(got, 0, n * sizeof *got);
            ok = decode_run(&m, &r->base, got, &err);
            if (!ok)
                printf("    recorder (script %d, seed %llu): %s\n", script, (unsigned long long)seed, err.message);
            else if (memcmp(got, want, n * sizeof *got)) {
                printf("    recorder (script %d, seed %llu): logits differ from the plain backend\n", script,
                       (unsigned long long)seed);
                ok = 0;
            }
            if (script == 0 && r->launches != STEPS * 3) /* the tiny model's 4 layers: parts 1, 2, 1 */
                printf("    %zu launches for %d steps\n", r->launches, STEPS), ok = 0;
            launches += r->launches;
            reruns += r->reruns_asked;
            recorder_close(r);
        }
    printf("    %zu part launches, %zu parts issued again op by op\n", launches, reruns);
    free(want);
    free(got);
    test_model_close(&m);
    CHECK(ok);
    CHECK(reruns > 0); /* the random scripts did make the decoder rerun parts */
}

TEST(bad_token_in_a_recorded_step)
{
    test_model m;
    CHECK(test_model_open("models/emu2-tiny-digits", 1, &m));
    recorder *r = recorder_open(m.be, 0, 1);
    emu2_backend *be = &r->base;
    const size_t D = (size_t)m.cfg.hidden_size, V = (size_t)m.cfg.vocab_size;
    emu2_error err;
    emu2_decoder_limits lim = {2, 8, 0};
    emu2_decoder_session *s = NULL;
    int32_t ids[4] = {5, 6, 7, 8}, good[2] = {9, 10}, bad[2] = {11, (int32_t)V};
    float *emb = be->ops->alloc(be, 4 * D, &err), logits[2 * 32000];
    int ok = V <= 32000 && emb && emu2_embed_tokens(be, &m.w->decoder.embed, ids, 4, emb, &err) == EMU2_OK &&
             emu2_decoder_session_create(be, &m.w->decoder, &m.cfg, &lim, &s, &err) == EMU2_OK &&
             emu2_decoder_prefill(s, 2, 2, emb, NULL, NULL, NULL, &err) == EMU2_OK &&
             emu2_decoder_step(s, good, NULL, NULL, &err) == EMU2_OK;
    size_t launches = r->launches;
    emu2_status st = ok ? emu2_decoder_step(s, bad, logits, NULL, &err) : EMU2_OK;
    size_t len = ok ? emu2_decoder_length(s) : 0;
    int again = ok && emu2_decoder_step(s, good, logits, NULL, &err) == EMU2_OK;
    emu2_decoder_session_free(s);
    if (emb)
        be->ops->free(be, emb);
    size_t launched_bad = r->launches;
    recorder_close(r);
    test_model_close(&m);
    CHECK(ok);
    CHECKF(st == EMU2_ERR_INVALID_ARGUMENT || st == EMU2_ERR_LIMIT, "status %d", st);
    CHECK(len == 3);                  /* the failed step added nothing */
    CHECK(launched_bad - launches == 3); /* only the good step after it launched (its 3 parts) */
    CHECK(again);
}

int main(void)
{
    RUN(recorded_parts_give_the_same_logits);
    RUN(bad_token_in_a_recorded_step);
    return check_finish();
}
