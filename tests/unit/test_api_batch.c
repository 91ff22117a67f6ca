/* test_api_batch.c: emu2_generate_batch on the shipped tiny model: every request of a mixed batch
 * gets what emu2_generate gives it alone; bad requests fail alone; per-request streaming, stop and
 * cancel touch only their own request. */
#include <stdint.h>

#include "check.h"
#include "emu2.h"
#include "test_image_support.h"
#include "test_batch_support.h"

#define N_HELD 6

/* The fixture batch: 6 held-out describes, the few-shot prompt, a corrupt image, a count mismatch. */
typedef struct fixture {
    emu2_model *m;
    unsigned char *held[N_HELD], *seed[4];
    emu2_image_bytes held_img[N_HELD], seed_img[4], corrupt;
    emu2_request rq[N_HELD + 3];
    size_t n;
} fixture;

/* NULL when ready, else why the tests must skip (static buffer). */
static const char *fixture_open(fixture *f)
{
    static char why[600];
    memset(f, 0, sizeof *f);
    if (batch_load_tiny(&f->m, 0, why, sizeof why) ||
        batch_load_requests(N_HELD, f->held, f->held_img, f->seed, f->seed_img, f->rq, &f->n, why, sizeof why))
        return why;
    static const unsigned char junk[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1};
    f->corrupt = (emu2_image_bytes){junk, sizeof junk};
    f->rq[f->n++] = (emu2_request){NULL, &f->corrupt, 1};
    f->rq[f->n++] = (emu2_request){"[] and []", f->seed_img, 1};
    return NULL;
}

static void fixture_close(fixture *f)
{
    batch_free_images(N_HELD, f->held, f->seed);
    emu2_model_free(f->m);
}

/* The fixture and generation options of the tests: beams as given, 32 new tokens at most. */
static const char *fixture_open_with(fixture *f, emu2_gen_options *o, int beams)
{
    emu2_gen_options_init(o);
    o->num_beams = beams;
    o->max_new_tokens = 32;
    return fixture_open(f);
}

/* Opens the fixture or skips the calling test (SKIP returns from it). */
#define OPEN_OR_SKIP(f, o, beams)                                                                                  \
    do {                                                                                                           \
        const char *why_ = fixture_open_with(f, o, beams);                                                         \
        if (why_) {                                                                                                \
            fixture_close(f);                                                                                      \
            SKIP("%s", why_);                                                                                      \
        }                                                                                                          \
    } while (0)

/* What emu2_generate gives request i alone (NULL when it fails). */
static char *alone(fixture *f, size_t i, const emu2_gen_options *o)
{
    return batch_alone(f->m, &f->rq[i], o);
}

static void check_batch_equals_alone(int beams)
{
    fixture f;
    emu2_gen_options o;
    OPEN_OR_SKIP(&f, &o, beams);
    emu2_result res[N_HELD + 3];
    CHECK(emu2_generate_batch(f.m, f.rq, f.n, &o, NULL, res) == EMU2_OK);
    for (size_t i = 0; i < N_HELD + 1; i++) {
        char *want = alone(&f, i, &o);
        CHECKF(want && res[i].status == EMU2_OK && res[i].text && strcmp(res[i].text, want) == 0,
               "beams %d request %zu: batch \"%s\" (%s) vs alone \"%s\"", beams, i, res[i].text ? res[i].text : "",
               res[i].message, want ? want : "(failed)");
        CHECK(res[i].n_tokens > 0 && !res[i].stopped);
        emu2_free(want);
    }
    CHECKF(strcmp(res[N_HELD].text ? res[N_HELD].text : "", "[blue, black, 1, top left]") == 0,
           "few-shot in a batch: %s", res[N_HELD].text ? res[N_HELD].text : res[N_HELD].message);
    /* the bad requests failed alone, with the reason */
    CHECK(res[N_HELD + 1].status == EMU2_ERR_FORMAT && res[N_HELD + 1].text == NULL);
    CHECKF(strstr(res[N_HELD + 1].message, "image 1") != NULL, "corrupt: %s", res[N_HELD + 1].message);
    CHECK(res[N_HELD + 2].status == EMU2_ERR_MISMATCH);
    CHECKF(strstr(res[N_HELD + 2].message, "2 image placeholders") != NULL, "mismatch: %s", res[N_HELD + 2].message);
    emu2_results_clear(res, f.n);
    CHECK(res[0].text == NULL && res[0].status == EMU2_OK);
    fixture_close(&f);
}

TEST(greedy_batch_equals_one_by_one)
{
    check_batch_equals_alone(1);
}

TEST(beam_batch_equals_one_by_one)
{
    check_batch_equals_alone(5);
}

/* Streaming hooks: pieces collected per request; request 2 stops after its first piece; request 4
 * is cancelled from the start. */
typedef struct hook_state {
    batch_stream stream; /* first: on_token gets the hook state */
    int polls;
} hook_state;

static int cancel_four(void *user, size_t item)
{
    hook_state *h = user;
    h->polls++;
    return item == 4;
}

static void check_hooks(int beams)
{
    fixture f;
    emu2_gen_options o;
    OPEN_OR_SKIP(&f, &o, beams);
    hook_state h;
    memset(&h, 0, sizeof h);
    h.stream.stop_tag = 2; /* stop request 2 at once */
    emu2_batch_hooks hooks;
    emu2_batch_hooks_init(&hooks);
    hooks.on_token = batch_stream_piece;
    hooks.cancelled = cancel_four;
    hooks.user = &h;
    emu2_result res[N_HELD + 3];
    CHECK(emu2_generate_batch(f.m, f.rq, f.n, &o, &hooks, res) == EMU2_OK);
    CHECK(h.polls > 0);
    for (size_t i = 0; i < N_HELD + 1; i++) {
        char *want = alone(&f, i, &o);
        if (i == 4) {
            CHECKF(res[i].status == EMU2_ERR_CANCELLED && res[i].stopped && !res[i].text && h.stream.pieces[i] == 0,
                   "beams %d cancelled request: status %d, %d pieces", beams, (int)res[i].status, h.stream.pieces[i]);
        } else if (i == 2) {
            CHECKF(res[i].status == EMU2_OK && res[i].stopped && res[i].n_tokens == 1 && h.stream.pieces[i] == 1,
                   "beams %d stopped request: status %d stopped %d tokens %zu pieces %d", beams, (int)res[i].status,
                   res[i].stopped, res[i].n_tokens, h.stream.pieces[i]);
            CHECKF(want && res[i].text && strncmp(want, res[i].text, strlen(res[i].text)) == 0,
                   "stopped text \"%s\" starts \"%s\"", res[i].text ? res[i].text : "", want ? want : "");
        } else {
            CHECKF(want && res[i].text && strcmp(res[i].text, want) == 0 && strcmp(h.stream.text[i], want) == 0,
                   "beams %d request %zu: batch \"%s\", streamed \"%s\", alone \"%s\"", beams, i,
                   res[i].text ? res[i].text : "", h.stream.text[i], want ? want : "");
        }
        emu2_free(want);
    }
    CHECK(h.stream.pieces[N_HELD + 1] == 0 && h.stream.pieces[N_HELD + 2] == 0);
    emu2_results_clear(res, f.n);
    fixture_close(&f);
}

TEST(hooks_stream_stop_and_cancel_per_request_greedy)
{
    check_hooks(1);
}

TEST(hooks_stream_stop_and_cancel_per_request_beam)
{
    check_hooks(5);
}

static int cancel_all(void *user, size_t item)
{
    (void)user;
    (void)item;
    return 1;
}

TEST(whole_batch_errors_and_edges)
{
    fixture f;
    emu2_gen_options o;
    OPEN_OR_SKIP(&f, &o, 1);
    emu2_result res[N_HELD + 3];
    /* bad options fail the call and every result says why */
    emu2_gen_options_init(&o);
    o.max_new_tokens = 0;
    CHECK(emu2_generate_batch(f.m, f.rq, f.n, &o, NULL, res) == EMU2_ERR_INVALID_ARGUMENT);
    for (size_t i = 0; i < f.n; i++)
        CHECKF(res[i].status == EMU2_ERR_INVALID_ARGUMENT && strstr(res[i].message, "max_new_tokens"),
               "result %zu: %s", i, res[i].message);
    CHECK(strstr(emu2_model_last_error(f.m), "max_new_tokens") != NULL);
    emu2_batch_hooks hooks;
    emu2_batch_hooks_init(&hooks);
    hooks.struct_size = 1;
    CHECK(emu2_generate_batch(f.m, f.rq, f.n, NULL, &hooks, res) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(strstr(res[0].message, "struct_size") != NULL);
    /* empty batch, NULL arguments */
    CHECK(emu2_generate_batch(f.m, NULL, 0, NULL, NULL, res) == EMU2_OK);
    CHECK(emu2_generate_batch(f.m, f.rq, 1, NULL, NULL, NULL) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_generate_batch(NULL, f.rq, 1, NULL, NULL, res) == EMU2_ERR_INVALID_ARGUMENT);
    /* only bad requests: no forward pass, each fails alone */
    CHECK(emu2_generate_batch(f.m, f.rq + N_HELD + 1, 2, NULL, NULL, res) == EMU2_OK);
    CHECK(res[0].status == EMU2_ERR_FORMAT && res[1].status == EMU2_ERR_MISMATCH);
    emu2_results_clear(res, 2);
    /* every request cancelled */
    emu2_batch_hooks_init(&hooks);
    hooks.cancelled = cancel_all;
    emu2_gen_options_init(&o);
    o.max_new_tokens = 8;
    for (int beams = 1; beams <= 5; beams += 4) {
        o.num_beams = beams;
        CHECK(emu2_generate_batch(f.m, f.rq, 3, &o, &hooks, res) == EMU2_OK);
        for (int i = 0; i < 3; i++)
            CHECK(res[i].status == EMU2_ERR_CANCELLED && res[i].text == NULL);
        emu2_results_clear(res, 3);
    }
    /* a request with images but a NULL array */
    emu2_request bad = {"[]", NULL, 1};
    CHECK(emu2_generate_batch(f.m, &bad, 1, NULL, NULL, res) == EMU2_OK);
    CHECK(res[0].status == EMU2_ERR_INVALID_ARGUMENT);
    fixture_close(&f);
}

int main(void)
{
    RUN(greedy_batch_equals_one_by_one);
    RUN(beam_batch_equals_one_by_one);
    RUN(hooks_stream_stop_and_cancel_per_request_greedy);
    RUN(hooks_stream_stop_and_cancel_per_request_beam);
    RUN(whole_batch_errors_and_edges);
    return check_finish();
}
