/* test_cuda_graphs.c: decode steps recorded as CUDA graphs (kernels/cuda_graph.c) give what the
 * same steps give op by op. On the shipped tiny model, the same model with graphs turned on and off
 * (emu2_cuda_graphs_enable, found with dlsym): the decoder's logits over greedy steps with a beam
 * reordering between them (the KV-cache buffers swap, so every recording changes kernel arguments),
 * held to 1e-5 of the largest logit; describe and a batch of requests (greedy and beam 5) word for
 * word; the graph counters prove the steps really ran as graph launches (one per recorded part); a bad token id in a
 * recorded step fails as it does op by op and leaves graphs on; EMU2_CUDA_GRAPHS=0 turns them off
 * with the reason in the model's device text. Skips, saying why, without a usable GPU. */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "test_io_util.h"

#include "../../kernels/graph_policy.h"
#include "api/model_internal.h"
#include "emu2.h"
#include "model/decoder.h"
#include "model/embed_splice.h"

typedef emu2_status (*stats_fn)(emu2_backend *be, cuda_graph_counters *out, int *on, char *reason,
                                size_t reason_size, emu2_error *err);
typedef emu2_status (*enable_fn)(emu2_backend *be, int on, emu2_error *err);

static emu2_model *gm;
static stats_fn graph_stats;
static enable_fn graphs_enable;
static char why[600];

static const char *examples[] = {"blue_black_1_top_left.jpg", "green_black_4_bottom_right.jpg",
                                 "red_white_3_bottom_left.jpg", "yellow_white_2_top_right.jpg"};

static emu2_model *load_tiny(emu2_error *err)
{
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.device = "cuda";
    o.threads = 2;
    emu2_model *m = NULL;
    return emu2_model_load(ROOT_PATH("models/emu2-tiny-digits"), &o, &m, err) == EMU2_OK ? m : NULL;
}

static int open_gpu(void)
{
    emu2_error err;
    if (!(gm = load_tiny(&err))) {
        snprintf(why, sizeof why, "no CUDA model here: %.500s", err.message);
        return 0;
    }
    void *lib = gm->be->library, *s = lib ? dlsym(lib, "emu2_cuda_graph_stats") : NULL,
         *e = lib ? dlsym(lib, "emu2_cuda_graphs_enable") : NULL;
    memcpy(&graph_stats, &s, sizeof s);
    memcpy(&graphs_enable, &e, sizeof e);
    if (!graph_stats || !graphs_enable) {
        snprintf(why, sizeof why, "the CUDA library does not export the graph controls");
        return 0;
    }
    printf("  device: %s\n", gm->be->device);
    return 1;
}

#define NEED_GPU()                                                                                                     \
    do {                                                                                                               \
        if (!graph_stats)                                                                                              \
            SKIP("%.250s", why);                                                                                       \
    } while (0)

static cuda_graph_counters counters(int *on, char *reason, size_t n)
{
    cuda_graph_counters c;
    memset(&c, 0, sizeof c);
    emu2_error err;
    if (graph_stats(gm->be, &c, on, reason, n, &err) != EMU2_OK)
        printf("    graph stats: %s\n", err.message);
    return c;
}

/* 0 off, 1 on (no trial), 2 auto (the default: a trial decides) */
static int set_graphs(int mode)
{
    emu2_error err;
    if (graphs_enable(gm->be, mode, &err) != EMU2_OK) {
        printf("    graphs_enable: %s\n", err.message);
        return 0;
    }
    return 1;
}

enum { ROWS = 3, PROMPT = 5, STEPS = 12 };

/* Prefill ROWS prompts (row 0 left-padded), then STEPS greedy steps, with a beam-style reordering
 * of the rows after every third step. logits: [(STEPS + 1) * ROWS * V], tokens [STEPS * ROWS]. */
static int decode_run(float *logits, int32_t *tokens, emu2_error *err)
{
    emu2_backend *be = gm->be;
    const size_t V = (size_t)gm->cfg.vocab_size, D = (size_t)gm->cfg.hidden_size;
    int32_t ids[ROWS * PROMPT];
    uint8_t mask[ROWS * PROMPT];
    for (size_t i = 0; i < ROWS * PROMPT; i++) {
        ids[i] = (int32_t)(3 + (i * 7919) % (V - 3));
        mask[i] = i != 0; /* row 0 starts with one padding slot */
    }
    emu2_decoder_limits lim = {ROWS, PROMPT + STEPS, 0};
    emu2_decoder_session *s = NULL;
    float *emb = be->ops->alloc(be, ROWS * PROMPT * D, err);
    int ok = emb && emu2_embed_tokens(be, &gm->w->decoder.embed, ids, ROWS * PROMPT, emb, err) == EMU2_OK &&
             emu2_decoder_session_create(be, &gm->w->decoder, &gm->cfg, &lim, &s, err) == EMU2_OK &&
             emu2_decoder_prefill(s, ROWS, PROMPT, emb, mask, logits, NULL, err) == EMU2_OK;
    for (size_t step = 0; ok && step < STEPS; step++) {
        int32_t *next = tokens + step * ROWS;
        const float *last = logits + step * ROWS * V;
        for (size_t r = 0; r < ROWS; r++) {
            size_t best = 0;
            for (size_t v = 1; v < V; v++)
                if (last[r * V + v] > last[r * V + best])
                    best = v;
            next[r] = (int32_t)best;
        }
        if (step % 3 == 2) { /* as beam search keeps the best beams: rows move, the cache is regathered */
            int32_t src[ROWS] = {1, 0, 1};
            int32_t moved[ROWS] = {next[1], next[0], next[1]};
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

TEST(decoder_steps_match_op_by_op)
{
    NEED_GPU();
    const size_t V = (size_t)gm->cfg.vocab_size, n = (STEPS + 1) * ROWS * V;
    float *eager = malloc(n * sizeof *eager), *graphed = malloc(n * sizeof *graphed);
    float *autom = malloc(n * sizeof *autom);
    int32_t t_eager[STEPS * ROWS], t_graphed[STEPS * ROWS], t_auto[STEPS * ROWS];
    emu2_error err;
    CHECK(eager && graphed && autom);
    int ok = set_graphs(0) && decode_run(eager, t_eager, &err);
    if (!ok)
        printf("    op by op: %s\n", err.message);
    cuda_graph_counters before = counters(NULL, NULL, 0);
    ok = ok && set_graphs(1) && decode_run(graphed, t_graphed, &err);
    if (!ok)
        printf("    graphs: %s\n", err.message);
    int on = 0;
    char reason[200] = "";
    cuda_graph_counters after = counters(&on, reason, sizeof reason);
    /* auto (the default): some steps recorded, some not, while its trial runs: the same logits */
    int auto_ok = ok && set_graphs(2) && decode_run(autom, t_auto, &err);
    if (ok && !auto_ok)
        printf("    auto: %s\n", err.message);
    double max_ref = 0, max_diff = 0, auto_diff = 0;
    for (size_t i = 0; ok && i < n; i++) {
        double r = fabs((double)eager[i]), d = fabs((double)graphed[i] - eager[i]);
        double da = auto_ok ? fabs((double)autom[i] - eager[i]) : INFINITY;
        max_ref = r > max_ref ? r : max_ref;
        max_diff = d > max_diff || d != d ? (d != d ? INFINITY : d) : max_diff;
        auto_diff = da > auto_diff || da != da ? (da != da ? INFINITY : da) : auto_diff;
    }
    free(eager);
    free(graphed);
    free(autom);
    CHECK(ok && auto_ok);
    printf("    %d steps x %d rows: max |graphs - op by op| = %.3g of max |logit| %.3g; launched %llu, updated %llu, "
           "instantiated %llu\n",
           STEPS, ROWS, max_diff, max_ref, (unsigned long long)(after.launched - before.launched),
           (unsigned long long)(after.updates - before.updates),
           (unsigned long long)(after.instantiations - before.instantiations));
    CHECKF(on, "graphs went off: %s", reason);
    CHECK(!memcmp(t_eager, t_graphed, sizeof t_eager));
    CHECK(max_diff <= 1e-5 * max_ref);
    CHECKF(!memcmp(t_eager, t_auto, sizeof t_eager) && auto_diff <= 1e-5 * max_ref, "auto: max diff %.3g", auto_diff);
    /* the first step of the shape warms up; every later one launches each part of the step, the
     * first time freshly instantiated, then updated in place */
    uint64_t parts = after.instantiations - before.instantiations;
    CHECKF(parts >= 1 && after.launched - before.launched == parts * (STEPS - 1) &&
               after.updates - before.updates == parts * (STEPS - 2) && after.fallbacks == before.fallbacks,
           "parts %llu", (unsigned long long)parts);
}

static char *describe(const char *image, int beams)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", ROOT_PATH("models/emu2-tiny-digits/examples"), image);
    size_t n;
    unsigned char *bytes = io_read_file(path, &n);
    emu2_gen_options g;
    emu2_gen_options_init(&g);
    g.num_beams = beams;
    char *text = NULL;
    if (!bytes || emu2_describe(gm, bytes, n, NULL, &g, &text) != EMU2_OK) {
        printf("    describe %s: %s\n", image, bytes ? emu2_model_last_error(gm) : "unreadable");
        text = NULL;
    }
    free(bytes);
    return text;
}

/* Texts of describe on every example and of one batch of all of them, for beams 1 and 5. */
enum { N_EX = sizeof examples / sizeof examples[0], N_TEXTS = 2 * 2 * N_EX };
static int all_texts(char *texts[N_TEXTS])
{
    unsigned char *bytes[N_EX] = {0};
    emu2_image_bytes imgs[N_EX];
    emu2_request rq[N_EX];
    int ok = 1, k = 0;
    for (size_t i = 0; i < N_EX; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", ROOT_PATH("models/emu2-tiny-digits/examples"), examples[i]);
        bytes[i] = io_read_file(path, &imgs[i].size);
        imgs[i].data = bytes[i];
        rq[i] = (emu2_request){NULL, &imgs[i], 1};
        ok &= bytes[i] != NULL;
    }
    for (int beams = 1; ok && beams <= 5; beams += 4) {
        for (size_t i = 0; i < N_EX; i++)
            ok &= (texts[k++] = describe(examples[i], beams)) != NULL;
        emu2_gen_options g;
        emu2_gen_options_init(&g);
        g.num_beams = beams;
        emu2_result res[N_EX];
        memset(res, 0, sizeof res);
        ok &= emu2_generate_batch(gm, rq, N_EX, &g, NULL, res) == EMU2_OK;
        for (size_t i = 0; i < N_EX; i++) {
            ok &= res[i].status == EMU2_OK;
            texts[k++] = res[i].text ? strdup(res[i].text) : NULL;
        }
        emu2_results_clear(res, N_EX);
    }
    for (size_t i = 0; i < N_EX; i++)
        free(bytes[i]);
    return ok;
}

TEST(generations_match_op_by_op)
{
    NEED_GPU();
    char *off[N_TEXTS] = {0}, *on[N_TEXTS] = {0};
    int ok = set_graphs(0) && all_texts(off);
    cuda_graph_counters before = counters(NULL, NULL, 0);
    ok = ok && set_graphs(1) && all_texts(on);
    int still_on = 0;
    char reason[200] = "";
    cuda_graph_counters after = counters(&still_on, reason, sizeof reason);
    int same = ok;
    for (int i = 0; i < N_TEXTS; i++) {
        if (!off[i] || !on[i] || strcmp(off[i], on[i])) {
            printf("    text %d (%s): op by op \"%s\", graphs \"%s\"\n", i, i % 8 < 4 ? "describe" : "batch",
                   off[i] ? off[i] : "(error)", on[i] ? on[i] : "(error)");
            same = 0;
        }
        free(off[i]);
        free(on[i]);
    }
    printf("    graph launches %llu (updates %llu, instantiations %llu) of %llu steps\n",
           (unsigned long long)(after.launched - before.launched), (unsigned long long)(after.updates - before.updates),
           (unsigned long long)(after.instantiations - before.instantiations),
           (unsigned long long)(after.steps - before.steps));
    CHECK(ok);
    CHECKF(still_on, "graphs went off: %s", reason);
    CHECK(same);
    CHECK(after.launched - before.launched > (after.steps - before.steps) / 2);
}

TEST(bad_token_in_a_recorded_step_fails_as_op_by_op)
{
    NEED_GPU();
    emu2_backend *be = gm->be;
    const size_t D = (size_t)gm->cfg.hidden_size, V = (size_t)gm->cfg.vocab_size;
    emu2_error err;
    emu2_decoder_limits lim = {2, 8, 0};
    emu2_decoder_session *s = NULL;
    int32_t ids[4] = {5, 6, 7, 8}, good[2] = {9, 10}, bad[2] = {11, (int32_t)V};
    float *emb = be->ops->alloc(be, 4 * D, &err);
    int ok = set_graphs(1) && emb && emu2_embed_tokens(be, &gm->w->decoder.embed, ids, 4, emb, &err) == EMU2_OK &&
             emu2_decoder_session_create(be, &gm->w->decoder, &gm->cfg, &lim, &s, &err) == EMU2_OK &&
             emu2_decoder_prefill(s, 2, 2, emb, NULL, NULL, NULL, &err) == EMU2_OK &&
             emu2_decoder_step(s, good, NULL, NULL, &err) == EMU2_OK && /* warm-up */
             emu2_decoder_step(s, good, NULL, NULL, &err) == EMU2_OK;  /* recorded */
    if (!ok)
        printf("    setup: %s\n", err.message);
    cuda_graph_counters before = counters(NULL, NULL, 0);
    emu2_status st = ok ? emu2_decoder_step(s, bad, NULL, NULL, &err) : EMU2_OK;
    size_t len = ok ? emu2_decoder_length(s) : 0;
    int on = 0;
    cuda_graph_counters after = counters(&on, NULL, 0);
    int again = ok && emu2_decoder_step(s, good, NULL, NULL, &err) == EMU2_OK;
    emu2_decoder_session_free(s);
    if (emb)
        be->ops->free(be, emb);
    CHECK(ok);
    CHECKF(st == EMU2_ERR_INVALID_ARGUMENT || st == EMU2_ERR_LIMIT, "bad id: status %d (%s)", st, err.message);
    CHECK(len == 4); /* the failed step added nothing */
    CHECK(on && after.fallbacks == before.fallbacks + 1 && after.launched == before.launched);
    CHECK(again);
}

TEST(environment_turns_graphs_off)
{
    NEED_GPU();
    setenv("EMU2_CUDA_GRAPHS", "0", 1);
    emu2_error err;
    emu2_model *m = load_tiny(&err);
    unsetenv("EMU2_CUDA_GRAPHS");
    CHECKF(m, "%s", err.message);
    emu2_model_info info;
    emu2_model_get_info(m, &info);
    int noted = strstr(info.device, "[cuda graphs off: EMU2_CUDA_GRAPHS=0]") != NULL;
    cuda_graph_counters c;
    int on = 1;
    emu2_status st = graph_stats(m->be, &c, &on, NULL, 0, &err);
    char *text = NULL;
    emu2_gen_options g;
    emu2_gen_options_init(&g);
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", ROOT_PATH("models/emu2-tiny-digits/examples"), examples[0]);
    size_t n;
    unsigned char *bytes = io_read_file(path, &n);
    emu2_status ds = bytes ? emu2_describe(m, bytes, n, NULL, &g, &text) : EMU2_ERR_IO;
    cuda_graph_counters after;
    graph_stats(m->be, &after, NULL, NULL, 0, &err);
    free(bytes);
    emu2_free(text);
    emu2_model_free(m);
    CHECKF(noted, "device text: %s", info.device);
    CHECK(st == EMU2_OK && !on);
    CHECK(ds == EMU2_OK && after.steps > 0 && after.recorded == 0 && after.launched == 0);
}

int main(void)
{
    int have = open_gpu();
    if (!have)
        printf("  (%s)\n", why);
    RUN(decoder_steps_match_op_by_op);
    RUN(generations_match_op_by_op);
    RUN(bad_token_in_a_recorded_step_fails_as_op_by_op);
    RUN(environment_turns_graphs_off);
    if (gm)
        emu2_model_free(gm);
    return check_finish();
}
