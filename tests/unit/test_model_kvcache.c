/* test_model_kvcache.c: the decoder session's KV cache against full recomputation. Starting from
 * golden runs with left padding: step-by-step decoding must give the logits of a fresh prefill of
 * the whole (prompt + fed tokens) sequence, also after select_rows (beam reorders, widening a batch),
 * with 1 and 3 threads; plus the session's limits. */
#include "check.h"
#include "model/decoder.h"
#include "test_model_run_support.h"

#define MAX_STEPS 6
#define MAX_ROWS 4

/* Each row's history: which prompt row it started from and the tokens fed since. */
typedef struct history {
    int32_t prompt_row[MAX_ROWS];
    int32_t tokens[MAX_ROWS][MAX_STEPS];
    size_t n_rows, n_tokens;
} history;

typedef struct fixture {
    test_model m;
    golden g, px;
    run_input r;
    float *base; /* host copy of r.embeds */
    size_t D, V;
} fixture;

static void fixture_close(fixture *f)
{
    if (f->m.be)
        run_input_free(&f->m, &f->r);
    free(f->base);
    test_model_close(&f->m);
    golden_close(&f->g);
    golden_close(&f->px);
}

/* Loads run `run_id` of golden case `name` on `threads` threads. */
static int fixture_open(fixture *f, const char *name, const char *run_id, int threads)
{
    memset(f, 0, sizeof *f);
    if (!golden_open(name, &f->g) || !golden_open("pixels", &f->px))
        return 0;
    const char *dir = json_string_value(json_object_get(json_object_get(f->g.manifest, "model"), "dir"));
    if (!dir || !test_model_open(dir, threads, &f->m))
        return 0;
    json_t *runs = json_object_get(f->g.manifest, "runs"), *run = NULL;
    for (size_t i = 0; i < json_array_size(runs); i++) {
        const char *id = json_string_value(json_object_get(json_array_get(runs, i), "id"));
        if (id && !strcmp(id, run_id))
            run = json_array_get(runs, i);
    }
    int32_t image_id = image_token_id(dir, &f->m.cfg);
    if (!run || image_id < 0 || !run_input_build(&f->m, &f->g, &f->px, run, image_id, &f->r))
        return 0;
    f->D = (size_t)f->m.cfg.hidden_size;
    f->V = (size_t)f->m.cfg.vocab_size;
    emu2_error err;
    f->base = malloc(f->r.B * f->r.T * f->D * sizeof(float));
    return f->base && f->m.be->ops->download(f->m.be, f->base, f->r.embeds, f->r.B * f->r.T * f->D, &err) == EMU2_OK;
}

/* Logits [h->n_rows, V] of a fresh prefill of every row's full history. */
static int recompute(fixture *f, const history *h, float *logits)
{
    const size_t T = f->r.T, L = T + h->n_tokens, D = f->D, rows = h->n_rows;
    emu2_backend *be = f->m.be;
    emu2_error err;
    float *host = malloc(rows * L * D * sizeof(float)), *tok = be->ops->alloc(be, D, &err);
    float *emb = be->ops->alloc(be, rows * L * D, &err);
    uint8_t *mask = malloc(rows * L);
    emu2_decoder_session *s = NULL;
    int ok = host && tok && emb && mask;
    for (size_t i = 0; ok && i < rows; i++) {
        size_t p = (size_t)h->prompt_row[i];
        memcpy(host + i * L * D, f->base + p * T * D, T * D * sizeof(float));
        memcpy(mask + i * L, f->r.mask + p * T, T);
        for (size_t k = 0; ok && k < h->n_tokens; k++) {
            ok = emu2_embed_tokens(be, &f->m.w->decoder.embed, &h->tokens[i][k], 1, tok, &err) == EMU2_OK &&
                 be->ops->download(be, host + (i * L + T + k) * D, tok, D, &err) == EMU2_OK;
            mask[i * L + T + k] = 1;
        }
    }
    emu2_decoder_limits lim = {rows, L, 0};
    ok = ok && be->ops->upload(be, emb, host, rows * L * D, &err) == EMU2_OK &&
         emu2_decoder_session_create(be, &f->m.w->decoder, &f->m.cfg, &lim, &s, &err) == EMU2_OK &&
         emu2_decoder_prefill(s, rows, L, emb, mask, logits, NULL, &err) == EMU2_OK;
    emu2_decoder_session_free(s);
    free(host);
    free(mask);
    if (tok)
        be->ops->free(be, tok);
    if (emb)
        be->ops->free(be, emb);
    return ok;
}

/* Feeds one token per row (recording it) and compares the logits with a recomputation. */
static int step_and_check(fixture *f, emu2_decoder_session *s, history *h, const int32_t *ids, double *worst)
{
    float *got = malloc(h->n_rows * f->V * sizeof(float)), *want = malloc(h->n_rows * f->V * sizeof(float));
    emu2_error err;
    int ok = got && want && h->n_tokens < MAX_STEPS;
    if (ok && emu2_decoder_step(s, ids, got, NULL, &err) != EMU2_OK) {
        printf("    step: %s\n", err.message);
        ok = 0;
    }
    if (ok) {
        for (size_t i = 0; i < h->n_rows; i++)
            h->tokens[i][h->n_tokens] = ids[i];
        h->n_tokens++;
        ok = recompute(f, h, want);
    }
    double e = ok ? rel_max_err(got, want, h->n_rows * f->V) : INFINITY;
    if (e > *worst)
        *worst = e;
    free(got);
    free(want);
    return ok && e <= 1e-5;
}

/* Reorders the session and the history alike. */
static int select_rows(emu2_decoder_session *s, history *h, size_t n, const int32_t *src)
{
    emu2_error err;
    if (emu2_decoder_select_rows(s, n, src, &err) != EMU2_OK) {
        printf("    select_rows: %s\n", err.message);
        return 0;
    }
    history old = *h;
    for (size_t i = 0; i < n; i++) {
        h->prompt_row[i] = old.prompt_row[src[i]];
        memcpy(h->tokens[i], old.tokens[src[i]], sizeof h->tokens[i]);
    }
    h->n_rows = n;
    return emu2_decoder_rows(s) == n;
}

static void kv_case(const char *name, const char *run_id)
{
    for (size_t ti = 0; ti < sizeof test_thread_counts / sizeof test_thread_counts[0]; ti++) {
        fixture f;
        int opened = fixture_open(&f, name, run_id, test_thread_counts[ti]);
        if (!opened || f.r.B != 2) {
            fixture_close(&f);
            CHECKF(0, "cannot set up %s/%s (need a batch of 2)", name, run_id);
        }
        const int32_t V = (int32_t)f.V, pad = f.m.cfg.pad_token_id;
        emu2_decoder_limits lim = {MAX_ROWS, f.r.T + MAX_STEPS, 7};
        emu2_decoder_session *s = NULL;
        emu2_error err;
        history h = {.prompt_row = {0, 1}, .n_rows = 2};
        double worst = 0;
        int ok = emu2_decoder_session_create(f.m.be, &f.m.w->decoder, &f.m.cfg, &lim, &s, &err) == EMU2_OK &&
                 emu2_decoder_prefill(s, 2, f.r.T, f.r.embeds, f.r.mask, NULL, NULL, &err) == EMU2_OK;
        /* two plain steps (one row fed pad, as finished rows are), then a beam-style widening to
         * 3 rows, a step, a reorder with repeats, a step, a shrink to 1 row, a step */
        int32_t a[2] = {5 % V, pad}, b[2] = {(V - 1), 17 % V}, c[3] = {100 % V, 200 % V, 300 % V};
        int32_t d[3] = {7 % V, 7 % V, 9 % V}, e[1] = {11 % V};
        int32_t widen[3] = {1, 0, 1}, shuffle[3] = {2, 2, 0}, shrink[1] = {1};
        ok = ok && step_and_check(&f, s, &h, a, &worst) && step_and_check(&f, s, &h, b, &worst) &&
             select_rows(s, &h, 3, widen) && step_and_check(&f, s, &h, c, &worst) &&
             select_rows(s, &h, 3, shuffle) && step_and_check(&f, s, &h, d, &worst) &&
             select_rows(s, &h, 1, shrink) && step_and_check(&f, s, &h, e, &worst);
        ok = ok && emu2_decoder_length(s) == f.r.T + 5;
        printf("    %s/%s, %d thread(s): worst max_abs/ref_max %.3g (steps vs recompute)\n", name, run_id,
               test_thread_counts[ti], worst);
        emu2_decoder_session_free(s);
        fixture_close(&f);
        CHECKF(ok, "%s/%s: KV-cache decoding differs from recomputation", name, run_id);
    }
}

TEST(kv_steps_vis448) { kv_case("vis448", "batch2_left_pad"); }
TEST(kv_steps_chat) { kv_case("chat", "native_batch2_left_pad"); }

/* Errors: a full session, bad rows, ids past the vocabulary, a step before prefill, an empty row. */
TEST(kv_limits)
{
    fixture f;
    int opened = fixture_open(&f, "vis448", "text_only", 1);
    if (!opened) {
        fixture_close(&f);
        CHECK(0);
    }
    emu2_decoder_limits lim = {2, f.r.T + 1, 0};
    emu2_decoder_session *s = NULL;
    emu2_error err;
    float *logits = malloc(2 * f.V * sizeof(float));
    int32_t ok_id[2] = {3, 4}, bad_id[2] = {(int32_t)f.V, 0}, src_bad[1] = {1}, src_neg[1] = {-1};
    uint8_t zero_mask[64] = {0};
    int ok = logits && f.r.T <= 64 &&
             emu2_decoder_session_create(f.m.be, &f.m.w->decoder, &f.m.cfg, &lim, &s, &err) == EMU2_OK;
    emu2_status before = ok ? emu2_decoder_step(s, ok_id, logits, NULL, &err) : EMU2_OK;
    emu2_status empty = ok ? emu2_decoder_prefill(s, 1, f.r.T, f.r.embeds, zero_mask, logits, NULL, &err) : EMU2_OK;
    emu2_status too_long = ok ? emu2_decoder_prefill(s, 1, f.r.T + 2, f.r.embeds, NULL, logits, NULL, &err) : EMU2_OK;
    emu2_status too_many = ok ? emu2_decoder_prefill(s, 3, 1, f.r.embeds, NULL, logits, NULL, &err) : EMU2_OK;
    ok = ok && emu2_decoder_prefill(s, 1, f.r.T, f.r.embeds, f.r.mask, logits, NULL, &err) == EMU2_OK;
    emu2_status oob_id = ok ? emu2_decoder_step(s, bad_id, logits, NULL, &err) : EMU2_OK;
    emu2_status oob_row = ok ? emu2_decoder_select_rows(s, 1, src_bad, &err) : EMU2_OK;
    emu2_status neg_row = ok ? emu2_decoder_select_rows(s, 1, src_neg, &err) : EMU2_OK;
    ok = ok && emu2_decoder_step(s, ok_id, logits, NULL, &err) == EMU2_OK;
    emu2_status full = ok ? emu2_decoder_step(s, ok_id, logits, NULL, &err) : EMU2_OK;
    emu2_decoder_session_free(s);
    free(logits);
    fixture_close(&f);
    CHECK(ok);
    CHECKF(before != EMU2_OK && empty != EMU2_OK && too_long == EMU2_ERR_LIMIT && too_many == EMU2_ERR_LIMIT,
           "%d %d %d %d", before, empty, too_long, too_many);
    CHECKF(oob_id != EMU2_OK && oob_row != EMU2_OK && neg_row != EMU2_OK && full == EMU2_ERR_LIMIT, "%d %d %d %d",
           oob_id, oob_row, neg_row, full);
}

/* step_embeds with a token's embedding is step with that token (Emu2-Gen feeds embeddings); a NULL
 * prefill mask is an all-ones mask; hidden is the final-norm state that lm_head maps to the logits. */
TEST(kv_step_embeds)
{
    fixture f;
    int opened = fixture_open(&f, "vis448", "text_only", 3);
    if (!opened) {
        fixture_close(&f);
        CHECK(0);
    }
    emu2_backend *be = f.m.be;
    emu2_decoder_limits lim = {1, f.r.T + 2, 0};
    emu2_decoder_session *s1 = NULL, *s2 = NULL;
    emu2_error err;
    const size_t V = f.V, D = f.D;
    float *l1 = malloc(V * sizeof(float)), *l2 = malloc(V * sizeof(float));
    float *h1 = malloc(D * sizeof(float)), *h2 = malloc(D * sizeof(float));
    float *tok = be->ops->alloc(be, D, &err);
    int32_t id[1] = {1967};
    int ok = l1 && l2 && h1 && h2 && tok &&
             emu2_decoder_session_create(be, &f.m.w->decoder, &f.m.cfg, &lim, &s1, &err) == EMU2_OK &&
             emu2_decoder_session_create(be, &f.m.w->decoder, &f.m.cfg, &lim, &s2, &err) == EMU2_OK &&
             emu2_decoder_prefill(s1, 1, f.r.T, f.r.embeds, f.r.mask, l1, h1, &err) == EMU2_OK &&
             emu2_decoder_prefill(s2, 1, f.r.T, f.r.embeds, NULL, l2, h2, &err) == EMU2_OK;
    int same_prefill = ok && !memcmp(l1, l2, V * sizeof(float)) && !memcmp(h1, h2, D * sizeof(float));
    ok = ok && emu2_embed_tokens(be, &f.m.w->decoder.embed, id, 1, tok, &err) == EMU2_OK &&
         emu2_decoder_step(s1, id, l1, h1, &err) == EMU2_OK &&
         emu2_decoder_step_embeds(s2, tok, l2, h2, &err) == EMU2_OK;
    int same_step = ok && !memcmp(l1, l2, V * sizeof(float)) && !memcmp(h1, h2, D * sizeof(float));
    /* logits = lm_head . hidden, recomputed in double */
    double worst = 0, scale = 0;
    const emu2_tensor_view *head = &f.m.w->decoder.lm_head.w;
    for (size_t v = 0; ok && v < V; v++) {
        double acc = 0;
        for (size_t k = 0; k < D; k++)
            acc += (double)h1[k] * emu2_bf16_to_f32(((const uint16_t *)head->data)[v * D + k]);
        if (fabs(acc - l1[v]) > worst)
            worst = fabs(acc - l1[v]);
        if (fabs(acc) > scale)
            scale = fabs(acc);
    }
    emu2_decoder_session_free(s1);
    emu2_decoder_session_free(s2);
    if (tok)
        be->ops->free(be, tok);
    free(l1);
    free(l2);
    free(h1);
    free(h2);
    int bf16 = f.m.w->decoder.lm_head.w.dtype == EMU2_DT_BF16;
    fixture_close(&f);
    CHECKF(ok, "%s", err.message);
    CHECK(same_prefill);
    CHECK(same_step);
    CHECK(bf16);
    CHECKF(worst <= 1e-5 * scale, "lm_head(hidden) differs from the logits by %g (scale %g)", worst, scale);
}

int main(void)
{
    RUN(kv_step_embeds);
    RUN(kv_steps_vis448);
    RUN(kv_steps_chat);
    RUN(kv_limits);
    return check_finish();
}
