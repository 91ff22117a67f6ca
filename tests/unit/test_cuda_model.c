/* test_cuda_model.c: whole networks on the CUDA backend. The shipped tiny model (f32 weights, so
 * the GPU computes in true f32 like the CPU) must give the CPU's answers, which the golden tests
 * hold to the PyTorch reference: describe on every example (beam search, the default), greedy,
 * and the published few-shot generate prompt. Random weights built on the device must be
 * bit-identical to the host build of the same seed, and a random model must run. Skips, saying
 * why, without a usable GPU. */
#include <stdint.h>

#include "test_cuda_support.h"
#include "test_io_util.h"

#include "emu2.h"
#include "io/config.h"
#include "model/random_weights.h"

static const char *examples[] = {"blue_black_1_top_left.jpg", "green_black_4_bottom_right.jpg",
                                 "red_white_3_bottom_left.jpg", "yellow_white_2_top_right.jpg"};

static emu2_model *load(const char *dir, const char *device, unsigned flags, emu2_error *err)
{
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.device = device;
    o.threads = 2;
    o.flags = flags;
    o.random_seed = 5;
    emu2_model *m = NULL;
    if (emu2_model_load(dir, &o, &m, err) != EMU2_OK)
        return NULL;
    return m;
}

static char *describe(emu2_model *m, const char *image, int beams)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", ROOT_PATH("models/emu2-tiny-digits/examples"), image);
    size_t n;
    unsigned char *bytes = io_read_file(path, &n);
    if (!bytes)
        return NULL;
    emu2_gen_options g;
    emu2_gen_options_init(&g);
    g.num_beams = beams;
    char *text = NULL;
    if (emu2_describe(m, bytes, n, NULL, &g, &text) != EMU2_OK) {
        printf("    describe %s: %s\n", image, emu2_model_last_error(m));
        text = NULL;
    }
    free(bytes);
    return text;
}

TEST(tiny_model_answers_as_on_cpu)
{
    TC_NEED_GPU();
    emu2_error err;
    const char *dir = ROOT_PATH("models/emu2-tiny-digits");
    emu2_model *cpu = load(dir, "cpu", 0, &err);
    CHECKF(cpu, "%s", err.message);
    emu2_model *gpu = load(dir, "cuda", 0, &err);
    if (!gpu)
        emu2_model_free(cpu);
    CHECKF(gpu, "%s", err.message);
    emu2_model_info info;
    emu2_model_get_info(gpu, &info);
    int on_cuda = !strncmp(info.device, "cuda:", 5);
    int same = 1;
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++)
        for (int beams = 1; beams <= 5; beams += 4) {
            char *a = describe(cpu, examples[i], beams), *b = describe(gpu, examples[i], beams);
            if (!a || !b || strcmp(a, b)) {
                printf("    %s (beams %d): cpu \"%s\", cuda \"%s\"\n", examples[i], beams, a ? a : "(error)",
                       b ? b : "(error)");
                same = 0;
            }
            emu2_free(a);
            emu2_free(b);
        }
    /* the published few-shot prompt, four images */
    emu2_image_bytes imgs[4];
    unsigned char *bufs[4] = {0};
    int have = 1;
    const char *order[] = {"red_white_3_bottom_left.jpg", "yellow_white_2_top_right.jpg",
                           "green_black_4_bottom_right.jpg", "blue_black_1_top_left.jpg"};
    for (int i = 0; i < 4; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", ROOT_PATH("models/emu2-tiny-digits/examples"), order[i]);
        bufs[i] = io_read_file(path, &imgs[i].size);
        have &= bufs[i] != NULL;
        imgs[i].data = bufs[i];
    }
    const char *prompt = "[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom "
                         "right][]";
    emu2_gen_options g;
    emu2_gen_options_init(&g);
    char *a = NULL, *b = NULL;
    emu2_status sa = have ? emu2_generate(cpu, prompt, imgs, 4, &g, &a) : EMU2_ERR_IO;
    emu2_status sb = have ? emu2_generate(gpu, prompt, imgs, 4, &g, &b) : EMU2_ERR_IO;
    int gen_same = sa == EMU2_OK && sb == EMU2_OK && !strcmp(a, b);
    if (!gen_same)
        printf("    generate: cpu \"%s\", cuda \"%s\" (%s)\n", a ? a : "(error)", b ? b : "(error)",
               emu2_model_last_error(gpu));
    emu2_free(a);
    emu2_free(b);
    for (int i = 0; i < 4; i++)
        free(bufs[i]);
    emu2_model_free(gpu);
    emu2_model_free(cpu);
    CHECK(on_cuda);
    CHECK(same);
    CHECK(gen_same);
}

TEST(random_weights_on_device_equal_host_build)
{
    TC_NEED_GPU();
    emu2_config cfg;
    emu2_error err;
    CHECK(emu2_config_load(ROOT_PATH("models/emu2-tiny-digits"), &cfg, &err) == EMU2_OK);
    emu2_checkpoint *h = NULL, *d = NULL;
    CHECK(emu2_random_checkpoint(tc_cpu, &cfg, 99, &h, &err) == EMU2_OK);
    CHECKF(emu2_random_checkpoint(tc_gpu, &cfg, 99, &d, &err) == EMU2_OK, "%s", err.message);
    int same = h->n_tensors == d->n_tensors;
    for (size_t i = 0; same && i < h->n_tensors; i++) {
        const emu2_tensor_view *hv = &h->tensors[i].view, *dv = &d->tensors[i].view;
        size_t floats = (size_t)dv->nbytes / 4;
        same = hv->nbytes == dv->nbytes && !strcmp(h->tensors[i].name, d->tensors[i].name);
        if (!same || !floats)
            continue;
        float *back = tc_host((const float *)dv->data, floats);
        same = back && !memcmp(back, hv->data, floats * 4);
        if (!same)
            printf("    %s differs\n", h->tensors[i].name);
        free(back);
    }
    emu2_checkpoint_close(h);
    emu2_checkpoint_close(d); /* the device block stays with the backend */
    CHECK(same);
}

TEST(random_model_runs_on_device)
{
    TC_NEED_GPU();
    /* the tiny model's folder with random weights instead of its checkpoint */
    emu2_error err;
    emu2_model *m = load(ROOT_PATH("models/emu2-tiny-digits"), "cuda", EMU2_LOAD_RANDOM_WEIGHTS, &err);
    CHECKF(m, "%s", err.message);
    emu2_model_info info;
    emu2_model_get_info(m, &info);
    uint64_t n_params = info.n_params;
    char *text = describe(m, examples[0], 1);
    int ran = text != NULL;
    emu2_free(text);
    emu2_model_free(m);
    CHECK(n_params == 1910784);
    CHECK(ran);
}

int main(void)
{
    tc_open();
    RUN(tiny_model_answers_as_on_cpu);
    RUN(random_weights_on_device_equal_host_build);
    RUN(random_model_runs_on_device);
    if (tc_gpu)
        tc_close();
    else if (tc_cpu)
        emu2_backend_close(tc_cpu);
    return check_finish();
}
