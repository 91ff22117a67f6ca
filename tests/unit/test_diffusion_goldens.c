/* test_diffusion_goldens.c: the Emu2-Gen decoder side against the diffusers goldens
 * (tests/reference/goldens/gen, model tests/models/gen-tiny): Euler schedules (4, 7, 50 steps),
 * the UNet's conditioning vector and eps at two timesteps for [cond, uncond], the VAE decode, and
 * whole 4-step pipeline runs (text and autoencoding conditions) from the goldens' initial noise.
 * Tolerances are the manifest's; the final images must match within 1/255 on >= 99% of pixels. */
#include "check.h"
#include "diffusion/denoise.h"
#include "diffusion/scheduler.h"
#include "diffusion/unet.h"
#include "diffusion/vae.h"
#include "test_model_support.h"

#define GEN_DIR "tests/models/gen-tiny"

static golden G;
static int have_golden;

/* Exact comparison (timesteps, ids). */
static int same_floats(const golden *g, const char *name, const float *got, size_t n)
{
    const emu2_tensor_view *t = golden_tensor(g, name);
    if (!t || emu2_tensor_numel(t) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (((const float *)t->data)[i] != got[i]) {
            printf("    %s[%zu]: got %.9g, want %.9g\n", name, i, got[i], ((const float *)t->data)[i]);
            return 0;
        }
    return 1;
}

static const float *gf(const char *name)
{
    const emu2_tensor_view *t = golden_tensor(&G, name);
    return t && t->dtype == EMU2_DT_F32 ? (const float *)t->data : NULL;
}

TEST(schedules_match_diffusers)
{
    if (!have_golden)
        SKIP("no gen goldens");
    dif_scheduler_config c;
    emu2_error err;
    CHECKF(dif_scheduler_config_load(ROOT_PATH(GEN_DIR "/scheduler"), &c, &err) == EMU2_OK, "%s", err.message);
    const size_t steps[] = {4, 7, 50};
    for (size_t i = 0; i < 3; i++) {
        dif_schedule s;
        CHECK(dif_schedule_make(&c, steps[i], &s, &err) == EMU2_OK);
        char name[64];
        snprintf(name, sizeof name, "sched.steps%zu.timesteps", steps[i]);
        int ok = same_floats(&G, name, s.timesteps, s.steps);
        snprintf(name, sizeof name, "sched.steps%zu.sigmas", steps[i]);
        ok = ok && golden_compare(&G, name, s.sigmas, s.steps + 1, NULL);
        snprintf(name, sizeof name, "sched.steps%zu.init_noise_sigma", steps[i]);
        ok = ok && golden_compare(&G, name, &s.init_noise_sigma, 1, NULL);
        if (steps[i] == 50)
            ok = ok && s.timesteps[0] == 981.0f && s.timesteps[1] == 961.0f && s.timesteps[49] == 1.0f;
        dif_schedule_free(&s);
        CHECKF(ok, "schedule of %zu steps", steps[i]);
    }
    dif_schedule s;
    CHECK(dif_schedule_make(&c, 0, &s, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(dif_schedule_make(&c, 1001, &s, &err) == EMU2_ERR_INVALID_ARGUMENT);
}

/* The UNet on the goldens' latents, conditions [regress.text.v, regress.empty.v], both timesteps. */
static void unet_case(int threads)
{
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = threads;
    emu2_backend *be = NULL;
    dif_unet *u = NULL;
    emu2_error err;
    CHECKF(emu2_cpu_backend_open(&o, &be, &err) == EMU2_OK, "%s", err.message);
    if (dif_unet_load(ROOT_PATH(GEN_DIR "/unet"), be, &u, &err) != EMU2_OK) {
        emu2_backend_close(be);
        CHECKF(0, "%s", err.message);
    }
    const float *lat = gf("unet.latents"), *tid = gf("unet.time_ids");
    const float *conds[2] = {gf("regress.text.v"), gf("regress.empty.v")};
    const emu2_tensor_view *lt = golden_tensor(&G, "unet.latents");
    int ok = lat && tid && conds[0] && conds[1] && lt && lt->ndim == 4;
    const size_t h = ok ? (size_t)lt->shape[2] : 0, w = ok ? (size_t)lt->shape[3] : 0, n = 4 * h * w;
    const size_t nq = 64, D = u->cross_dim, E = u->temb_dim;
    float *eps = malloc(2 * n * sizeof *eps), *emb = malloc(2 * E * sizeof *emb), *te = malloc(D * sizeof *te);
    float *cfg = malloc(n * sizeof *cfg);
    const int ts[2] = {981, 501};
    for (int k = 0; k < 2 && ok; k++) {
        for (int b = 0; b < 2 && ok; b++) {
            for (size_t j = 0; j < D; j++) {
                double s = 0;
                for (size_t i = 0; i < nq; i++)
                    s += conds[b][i * D + j];
                te[j] = (float)(s / nq);
            }
            ok = dif_unet_embedding(be, u, (float)ts[k], te, tid, emb + b * E, &err) == EMU2_OK &&
                 dif_unet_forward(be, u, h, w, lat, conds[b], nq, emb + b * E, eps + b * n, &err) == EMU2_OK;
            if (!ok)
                printf("    %s\n", err.message);
        }
        char name[64];
        snprintf(name, sizeof name, "unet.t%d.emb", ts[k]);
        ok = ok && golden_compare(&G, name, emb, 2 * E, NULL);
        snprintf(name, sizeof name, "unet.t%d.eps", ts[k]);
        ok = ok && golden_compare(&G, name, eps, 2 * n, NULL);
        for (size_t i = 0; i < n && ok; i++)
            cfg[i] = eps[n + i] + 3.0f * (eps[i] - eps[n + i]);
        snprintf(name, sizeof name, "unet.t%d.eps_cfg", ts[k]);
        ok = ok && golden_compare(&G, name, cfg, n, NULL);
    }
    free(eps);
    free(emb);
    free(te);
    free(cfg);
    dif_unet_free(u, be);
    emu2_backend_close(be);
    CHECK(ok);
}

TEST(unet_eps_matches_diffusers)
{
    if (!have_golden)
        SKIP("no gen goldens");
    run_per_thread_count(unet_case);
}

/* u8 images: |got - ref| <= 1 everywhere (the manifest's max_abs 1) and equal on >= 99% of pixels. */
static int compare_u8(const char *name, const uint8_t *got, size_t n)
{
    const emu2_tensor_view *t = golden_tensor(&G, name);
    if (!t || t->dtype != EMU2_DT_U8 || emu2_tensor_numel(t) != n)
        return 0;
    const uint8_t *ref = t->data;
    size_t off_by_one = 0, worse = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got[i] - (int)ref[i]);
        off_by_one += d == 1;
        worse += d > 1;
    }
    int ok = worse == 0 && off_by_one * 100 <= n;
    if (!ok || getenv("EMU2_TEST_VERBOSE"))
        printf("    %s %s: %zu of %zu values off by 1, %zu by more\n", ok ? "ok  " : "FAIL", name, off_by_one, n,
               worse);
    return ok;
}

TEST(vae_decode_matches_diffusers)
{
    if (!have_golden)
        SKIP("no gen goldens");
    emu2_backend *be = NULL;
    dif_vae *v = NULL;
    emu2_error err;
    CHECKF(emu2_cpu_backend_open(NULL, &be, &err) == EMU2_OK, "%s", err.message);
    if (dif_vae_load(ROOT_PATH(GEN_DIR "/vae"), be, &v, &err) != EMU2_OK) {
        emu2_backend_close(be);
        CHECKF(0, "%s", err.message);
    }
    const emu2_tensor_view *lt = golden_tensor(&G, "vae.latents");
    int ok = lt && lt->ndim == 4 && v->scale == 8;
    size_t h = ok ? (size_t)lt->shape[2] : 0, w = ok ? (size_t)lt->shape[3] : 0, H = h * 8, W = w * 8;
    float *img = malloc(3 * H * W * sizeof *img);
    uint8_t *rgb = malloc(3 * H * W);
    ok = ok && img && rgb && dif_vae_decode(be, v, h, w, lt->data, 0, img, &err) == EMU2_OK;
    ok = ok && golden_compare(&G, "vae.decoded", img, 3 * H * W, NULL);
    if (ok)
        dif_image_to_rgb8(img, H, W, rgb);
    ok = ok && compare_u8("vae.image_u8", rgb, 3 * H * W);
    /* tiled (tiles of sample_size / 8 = 8 latents, every 6): the first tile is kept unblended on its
     * first 48 pixels, and pixel column 48 is the first tile's (the blend weight of the next one is 0) */
    const size_t T = v->sample_size / v->scale, keep = v->sample_size * 3 / 4;
    float *tile = malloc(4 * T * T * sizeof *tile), *tile_img = malloc(3 * 64 * T * T * sizeof *tile_img);
    ok = ok && tile && tile_img && T == 8 && w > T && h == T;
    for (size_t c = 0; ok && c < 4; c++)
        for (size_t y = 0; y < T; y++)
            memcpy(tile + (c * T + y) * T, (const float *)lt->data + (c * h + y) * w, T * sizeof *tile);
    ok = ok && dif_vae_decode(be, v, T, T, tile, 0, tile_img, &err) == EMU2_OK &&
         dif_vae_decode(be, v, h, w, lt->data, 1, img, &err) == EMU2_OK;
    size_t diff = 0;
    for (size_t c = 0; ok && c < 3; c++)
        for (size_t y = 0; y < keep; y++)
            for (size_t x = 0; x <= keep; x++)
                diff += img[(c * H + y) * W + x] != tile_img[(c * 8 * T + y) * 8 * T + x];
    CHECKF(!diff, "%zu pixels of the tiled decode differ from the first tile", diff);
    /* and the seam region is a blend, not a copy of either tile */
    ok = ok && img[W * 4 + keep + 8] != tile_img[8 * T * 4 + keep + 8];
    free(tile);
    free(tile_img);
    free(img);
    free(rgb);
    dif_vae_free(v, be);
    emu2_backend_close(be);
    CHECKF(ok, "%s", ok ? "" : err.message);
}

static void pipeline_case(const char *key, const char *cond_name, const char *uncond_name)
{
    emu2_backend *be = NULL;
    dif_unet *u = NULL;
    dif_vae *v = NULL;
    emu2_error err;
    CHECKF(emu2_cpu_backend_open(NULL, &be, &err) == EMU2_OK, "%s", err.message);
    int ok = dif_unet_load(ROOT_PATH(GEN_DIR "/unet"), be, &u, &err) == EMU2_OK &&
             dif_vae_load(ROOT_PATH(GEN_DIR "/vae"), be, &v, &err) == EMU2_OK;
    if (!ok)
        printf("    %s\n", err.message);
    char name[96];
    snprintf(name, sizeof name, "pipe.%s.noise", key);
    const emu2_tensor_view *nt = golden_tensor(&G, name);
    ok = ok && nt && nt->ndim == 4;
    const size_t h = ok ? (size_t)nt->shape[2] : 0, w = ok ? (size_t)nt->shape[3] : 0, n = 4 * h * w;
    dif_scheduler_config sc;
    dif_schedule s = {0};
    ok = ok && dif_scheduler_config_load(ROOT_PATH(GEN_DIR "/scheduler"), &sc, &err) == EMU2_OK &&
         dif_schedule_make(&sc, 4, &s, &err) == EMU2_OK;
    float *lat = malloc(n * sizeof *lat), *trace = malloc(4 * n * sizeof *trace);
    float *img = malloc(3 * 64 * h * w * sizeof *img);
    uint8_t *rgb = malloc(3 * 64 * h * w);
    dif_denoise_args a = {.schedule = &s, .h = h, .w = w, .noise = ok ? nt->data : NULL, .cond = gf(cond_name),
                          .uncond = gf(uncond_name), .n_cond = 64, .guidance = 3.0f,
                          .time_ids = {1024, 1024, 0, 0, (float)(8 * h), (float)(8 * w)}, .trace = trace};
    ok = ok && lat && trace && img && rgb && a.cond && a.uncond;
    ok = ok && dif_denoise(be, u, &a, lat, &err) == EMU2_OK;
    if (!ok)
        printf("    %s\n", err.message);
    snprintf(name, sizeof name, "pipe.%s.latents_per_step", key);
    ok = ok && golden_compare(&G, name, trace, 4 * n, NULL);
    ok = ok && dif_vae_decode(be, v, h, w, lat, 0, img, &err) == EMU2_OK;
    snprintf(name, sizeof name, "pipe.%s.decoded", key);
    ok = ok && golden_compare(&G, name, img, 3 * 64 * h * w, NULL);
    if (ok)
        dif_image_to_rgb8(img, 8 * h, 8 * w, rgb);
    snprintf(name, sizeof name, "pipe.%s.image_u8", key);
    ok = ok && compare_u8(name, rgb, 3 * 64 * h * w);
    dif_schedule_free(&s);
    free(lat);
    free(trace);
    free(img);
    free(rgb);
    dif_vae_free(v, be);
    dif_unet_free(u, be);
    emu2_backend_close(be);
    CHECK(ok);
}

TEST(pipeline_text_matches_reference_image)
{
    if (!have_golden)
        SKIP("no gen goldens");
    pipeline_case("text", "regress.text.v", "regress.empty.v");
}

TEST(pipeline_autoencode_matches_reference_image)
{
    if (!have_golden)
        SKIP("no gen goldens");
    pipeline_case("autoenc", "autoenc.cond", "autoenc.neg");
}

TEST(sinusoid_layout)
{
    float out[8];
    dif_sinusoid(0.0f, 8, 1, 0, out); /* t = 0: cos = 1 first (flip), sin = 0 after */
    for (int i = 0; i < 4; i++)
        CHECK(out[i] == 1.0f && out[4 + i] == 0.0f);
    dif_sinusoid(1.0f, 8, 0, 0, out);
    CHECK(fabsf(out[0] - sinf(1.0f)) < 1e-7f && fabsf(out[4] - cosf(1.0f)) < 1e-7f);
    CHECK(fabsf(out[1] - (float)sin(exp(-log(1e4) / 4))) < 1e-6f);
}

int main(void)
{
    have_golden = golden_open("gen", &G);
    RUN(schedules_match_diffusers);
    RUN(sinusoid_layout);
    RUN(unet_eps_matches_diffusers);
    RUN(vae_decode_matches_diffusers);
    RUN(pipeline_text_matches_reference_image);
    RUN(pipeline_autoencode_matches_reference_image);
    if (have_golden)
        golden_close(&G);
    return check_finish();
}
