/* test_api_continuous.c: emu2_batcher (continuous batching) on the shipped tiny model: requests that
 * join a running decode at different steps (shorter and longer prompts than the running ones) get
 * exactly what emu2_generate gives each alone, greedy and beam; the cache compacts when a session
 * sized for one request serves many; a cancelled or stopped request leaves the others intact; bad
 * requests fail alone; argument errors. */
#include <stdint.h>

#include "check.h"
#include "emu2.h"
#include "test_image_support.h"
#include "test_batch_support.h"

#define N_HELD 12

typedef struct fixture {
    emu2_model *m;
    unsigned char *held[N_HELD], *seed[4];
    emu2_image_bytes held_img[N_HELD], seed_img[4];
    emu2_request rq[N_HELD + 1]; /* the held-out describes, then the few-shot prompt (longer) */
    size_t n;
    emu2_gen_options o;
} fixture;

static void fixture_close(fixture *f)
{
    batch_free_images(N_HELD, f->held, f->seed);
    emu2_model_free(f->m);
}

/* NULL when ready, else why the tests must skip (static buffer). */
static const char *fixture_open(fixture *f, int beams, int random_weights)
{
    static char why[600];
    memset(f, 0, sizeof *f);
    emu2_gen_options_init(&f->o);
    f->o.num_beams = beams;
    f->o.max_new_tokens = 32;
    if (batch_load_tiny(&f->m, random_weights, why, sizeof why) ||
        batch_load_requests(N_HELD, f->held, f->held_img, f->seed, f->seed_img, f->rq, &f->n, why, sizeof why))
        return why;
    return NULL;
}

#define OPEN_OR_SKIP(f, beams)                                                                                     \
    OPEN_OR_SKIP_W(f, beams, 0)
#define OPEN_OR_SKIP_W(f, beams, random_weights)                                                                   \
    do {                                                                                                           \
        const char *why_ = fixture_open(f, beams, random_weights);                                                 \
        if (why_) {                                                                                                \
            fixture_close(f);                                                                                      \
            SKIP("%s", why_);                                                                                      \
        }                                                                                                          \
    } while (0)

/* What emu2_generate gives request i alone (NULL when it fails). */
static char *alone(fixture *f, size_t i)
{
    return batch_alone(f->m, &f->rq[i], &f->o);
}

/* Results by tag. */
typedef struct outcome {
    emu2_result res[N_HELD + 8];
    int got[N_HELD + 8];
    int joined_running; /* adds made while other requests were decoding */
} outcome;

static void take_all(emu2_batcher *b, outcome *out)
{
    size_t tag;
    emu2_result r;
    while (emu2_batcher_take(b, &tag, &r)) {
        CHECKF(tag < N_HELD + 8 && !out->got[tag], "tag %zu handed over once", tag);
        if (tag < N_HELD + 8 && !out->got[tag]) {
            out->res[tag] = r;
            out->got[tag] = 1;
        } else {
            emu2_results_clear(&r, 1);
        }
    }
}

/* Adds the requests order[k] one at a time with gap[k] steps before each (more while `cap` are
 * decoding), so they join at different steps, then steps until all are done. */
static emu2_status run_schedule(fixture *f, emu2_batcher *b, size_t cap, const size_t *order, const int *gap, size_t n,
                                outcome *out)
{
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < n; k++) {
        for (int s = 0; s < gap[k] || emu2_batcher_running(b) == cap; s++) {
            emu2_status st = emu2_batcher_step(b);
            if (st != EMU2_OK)
                return st;
            take_all(b, out);
        }
        out->joined_running += emu2_batcher_running(b) > 0;
        emu2_status st = emu2_batcher_add(b, &f->rq[order[k]], order[k]);
        if (st != EMU2_OK)
            return st;
        take_all(b, out);
    }
    for (int guard = 0; emu2_batcher_running(b) > 0 && guard < 10000; guard++) {
        emu2_status st = emu2_batcher_step(b);
        if (st != EMU2_OK)
            return st;
        take_all(b, out);
    }
    take_all(b, out);
    return EMU2_OK;
}

static void check_equals_alone(fixture *f, outcome *out, const size_t *order, size_t n, const char *what)
{
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k];
        char *want = alone(f, i);
        emu2_result *r = &out->res[i];
        CHECKF(out->got[i] && want && r->status == EMU2_OK && r->text && strcmp(r->text, want) == 0 && !r->stopped,
               "%s beams %d request %zu: continuous \"%s\" (%s) vs alone \"%s\"", what, f->o.num_beams, i,
               r->text ? r->text : "", r->message, want ? want : "(failed)");
        emu2_free(want);
        emu2_results_clear(r, 1);
    }
}

/* Describes join at steps 0, 2, 3, 7, ...; the few-shot prompt (longer than a describe: the running
 * rows shift right) joins in the middle; later describes join the longer row (masked front). */
static void check_joins(int beams, int random_weights)
{
    fixture f;
    OPEN_OR_SKIP_W(&f, beams, random_weights);
    emu2_batcher *b = NULL;
    CHECK(emu2_batcher_create(f.m, &f.o, 4, 0, NULL, &b) == EMU2_OK && b);
    static const size_t order[] = {0, 1, 2, 12, 3, 4, 5, 6, 7};
    static const int gap[] = {0, 2, 1, 4, 3, 0, 5, 1, 2};
    const size_t n = sizeof order / sizeof order[0];
    outcome *out = calloc(1, sizeof *out);
    emu2_status st = b ? run_schedule(&f, b, 4, order, gap, n, out) : EMU2_ERR_INTERNAL;
    CHECKF(st == EMU2_OK, "schedule: %s", emu2_model_last_error(f.m));
    CHECKF(out->joined_running >= 5, "requests joined a running decode %d times", out->joined_running);
    CHECK(emu2_batcher_running(b) == 0);
    check_equals_alone(&f, out, order, n, "joins");
    free(out);
    emu2_batcher_free(b);
    fixture_close(&f);
}

TEST(greedy_joins_equal_one_by_one)
{
    check_joins(1, 0);
}

TEST(beam_joins_equal_one_by_one)
{
    check_joins(5, 0);
}

TEST(random_weights_greedy_joins_equal_one_by_one)
{
    check_joins(1, 1);
}

TEST(random_weights_beam_joins_equal_one_by_one)
{
    check_joins(5, 1);
}

/* The smallest max_positions a describe fits (found through the LIMIT error), then a batcher that
 * small serves 12 describes three at a time joining at staggered steps: without compaction its
 * cache would overflow; random weights, so a wrong shift would change the tokens. */
TEST(compaction_keeps_a_small_cache_serving)
{
    fixture f;
    OPEN_OR_SKIP_W(&f, 5, 1);
    size_t lo = (size_t)f.o.max_new_tokens + 1, hi = 512;
    while (lo < hi) { /* smallest P that takes a describe */
        size_t mid = (lo + hi) / 2, tag;
        emu2_batcher *b = NULL;
        emu2_result r;
        int fits = 0;
        if (emu2_batcher_create(f.m, &f.o, 1, mid, NULL, &b) == EMU2_OK &&
            emu2_batcher_add(b, &f.rq[0], 0) == EMU2_OK) {
            fits = emu2_batcher_running(b) == 1;
            if (!fits && emu2_batcher_take(b, &tag, &r)) {
                CHECKF(r.status == EMU2_ERR_LIMIT && strstr(r.message, "positions"), "too long: %s", r.message);
                emu2_results_clear(&r, 1);
            }
        }
        emu2_batcher_free(b);
        if (fits)
            hi = mid;
        else
            lo = mid + 1;
    }
    CHECKF(lo > (size_t)f.o.max_new_tokens + 8 && lo < 512, "a describe needs %zu positions", lo);
    emu2_batcher *b = NULL;
    CHECK(emu2_batcher_create(f.m, &f.o, 3, lo, NULL, &b) == EMU2_OK);
    static const size_t order[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    static const int gap[] = {0, 3, 3, 9, 2, 7, 5, 4, 6, 8, 3, 5};
    outcome *out = calloc(1, sizeof *out);
    emu2_status st = run_schedule(&f, b, 3, order, gap, 12, out);
    CHECKF(st == EMU2_OK, "small batcher: %s", emu2_model_last_error(f.m));
    check_equals_alone(&f, out, order, 12, "compaction");
    free(out);
    emu2_batcher_free(b);
    fixture_close(&f);
}

/* Hooks: tag 2 is cancelled once it has decoded a few steps; tag 3 stops streaming after its first
 * piece (greedy) ; the others stream exactly their text. */
typedef struct hook_state {
    batch_stream stream; /* first: on_token gets the hook state */
    int polls[N_HELD + 8];
} hook_state;

static int cancel_two(void *user, size_t tag)
{
    hook_state *h = user;
    if (tag >= N_HELD + 8)
        return 1;
    return tag == 2 && ++h->polls[tag] > 4;
}

static void check_hooks(int beams)
{
    fixture f;
    OPEN_OR_SKIP(&f, beams);
    hook_state *h = calloc(1, sizeof *h);
    h->stream.stop_tag = 3;
    emu2_batch_hooks hooks;
    emu2_batch_hooks_init(&hooks);
    hooks.on_token = batch_stream_piece;
    hooks.cancelled = cancel_two;
    hooks.user = h;
    emu2_batcher *b = NULL;
    CHECK(emu2_batcher_create(f.m, &f.o, 4, 0, &hooks, &b) == EMU2_OK);
    static const size_t order[] = {0, 1, 2, 3, 4, 5};
    static const int gap[] = {0, 1, 1, 1, 3, 2};
    outcome *out = calloc(1, sizeof *out);
    emu2_status st = run_schedule(&f, b, 4, order, gap, 6, out);
    CHECKF(st == EMU2_OK, "hooks: %s", emu2_model_last_error(f.m));
    for (size_t i = 0; i < 6; i++) {
        emu2_result *r = &out->res[i];
        char *want = alone(&f, i);
        if (i == 2) {
            CHECKF(out->got[i] && r->status == EMU2_ERR_CANCELLED && r->stopped && !r->text &&
                       h->polls[2] == 5,
                   "beams %d cancelled: status %d stopped %d polls %d", beams, (int)r->status, r->stopped,
                   h->polls[2]);
        } else if (i == 3) {
            CHECKF(r->status == EMU2_OK && r->stopped && r->n_tokens == 1 && h->stream.pieces[3] == 1,
                   "beams %d stopped: status %d stopped %d tokens %zu pieces %d", beams, (int)r->status, r->stopped,
                   r->n_tokens, h->stream.pieces[3]);
            CHECKF(want && r->text && strncmp(want, r->text, strlen(r->text)) == 0, "stopped \"%s\" starts \"%s\"",
                   r->text ? r->text : "", want ? want : "");
        } else {
            CHECKF(want && r->status == EMU2_OK && r->text && strcmp(r->text, want) == 0 &&
                       strcmp(h->stream.text[i], want) == 0,
                   "beams %d request %zu: \"%s\", streamed \"%s\", alone \"%s\"", beams, i, r->text ? r->text : "",
                   h->stream.text[i], want ? want : "");
        }
        emu2_free(want);
        emu2_results_clear(r, 1);
    }
    free(out);
    free(h);
    emu2_batcher_free(b);
    fixture_close(&f);
}

TEST(greedy_cancel_and_stop_touch_only_their_request)
{
    check_hooks(1);
}

TEST(beam_cancel_and_stop_touch_only_their_request)
{
    check_hooks(5);
}

/* max_new_tokens 1: every request ends at its first choice, before it ever joins the decode. */
TEST(one_token_requests_end_before_joining)
{
    fixture f;
    OPEN_OR_SKIP(&f, 5);
    f.o.max_new_tokens = 1;
    emu2_batcher *b = NULL;
    CHECK(emu2_batcher_create(f.m, &f.o, 4, 0, NULL, &b) == EMU2_OK);
    static const size_t order[] = {0, 1, 2, 12};
    static const int gap[] = {0, 0, 1, 0};
    outcome *out = calloc(1, sizeof *out);
    CHECK(run_schedule(&f, b, 4, order, gap, 4, out) == EMU2_OK);
    for (size_t k = 0; k < 4; k++)
        CHECKF(out->res[order[k]].n_tokens == 1, "request %zu: %zu tokens", order[k], out->res[order[k]].n_tokens);
    check_equals_alone(&f, out, order, 4, "one token");
    free(out);
    emu2_batcher_free(b);
    fixture_close(&f);
}

TEST(bad_requests_fail_alone_and_limits)
{
    fixture f;
    OPEN_OR_SKIP(&f, 5);
    emu2_batcher *b = NULL;
    CHECK(emu2_batcher_create(f.m, &f.o, 2, 0, NULL, &b) == EMU2_OK);
    static const unsigned char junk[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1};
    emu2_image_bytes corrupt = {junk, sizeof junk};
    emu2_request bad_img = {NULL, &corrupt, 1}, mismatch = {"[] and []", f.seed_img, 1};
    CHECK(emu2_batcher_add(b, &f.rq[0], 0) == EMU2_OK);
    CHECK(emu2_batcher_step(b) == EMU2_OK);
    CHECK(emu2_batcher_add(b, &bad_img, 1) == EMU2_OK);
    CHECK(emu2_batcher_add(b, &mismatch, 2) == EMU2_OK);
    CHECK(emu2_batcher_running(b) == 1);
    CHECK(emu2_batcher_add(b, &f.rq[1], 3) == EMU2_OK);
    CHECK(emu2_batcher_running(b) == 2);
    CHECK(emu2_batcher_add(b, &f.rq[2], 4) == EMU2_ERR_LIMIT); /* full */
    CHECKF(strstr(emu2_model_last_error(f.m), "full") != NULL, "full: %s", emu2_model_last_error(f.m));
    outcome *out = calloc(1, sizeof *out);
    take_all(b, out);
    CHECK(out->got[1] && out->res[1].status == EMU2_ERR_FORMAT && !out->res[1].text);
    CHECKF(strstr(out->res[1].message, "image 1") != NULL, "corrupt: %s", out->res[1].message);
    CHECK(out->got[2] && out->res[2].status == EMU2_ERR_MISMATCH);
    while (emu2_batcher_running(b) > 0 && emu2_batcher_step(b) == EMU2_OK)
        take_all(b, out);
    char *want0 = alone(&f, 0), *want1 = alone(&f, 1);
    CHECK(out->got[0] && want0 && out->res[0].text && strcmp(out->res[0].text, want0) == 0);
    CHECK(out->got[3] && want1 && out->res[3].text && strcmp(out->res[3].text, want1) == 0);
    CHECK(!out->got[4]);
    emu2_free(want0);
    emu2_free(want1);
    for (size_t i = 0; i < N_HELD + 8; i++)
        emu2_results_clear(&out->res[i], 1);
    free(out);
    size_t tag;
    emu2_result r;
    CHECK(emu2_batcher_take(b, &tag, &r) == 0);
    /* results not taken are freed with the batcher (ASan / valgrind would see a leak) */
    CHECK(emu2_batcher_add(b, &bad_img, 9) == EMU2_OK);
    emu2_batcher_free(b);

    /* argument errors */
    b = NULL;
    CHECK(emu2_batcher_create(f.m, &f.o, 0, 0, NULL, &b) == EMU2_ERR_INVALID_ARGUMENT && !b);
    CHECK(emu2_batcher_create(f.m, &f.o, 2, 10, NULL, &b) == EMU2_ERR_INVALID_ARGUMENT && !b);
    CHECKF(strstr(emu2_model_last_error(f.m), "max_positions") != NULL, "%s", emu2_model_last_error(f.m));
    emu2_gen_options bad = f.o;
    bad.num_beams = 0;
    CHECK(emu2_batcher_create(f.m, &bad, 2, 0, NULL, &b) == EMU2_ERR_INVALID_ARGUMENT && !b);
    emu2_batch_hooks hooks = {0};
    CHECK(emu2_batcher_create(f.m, &f.o, 2, 0, &hooks, &b) == EMU2_ERR_INVALID_ARGUMENT && !b);
    CHECK(emu2_batcher_create(NULL, &f.o, 2, 0, NULL, &b) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_batcher_add(NULL, &f.rq[0], 0) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_batcher_step(NULL) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_batcher_running(NULL) == 0);
    CHECK(emu2_batcher_take(NULL, &tag, &r) == 0);
    emu2_batcher_free(NULL);
    fixture_close(&f);
}

int main(void)
{
    RUN(greedy_joins_equal_one_by_one);
    RUN(beam_joins_equal_one_by_one);
    RUN(random_weights_greedy_joins_equal_one_by_one);
    RUN(random_weights_beam_joins_equal_one_by_one);
    RUN(compaction_keeps_a_small_cache_serving);
    RUN(greedy_cancel_and_stop_touch_only_their_request);
    RUN(beam_cancel_and_stop_touch_only_their_request);
    RUN(one_token_requests_end_before_joining);
    RUN(bad_requests_fail_alone_and_limits);
    return check_finish();
}
