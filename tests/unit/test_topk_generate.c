/* test_topk_generate.c: whole generations of the test models with the search's top-k path (the
 * stepper's step_topk over the backend's top_k op: only k candidates per row downloaded) and with
 * the full-logits path ($EMU2_SEARCH_FULL_LOGITS=1) are identical token for token (and beam scores
 * bit for bit): every golden run of tests/ (greedy, beam 5, batches of several rows) with the
 * golden options and with variations (beam 5 / lp -1, sampling with top-k, top-p and temperature),
 * and batches of requests through the API on models/emu2-tiny-digits. Counters check that the
 * top-k path really ran, and that the variable turns it off. */
#include "check.h"
#include "model/decoder_stepper.h"
#include "model/pipeline.h"
#include "test_model_run_support.h"

static void force_full(int on)
{
    if (on)
        setenv("EMU2_SEARCH_FULL_LOGITS", "1", 1);
    else
        unsetenv("EMU2_SEARCH_FULL_LOGITS");
}

static int same_results(const emu2_search_result *a, const emu2_search_result *b)
{
    if (a->batch != b->batch)
        return 0;
    for (size_t i = 0; i < a->batch; i++) {
        const emu2_search_item *x = &a->items[i], *y = &b->items[i];
        if (x->n_ids != y->n_ids || x->ended_by_eos != y->ended_by_eos ||
            memcmp(&x->sequence_score, &y->sequence_score, sizeof x->sequence_score) ||
            (x->n_ids && memcmp(x->ids, y->ids, x->n_ids * sizeof *x->ids)))
            return 0;
    }
    return 1;
}

typedef struct tally {
    int compared, topk_runs;
} tally;

/* One generation both ways; 1 when identical and each path did what it should. */
static int compare_one(test_model *m, const run_input *r, int32_t image_id, const emu2_gen_options *o,
                       emu2_search_ids ids, const char *what, tally *t)
{
    emu2_prompt_batch p = {.ids = r->ids, .mask = r->mask, .rows = r->B, .T = r->T, .image_token_id = image_id,
                           .pixels = r->pixels, .n_images = r->n_images};
    emu2_search_result full, topk;
    emu2_error e1 = {0}, e2 = {0};
    force_full(1);
    emu2_status s1 = emu2_generate_tokens(m->be, m->w, &m->cfg, &p, o, ids, NULL, NULL, &full, &e1);
    force_full(0);
    emu2_status s2 = emu2_generate_tokens(m->be, m->w, &m->cfg, &p, o, ids, NULL, NULL, &topk, &e2);
    int ok = s1 == EMU2_OK && s2 == EMU2_OK;
    if (!ok)
        printf("    %s: %s / %s\n", what, e1.message, e2.message);
    if (ok && (!same_results(&full, &topk) || full.topk_steps != 0)) {
        printf("    %s (beams %d, sample %d, rows %zu): the top-k path differs (%zu of %zu steps top-k)\n", what,
               o->num_beams, o->do_sample, r->B, topk.topk_steps, topk.decoder_steps);
        ok = 0;
    }
    /* with the default options (no repetition penalty) every step after the prefill can use it */
    int expect = o->repetition_penalty == 1.0f && !(o->do_sample && o->num_beams > 1) && topk.decoder_steps > 0;
    if (ok && expect && topk.topk_steps == 0) {
        printf("    %s: the top-k path never ran\n", what);
        ok = 0;
    }
    t->compared += ok;
    t->topk_runs += ok && topk.topk_steps > 0;
    if (s1 == EMU2_OK)
        emu2_search_result_free(&full);
    if (s2 == EMU2_OK)
        emu2_search_result_free(&topk);
    return ok;
}

/* Every generation of one run both ways, and (once per run) beam 5 and sampling variations. */
static int compare_run(void *ctx, test_model *m, const run_input *r, int32_t image_id, json_t *gens, size_t i,
                       const char *run_id)
{
    tally *t = ctx;
    int ok = 1;
    for (size_t k = 0; ok && k < json_array_size(gens); k++) {
        emu2_gen_options o;
        emu2_search_ids ids;
        golden_gen_options(json_array_get(gens, k), m->cfg.bos_token_id, &o, &ids);
        ok = compare_one(m, r, image_id, &o, ids, run_id, t);
        if (ok && k == 0) { /* variations once per run: beam 5 with lp -1, and sampling */
            emu2_gen_options v = o;
            v.num_beams = 5, v.length_penalty = -1.0f, v.repetition_penalty = 1.0f, v.min_length = 1;
            ok = compare_one(m, r, image_id, &v, ids, "beam 5 variation", t);
            v = o;
            v.num_beams = 1, v.do_sample = 1, v.top_k = 50, v.top_p = 0.9f, v.temperature = 0.8f,
            v.seed = 42 + i, v.repetition_penalty = 1.0f;
            ok = ok && compare_one(m, r, image_id, &v, ids, "sampling variation", t);
            v.min_length = 4; /* the first steps ban EOS: full rows there */
            ok = ok && compare_one(m, r, image_id, &v, ids, "sampling + min length", t);
        }
    }
    return ok;
}

static void run_case(const char *name, int threads)
{
    tally t = {0, 0};
    int ok = golden_each_run(name, threads, compare_run, &t);
    force_full(0);
    printf("    %s: %d generations identical both ways, %d of them with top-k steps\n", name, t.compared,
           t.topk_runs);
    CHECKF(ok && t.compared > 0 && t.topk_runs > 0, "%s: the top-k path differs from the full-logits path", name);
}

TEST(topk_generate_tiny) { run_case("tiny", 2); }
TEST(topk_generate_vis448) { run_case("vis448", 2); }
TEST(topk_generate_chat) { run_case("chat", 1); }

TEST(env_variable_turns_it_off)
{
    test_model m;
    CHECK(test_model_open("tests/models/rand-chat", 1, &m));
    emu2_decoder_limits lim = {2, 8, 0};
    emu2_decoder_session *s = NULL;
    emu2_error err = {0};
    int ok = emu2_decoder_session_create(m.be, &m.w->decoder, &m.cfg, &lim, &s, &err) == EMU2_OK;
    emu2_lm_stepper on, off;
    if (ok) {
        force_full(0);
        emu2_decoder_stepper(s, &on);
        setenv("EMU2_SEARCH_FULL_LOGITS", "0", 1); /* "0" keeps it on */
        emu2_lm_stepper zero;
        emu2_decoder_stepper(s, &zero);
        force_full(1);
        emu2_decoder_stepper(s, &off);
        force_full(0);
        ok = on.step_topk && on.last_logits && on.topk_max > 0 && zero.step_topk && !off.step_topk &&
             !off.last_logits && emu2_search_full_logits_forced() == 0;
    }
    emu2_decoder_session_free(s);
    test_model_close(&m);
    CHECKF(ok, "%s", err.message);
}

/* The API on the trained tiny model: a batch of several describe requests, beam 5 and greedy. */
static int read_file(const char *path, emu2_image_bytes *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    static unsigned char buf[4][1 << 16]; /* the last four files read */
    static int next;
    unsigned char *slot = buf[next++ % 4];
    size_t n = fread(slot, 1, sizeof buf[0], f);
    fclose(f);
    out->data = slot;
    out->size = n;
    return n > 0;
}

/* The four example images of the tiny model as describe requests (default prompt). */
static int example_requests(emu2_image_bytes img[4], emu2_request req[4])
{
    static const char *names[4] = {"blue_black_1_top_left.jpg", "red_white_3_bottom_left.jpg",
                                   "yellow_white_2_top_right.jpg", "green_black_4_bottom_right.jpg"};
    for (int i = 0; i < 4; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/emu2-tiny-digits/examples/%s", names[i]);
        if (!read_file(ROOT_PATH(rel), &img[i]))
            return 0;
        req[i] = (emu2_request){NULL, &img[i], 1};
    }
    return 1;
}

TEST(topk_api_batch_tiny_digits)
{
    emu2_image_bytes img[4];
    emu2_request req[4];
    CHECKF(example_requests(img, req), "cannot read the tiny model's example images");
    emu2_model *model;
    emu2_error err;
    CHECKF(emu2_model_load(ROOT_PATH("models/emu2-tiny-digits"), NULL, &model, &err) == EMU2_OK, "%s", err.message);
    int ok = 1;
    for (int beams = 1; ok && beams <= 5; beams += 4) {
        emu2_gen_options o;
        emu2_gen_options_init(&o);
        o.num_beams = beams;
        o.max_new_tokens = 24;
        emu2_result full[4], topk[4];
        memset(full, 0, sizeof full);
        memset(topk, 0, sizeof topk);
        force_full(1);
        ok = emu2_generate_batch(model, req, 4, &o, NULL, full) == EMU2_OK;
        force_full(0);
        ok = ok && emu2_generate_batch(model, req, 4, &o, NULL, topk) == EMU2_OK;
        for (int i = 0; ok && i < 4; i++) {
            ok = full[i].status == EMU2_OK && topk[i].status == EMU2_OK && full[i].text && topk[i].text &&
                 strcmp(full[i].text, topk[i].text) == 0 && full[i].n_tokens == topk[i].n_tokens &&
                 full[i].n_tokens > 0;
            if (!ok)
                printf("    beams %d request %d: '%s' vs '%s'\n", beams, i, full[i].text ? full[i].text : "?",
                       topk[i].text ? topk[i].text : "?");
        }
        emu2_results_clear(full, 4);
        emu2_results_clear(topk, 4);
    }
    emu2_model_free(model);
    CHECK(ok);
}

/* Continuous batching (emu2_batcher: requests joining a running decode, each search handed its own
 * rows' candidates) gives the same texts with the top-k path on and off. Requests join at
 * different steps so rows of requests at different lengths share each decoder step. */
static int batcher_texts(emu2_model *model, const emu2_request *req, int beams, char **texts)
{
    emu2_gen_options o;
    emu2_gen_options_init(&o);
    o.num_beams = beams;
    o.max_new_tokens = 24;
    emu2_batcher *b = NULL;
    if (emu2_batcher_create(model, &o, 4, 0, NULL, &b) != EMU2_OK)
        return 0;
    int ok = 1, added = 0, taken = 0;
    for (int step = 0; ok && taken < 4 && step < 400; step++) {
        if (added < 4 && step % 2 == 0) /* one more request every other step */
            ok = emu2_batcher_add(b, &req[added], (size_t)added) == EMU2_OK, added++;
        ok = ok && emu2_batcher_step(b) == EMU2_OK;
        size_t tag;
        emu2_result r;
        while (ok && emu2_batcher_take(b, &tag, &r)) {
            ok = r.status == EMU2_OK && tag < 4 && r.text;
            texts[tag] = ok ? strdup(r.text) : NULL;
            taken++;
            emu2_results_clear(&r, 1);
        }
    }
    emu2_batcher_free(b);
    return ok && taken == 4;
}

TEST(topk_continuous_batching_tiny_digits)
{
    emu2_image_bytes img[4];
    emu2_request req[4];
    CHECKF(example_requests(img, req), "cannot read the tiny model's example images");
    emu2_model *model;
    emu2_error err;
    CHECKF(emu2_model_load(ROOT_PATH("models/emu2-tiny-digits"), NULL, &model, &err) == EMU2_OK, "%s", err.message);
    int ok = 1;
    for (int beams = 1; ok && beams <= 5; beams += 4) {
        char *full[4] = {0}, *topk[4] = {0};
        force_full(1);
        ok = batcher_texts(model, req, beams, full);
        force_full(0);
        ok = ok && batcher_texts(model, req, beams, topk);
        for (int i = 0; ok && i < 4; i++) {
            ok = full[i] && topk[i] && strcmp(full[i], topk[i]) == 0 && full[i][0];
            if (!ok)
                printf("    beams %d request %d: '%s' vs '%s'\n", beams, i, full[i] ? full[i] : "?",
                       topk[i] ? topk[i] : "?");
        }
        for (int i = 0; i < 4; i++)
            free(full[i]), free(topk[i]);
    }
    emu2_model_free(model);
    CHECK(ok);
}

int main(void)
{
    RUN(env_variable_turns_it_off);
    RUN(topk_generate_tiny);
    RUN(topk_generate_vis448);
    RUN(topk_generate_chat);
    RUN(topk_api_batch_tiny_digits);
    RUN(topk_continuous_batching_tiny_digits);
    return check_finish();
}
