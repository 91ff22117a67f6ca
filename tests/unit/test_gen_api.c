/* test_gen_api.c: emu2_generate_image end to end on tests/models/gen-tiny: valid PNGs of the requested
 * sizes (read back with the project's PNG decoder), determinism per seed, autoencoding mode, the
 * progress callback and cancelling, and clear errors for bad options and for a model without a
 * generator. */
#include "check.h"
#include "diffusion/gen_model.h"
#include "image/image.h"
#include "test_model_support.h"

#define GEN_DIR "tests/models/gen-tiny"

static emu2_model *M;

typedef struct progress_log {
    int denoise_calls, decode_calls, cancel_at;
    uint64_t last_total;
} progress_log;

static int on_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    progress_log *p = user;
    if (!strcmp(stage, "denoise")) {
        p->denoise_calls++;
        p->last_total = total;
        if (p->cancel_at >= 0 && done == (uint64_t)p->cancel_at)
            return 1;
    } else if (!strcmp(stage, "decode")) {
        p->decode_calls++;
    }
    return 0;
}

/* Generates and decodes; returns the status, fills w/h of the decoded PNG. */
static emu2_status gen(const char *prompt, const emu2_image_bytes *imgs, size_t n, const emu2_image_options *o,
                       int *w, int *h, void **png_out, size_t *size_out)
{
    void *png = NULL;
    size_t size = 0;
    emu2_status st = emu2_generate_image(M, prompt, imgs, n, o, &png, &size);
    *w = *h = 0;
    if (st == EMU2_OK) {
        emu2_rgb_image img;
        emu2_error err;
        if (emu2_image_decode(png, size, NULL, &img, &err) == EMU2_OK) {
            *w = img.width;
            *h = img.height;
            emu2_rgb_image_free(&img);
        } else {
            printf("    PNG does not decode: %s\n", err.message);
        }
    }
    if (png_out) {
        *png_out = png;
        *size_out = size;
    } else {
        emu2_free(png);
    }
    return st;
}

/* Default options with STEPS denoising steps. */
static emu2_image_options options_with_steps(int steps)
{
    emu2_image_options o;
    emu2_image_options_init(&o);
    o.steps = steps;
    return o;
}

/* Every test that generates needs the model loaded in main(). */
#define NEED_MODEL()                                                                                            \
    do {                                                                                                        \
        if (!M)                                                                                                 \
            SKIP("gen-tiny did not load");                                                                      \
    } while (0)

TEST(default_size_png)
{
    NEED_MODEL();
    emu2_image_options o;
    emu2_image_options_init(&o);
    CHECK(o.steps == 50 && o.guidance == 3.0f && o.width == 0);
    o.steps = 3;
    int w, h;
    CHECKF(gen("a red circle", NULL, 0, &o, &w, &h, NULL, NULL) == EMU2_OK, "%s", emu2_model_last_error(M));
    CHECKF(w == 64 && h == 64, "%dx%d (default = unet sample_size 8 x vae scale 8)", w, h);
}

TEST(requested_sizes_and_tiling)
{
    NEED_MODEL();
    emu2_image_options o = options_with_steps(2);
    const int sizes[][2] = {{48, 32}, {40, 72}, {136, 80}};
    for (int i = 0; i < 3; i++) {
        o.width = sizes[i][0];
        o.height = sizes[i][1];
        o.vae_tiling = i == 2; /* 17x10 latents: tiles of 8 */
        int w, h;
        CHECKF(gen("[red, white, 3, bottom left]", NULL, 0, &o, &w, &h, NULL, NULL) == EMU2_OK, "%s",
               emu2_model_last_error(M));
        CHECKF(w == sizes[i][0] && h == sizes[i][1], "got %dx%d, asked %dx%d", w, h, sizes[i][0], sizes[i][1]);
    }
}

TEST(seed_determines_the_image)
{
    NEED_MODEL();
    emu2_image_options o = options_with_steps(2);
    o.seed = 7;
    void *a, *b, *c;
    size_t na, nb, nc;
    int w, h;
    CHECK(gen("a blue circle", NULL, 0, &o, &w, &h, &a, &na) == EMU2_OK);
    CHECK(gen("a blue circle", NULL, 0, &o, &w, &h, &b, &nb) == EMU2_OK);
    o.seed = 8;
    CHECK(gen("a blue circle", NULL, 0, &o, &w, &h, &c, &nc) == EMU2_OK);
    int same = na == nb && !memcmp(a, b, na), differs = na != nc || memcmp(a, c, na);
    emu2_free(a);
    emu2_free(b);
    emu2_free(c);
    CHECK(same && differs);
}

TEST(images_in_prompt_and_autoencoding)
{
    NEED_MODEL();
    emu2_mapped_file f;
    emu2_error err;
    CHECKF(emu2_mapped_file_open(ROOT_PATH("tests/reference/goldens/gen/input_448.png"), &f, &err) == EMU2_OK, "%s",
           err.message);
    emu2_image_bytes img = {f.data, f.size};
    emu2_image_options o = options_with_steps(2);
    int w, h;
    emu2_status a = gen("[<IMG_PLH>]a blue circle", &img, 1, &o, &w, &h, NULL, NULL);
    emu2_status b = gen(NULL, &img, 1, &o, &w, &h, NULL, NULL);              /* autoencoding */
    emu2_status c = gen("[]", NULL, 0, &o, &w, &h, NULL, NULL);              /* placeholder without image */
    int c_says = strstr(emu2_model_last_error(M), "placeholder") != NULL;
    emu2_status d = gen(NULL, NULL, 0, &o, &w, &h, NULL, NULL);              /* nothing at all */
    emu2_image_bytes bad = {"not an image", 12};
    emu2_status e = gen("[]x", &bad, 1, &o, &w, &h, NULL, NULL);
    int e_says = strstr(emu2_model_last_error(M), "image 1") != NULL;
    emu2_mapped_file_close(&f);
    CHECK(a == EMU2_OK && b == EMU2_OK);
    CHECK(c == EMU2_ERR_MISMATCH && c_says);
    CHECK(d == EMU2_ERR_INVALID_ARGUMENT);
    CHECKF(e != EMU2_OK && e_says, "corrupt image: %s", emu2_status_name(e));
}

TEST(progress_and_cancel)
{
    NEED_MODEL();
    emu2_image_options o = options_with_steps(3);
    progress_log p = {0, 0, -1, 0};
    o.progress = on_progress;
    o.progress_user = &p;
    int w, h;
    CHECK(gen("a", NULL, 0, &o, &w, &h, NULL, NULL) == EMU2_OK);
    CHECKF(p.denoise_calls == 4 && p.last_total == 3 && p.decode_calls == 2, "denoise %d decode %d",
           p.denoise_calls, p.decode_calls);
    progress_log q = {0, 0, 1, 0};
    o.progress_user = &q;
    CHECK(gen("a", NULL, 0, &o, &w, &h, NULL, NULL) == EMU2_ERR_CANCELLED);
    CHECK(q.decode_calls == 0);
}

TEST(bad_options_are_clear_errors)
{
    NEED_MODEL();
    emu2_image_options o;
    int w, h;
    struct {
        int width, height, steps;
        float guidance;
        const char *msg;
    } cases[] = {{60, 64, 2, 3, "multiples of 8"}, {64, 20, 2, 3, "multiples of 8"}, {64, 64, 0, 3, "steps"},
                 {64, 64, 2, -1, "guidance"},      {-8, 64, 2, 3, "width"},           {64, 64, 1001, 3, "steps"},
                 {64, 8192, 2, 3, "height"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        emu2_image_options_init(&o);
        o.width = cases[i].width;
        o.height = cases[i].height;
        o.steps = cases[i].steps;
        o.guidance = cases[i].guidance;
        emu2_status st = gen("a", NULL, 0, &o, &w, &h, NULL, NULL);
        CHECKF(st == EMU2_ERR_INVALID_ARGUMENT && strstr(emu2_model_last_error(M), cases[i].msg), "case %zu: %s: %s",
               i, emu2_status_name(st), emu2_model_last_error(M));
    }
    emu2_image_options_init(&o);
    o.guidance = NAN;
    CHECK(gen("a", NULL, 0, &o, &w, &h, NULL, NULL) == EMU2_ERR_INVALID_ARGUMENT);
    emu2_image_options_init(&o);
    o.struct_size = 3;
    CHECK(gen("a", NULL, 0, &o, &w, &h, NULL, NULL) == EMU2_ERR_INVALID_ARGUMENT);
    void *png;
    size_t n;
    CHECK(emu2_generate_image(M, "a", NULL, 0, NULL, NULL, &n) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_generate_image(NULL, "a", NULL, 0, NULL, &png, &n) == EMU2_ERR_INVALID_ARGUMENT);
}

TEST(guidance_off_needs_no_negative)
{
    NEED_MODEL();
    emu2_image_options o = options_with_steps(2);
    o.guidance = 1.0f;
    int w, h;
    CHECK(gen("a", NULL, 0, &o, &w, &h, NULL, NULL) == EMU2_OK && w == 64);
}

TEST(model_without_generator_is_unsupported)
{
    emu2_model *m = NULL;
    emu2_error err;
    if (emu2_model_load(ROOT_PATH("models/emu2-tiny-digits"), NULL, &m, &err) != EMU2_OK)
        SKIP("models/emu2-tiny-digits: %.200s", err.message);
    void *png = NULL;
    size_t n = 0;
    emu2_status st = emu2_generate_image(m, "a", NULL, 0, NULL, &png, &n);
    int ok = st == EMU2_ERR_UNSUPPORTED && strstr(emu2_model_last_error(m), "no image generator") && !png;
    emu2_model_free(m);
    CHECK(ok);
}

TEST(broken_gen_folder_fails_to_load)
{
    /* a Gen folder whose unet/ is missing: loading names it */
    char dir[] = "/tmp/emu2-gen-broken-XXXXXX";
    CHECK(mkdtemp(dir));
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -r '%.900s'/. '%s' && rm -rf '%s/unet'", ROOT_PATH(GEN_DIR), dir, dir);
    int rc = system(cmd);
    emu2_model *m = NULL;
    emu2_error err;
    emu2_status st = rc == 0 ? emu2_model_load(dir, NULL, &m, &err) : EMU2_OK;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("    could not remove %s\n", dir);
    emu2_model_free(m);
    CHECK(rc == 0);
    CHECKF(st == EMU2_ERR_IO && strstr(err.message, "unet"), "%s: %s", emu2_status_name(st), err.message);
}

TEST(backend_without_diffusion_ops)
{
    /* "auto": the UNet / VAE move to an own CPU backend; an explicit device: a clear error */
    emu2_config cfg;
    emu2_backend *be = NULL;
    emu2_error err;
    CHECK(emu2_config_load(ROOT_PATH(GEN_DIR "/multimodal_encoder"), &cfg, &err) == EMU2_OK);
    CHECK(emu2_cpu_backend_open(NULL, &be, &err) == EMU2_OK);
    const emu2_ops *real = be->ops;
    emu2_ops partial = *real;
    partial.conv2d = NULL;
    be->ops = &partial;
    emu2_gen_model *g = NULL;
    emu2_status a = emu2_gen_model_load(ROOT_PATH(GEN_DIR), be, "auto", 1, &cfg, &g, &err);
    int moved = a == EMU2_OK && g->own_be && g->be == g->own_be && g->be->ops->conv2d;
    emu2_gen_model_free(g);
    g = NULL;
    emu2_status b = emu2_gen_model_load(ROOT_PATH(GEN_DIR), be, "cpu", 1, &cfg, &g, &err);
    int says = strstr(err.message, "op conv2d not available on backend cpu") != NULL;
    emu2_gen_model_free(g);
    be->ops = real;
    emu2_backend_close(be);
    CHECK(moved);
    CHECKF(b == EMU2_ERR_UNSUPPORTED && says, "%s", err.message);
}

int main(void)
{
    emu2_error err;
    emu2_load_options lo;
    emu2_load_options_init(&lo);
    lo.threads = 2;
    if (emu2_model_load(ROOT_PATH(GEN_DIR), &lo, &M, &err) != EMU2_OK) {
        printf("    %s: %s\n", GEN_DIR, err.message);
        M = NULL;
    }
    RUN(default_size_png);
    RUN(requested_sizes_and_tiling);
    RUN(seed_determines_the_image);
    RUN(images_in_prompt_and_autoencoding);
    RUN(progress_and_cancel);
    RUN(bad_options_are_clear_errors);
    RUN(guidance_off_needs_no_negative);
    RUN(model_without_generator_is_unsupported);
    RUN(broken_gen_folder_fails_to_load);
    RUN(backend_without_diffusion_ops);
    emu2_model_free(M);
    if (!M)
        check_failed++; /* the model must load: that is a failure, not a skip */
    return check_finish();
}
