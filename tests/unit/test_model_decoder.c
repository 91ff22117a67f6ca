/* test_model_decoder.c: the decoder input (embedding + splice) and the LLaMA prefill against the
 * Python reference's goldens: for every run of every case, inputs_embeds, hidden_last (final norm at
 * the last position) and the first-step logits, with 1 and 3 threads and two prefill chunk sizes. */
#include "check.h"
#include "model/decoder.h"
#include "test_model_run_support.h"

/* Runs every run of golden case `name`; 1 when all match. */
static int decoder_case(const char *name, int threads, size_t chunk, double *worst)
{
    golden_case gc;
    if (!golden_case_open(name, threads, &gc))
        return 0;
    int32_t image_id = image_token_id(gc.dir, &gc.m.cfg);
    json_t *runs = json_object_get(gc.g.manifest, "runs");
    int ok = image_id >= 0 && json_array_size(runs) > 0;
    const size_t D = (size_t)gc.m.cfg.hidden_size, V = (size_t)gc.m.cfg.vocab_size;
    for (size_t i = 0; ok && i < json_array_size(runs); i++) {
        json_t *run = json_array_get(runs, i);
        run_input r;
        if (!run_input_build(&gc.m, &gc.g, &gc.px, run, image_id, &r)) {
            ok = 0;
            break;
        }
        const size_t BT = r.B * r.T;
        float *emb = malloc(BT * D * sizeof(float)), *logits = malloc(r.B * V * sizeof(float));
        float *hidden = malloc(r.B * D * sizeof(float));
        emu2_decoder_session *s = NULL;
        emu2_error err;
        emu2_decoder_limits lim = {r.B, r.T, chunk};
        ok = emb && logits && hidden && gc.m.be->ops->download(gc.m.be, emb, r.embeds, BT * D, &err) == EMU2_OK;
        ok = ok && golden_compare(&gc.g, json_string_value(json_object_get(run, "inputs_embeds")), emb, BT * D, worst);
        if (ok && (emu2_decoder_session_create(gc.m.be, &gc.m.w->decoder, &gc.m.cfg, &lim, &s, &err) ||
                   emu2_decoder_prefill(s, r.B, r.T, r.embeds, r.mask, logits, hidden, &err))) {
            printf("    %s: %s\n", json_string_value(json_object_get(run, "id")), err.message);
            ok = 0;
        }
        ok = ok && golden_compare(&gc.g, json_string_value(json_object_get(run, "hidden_last")), hidden, r.B * D, worst);
        ok = ok && golden_compare(&gc.g, json_string_value(json_object_get(run, "logits_first_step")), logits, r.B * V,
                                  worst);
        emu2_decoder_session_free(s);
        free(emb);
        free(logits);
        free(hidden);
        run_input_free(&gc.m, &r);
    }
    golden_case_close(&gc);
    return ok;
}

static void run_case(const char *name)
{
    const size_t chunks[] = {0, 5}; /* the default (whole prompts here) and many small passes */
    for (size_t i = 0; i < sizeof test_thread_counts / sizeof test_thread_counts[0]; i++)
        for (size_t c = 0; c < 2; c++) {
            double worst = 0;
            int ok = decoder_case(name, test_thread_counts[i], chunks[c], &worst);
            printf("    %s, %d thread(s), prefill chunk %zu: worst max_abs/ref_max %.3g\n", name,
                   test_thread_counts[i], chunks[c], worst);
            CHECKF(ok, "%s does not match its goldens", name);
        }
}

TEST(decoder_tiny) { run_case("tiny"); }
TEST(decoder_vis448) { run_case("vis448"); }
TEST(decoder_chat) { run_case("chat"); }

/* The slot count must match the visual rows exactly. */
TEST(splice_count_mismatch)
{
    test_model m;
    CHECK(test_model_open("tests/models/rand-vis448", 1, &m));
    const size_t D = (size_t)m.cfg.hidden_size;
    int32_t ids[6] = {1, 32001, 32003, 32003, 32002, 29901};
    emu2_error err;
    float *emb = m.be->ops->alloc(m.be, 6 * D, &err), *vis = m.be->ops->alloc(m.be, 3 * D, &err);
    int ok = emb && vis && emu2_embed_tokens(m.be, &m.w->decoder.embed, ids, 6, emb, &err) == EMU2_OK;
    emu2_status too_many = ok ? emu2_splice_rows(m.be, ids, 6, 32003, vis, 3, D, emb, &err) : EMU2_OK;
    emu2_status too_few = ok ? emu2_splice_rows(m.be, ids, 6, 32003, vis, 1, D, emb, &err) : EMU2_OK;
    int32_t bad_id[1] = {40000};
    emu2_status oob = ok ? emu2_embed_tokens(m.be, &m.w->decoder.embed, bad_id, 1, emb, &err) : EMU2_OK;
    float *host = malloc(2 * D * sizeof(float));
    ok = ok && host;
    for (size_t i = 0; ok && i < 2 * D; i++)
        host[i] = (float)i;
    ok = ok && m.be->ops->upload(m.be, vis, host, 2 * D, &err) == EMU2_OK;
    /* the second slot (position 3) gets row 1 */
    int placed = ok && emu2_splice_rows(m.be, ids, 6, 32003, vis, 2, D, emb, &err) == EMU2_OK &&
                 m.be->ops->download(m.be, host, emb + 2 * D, 2 * D, &err) == EMU2_OK && host[D] == (float)D &&
                 host[0] == 0.0f;
    free(host);
    if (emb)
        m.be->ops->free(m.be, emb);
    if (vis)
        m.be->ops->free(m.be, vis);
    test_model_close(&m);
    CHECK(ok);
    CHECKF(too_many == EMU2_ERR_MISMATCH && too_few == EMU2_ERR_MISMATCH, "got %d %d", too_many, too_few);
    CHECKF(oob != EMU2_OK, "an id past the vocabulary was accepted");
    CHECK(placed);
}

int main(void)
{
    RUN(decoder_tiny);
    RUN(decoder_vis448);
    RUN(decoder_chat);
    RUN(splice_count_mismatch);
    return check_finish();
}
