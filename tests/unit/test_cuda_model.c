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

/* quant: NULL for the checkpoint's own weights, else a quantization preset applied at load. */
static emu2_model *load_quantized(const char *dir, const char *device, const char *quant, unsigned flags,
                                  emu2_error *err)
{
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.device = device;
    o.threads = 2;
    o.flags = flags;
    o.random_seed = 5;
    if (quant)
        o.quant = quant;
    emu2_model *m = NULL;
    if (emu2_model_load(dir, &o, &m, err) != EMU2_OK)
        return NULL;
    return m;
}

static emu2_model *load(const char *dir, const char *device, unsigned flags, emu2_error *err)
{
    return load_quantized(dir, device, NULL, flags, err);
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

/* Quantized at load (int8, and the int4 preset): the CUDA backend runs the same stored bytes as
 * the CPU. Greedy captions must match word for word; the prompt's prefill (more than 8 rows)
 * rounds activations to bf16 on the GPU, so only the decisions, not the logits, are compared. Random
 * weights live in device memory and cannot be quantized there: a clear error. */
static emu2_model *load_quant(const char *device, const char *quant, unsigned flags, emu2_error *err)
{
    return load_quantized(ROOT_PATH("models/emu2-tiny-digits"), device, quant, flags, err);
}

TEST(quantized_tiny_model_answers_as_on_cpu)
{
    TC_NEED_GPU();
    const char *quants[] = {"int8", "int4"};
    for (int q = 0; q < 2; q++) {
        emu2_error err;
        emu2_model *cpu = load_quant("cpu", quants[q], 0, &err);
        CHECKF(cpu, "%s: %s", quants[q], err.message);
        emu2_model *gpu = load_quant("cuda", quants[q], 0, &err);
        if (!gpu)
            emu2_model_free(cpu);
        CHECKF(gpu, "%s on cuda: %s", quants[q], err.message);
        int same = 1;
        for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
            char *a = describe(cpu, examples[i], 1), *b = describe(gpu, examples[i], 1);
            if (!a || !b || strcmp(a, b)) {
                printf("    %s %s: cpu \"%s\", cuda \"%s\"\n", quants[q], examples[i], a ? a : "(error)",
                       b ? b : "(error)");
                same = 0;
            }
            emu2_free(a);
            emu2_free(b);
        }
        emu2_model_free(gpu);
        emu2_model_free(cpu);
        CHECK(same);
    }
    emu2_error err;
    emu2_model *r = load_quant("cuda", "int8", EMU2_LOAD_RANDOM_WEIGHTS, &err);
    emu2_model_free(r);
    CHECK(!r && err.status == EMU2_ERR_UNSUPPORTED && strstr(err.message, "random weights"));
}

/* The layer split (core/ops/split_backend.c) on one GPU ("cuda:0,0": two CUDA backends, two
 * streams, hand-overs by events) and, where there is a second GPU, over two ("cuda:0,1", peer
 * access): the tiny model's greedy and beam captions must be the single GPU's. */
TEST(layer_split_answers_as_one_gpu)
{
    TC_NEED_GPU();
    emu2_error err;
    const char *dir = ROOT_PATH("models/emu2-tiny-digits");
    emu2_model *one = load(dir, "cuda", 0, &err);
    CHECKF(one, "%s", err.message);
    emu2_backend *second = NULL;
    int two_gpus = emu2_backend_open("cuda:1", NULL, &second, &err) == EMU2_OK;
    emu2_backend_close(second);
    const char *splits[] = {"cuda:0,0", "cuda:0,1"};
    int same = 1, opened = 1;
    for (int d = 0; d < (two_gpus ? 2 : 1); d++) {
        emu2_model *m = load(dir, splits[d], 0, &err);
        if (!m) {
            printf("    %s: %s\n", splits[d], err.message);
            opened = 0;
            continue;
        }
        emu2_model_info info;
        emu2_model_get_info(m, &info);
        printf("    %s\n", info.device);
        for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++)
            for (int beams = 1; beams <= 5; beams += 4) {
                char *a = describe(one, examples[i], beams), *b = describe(m, examples[i], beams);
                if (!a || !b || strcmp(a, b)) {
                    printf("    %s %s (beams %d): one GPU \"%s\", split \"%s\"\n", splits[d], examples[i], beams,
                           a ? a : "(error)", b ? b : "(error)");
                    same = 0;
                }
                emu2_free(a);
                emu2_free(b);
            }
        emu2_model_free(m);
    }
    if (!two_gpus)
        printf("    one GPU here: cuda:0,1 not tried\n");
    emu2_model_free(one);
    CHECK(opened);
    CHECK(same);
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
    setenv("EMU2_CPU_QUANT_EXACT", "1", 1); /* the CPU's int4 with f32 activations, as the GPU's */
    tc_open();
    RUN(tiny_model_answers_as_on_cpu);
    RUN(quantized_tiny_model_answers_as_on_cpu);
    RUN(layer_split_answers_as_one_gpu);
    RUN(random_weights_on_device_equal_host_build);
    RUN(random_model_runs_on_device);
    if (tc_gpu)
        tc_close();
    else if (tc_cpu)
        emu2_backend_close(tc_cpu);
    return check_finish();
}
