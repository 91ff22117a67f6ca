/* test_model_vision.c: the vision tower (EVA blocks, pooling, project_up) against the Python
 * reference's goldens (tests/reference/goldens/{tiny,vis448,chat}), for every image of every case,
 * with 1 and 3 threads; plus argument checks. */
#include "check.h"
#include "model/vision_tower.h"
#include "test_model_support.h"

/* Encodes every image of golden case `name` and compares each tensor the manifest lists. */
static int vision_case(const char *name, int threads, double *worst)
{
    golden_case gc;
    if (!golden_case_open(name, threads, &gc))
        return 0;
    int ok = 0;
    const emu2_config *c = &gc.m.cfg;
    const size_t S = (size_t)c->vision.image_size, N = (size_t)c->vision.n_tokens, W = (size_t)c->vision.width;
    const size_t nq = (size_t)c->vision.n_query, H = (size_t)c->hidden_size;
    float *first = malloc(N * W * sizeof(float)), *last = malloc(N * W * sizeof(float));
    float *pooled = malloc(nq * W * sizeof(float)), *up_host = malloc(nq * H * sizeof(float));
    emu2_error err;
    float *up = gc.m.be->ops->alloc(gc.m.be, nq * H, &err);
    const char *iname;
    json_t *img;
    int images = 0;
    ok = first && last && pooled && up_host && up;
    json_object_foreach(json_object_get(gc.g.manifest, "images"), iname, img)
    {
        if (!ok)
            break;
        json_t *pixels = json_object_get(img, "pixels"), *t = json_object_get(img, "tensors");
        if ((size_t)json_integer_value(json_object_get(pixels, "image_size")) != S) {
            printf("    %s/%s: image_size differs from the model's %zu\n", name, iname, S);
            ok = 0;
            break;
        }
        float *chw = golden_pixels(&gc.px, json_string_value(json_object_get(pixels, "u8")), (int)S);
        const char *n_first = json_string_value(json_object_get(t, "eva_block_first"));
        const char *n_last = json_string_value(json_object_get(t, "eva_block_last"));
        emu2_vision_taps taps = {0, n_first ? first : NULL, n_last ? last : NULL, pooled};
        if (!chw || emu2_vision_encode(gc.m.be, &gc.m.w->vision, c, chw, 1, (int)nq, up, &taps, &err) != EMU2_OK) {
            printf("    %s/%s: %s\n", name, iname, chw ? err.message : "no pixels");
            ok = 0;
        }
        free(chw);
        if (ok && gc.m.be->ops->download(gc.m.be, up_host, up, nq * H, &err) != EMU2_OK)
            ok = 0;
        if (ok && n_first)
            ok = golden_compare(&gc.g, n_first, first, N * W, worst);
        if (ok && n_last)
            ok = golden_compare(&gc.g, n_last, last, N * W, worst);
        ok = ok && golden_compare(&gc.g, json_string_value(json_object_get(t, "pooled")), pooled, nq * W, worst);
        ok = ok && golden_compare(&gc.g, json_string_value(json_object_get(t, "project_up")), up_host, nq * H, worst);
        images++;
    }
    if (ok && images == 0) {
        printf("    %s: the manifest lists no images\n", name);
        ok = 0;
    }
    if (up)
        gc.m.be->ops->free(gc.m.be, up);
    free(first);
    free(last);
    free(pooled);
    free(up_host);
    golden_case_close(&gc);
    return ok;
}

static void run_case(const char *name)
{
    for (size_t i = 0; i < sizeof test_thread_counts / sizeof test_thread_counts[0]; i++) {
        double worst = 0;
        int ok = vision_case(name, test_thread_counts[i], &worst);
        printf("    %s, %d thread(s): worst max_abs/ref_max %.3g\n", name, test_thread_counts[i], worst);
        CHECKF(ok, "%s with %d thread(s) does not match its goldens", name, test_thread_counts[i]);
    }
}

TEST(vision_tiny) { run_case("tiny"); }
TEST(vision_vis448) { run_case("vis448"); }
TEST(vision_chat) { run_case("chat"); }

/* Several images in one call give the same rows as one call each, in order. */
TEST(vision_batch_order)
{
    golden px;
    test_model m;
    CHECK(golden_open("pixels", &px));
    if (!test_model_open("tests/models/rand-chat", 3, &m)) {
        golden_close(&px);
        CHECK(0);
    }
    const emu2_config *c = &m.cfg;
    const size_t S = 448, nq = (size_t)c->vision.n_query, H = (size_t)c->hidden_size, per = 3 * S * S;
    float *both = malloc(2 * per * sizeof(float));
    float *a = golden_pixels(&px, "s448.emu.u8", 448), *b = golden_pixels(&px, "s448.book1.u8", 448);
    emu2_error err;
    float *out2 = m.be->ops->alloc(m.be, 2 * nq * H, &err), *out1 = m.be->ops->alloc(m.be, nq * H, &err);
    int ok = both && a && b && out2 && out1;
    if (ok) {
        memcpy(both, a, per * sizeof(float));
        memcpy(both + per, b, per * sizeof(float));
        ok = emu2_vision_encode(m.be, &m.w->vision, c, both, 2, (int)nq, out2, NULL, &err) == EMU2_OK &&
             emu2_vision_encode(m.be, &m.w->vision, c, b, 1, (int)nq, out1, NULL, &err) == EMU2_OK &&
             !memcmp(out2 + nq * H, out1, nq * H * sizeof(float));
    }
    /* a video-frame count (v_query 64 on a 32x32 grid: k = 4) works; a non-square one does not */
    int video_ok =
        ok && emu2_vision_encode(m.be, &m.w->vision, c, a, 1, c->vision.v_query, out1, NULL, &err) == EMU2_OK;
    int bad = ok ? emu2_vision_encode(m.be, &m.w->vision, c, a, 1, 60, out1, NULL, &err) : EMU2_OK;
    int bad2 = ok ? emu2_vision_encode(m.be, &m.w->vision, c, a, 1, 9, out1, NULL, &err) : EMU2_OK;
    if (out2)
        m.be->ops->free(m.be, out2);
    if (out1)
        m.be->ops->free(m.be, out1);
    free(both);
    free(a);
    free(b);
    test_model_close(&m);
    golden_close(&px);
    CHECK(ok);
    CHECK(video_ok);
    CHECKF(bad == EMU2_ERR_MISMATCH && bad2 == EMU2_ERR_MISMATCH, "got %d %d", bad, bad2);
}

/* Binding checks every shape against the config and names the tensor that disagrees. */
TEST(weights_shape_mismatch)
{
    test_model m;
    CHECK(test_model_open("tests/models/rand-vis448", 1, &m));
    emu2_model_weights *w = NULL;
    emu2_error err;
    emu2_config bad = m.cfg;
    bad.vision.intermediate_size += 1;
    emu2_status st1 = emu2_model_weights_bind(m.be, m.ck, &bad, &w, &err);
    int names_fc1 = st1 == EMU2_ERR_MISMATCH && strstr(err.message, "visual.blocks.0.mlp.fc1.weight");
    bad = m.cfg;
    bad.num_hidden_layers += 1; /* a layer the file does not have */
    emu2_status st2 = emu2_model_weights_bind(m.be, m.ck, &bad, &w, &err);
    int names_layer = st2 == EMU2_ERR_MISMATCH && strstr(err.message, "layers.2.");
    test_model_close(&m);
    CHECKF(names_fc1, "status %d: %s", st1, err.message);
    CHECKF(names_layer, "status %d: %s", st2, err.message);
    CHECK(w == NULL);
}

int main(void)
{
    RUN(weights_shape_mismatch);
    RUN(vision_tiny);
    RUN(vision_vis448);
    RUN(vision_chat);
    RUN(vision_batch_order);
    return check_finish();
}
