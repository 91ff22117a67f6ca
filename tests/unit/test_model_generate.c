/* test_model_generate.c: end to end below the API (emu2_generate_tokens): vision tower -> splice ->
 * prefill -> the token search (core/generate) stepping a decoder session -> generated ids, compared
 * with every generation of every golden run (greedy, beam 5 with length_penalty -1 and 2): ids and
 * EOS flags identical, beam sequence scores within 1e-4 * max(1, |ref|). */
#include "check.h"
#include "model/pipeline.h"
#include "model/vision_tower.h"
#include "test_model_run_support.h"

/* One generation entry of a run; 1 when it matches. */
static int check_generation(test_model *m, const run_input *r, int32_t image_id, json_t *gen, const char *run_id)
{
    emu2_gen_options o;
    emu2_search_ids ids;
    golden_gen_options(gen, m->cfg.bos_token_id, &o, &ids);
    emu2_error err;
    memset(&err, 0, sizeof err);
    emu2_search_result res;
    memset(&res, 0, sizeof res);
    emu2_prompt_batch p = {.ids = r->ids, .mask = r->mask, .rows = r->B, .T = r->T, .image_token_id = image_id,
                           .pixels = r->pixels, .n_images = r->n_images};
    int ok = emu2_generate_tokens(m->be, m->w, &m->cfg, &p, &o, ids, NULL, NULL, &res, &err) == EMU2_OK;
    if (!ok)
        printf("    %s: %s\n", run_id, err.message);
    json_t *outs = json_object_get(gen, "outputs");
    const char *mode = json_string_value(json_object_get(gen, "mode"));
    for (size_t b = 0; ok && b < r->B; b++) {
        json_t *want = json_object_get(json_array_get(outs, b), "ids");
        const emu2_search_item *it = &res.items[b];
        int same = json_array_size(want) == it->n_ids &&
                   it->ended_by_eos == json_is_true(json_object_get(json_array_get(outs, b), "eos"));
        for (size_t k = 0; same && k < it->n_ids; k++)
            same = json_integer_value(json_array_get(want, k)) == it->ids[k];
        json_t *score = json_object_get(json_array_get(outs, b), "sequence_score");
        if (same && score) {
            double ref = json_number_value(score);
            same = fabs(it->sequence_score - ref) <= 1e-4 * (fabs(ref) > 1 ? fabs(ref) : 1);
        }
        if (!same) {
            printf("    %s %s beams %d lp %g row %zu: got %zu ids (eos %d, score %.6g), want %zu ids\n", run_id, mode,
                   o.num_beams, o.length_penalty, b, it->n_ids, it->ended_by_eos, it->sequence_score,
                   json_array_size(want));
            ok = 0;
        }
    }
    emu2_search_result_free(&res);
    return ok;
}

/* Every generation of one run; counts them in *(int *)ctx. */
static int generate_run(void *ctx, test_model *m, const run_input *r, int32_t image_id, json_t *gens, size_t i,
                        const char *run_id)
{
    (void)i;
    int ok = 1;
    for (size_t k = 0; k < json_array_size(gens); k++) {
        int one = check_generation(m, r, image_id, json_array_get(gens, k), run_id);
        ok = ok && one;
        (*(int *)ctx)++;
    }
    return ok;
}

static void run_case(const char *name, int threads)
{
    int n = 0;
    int ok = golden_each_run(name, threads, generate_run, &n);
    printf("    %s, %d thread(s): %d generations checked\n", name, threads, n);
    CHECKF(ok && n > 0, "%s: generated ids differ from the goldens", name);
}

TEST(generate_tiny) { run_case("tiny", 3); }
TEST(generate_vis448) { run_case("vis448", 3); }
TEST(generate_chat) { run_case("chat", 1); }

/* Images and <image> slots must agree before any network runs. */
TEST(generate_slot_mismatch)
{
    test_model m;
    CHECK(test_model_open("tests/models/rand-vis448", 1, &m));
    int32_t ids[4] = {1, 32001, 32003, 32002};
    float pixels[1] = {0};
    emu2_gen_options o;
    emu2_gen_options_init(&o);
    emu2_search_ids sid = {1, 2, 32000};
    emu2_search_result res;
    emu2_error err;
    emu2_prompt_batch p = {.ids = ids, .rows = 1, .T = 4, .image_token_id = 32003, .pixels = pixels};
    emu2_status none = emu2_generate_tokens(m.be, m.w, &m.cfg, &p, &o, sid, NULL, NULL, &res, &err);
    p.n_images = 1; /* 64 visual rows for 1 slot */
    emu2_status one = emu2_generate_tokens(m.be, m.w, &m.cfg, &p, &o, sid, NULL, NULL, &res, &err);
    test_model_close(&m);
    CHECKF(none == EMU2_ERR_MISMATCH && one == EMU2_ERR_MISMATCH, "got %d %d", none, one);
    CHECKF(strstr(err.message, "<image>") != NULL, "message: %s", err.message);
}

/* A video frame ([gIMG] x v_query) and an image (<image> x n_query) in one prompt: each slot run
 * gets the vision rows of its own input at its own token count. */
TEST(prompt_video_frames)
{
    golden px;
    test_model m;
    CHECK(golden_open("pixels", &px));
    if (!test_model_open("tests/models/rand-chat", 3, &m)) {
        golden_close(&px);
        CHECK(0);
    }
    const emu2_config *c = &m.cfg;
    const size_t nq = (size_t)c->vision.n_query, vq = (size_t)c->vision.v_query, D = (size_t)c->hidden_size;
    const size_t T = 1 + (vq + 2) + (nq + 2);
    int32_t *ids = malloc(T * sizeof *ids);
    size_t t = 0;
    ids[t++] = 1;
    ids[t++] = 32001;
    for (size_t i = 0; i < vq; i++)
        ids[t++] = 32004;
    ids[t++] = 32002;
    ids[t++] = 32001;
    for (size_t i = 0; i < nq; i++)
        ids[t++] = 32003;
    ids[t++] = 32002;
    float *frame = golden_pixels(&px, "s448.emu.u8", 448), *image = golden_pixels(&px, "s448.book1.u8", 448);
    emu2_error err;
    float *emb = m.be->ops->alloc(m.be, T * D, &err), *fv = m.be->ops->alloc(m.be, vq * D, &err);
    float *iv = m.be->ops->alloc(m.be, nq * D, &err);
    float *h_emb = malloc(T * D * sizeof(float)), *h_fv = malloc(vq * D * sizeof(float));
    float *h_iv = malloc(nq * D * sizeof(float));
    emu2_prompt_batch p = {.ids = ids, .rows = 1, .T = T, .image_token_id = 32003, .pixels = image, .n_images = 1,
                           .frame_token_id = 32004, .frame_pixels = frame, .n_frames = 1};
    int ok = frame && image && emb && fv && iv && h_emb && h_fv && h_iv &&
             emu2_prompt_embeds(m.be, m.w, c, &p, emb, &err) == EMU2_OK &&
             emu2_vision_encode(m.be, &m.w->vision, c, frame, 1, (int)vq, fv, NULL, &err) == EMU2_OK &&
             emu2_vision_encode(m.be, &m.w->vision, c, image, 1, (int)nq, iv, NULL, &err) == EMU2_OK &&
             m.be->ops->download(m.be, h_emb, emb, T * D, &err) == EMU2_OK &&
             m.be->ops->download(m.be, h_fv, fv, vq * D, &err) == EMU2_OK &&
             m.be->ops->download(m.be, h_iv, iv, nq * D, &err) == EMU2_OK;
    int frames_ok = ok && !memcmp(h_emb + 2 * D, h_fv, vq * D * sizeof(float));
    int image_ok = ok && !memcmp(h_emb + (vq + 4) * D, h_iv, nq * D * sizeof(float));
    p.n_frames = 0; /* slots without frames */
    emu2_status missing = ok ? emu2_prompt_embeds(m.be, m.w, c, &p, emb, &err) : EMU2_OK;
    float *bufs[] = {emb, fv, iv};
    for (size_t i = 0; i < 3; i++)
        if (bufs[i])
            m.be->ops->free(m.be, bufs[i]);
    free(ids);
    free(frame);
    free(image);
    free(h_emb);
    free(h_fv);
    free(h_iv);
    test_model_close(&m);
    golden_close(&px);
    CHECKF(ok, "%s", err.message);
    CHECK(frames_ok);
    CHECK(image_ok);
    CHECK(missing == EMU2_ERR_MISMATCH);
}

int main(void)
{
    RUN(prompt_video_frames);
    RUN(generate_slot_mismatch);
    RUN(generate_tiny);
    RUN(generate_vis448);
    RUN(generate_chat);
    return check_finish();
}
