/* test_topk_search.c: the search through emu2_lm_stepper.step_topk (core/generate/search_topk.c)
 * gives exactly what the full-logits path gives: the table LM of test_generate_table.h wrapped so
 * that step_topk runs the CPU backend's top_k op on its rows. Greedy, sampling with top-k (+
 * temperature, top-p), beam search, batches, min length, repetition penalty, ties at the cut
 * (which must fall back to the full rows), a NaN row (same error); ids, EOS flags and beam scores
 * compared bit for bit, and the counters say which path ran. */
#include <math.h>

#include "check.h"
#include "generate/search_item.h"
#include "ops/ops.h"
#include "test_generate_table.h"

#define V 300
#define P 61
static float g_start[3 * V], g_rows[P * V];

/* A deterministic table; quantum > 0 rounds values to its multiples (many ties). */
static void make_table(uint64_t seed, float quantum)
{
    uint64_t x = seed;
    for (int i = 0; i < 3 * V + P * V; i++) {
        float u = 0;
        for (int k = 0; k < 4; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            u += (float)((x >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
        }
        float v = 3.0f * u;
        if (quantum > 0)
            v = quantum * roundf(v / quantum);
        *(i < 3 * V ? &g_start[i] : &g_rows[i - 3 * V]) = v;
    }
}

typedef struct wrapped_lm {
    table_lm t;
    emu2_backend *be;
    float last[TABLE_MAX_ROWS * V];
} wrapped_lm;

static emu2_status w_step(void *user, const int32_t *tokens, size_t n, float *logits, emu2_error *err)
{
    return table_step(&((wrapped_lm *)user)->t, tokens, n, logits, err);
}

static emu2_status w_reorder(void *user, const int32_t *src, size_t n, emu2_error *err)
{
    return table_reorder(&((wrapped_lm *)user)->t, src, n, err);
}

static emu2_status w_step_topk(void *user, const int32_t *tokens, size_t n, size_t k, int log_softmax, float *values,
                               int32_t *ids, emu2_error *err)
{
    wrapped_lm *w = user;
    emu2_status st = table_step(&w->t, tokens, n, w->last, err);
    return st ? st
              : w->be->ops->top_k(w->be, n, V, w->last, k, log_softmax ? EMU2_TOPK_LOG_SOFTMAX : 0u, values, ids, err);
}

static emu2_status w_last_logits(void *user, float *logits, emu2_error *err)
{
    (void)err;
    wrapped_lm *w = user;
    memcpy(logits, w->last, w->t.n_rows * V * sizeof(float));
    return EMU2_OK;
}

static emu2_backend *g_be;

/* Runs the search on items 0..batch-1, with step_topk offered or not. */
static emu2_status run(const emu2_gen_options *o, size_t batch, int offer_topk, emu2_search_result *r,
                       emu2_error *err)
{
    static wrapped_lm w;
    memset(&w.t, 0, sizeof w.t);
    w.t.start = g_start;
    w.t.rows = g_rows;
    w.t.vocab = V;
    w.t.mod = 2147483647;
    w.t.mul = 48271;
    w.t.n_table_rows = P;
    w.be = g_be;
    int items[3] = {0, 1, 2};
    float logits[3 * V];
    emu2_lm_stepper lm = table_prefill(&w.t, items, batch, logits);
    lm.user = &w;
    lm.step = w_step;
    lm.reorder = w_reorder;
    if (offer_topk) {
        lm.step_topk = w_step_topk;
        lm.last_logits = w_last_logits;
        lm.topk_max = EMU2_TOPK_MAX_K;
    }
    memset(r, 0, sizeof *r);
    static const emu2_search_ids ids = {1, 2, 0};
    return emu2_search(&lm, logits, batch, o, ids, NULL, NULL, r, err);
}

/* Both paths; 1 when the results are identical. *topk gets the top-k run's counters. */
static int same_both_ways(const emu2_gen_options *o, size_t batch, emu2_search_result *topk, char *why, size_t why_n)
{
    emu2_search_result full;
    emu2_error e1 = {0}, e2 = {0};
    emu2_status s1 = run(o, batch, 0, &full, &e1), s2 = run(o, batch, 1, topk, &e2);
    int same = s1 == s2 && strcmp(e1.message, e2.message) == 0 && full.batch == topk->batch;
    if (!same)
        snprintf(why, why_n, "status %d/%d: '%.100s' / '%.100s'", s1, s2, e1.message, e2.message);
    for (size_t i = 0; same && i < full.batch; i++) {
        const emu2_search_item *a = &full.items[i], *b = &topk->items[i];
        same = a->n_ids == b->n_ids && a->ended_by_eos == b->ended_by_eos &&
               memcmp(&a->sequence_score, &b->sequence_score, sizeof a->sequence_score) == 0 &&
               (a->n_ids == 0 || memcmp(a->ids, b->ids, a->n_ids * sizeof *a->ids) == 0);
        if (!same)
            snprintf(why, why_n, "item %zu: %zu vs %zu ids, score %.9g vs %.9g", i, a->n_ids, b->n_ids,
                     a->sequence_score, b->sequence_score);
    }
    same = same && full.topk_steps == 0;
    emu2_search_result_free(&full);
    if (!same)
        emu2_search_result_free(topk);
    return same;
}

static emu2_gen_options opts(int beams, int max_new)
{
    emu2_gen_options o;
    emu2_gen_options_init(&o);
    o.num_beams = beams;
    o.max_new_tokens = max_new;
    o.min_length = 0;
    return o;
}

TEST(greedy_batch_all_steps_topk)
{
    char why[256] = "";
    emu2_search_result r;
    int ok = 1;
    for (uint64_t seed = 1; ok && seed <= 5; seed++) {
        make_table(seed, 0);
        emu2_gen_options o = opts(1, 24);
        ok = same_both_ways(&o, 3, &r, why, sizeof why);
        CHECKF(ok, "seed %llu: %s", (unsigned long long)seed, why);
        CHECK(r.topk_steps == r.decoder_steps && r.decoder_steps > 0 && r.topk_fallbacks == 0);
        emu2_search_result_free(&r);
    }
}

TEST(greedy_ties_min_length_repetition)
{
    char why[256] = "";
    emu2_search_result r;
    make_table(7, 0.5f); /* ties everywhere: the first id of the maximum must win both ways */
    emu2_gen_options o = opts(1, 20);
    CHECKF(same_both_ways(&o, 3, &r, why, sizeof why), "%s", why);
    CHECK(r.topk_steps == r.decoder_steps);
    emu2_search_result_free(&r);
    make_table(8, 0);
    o.min_length = 6; /* EOS banned at the first steps: those use full rows */
    CHECKF(same_both_ways(&o, 2, &r, why, sizeof why), "%s", why);
    CHECK(r.topk_steps > 0 && r.topk_steps < r.decoder_steps);
    emu2_search_result_free(&r);
    o.min_length = 0;
    o.repetition_penalty = 1.3f; /* changes single logits: never top-k */
    CHECKF(same_both_ways(&o, 2, &r, why, sizeof why), "%s", why);
    CHECK(r.topk_steps == 0 && r.decoder_steps > 0);
    emu2_search_result_free(&r);
}

TEST(sampling_top_k_exact)
{
    char why[256] = "";
    emu2_search_result r;
    static const struct { int top_k; float temperature, top_p, quantum; } cases[] = {
        {50, 1.0f, 1.0f, 0}, {50, 0.7f, 0.9f, 0}, {5, 1.3f, 1.0f, 0}, {1, 1.0f, 1.0f, 0}, {20, 0.5f, 0.6f, 0.25f}};
    size_t fallbacks = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (uint64_t seed = 1; seed <= 8; seed++) {
            make_table(seed * 31 + c, cases[c].quantum);
            emu2_gen_options o = opts(1, 16);
            o.do_sample = 1;
            o.top_k = cases[c].top_k;
            o.temperature = cases[c].temperature;
            o.top_p = cases[c].top_p;
            o.seed = seed;
            CHECKF(same_both_ways(&o, 2, &r, why, sizeof why), "case %zu seed %llu: %s", c, (unsigned long long)seed,
                   why);
            CHECK(r.topk_steps == r.decoder_steps);
            fallbacks += r.topk_fallbacks;
            emu2_search_result_free(&r);
        }
    CHECKF(fallbacks > 0, "the tied table never hit a tie at the cut"); /* the fallback was exercised */
    emu2_gen_options o = opts(1, 16);
    o.do_sample = 1;
    o.top_k = 0; /* no top-k: the draw needs every id */
    CHECKF(same_both_ways(&o, 2, &r, why, sizeof why), "%s", why);
    CHECK(r.topk_steps == 0);
    emu2_search_result_free(&r);
}

TEST(beam_search_exact)
{
    char why[256] = "";
    emu2_search_result r;
    size_t fallbacks = 0, topk_steps = 0;
    static const struct { int beams; float lp, quantum; int min_length; } cases[] = {
        {5, -1.0f, 0, 0}, {5, 2.0f, 0, 0}, {2, 1.0f, 0, 0}, {3, -1.0f, 0, 5}, {5, -1.0f, 0.5f, 0}, {4, 1.0f, 0.25f, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            make_table(seed * 97 + c, cases[c].quantum);
            emu2_gen_options o = opts(cases[c].beams, 18);
            o.length_penalty = cases[c].lp;
            o.min_length = cases[c].min_length;
            size_t batch = 1 + (size_t)(seed % 3);
            CHECKF(same_both_ways(&o, batch, &r, why, sizeof why), "case %zu seed %llu: %s", c,
                   (unsigned long long)seed, why);
            CHECK(r.topk_steps > 0);
            if (cases[c].min_length)
                CHECK(r.topk_steps < r.decoder_steps);
            topk_steps += r.topk_steps;
            fallbacks += r.topk_fallbacks;
            emu2_search_result_free(&r);
        }
    CHECKF(fallbacks > 0 && fallbacks < topk_steps, "fallbacks %zu of %zu", fallbacks, topk_steps);
    make_table(3, 0);
    emu2_gen_options o = opts(3, 10);
    o.do_sample = 1; /* beam_sample draws over every id */
    CHECKF(same_both_ways(&o, 2, &r, why, sizeof why), "%s", why);
    CHECK(r.topk_steps == 0);
    emu2_search_result_free(&r);
}

TEST(bad_rows_same_error)
{
    char why[256] = "";
    emu2_search_result r;
    for (int beams = 1; beams <= 3; beams += 2)
        for (int kind = 0; kind < 3; kind++) {
            make_table(11, 0);
            for (int p = 0; p < P; p++) /* every row reached after the prefill is bad */
                for (int v = 0; v < V; v++)
                    if (kind == 2)
                        g_rows[p * V + v] = -INFINITY;
                    else if (v == 17 + p % 5 || (kind == 1 && v == 12))
                        g_rows[p * V + v] = v == 12 ? INFINITY : NAN;
            emu2_gen_options o = opts(beams, 8);
            /* both paths fail with the same status and message (the full row names the id) */
            CHECKF(same_both_ways(&o, 2, &r, why, sizeof why), "beams %d kind %d: %s", beams, kind, why);
            emu2_error e = {0};
            CHECK(run(&o, 2, 1, &r, &e) == EMU2_ERR_INTERNAL);
            const char *want = kind == 2 ? "only -inf"
                               : kind    ? "infinite logit for token 12"
                                         : "a NaN logit for token 17";
            CHECKF(strstr(e.message, want), "%s", e.message);
        }
}

/* One request searched step by step (search_item.h, what continuous batching runs), fed the top_k
 * op's candidates where emu2_item_search_topk asks for them and the full rows otherwise; the result
 * must equal emu2_search on a batch of one. */
static int item_both_ways(const emu2_gen_options *o, size_t *topk_steps, char *why, size_t why_n)
{
    static wrapped_lm w;
    memset(&w.t, 0, sizeof w.t);
    w.t.start = g_start, w.t.rows = g_rows, w.t.vocab = V, w.t.mod = 2147483647, w.t.mul = 48271;
    w.t.n_table_rows = P;
    static const emu2_search_ids ids = {1, 2, 0};
    int item = 0;
    static float logits[TABLE_MAX_ROWS * V], values[TABLE_MAX_ROWS * EMU2_TOPK_MAX_K];
    static int32_t cand[TABLE_MAX_ROWS * EMU2_TOPK_MAX_K];
    int32_t tokens[TABLE_MAX_ROWS], src[TABLE_MAX_ROWS];
    table_prefill(&w.t, &item, 1, logits);
    emu2_item_search *is = NULL;
    emu2_error err = {0};
    emu2_search_result got = {0}, want = {0};
    int live = 0, ok = emu2_item_search_create(o, ids, V, NULL, &is, &err) == EMU2_OK &&
                       emu2_item_search_next(is, logits, tokens, src, &live, &err) == EMU2_OK;
    size_t rows = emu2_item_search_rows(is);
    while (ok && live) {
        int identity = w.t.n_rows == rows;
        for (size_t r = 0; r < rows; r++)
            identity &= src[r] == (int32_t)r;
        ok = (identity || table_reorder(&w.t, src, rows, &err) == EMU2_OK) &&
             table_step(&w.t, tokens, rows, logits, &err) == EMU2_OK;
        int log_softmax = 0, decided = 0;
        size_t k = ok ? emu2_item_search_topk(is, EMU2_TOPK_MAX_K, &log_softmax) : 0;
        if (ok && k)
            ok = g_be->ops->top_k(g_be, rows, V, logits, k, log_softmax ? EMU2_TOPK_LOG_SOFTMAX : 0u, values, cand,
                                  &err) == EMU2_OK &&
                 emu2_item_search_next_topk(is, values, cand, k, tokens, src, &live, &decided, &err) == EMU2_OK;
        if (ok && !decided)
            ok = emu2_item_search_next(is, logits, tokens, src, &live, &err) == EMU2_OK;
    }
    ok = ok && emu2_item_search_finish(is, &got, &err) == EMU2_OK;
    emu2_item_search_free(is);
    ok = ok && run(o, 1, 0, &want, &err) == EMU2_OK;
    if (!ok)
        snprintf(why, why_n, "%.200s", err.message);
    if (ok) {
        const emu2_search_item *a = &want.items[0], *b = &got.items[0];
        ok = a->n_ids == b->n_ids && a->ended_by_eos == b->ended_by_eos &&
             memcmp(&a->sequence_score, &b->sequence_score, sizeof a->sequence_score) == 0 &&
             (a->n_ids == 0 || memcmp(a->ids, b->ids, a->n_ids * sizeof *a->ids) == 0);
        if (!ok)
            snprintf(why, why_n, "%zu vs %zu ids, score %.9g vs %.9g", a->n_ids, b->n_ids, a->sequence_score,
                     b->sequence_score);
    }
    *topk_steps = got.topk_steps;
    emu2_search_result_free(&got);
    emu2_search_result_free(&want);
    return ok;
}

TEST(item_search_topk_exact)
{
    char why[256] = "";
    static const struct { int beams, do_sample, top_k, min_length; float quantum; } cases[] = {
        {1, 0, 0, 0, 0}, {1, 0, 0, 0, 0.5f}, {1, 1, 30, 0, 0}, {1, 1, 10, 0, 0.25f}, {5, 0, 0, 0, 0},
        {5, 0, 0, 6, 0}, {3, 0, 0, 0, 0.5f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (uint64_t seed = 1; seed <= 4; seed++) {
            make_table(seed * 13 + c, cases[c].quantum);
            emu2_gen_options o = opts(cases[c].beams, 16);
            o.do_sample = cases[c].do_sample, o.top_k = cases[c].top_k, o.seed = seed, o.temperature = 0.9f;
            o.min_length = cases[c].min_length;
            size_t topk_steps = 0;
            CHECKF(item_both_ways(&o, &topk_steps, why, sizeof why), "case %zu seed %llu: %s", c,
                   (unsigned long long)seed, why);
            /* tied beam tables may tie at the cut every step: those run on full rows only */
            CHECKF(topk_steps > 0 || (cases[c].beams > 1 && cases[c].quantum > 0), "case %zu: no top-k step", c);
        }
}

int main(void)
{
    emu2_backend_options bo;
    emu2_backend_options_init(&bo);
    bo.threads = 1;
    emu2_error err = {0};
    if (emu2_cpu_backend_open(&bo, &g_be, &err) != EMU2_OK) {
        printf("cpu backend: %s\n", err.message);
        return 1;
    }
    RUN(greedy_batch_all_steps_topk);
    RUN(greedy_ties_min_length_repetition);
    RUN(sampling_top_k_exact);
    RUN(beam_search_exact);
    RUN(bad_rows_same_error);
    RUN(item_search_topk_exact);
    emu2_backend_close(g_be);
    return check_finish();
}
