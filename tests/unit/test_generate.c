/* test_generate.c: the token search's own properties (goldens vs HF are in test_generate_goldens.c):
 * sampling (top-k 1 / tiny top-p / cold temperature = greedy, seeds, the draw's distribution),
 * the warpers, repetition penalty, streaming (order, stop, failing callback), the stepper protocol,
 * option checks and failures. */
#include <math.h>

#include "check.h"
#include "generate/logits.h"
#include "generate/rng.h"
#include "generate/text_stream.h"
#include "test_generate_table.h"

#define V 40
#define P 61
static float g_start[3 * V], g_rows[P * V];

/* A deterministic random table (its own LCG: no dependence on libc rand). */
static void make_table(uint64_t seed, float eos_shift)
{
    uint64_t x = seed;
    for (int i = 0; i < 3 * V + P * V; i++) {
        float u = 0;
        for (int k = 0; k < 4; k++) { /* sum of uniforms: a rough normal */
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            u += (float)((x >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
        }
        float *dst = i < 3 * V ? &g_start[i] : &g_rows[i - 3 * V];
        *dst = 3.0f * u + ((i % V) == 2 ? eos_shift : 0.0f);
    }
}

static table_lm new_table(void)
{
    table_lm t = {0};
    t.start = g_start;
    t.rows = g_rows;
    t.vocab = V;
    t.mod = 2147483647;
    t.mul = 48271;
    t.n_table_rows = P;
    return t;
}

static const emu2_search_ids IDS = {1, 2, 0};

static emu2_gen_options greedy_opts(int max_new)
{
    emu2_gen_options o;
    emu2_gen_options_init(&o);
    o.num_beams = 1;
    o.max_new_tokens = max_new;
    return o;
}

/* Runs a search on items {0, 1} (or {0} when batch 1). */
static emu2_status run(const emu2_gen_options *o, size_t batch, emu2_search_token_fn fn, void *user,
                       emu2_search_result *r, emu2_error *err, table_lm *t_out)
{
    table_lm t = new_table();
    int items[2] = {0, 1};
    float logits[2 * V];
    emu2_lm_stepper lm = table_prefill(&t, items, batch, logits);
    emu2_status st = emu2_search(&lm, logits, batch, o, IDS, fn, user, r, err);
    if (t_out)
        *t_out = t;
    return st;
}

static int same_ids(const emu2_search_result *a, const emu2_search_result *b)
{
    if (a->batch != b->batch)
        return 0;
    for (size_t i = 0; i < a->batch; i++) {
        if (a->items[i].n_ids != b->items[i].n_ids || a->items[i].ended_by_eos != b->items[i].ended_by_eos)
            return 0;
        for (size_t k = 0; k < a->items[i].n_ids; k++)
            if (a->items[i].ids[k] != b->items[i].ids[k])
                return 0;
    }
    return 1;
}

/* Sampling with a warper that leaves one candidate must give the greedy ids. */
static void check_sampling_equals_greedy(int top_k, float top_p, float temperature, int *ok, char *why)
{
    *ok = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        make_table(seed * 7, seed % 2 ? 1.5f : 0.0f);
        emu2_gen_options g = greedy_opts(30), s = g;
        g.repetition_penalty = s.repetition_penalty = seed % 3 == 0 ? 1.3f : 1.0f;
        s.do_sample = 1;
        s.top_k = top_k;
        s.top_p = top_p;
        s.temperature = temperature;
        s.seed = seed;
        emu2_search_result rg, rs;
        emu2_error e;
        if (run(&g, 2, NULL, NULL, &rg, &e, NULL) != EMU2_OK) {
            sprintf(why, "greedy: %s", e.message);
            return;
        }
        if (run(&s, 2, NULL, NULL, &rs, &e, NULL) != EMU2_OK) {
            emu2_search_result_free(&rg);
            sprintf(why, "sample: %s", e.message);
            return;
        }
        int same = same_ids(&rg, &rs);
        emu2_search_result_free(&rg);
        emu2_search_result_free(&rs);
        if (!same) {
            sprintf(why, "seed %llu differs from greedy", (unsigned long long)seed);
            return;
        }
    }
    *ok = 1;
}

TEST(top_k_1_is_greedy)
{
    int ok;
    char why[256];
    check_sampling_equals_greedy(1, 1.0f, 1.0f, &ok, why);
    CHECKF(ok, "%s", why);
    check_sampling_equals_greedy(1, 1.0f, 3.0f, &ok, why); /* temperature does not matter then */
    CHECKF(ok, "%s", why);
}

TEST(tiny_top_p_is_greedy)
{
    int ok;
    char why[256];
    check_sampling_equals_greedy(0, 1e-6f, 1.0f, &ok, why);
    CHECKF(ok, "%s", why);
    check_sampling_equals_greedy(0, 0.0f, 1.0f, &ok, why);
    CHECKF(ok, "%s", why);
}

TEST(cold_temperature_is_greedy)
{
    int ok;
    char why[256];
    check_sampling_equals_greedy(0, 1.0f, 1e-3f, &ok, why);
    CHECKF(ok, "%s", why);
}

TEST(seed_reproducible_and_matters)
{
    make_table(99, 0.0f);
    emu2_gen_options o = greedy_opts(30);
    o.do_sample = 1;
    o.temperature = 1.5f;
    int differs = 0;
    for (uint64_t seed = 0; seed < 5; seed++) {
        emu2_search_result a, b, c;
        emu2_error e;
        o.seed = seed;
        CHECK(run(&o, 2, NULL, NULL, &a, &e, NULL) == EMU2_OK);
        CHECK(run(&o, 2, NULL, NULL, &b, &e, NULL) == EMU2_OK);
        o.seed = seed + 1000;
        CHECK(run(&o, 2, NULL, NULL, &c, &e, NULL) == EMU2_OK);
        int same_ab = same_ids(&a, &b);
        differs += !same_ids(&a, &c);
        emu2_search_result_free(&a);
        emu2_search_result_free(&b);
        emu2_search_result_free(&c);
        CHECKF(same_ab, "seed %llu: two runs differ", (unsigned long long)seed);
    }
    CHECKF(differs >= 4, "other seeds gave the same ids in %d of 5 runs", 5 - differs);
}

/* emu2_sample's frequencies follow softmax(row / temperature). */
TEST(sample_distribution)
{
    float row[6] = {1.0f, 0.0f, -1.0f, 2.0f, -INFINITY, 0.5f};
    for (int pass = 0; pass < 2; pass++) {
        float temp = pass ? 2.0f : 1.0f, w[6];
        memcpy(w, row, sizeof w);
        if (pass)
            emu2_temperature(w, 6, temp);
        double z = 0, p[6];
        for (int i = 0; i < 6; i++)
            z += exp((double)row[i] / temp);
        for (int i = 0; i < 6; i++)
            p[i] = exp((double)row[i] / temp) / z;
        emu2_rng rng;
        emu2_rng_seed(&rng, 42 + pass);
        int count[6] = {0}, n = 200000;
        for (int k = 0; k < n; k++) {
            int32_t id = emu2_sample(w, 6, &rng);
            CHECK(id >= 0 && id < 6);
            count[id]++;
        }
        CHECK(count[4] == 0);
        for (int i = 0; i < 6; i++)
            CHECKF(fabs((double)count[i] / n - p[i]) < 0.005, "T=%g id %d: %.4f vs %.4f", temp, i,
                   (double)count[i] / n, p[i]);
    }
}

TEST(top_k_and_top_p_warpers)
{
    float row[6] = {0.1f, 3.0f, 2.0f, -1.0f, 2.0f, 0.5f}, scratch[6];
    emu2_top_k(row, 6, 2, 1, scratch); /* 3.0 and both 2.0s stay: HF keeps ties with the k-th */
    CHECK(row[1] == 3.0f && row[2] == 2.0f && row[4] == 2.0f);
    CHECK(row[0] == -INFINITY && row[3] == -INFINITY && row[5] == -INFINITY);
    /* probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 drops the two smallest (cumulative 0.05, 0.2) */
    float q[4] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    emu2_scored_id sorted[4];
    emu2_top_p(q, 4, 0.75f, 1, sorted);
    CHECK(q[0] == -INFINITY && q[2] == -INFINITY && isfinite(q[1]) && isfinite(q[3]));
    float r[4] = {logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f)};
    emu2_top_p(r, 4, 0.0f, 2, sorted); /* min_keep wins over top_p */
    CHECK(isfinite(r[1]) && isfinite(r[3]) && r[0] == -INFINITY && r[2] == -INFINITY);
}

TEST(repetition_penalty_rule)
{
    float row[5] = {2.0f, -2.0f, 1.0f, -1.0f, 0.0f};
    unsigned char mark[5] = {0};
    int32_t seq[5] = {0, 1, 0, 1, 4};
    emu2_repetition_penalty(row, seq, 5, 2.0f, mark);
    CHECK(row[0] == 1.0f && row[1] == -4.0f); /* once per distinct id, sign-aware */
    CHECK(row[2] == 1.0f && row[3] == -1.0f && row[4] == 0.0f);
    for (int i = 0; i < 5; i++)
        CHECK(mark[i] == 0);
    float ls[3] = {1.0f, 2.0f, 3.0f};
    emu2_log_softmax(ls, 3);
    double z = log(exp(1.0) + exp(2.0) + exp(3.0));
    CHECK(fabs(ls[0] - (1.0 - z)) < 1e-6 && fabs(ls[2] - (3.0 - z)) < 1e-6);
}

typedef struct recorder {
    size_t item[256];
    int32_t id[256];
    size_t n;
    size_t stop_after; /* 0 = never */
    emu2_status fail_with;
} recorder;

static emu2_status record_token(void *user, size_t item, int32_t id, int *stop, emu2_error *err)
{
    recorder *r = user;
    if (r->fail_with != EMU2_OK && r->n == 2)
        return emu2_fail(err, r->fail_with, "test callback refuses token %d", (int)id);
    if (r->n < 256) {
        r->item[r->n] = item;
        r->id[r->n] = id;
    }
    r->n++;
    if (r->stop_after && r->n == r->stop_after)
        *stop = 1;
    return EMU2_OK;
}

TEST(streaming_greedy_order)
{
    make_table(5, 1.0f);
    emu2_gen_options o = greedy_opts(20);
    recorder rec = {0};
    emu2_search_result r;
    emu2_error e;
    CHECKF(run(&o, 2, record_token, &rec, &r, &e, NULL) == EMU2_OK, "%s", e.message);
    /* step by step, item 0 then item 1, each item's ids in order */
    size_t pos[2] = {0, 0}, total = r.items[0].n_ids + r.items[1].n_ids;
    int ok = rec.n == total && !r.stopped;
    for (size_t k = 0; ok && k < rec.n; k++) {
        size_t it = rec.item[k];
        ok = it < 2 && pos[it] < r.items[it].n_ids && r.items[it].ids[pos[it]] == rec.id[k];
        if (ok && k > 0 && rec.item[k - 1] == it) /* same item twice in a row: the other one is done */
            ok = pos[1 - it] == r.items[1 - it].n_ids;
        pos[it]++;
    }
    emu2_search_result_free(&r);
    CHECKF(ok, "callback order does not follow the generated ids (%zu calls, %zu ids)", rec.n, total);
}

TEST(streaming_stop_and_error)
{
    make_table(5, -3.0f); /* EOS unlikely: runs to max_new_tokens */
    emu2_gen_options o = greedy_opts(20);
    recorder rec = {0};
    rec.stop_after = 5; /* item 0 step 0, item 1 step 0, ..., item 0 step 2 */
    emu2_search_result r;
    emu2_error e;
    table_lm t;
    CHECKF(run(&o, 2, record_token, &rec, &r, &e, &t) == EMU2_OK, "%s", e.message);
    CHECK(r.stopped == 1 && rec.n == 5);
    CHECKF(r.items[0].n_ids == 3 && r.items[1].n_ids == 2, "kept %zu and %zu ids", r.items[0].n_ids,
           r.items[1].n_ids);
    CHECK(r.decoder_steps == 2 && t.steps == 2); /* no decoder step after the stop */
    emu2_search_result_free(&r);

    recorder bad = {0};
    bad.fail_with = EMU2_ERR_CANCELLED;
    e.message[0] = 0;
    emu2_status st = run(&o, 2, record_token, &bad, &r, &e, NULL);
    CHECK(st == EMU2_ERR_CANCELLED && e.status == EMU2_ERR_CANCELLED);
    CHECKF(strstr(e.message, "test callback refuses"), "message: %s", e.message);
    CHECK(r.items == NULL && r.batch == 0);
}

TEST(streaming_beams_after_search)
{
    make_table(8, 0.5f);
    emu2_gen_options o = greedy_opts(15);
    o.num_beams = 4;
    o.length_penalty = 1.0f;
    recorder rec = {0};
    emu2_search_result r;
    emu2_error e;
    CHECKF(run(&o, 2, record_token, &rec, &r, &e, NULL) == EMU2_OK, "%s", e.message);
    size_t k = 0;
    for (size_t it = 0; it < 2; it++)
        for (size_t j = 0; j < r.items[it].n_ids; j++, k++)
            CHECK(k < rec.n && rec.item[k] == it && rec.id[k] == r.items[it].ids[j]);
    CHECK(k == rec.n);
    size_t first_len = r.items[0].n_ids;
    emu2_search_result_free(&r);
    CHECK(first_len >= 2);
    recorder stop = {0};
    stop.stop_after = 2;
    CHECK(run(&o, 2, record_token, &stop, &r, &e, NULL) == EMU2_OK);
    CHECK(r.stopped && r.items[0].n_ids == 2 && r.items[1].n_ids == 0 && stop.n == 2);
    CHECK(r.items[0].ended_by_eos == 0 && r.items[1].ended_by_eos == 0);
    emu2_search_result_free(&r);
    recorder bad = {0};
    bad.fail_with = EMU2_ERR_IO;
    CHECK(run(&o, 2, record_token, &bad, &r, &e, NULL) == EMU2_ERR_IO);
    CHECK(r.items == NULL && strstr(e.message, "test callback refuses"));
}

TEST(beam_protocol)
{
    make_table(3, 0.0f);
    emu2_gen_options o = greedy_opts(12);
    o.num_beams = 5;
    o.length_penalty = 2.0f;
    emu2_search_result r;
    emu2_error e;
    table_lm t;
    /* the table stepper refuses steps with the wrong row count and identity reorders */
    CHECKF(run(&o, 2, NULL, NULL, &r, &e, &t) == EMU2_OK, "%s", e.message);
    CHECK(t.n_rows == 10 && t.reorders >= 1 && (size_t)t.steps == r.decoder_steps);
    CHECK(r.decoder_steps <= 11);
    for (size_t i = 0; i < 2; i++)
        CHECK(r.items[i].sequence_score < 0 && r.items[i].n_ids <= 12);
    emu2_search_result_free(&r);
    o.max_new_tokens = 1; /* one token: the prefill logits suffice */
    CHECK(run(&o, 2, NULL, NULL, &r, &e, &t) == EMU2_OK);
    CHECK(t.steps == 0 && t.reorders == 0 && r.decoder_steps == 0);
    emu2_search_result_free(&r);
}

TEST(option_checks)
{
    make_table(1, 0.0f);
    emu2_search_result r;
    emu2_error e;
    emu2_gen_options o;
#define EXPECT(setup, want)                                                                                      \
    do {                                                                                                         \
        o = greedy_opts(8);                                                                                      \
        setup;                                                                                                   \
        e.message[0] = 0;                                                                                        \
        emu2_status st_ = run(&o, 2, NULL, NULL, &r, &e, NULL);                                                  \
        if (st_ == EMU2_OK)                                                                                      \
            emu2_search_result_free(&r);                                                                         \
        CHECKF(st_ == (want), "%s: got %s (%s)", #setup, emu2_status_name(st_), e.message);                      \
        CHECK(st_ == EMU2_OK || (e.message[0] && r.items == NULL));                                              \
    } while (0)
    EXPECT((void)0, EMU2_OK);
    EXPECT(o.max_new_tokens = 0, EMU2_ERR_INVALID_ARGUMENT);
    EXPECT(o.num_beams = 0, EMU2_ERR_INVALID_ARGUMENT);
    EXPECT(o.min_length = -1, EMU2_ERR_INVALID_ARGUMENT);
    EXPECT(o.min_length = 9, EMU2_OK); /* = max_new_tokens + 1: EOS banned throughout, as HF allows */
    EXPECT(o.min_length = 10, EMU2_ERR_INVALID_ARGUMENT);
    EXPECT(o.length_penalty = NAN, EMU2_ERR_INVALID_ARGUMENT);
    EXPECT(o.repetition_penalty = 0, EMU2_ERR_INVALID_ARGUMENT);
    EXPECT((o.do_sample = 1, o.temperature = 0), EMU2_ERR_INVALID_ARGUMENT);
    EXPECT((o.do_sample = 1, o.top_p = 1.5f), EMU2_ERR_INVALID_ARGUMENT);
    EXPECT((o.do_sample = 1, o.top_k = -1), EMU2_ERR_INVALID_ARGUMENT);
    EXPECT((o.do_sample = 1, o.num_beams = 3), EMU2_OK); /* beam_sample */
    EXPECT((o.do_sample = 1, o.num_beams = 3, o.top_p = -0.5f), EMU2_ERR_INVALID_ARGUMENT);
    EXPECT(o.struct_size = 0, EMU2_ERR_INVALID_ARGUMENT);
    EXPECT((o.do_sample = 0, o.temperature = 0), EMU2_OK); /* warpers are unused without sampling */
#undef EXPECT
    table_lm t = new_table();
    int items[1] = {0};
    float logits[V];
    emu2_lm_stepper lm = table_prefill(&t, items, 1, logits);
    o = greedy_opts(8);
    emu2_search_ids bad = {1, V, 0};
    CHECK(emu2_search(&lm, logits, 1, &o, bad, NULL, NULL, &r, &e) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_search(&lm, logits, 0, &o, IDS, NULL, NULL, &r, &e) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_search(NULL, logits, 1, &o, IDS, NULL, NULL, &r, &e) == EMU2_ERR_INVALID_ARGUMENT);
    lm.reorder = NULL;
    o.num_beams = 2;
    CHECK(emu2_search(&lm, logits, 1, &o, IDS, NULL, NULL, &r, &e) == EMU2_ERR_INVALID_ARGUMENT);
}

TEST(stepper_failure_and_bad_logits)
{
    make_table(2, -3.0f);
    for (int beams = 1; beams <= 3; beams += 2) {
        table_lm t = new_table();
        t.fail_at_step = 3;
        int items[2] = {0, 1};
        float logits[2 * V];
        emu2_lm_stepper lm = table_prefill(&t, items, 2, logits);
        emu2_gen_options o = greedy_opts(10);
        o.num_beams = beams;
        emu2_search_result r;
        emu2_error e;
        CHECK(emu2_search(&lm, logits, 2, &o, IDS, NULL, NULL, &r, &e) == EMU2_ERR_IO);
        CHECKF(strstr(e.message, "simulated failure"), "%s", e.message);
        CHECK(r.items == NULL);
        t = new_table();
        lm = table_prefill(&t, items, 2, logits);
        logits[V + 7] = NAN;
        CHECK(emu2_search(&lm, logits, 2, &o, IDS, NULL, NULL, &r, &e) == EMU2_ERR_INTERNAL);
        CHECKF(strstr(e.message, "NaN"), "%s", e.message);
        for (int i = 0; i < V; i++)
            logits[V + i] = -INFINITY;
        CHECK(emu2_search(&lm, logits, 2, &o, IDS, NULL, NULL, &r, &e) == EMU2_ERR_INTERNAL);
    }
}

/* beam_sample (do_sample with beams): reproducible per seed, seeds matter, results well formed. */
TEST(beam_sample_properties)
{
    make_table(21, 0.8f);
    emu2_gen_options o = greedy_opts(12);
    o.num_beams = 4;
    o.do_sample = 1;
    o.temperature = 1.3f;
    o.length_penalty = 1.0f;
    int differs = 0;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        emu2_search_result a, b, c;
        emu2_error e;
        table_lm t;
        o.seed = seed;
        CHECKF(run(&o, 2, NULL, NULL, &a, &e, &t) == EMU2_OK, "%s", e.message);
        CHECK(t.n_rows == 8);
        CHECK(run(&o, 2, NULL, NULL, &b, &e, NULL) == EMU2_OK);
        o.seed = seed + 77;
        CHECK(run(&o, 2, NULL, NULL, &c, &e, NULL) == EMU2_OK);
        int same = same_ids(&a, &b);
        differs += !same_ids(&a, &c);
        for (size_t i = 0; i < 2; i++) {
            CHECK(a.items[i].n_ids <= 12 && (a.items[i].ended_by_eos || a.items[i].n_ids == 12));
            CHECK(isfinite(a.items[i].sequence_score));
            for (size_t k = 0; k < a.items[i].n_ids; k++)
                CHECK(a.items[i].ids[k] >= 0 && a.items[i].ids[k] < V && a.items[i].ids[k] != IDS.eos);
        }
        emu2_search_result_free(&a);
        emu2_search_result_free(&b);
        emu2_search_result_free(&c);
        CHECKF(same, "seed %llu: two runs differ", (unsigned long long)seed);
    }
    CHECKF(differs >= 3, "other seeds gave the same ids in %d of 5 runs", 5 - differs);
}

/* A finished row is fed pad_id, as HF does, and the others go on. */
typedef struct pad_watch {
    table_lm t;
    int eos_seen[2];
    int bad;
} pad_watch;

static emu2_status watch_step(void *user, const int32_t *tokens, size_t n, float *logits, emu2_error *err)
{
    pad_watch *w = user;
    for (size_t i = 0; i < n; i++) {
        if (w->eos_seen[i] && tokens[i] != IDS.pad)
            w->bad = 1;
        if (tokens[i] == IDS.eos)
            w->eos_seen[i] = 1;
    }
    return table_step(&w->t, tokens, n, logits, err);
}

TEST(greedy_finished_rows_get_pad)
{
    make_table(4, 0.0f);
    g_start[0 * V + 2] = 50.0f; /* item 0 ends at once */
    pad_watch w = {0};
    w.t = new_table();
    int items[2] = {0, 1};
    float logits[2 * V];
    emu2_lm_stepper lm = table_prefill(&w.t, items, 2, logits);
    lm.user = &w;
    lm.step = watch_step;
    emu2_gen_options o = greedy_opts(6);
    emu2_search_result r;
    emu2_error e;
    CHECK(emu2_search(&lm, logits, 2, &o, IDS, NULL, NULL, &r, &e) == EMU2_OK);
    CHECK(r.items[0].n_ids == 0 && r.items[0].ended_by_eos == 1);
    CHECK(r.items[1].n_ids > 0 && !w.bad);
    emu2_search_result_free(&r);
}

/* A fake SentencePiece-like decoder: 0 "▁the", 1 "▁cat", 2 "s", 3..5 the bytes of "€" (E2 82 AC);
 * "▁" is a space except at the start; an unfinished "€" at the end reads U+FFFD. Other ids: "?". */
static emu2_status fake_decode(void *user, const int32_t *ids, size_t n, char **text, emu2_error *err)
{
    (void)user;
    (void)err;
    char *out = malloc(8 * n + 4), *p = out;
    size_t pending = 0; /* bytes of an unfinished euro sign */
    for (size_t i = 0; i < n; i++) {
        const char *w = ids[i] == 0 ? " the" : ids[i] == 1 ? " cat" : ids[i] == 2 ? "s" : NULL;
        if (w) {
            if (p == out && w[0] == ' ')
                w++;
            p += sprintf(p, "%s", w);
        } else if (ids[i] >= 3 && ids[i] <= 5) {
            *p++ = "\xE2\x82\xAC"[ids[i] - 3];
            pending = ids[i] == 5 ? 0 : pending + 1;
        } else {
            *p++ = '?';
        }
    }
    if (pending) {
        p -= pending;
        p += sprintf(p, "\xEF\xBF\xBD");
    }
    *p = 0;
    *text = out;
    return EMU2_OK;
}

typedef struct piece_log {
    char text[256];
    int32_t ids[32];
    int n, stop_at;
} piece_log;

static int log_piece(void *user, int32_t id, const char *piece)
{
    piece_log *l = user;
    if (l->n < 32)
        l->ids[l->n] = id;
    l->n++;
    strcat(l->text, "|");
    strcat(l->text, piece);
    return l->stop_at && l->n == l->stop_at;
}

TEST(text_stream_pieces)
{
    piece_log log = {0};
    emu2_text_stream ts;
    emu2_text_stream_init(&ts, fake_decode, NULL, log_piece, &log);
    int32_t ids[7] = {0, 1, 2, 3, 4, 5, 0};
    emu2_error e;
    for (int i = 0; i < 7; i++) {
        int stop = 0;
        CHECK(emu2_text_stream_token(&ts, 0, ids[i], &stop, &e) == EMU2_OK && !stop);
    }
    CHECK(emu2_text_stream_finish(&ts, &e) == EMU2_OK);
    CHECKF(strcmp(log.text, "|the| cat|s|||\xE2\x82\xAC| the") == 0, "pieces %s", log.text);
    CHECK(log.n == 7 && log.ids[5] == 5);
    emu2_text_stream_free(&ts);

    /* an unfinished character at the end comes out at finish, as id -1 */
    piece_log tail = {0};
    emu2_text_stream_init(&ts, fake_decode, NULL, log_piece, &tail);
    int32_t ids2[3] = {0, 3, 4};
    for (int i = 0; i < 3; i++) {
        int stop = 0;
        CHECK(emu2_text_stream_token(&ts, 0, ids2[i], &stop, &e) == EMU2_OK);
    }
    CHECK(emu2_text_stream_finish(&ts, &e) == EMU2_OK);
    CHECKF(strcmp(tail.text, "|the|||\xEF\xBF\xBD") == 0 && tail.n == 4 && tail.ids[3] == -1, "pieces %s",
           tail.text);
    int stop = 0;
    CHECK(emu2_text_stream_token(&ts, 1, 0, &stop, &e) == EMU2_ERR_INVALID_ARGUMENT);
    emu2_text_stream_free(&ts);
}

/* The stream as the search's callback: a non-zero return from the user's function stops. */
TEST(text_stream_stops_search)
{
    make_table(5, -3.0f);
    piece_log log = {0};
    log.stop_at = 4;
    emu2_text_stream ts;
    emu2_text_stream_init(&ts, fake_decode, NULL, log_piece, &log);
    emu2_gen_options o = greedy_opts(20);
    emu2_search_result r;
    emu2_error e;
    table_lm t;
    CHECKF(run(&o, 1, emu2_text_stream_token, &ts, &r, &e, &t) == EMU2_OK, "%s", e.message);
    CHECK(r.stopped && r.items[0].n_ids == 4 && log.n == 4 && t.steps == 3);
    CHECK(emu2_text_stream_finish(&ts, &e) == EMU2_OK && log.n == 4);
    for (int i = 0; i < 4; i++)
        CHECK(log.ids[i] == r.items[0].ids[i]);
    emu2_search_result_free(&r);
    emu2_text_stream_free(&ts);
}

int main(void)
{
    RUN(top_k_1_is_greedy);
    RUN(tiny_top_p_is_greedy);
    RUN(cold_temperature_is_greedy);
    RUN(seed_reproducible_and_matters);
    RUN(sample_distribution);
    RUN(top_k_and_top_p_warpers);
    RUN(repetition_penalty_rule);
    RUN(streaming_greedy_order);
    RUN(streaming_stop_and_error);
    RUN(streaming_beams_after_search);
    RUN(beam_protocol);
    RUN(option_checks);
    RUN(stepper_failure_and_bad_logits);
    RUN(greedy_finished_rows_get_pad);
    RUN(beam_sample_properties);
    RUN(text_stream_pieces);
    RUN(text_stream_stops_search);
    return check_finish();
}
