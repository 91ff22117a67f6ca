/* test_generate_goldens.c: the token search against transformers 4.31 generate() on the table LM
 * (tests/data/generate/table_lm.json, made by tests/reference/gen_generate_goldens.py): greedy and
 * beam search, length penalties -1/0/1/2, num_beams 2..5, min_length, max_new_tokens, repetition
 * penalty, batches with early EOS. Every case must match id for id, beam scores within 1e-4.
 * Also HF's own processor/warper lists on raw rows (logits_chain.json): repetition penalty (BOS
 * included), min length, temperature, top-k (ties, min_keep 2 with beams), top-p. */
#include <jansson.h>
#include <math.h>
#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#include "check.h"
#include "generate/logits.h"
#include "test_generate_table.h"

static json_t *doc;

static float *floats_of(json_t *arr2d, size_t *n_rows, size_t cols)
{
    size_t rows = json_array_size(arr2d);
    float *out = malloc(rows * cols * sizeof *out);
    for (size_t r = 0; r < rows; r++) {
        json_t *row = json_array_get(arr2d, r);
        if (json_array_size(row) != cols) {
            free(out);
            return NULL;
        }
        for (size_t c = 0; c < cols; c++)
            out[r * cols + c] = (float)json_number_value(json_array_get(row, c));
    }
    *n_rows = rows;
    return out;
}

static int geti(json_t *o, const char *k)
{
    return (int)json_integer_value(json_object_get(o, k));
}

static int64_t getl(json_t *o, const char *k)
{
    return (int64_t)json_integer_value(json_object_get(o, k));
}

static double getd(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

TEST(load_goldens)
{
    json_error_t e;
    doc = json_load_file(ROOT_PATH("tests/data/generate/table_lm.json"), 0, &e);
    CHECKF(doc, "table_lm.json: %s (line %d)", e.text, e.line);
    CHECK(json_array_size(json_object_get(doc, "cases")) > 100);
}

/* Runs one golden case; returns a description of the first mismatch ("" when it matches). */
static const char *run_case(json_t *c, float **start, float **rows, int32_t vocab, emu2_search_ids ids,
                            int *steps, char *why, size_t why_size)
{
    table_lm t = {0};
    int ti = geti(c, "table");
    t.start = start[ti];
    t.rows = rows[ti];
    t.vocab = vocab;
    t.mod = getl(doc, "hash_mod");
    t.mul = getl(doc, "hash_mul");
    t.n_table_rows = geti(doc, "table_rows");
    json_t *items = json_object_get(c, "items");
    size_t batch = json_array_size(items);
    int item_ids[8];
    for (size_t b = 0; b < batch; b++)
        item_ids[b] = (int)json_integer_value(json_array_get(items, b));
    float logits[8 * 64];
    emu2_lm_stepper lm = table_prefill(&t, item_ids, batch, logits);
    emu2_gen_options o;
    emu2_gen_options_init(&o);
    o.num_beams = geti(c, "num_beams");
    o.max_new_tokens = geti(c, "max_new_tokens");
    o.min_length = geti(c, "min_length");
    o.length_penalty = (float)getd(c, "length_penalty");
    o.repetition_penalty = (float)getd(c, "repetition_penalty");
    emu2_search_result r;
    emu2_error err = {0};
    emu2_status st = emu2_search(&lm, logits, batch, &o, ids, NULL, NULL, &r, &err);
    why[0] = 0;
    if (st != EMU2_OK) {
        snprintf(why, why_size, "emu2_search: %s", err.message);
        return why;
    }
    *steps = t.steps;
    json_t *outs = json_object_get(c, "outputs");
    for (size_t b = 0; b < batch && !why[0]; b++) {
        json_t *want = json_array_get(outs, b), *wids = json_object_get(want, "ids");
        emu2_search_item *it = &r.items[b];
        size_t n = json_array_size(wids);
        int same = n == it->n_ids;
        for (size_t k = 0; same && k < n; k++)
            same = it->ids[k] == (int32_t)json_integer_value(json_array_get(wids, k));
        if (!same) {
            int len = snprintf(why, why_size, "item %zu: got %zu ids [", b, it->n_ids);
            for (size_t k = 0; k < it->n_ids && len < (int)why_size - 16; k++)
                len += snprintf(why + len, why_size - len, "%d ", (int)it->ids[k]);
            len += snprintf(why + len, why_size - len, "] want %zu [", n);
            for (size_t k = 0; k < n && len < (int)why_size - 16; k++)
                len += snprintf(why + len, why_size - len, "%d ", (int)json_integer_value(json_array_get(wids, k)));
            snprintf(why + len, why_size - len, "]");
        } else if (it->ended_by_eos != json_is_true(json_object_get(want, "eos"))) {
            snprintf(why, why_size, "item %zu: ended_by_eos %d", b, it->ended_by_eos);
        } else if (o.num_beams > 1 && fabs(it->sequence_score - getd(want, "score")) > 1e-4) {
            snprintf(why, why_size, "item %zu: score %.6f want %.6f", b, it->sequence_score, getd(want, "score"));
        } else if (o.num_beams == 1 && it->sequence_score != 0) {
            snprintf(why, why_size, "item %zu: greedy score %g", b, it->sequence_score);
        }
    }
    emu2_search_result_free(&r);
    return why;
}

TEST(all_cases_match_hf)
{
    if (!doc)
        SKIP("goldens not loaded");
    int32_t vocab = geti(doc, "vocab");
    CHECK(vocab > 0 && vocab <= 64);
    emu2_search_ids ids = {geti(doc, "bos"), geti(doc, "eos"), geti(doc, "pad")};
    json_t *tables = json_object_get(doc, "tables");
    size_t nt = json_array_size(tables);
    CHECK(nt > 0 && nt <= 8);
    float *start[8] = {0}, *rows[8] = {0};
    size_t n;
    for (size_t i = 0; i < nt; i++) {
        start[i] = floats_of(json_object_get(json_array_get(tables, i), "start"), &n, (size_t)vocab);
        rows[i] = floats_of(json_object_get(json_array_get(tables, i), "rows"), &n, (size_t)vocab);
        CHECK(start[i] && rows[i] && n == (size_t)geti(doc, "table_rows"));
    }
    json_t *cases = json_object_get(doc, "cases");
    size_t failures = 0, beams = 0, greedy = 0;
    char why[1024];
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        int steps = 0;
        if (run_case(c, start, rows, vocab, ids, &steps, why, sizeof why)[0]) {
            if (failures++ < 10)
                printf("    case %zu (table %d, beams %d, max_new %d, min_len %d, lp %g, rp %g): %s\n", i,
                       geti(c, "table"), geti(c, "num_beams"), geti(c, "max_new_tokens"), geti(c, "min_length"),
                       getd(c, "length_penalty"), getd(c, "repetition_penalty"), why);
        }
        if (geti(c, "num_beams") > 1)
            beams++;
        else
            greedy++;
    }
    for (size_t i = 0; i < nt; i++) {
        free(start[i]);
        free(rows[i]);
    }
    printf("    %zu cases (%zu greedy, %zu beam), %zu mismatches\n", json_array_size(cases), greedy, beams, failures);
    CHECK(failures == 0);
}

TEST(logits_chain_matches_hf)
{
    json_error_t je;
    json_t *w = json_load_file(ROOT_PATH("tests/data/generate/logits_chain.json"), 0, &je);
    CHECKF(w, "logits_chain.json: %s (line %d)", je.text, je.line);
    int32_t vocab = geti(w, "vocab"), eos = geti(w, "eos");
    json_t *cases = json_object_get(w, "cases");
    size_t bad = 0, n_cases = json_array_size(cases);
    for (size_t i = 0; i < n_cases && vocab > 0 && vocab <= 64; i++) {
        json_t *c = json_array_get(cases, i), *seqj = json_object_get(c, "seq");
        float row[64], topk[64];
        emu2_scored_id sorted[64];
        unsigned char mark[64] = {0};
        int32_t seq[64];
        size_t n_seq = json_array_size(seqj);
        if (n_seq > 64 || json_array_size(json_object_get(c, "row")) != (size_t)vocab) {
            bad++;
            continue;
        }
        for (size_t k = 0; k < n_seq; k++)
            seq[k] = (int32_t)json_integer_value(json_array_get(seqj, k));
        for (int32_t v = 0; v < vocab; v++)
            row[v] = (float)json_number_value(json_array_get(json_object_get(c, "row"), (size_t)v));
        emu2_gen_options o;
        emu2_gen_options_init(&o);
        o.do_sample = json_is_true(json_object_get(c, "do_sample"));
        o.num_beams = geti(c, "num_beams");
        o.temperature = (float)getd(c, "temperature");
        o.top_k = geti(c, "top_k");
        o.top_p = (float)getd(c, "top_p");
        o.repetition_penalty = (float)getd(c, "repetition_penalty");
        o.min_length = geti(c, "min_length");
        emu2_logits_scratch scratch = {topk, sorted, mark};
        emu2_logits_process(row, vocab, &o, seq, n_seq, eos, &scratch);
        if (o.do_sample)
            emu2_logits_warp(row, vocab, &o, o.num_beams > 1 ? 2 : 1, &scratch);
        json_t *want = json_object_get(c, "want");
        for (int32_t v = 0; v < vocab; v++) {
            json_t *x = json_array_get(want, (size_t)v);
            double ref = json_number_value(x);
            int ok = json_is_null(x) ? row[v] == -INFINITY : fabs(row[v] - ref) <= 1e-6 * fmax(1.0, fabs(ref));
            if (!ok) {
                if (bad++ < 5)
                    printf("    row %zu token %d: got %g want %s%g\n", i, (int)v, (double)row[v],
                           json_is_null(x) ? "-inf " : "", json_number_value(x));
                break;
            }
        }
    }
    json_decref(w);
    CHECKF(n_cases >= 50, "%zu rows", n_cases);
    CHECKF(bad == 0, "%zu of %zu rows differ from HF's processors", bad, n_cases);
}

/* Histogram key of one output, as the generator writes it: "3,17,5" plus "$" when EOS ended it. */
static void outcome_key(const emu2_search_item *it, char *key, size_t size)
{
    size_t len = 0;
    key[0] = 0;
    for (size_t k = 0; k < it->n_ids && len + 16 < size; k++)
        len += (size_t)snprintf(key + len, size - len, k ? ",%d" : "%d", (int)it->ids[k]);
    if (it->ended_by_eos && len + 2 < size)
        strcat(key, "$");
}

#define SAMPLE_RUNS 8000

/* Sampling and beam sampling draw from HF's distribution over whole outputs: our histogram over
 * SAMPLE_RUNS seeds vs HF's over its seeds (sampling_stats.json), total variation distance. */
TEST(sampling_matches_hf_in_distribution)
{
    json_error_t je;
    json_t *d = json_load_file(ROOT_PATH("tests/data/generate/sampling_stats.json"), 0, &je);
    CHECKF(d, "sampling_stats.json: %s (line %d)", je.text, je.line);
    int32_t vocab = geti(d, "vocab");
    size_t n;
    float *start = floats_of(json_object_get(d, "start"), &n, (size_t)vocab);
    float *rows = floats_of(json_object_get(d, "rows"), &n, (size_t)vocab);
    int ok = start && rows && vocab > 0 && vocab <= 64 && n == (size_t)geti(d, "table_rows");
    json_t *configs = json_object_get(d, "configs");
    emu2_search_ids ids = {geti(d, "bos"), geti(d, "eos"), geti(d, "pad")};
    double worst = 0;
    for (size_t ci = 0; ok && ci < json_array_size(configs); ci++) {
        json_t *c = json_array_get(configs, ci), *hf = json_object_get(c, "histogram");
        emu2_gen_options o;
        emu2_gen_options_init(&o);
        o.do_sample = 1;
        o.num_beams = geti(c, "num_beams");
        o.temperature = (float)getd(c, "temperature");
        o.top_k = geti(c, "top_k");
        o.top_p = (float)getd(c, "top_p");
        o.repetition_penalty = (float)getd(c, "repetition_penalty");
        o.length_penalty = (float)getd(c, "length_penalty");
        o.max_new_tokens = geti(c, "max_new_tokens");
        double hf_runs = getd(c, "runs");
        json_t *ours = json_object();
        for (uint64_t seed = 0; ok && seed < SAMPLE_RUNS; seed++) {
            table_lm t = {0};
            t.start = start;
            t.rows = rows;
            t.vocab = vocab;
            t.mod = getl(d, "hash_mod");
            t.mul = getl(d, "hash_mul");
            t.n_table_rows = (int64_t)n;
            int item = geti(d, "item");
            float logits[64];
            emu2_lm_stepper lm = table_prefill(&t, &item, 1, logits);
            o.seed = seed;
            emu2_search_result r;
            emu2_error e;
            if (emu2_search(&lm, logits, 1, &o, ids, NULL, NULL, &r, &e) != EMU2_OK) {
                printf("    config %zu: %s\n", ci, e.message);
                ok = 0;
                break;
            }
            char key[512];
            outcome_key(&r.items[0], key, sizeof key);
            emu2_search_result_free(&r);
            json_t *cnt = json_object_get(ours, key);
            json_object_set_new(ours, key, json_integer(cnt ? json_integer_value(cnt) + 1 : 1));
        }
        /* TV = 1/2 sum |p - q| over the union of outcomes */
        double tv = 0;
        const char *key;
        json_t *v;
        json_object_foreach(hf, key, v) {
            json_t *mine = json_object_get(ours, key);
            tv += fabs(json_number_value(v) / hf_runs - (mine ? (double)json_integer_value(mine) / SAMPLE_RUNS : 0));
        }
        json_object_foreach(ours, key, v) {
            if (!json_object_get(hf, key))
                tv += (double)json_integer_value(v) / SAMPLE_RUNS;
        }
        tv /= 2;
        /* what sampling noise alone gives: E|p^ - q^| = sqrt(2/pi) sigma per outcome */
        double noise = 0;
        json_object_foreach(hf, key, v) {
            double p = json_number_value(v) / hf_runs;
            noise += 0.5 * sqrt(2 / M_PI) * sqrt(p * (1 - p) * (1 / hf_runs + 1.0 / SAMPLE_RUNS));
        }
        double limit = 0.01 + 3 * noise;
        printf("    config %zu (beams %d, T %g, top_k %d, top_p %g): %zu HF outcomes, %zu ours, TV %.4f (limit %.4f)\n",
               ci, o.num_beams, (double)o.temperature, o.top_k, (double)o.top_p, json_object_size(hf),
               json_object_size(ours), tv, limit);
        if (tv / limit > worst)
            worst = tv / limit;
        json_decref(ours);
    }
    free(start);
    free(rows);
    json_decref(d);
    CHECK(ok);
    CHECKF(worst < 1, "a total variation distance is %.2f times its limit", worst);
}

int main(void)
{
    RUN(load_goldens);
    RUN(all_cases_match_hf);
    RUN(logits_chain_matches_hf);
    RUN(sampling_matches_hf_in_distribution);
    json_decref(doc);
    return check_finish();
}
