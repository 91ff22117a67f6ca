/* cmd_generate.c: `emu2 describe` (one caption per image) and `emu2 generate` (one prompt with one
 * placeholder per image, e.g. the published few-shot example). Exit 0 on success, 1 when the work
 * fails (message on stderr), 2 on a usage error. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "emu2.h"
#include "image/image.h"

typedef struct gen_args {
    const char *cmd;
    const char *model_dir;
    const char *prompt;
    const char *device;
    const char *quant;
    const char *precision;
    const char **images;
    int n_images;
    int json, stream, threads, batch, verbose, random_weights;
    emu2_gen_options opts;
} gen_args;

static void usage(FILE *f, const char *cmd)
{
    if (!strcmp(cmd, "describe"))
        fprintf(f, "usage: emu2 describe -m MODEL_DIR [options] IMAGE...\n"
                   "  Describes each image (prompt \"[]Describe the image in details:\" unless --prompt P,\n"
                   "  which is appended after the image). One line per image.\n");
    else
        fprintf(f, "usage: emu2 generate -m MODEL_DIR --prompt P [options] IMAGE...\n"
                   "  Answers one prompt with one image placeholder (\"[]\" or \"[<IMG_PLH>]\") per IMAGE, in order,\n"
                   "  e.g. --prompt '[][red, white, 3, bottom left].[][yellow, white, 2, top left].[]"
                   "[green, black, 4, bottom right][]'\n");
    fprintf(f, "options:\n"
               "  -m, --model DIR           model folder (config.json, tokenizer, weights)\n"
               "  -p, --prompt P            the prompt\n"
               "  --max-new-tokens N        default 64\n"
               "  --num-beams N             default 5 (1 = greedy, or sampling with --sample)\n"
               "  --length-penalty F        beam score = sum logprob / length^F; default -1 (favours short answers)\n"
               "  --min-length N            default 1\n"
               "  --sample                  sample instead of searching (with --num-beams 1)\n"
               "  --temperature F --top-k N --top-p F --seed N   sampling controls\n"
               "  --repetition-penalty F    default 1.0 (off)\n"
               "  --stream                  print tokens as they are generated\n"
               "  --json                    one JSON object per result\n");
    emu2_cli_usage_threads_device(f, 26);
    fprintf(f, "  --quant Q                 quantize the LLM linears at load: none, int8, int4 (docs/QUANT.md)\n"
               "  --precision P             f32 (default, exact) or bf16: bf16-weight linears of prefill and the\n"
               "                            vision tower round activations to bf16 (AVX512_BF16; docs/PERFORMANCE.md)\n"
               "  --batch N                 describe: images per forward pass (default 8; --stream uses 1)\n"
               "  --verbose                 say which device runs the model\n"
               "  --random-weights          no checkpoint: random weights for the config (speed tests only)\n");
}

/* Parses argv into a; returns 0, or the exit code to use. */
static int parse_args(int argc, char **argv, gen_args *a)
{
    emu2_gen_options_init(&a->opts);
    a->batch = 8;
    a->images = calloc((size_t)argc, sizeof *a->images);
    if (!a->images)
        return 1;
    const char *c = a->cmd;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define NEED_VALUE()                                                                                                   \
    do {                                                                                                               \
        if (!v) {                                                                                                      \
            fprintf(stderr, "emu2 %s: %s needs a value\n", c, o);                                                      \
            return 2;                                                                                                  \
        }                                                                                                              \
        i++;                                                                                                           \
    } while (0)
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout, c);
            return -1;
        } else if (!strcmp(o, "-m") || !strcmp(o, "--model")) {
            NEED_VALUE();
            a->model_dir = v;
        } else if (!strcmp(o, "-p") || !strcmp(o, "--prompt")) {
            NEED_VALUE();
            a->prompt = v;
        } else if (!strcmp(o, "--device")) {
            NEED_VALUE();
            a->device = v;
        } else if (!strcmp(o, "--quant")) {
            NEED_VALUE();
            a->quant = v;
        } else if (!strcmp(o, "--precision")) {
            NEED_VALUE();
            a->precision = v;
        } else if (!strcmp(o, "--max-new-tokens")) {
            NEED_VALUE();
            if (emu2_cli_int_option(c, o, v, 1, 8192, &a->opts.max_new_tokens))
                return 2;
        } else if (!strcmp(o, "--num-beams")) {
            NEED_VALUE();
            if (emu2_cli_int_option(c, o, v, 1, 64, &a->opts.num_beams))
                return 2;
        } else if (!strcmp(o, "--min-length")) {
            NEED_VALUE();
            if (emu2_cli_int_option(c, o, v, 0, 8192, &a->opts.min_length))
                return 2;
        } else if (!strcmp(o, "--top-k")) {
            NEED_VALUE();
            if (emu2_cli_int_option(c, o, v, 0, 1 << 20, &a->opts.top_k))
                return 2;
        } else if (!strcmp(o, "--seed")) {
            NEED_VALUE();
            if (emu2_cli_parse_int(c, o, v, 0, 0x7fffffffL, &n))
                return 2;
            a->opts.seed = (uint64_t)n;
        } else if (!strcmp(o, "--threads")) {
            NEED_VALUE();
            if (emu2_cli_int_option(c, o, v, 0, 1024, &a->threads))
                return 2;
        } else if (!strcmp(o, "--length-penalty")) {
            NEED_VALUE();
            if (emu2_cli_float_option(c, o, v, -100, 100, &a->opts.length_penalty))
                return 2;
        } else if (!strcmp(o, "--temperature")) {
            NEED_VALUE();
            if (emu2_cli_float_option(c, o, v, 1e-6, 100, &a->opts.temperature))
                return 2;
        } else if (!strcmp(o, "--top-p")) {
            NEED_VALUE();
            if (emu2_cli_float_option(c, o, v, 1e-6, 1, &a->opts.top_p))
                return 2;
        } else if (!strcmp(o, "--repetition-penalty")) {
            NEED_VALUE();
            if (emu2_cli_float_option(c, o, v, 1e-6, 100, &a->opts.repetition_penalty))
                return 2;
        } else if (!strcmp(o, "--batch")) {
            NEED_VALUE();
            if (emu2_cli_int_option(c, o, v, 1, 256, &a->batch))
                return 2;
        } else if (!strcmp(o, "--verbose")) {
            a->verbose = 1;
        } else if (!strcmp(o, "--random-weights")) {
            a->random_weights = 1;
        } else if (!strcmp(o, "--sample")) {
            a->opts.do_sample = 1;
        } else if (!strcmp(o, "--stream")) {
            a->stream = 1;
        } else if (!strcmp(o, "--json")) {
            a->json = 1;
        } else if (o[0] == '-' && o[1]) {
            fprintf(stderr, "emu2 %s: unknown option '%s'\n", c, o);
            usage(stderr, c);
            return 2;
        } else {
            a->images[a->n_images++] = o;
        }
#undef NEED_VALUE
    }
    if (!a->model_dir) {
        fprintf(stderr, "emu2 %s: -m MODEL_DIR is required\n", c);
        return 2;
    }
    if (!strcmp(c, "generate") && !a->prompt) {
        fprintf(stderr, "emu2 generate: --prompt is required\n");
        return 2;
    }
    if (!strcmp(c, "describe") && a->n_images == 0) {
        fprintf(stderr, "emu2 describe: give at least one IMAGE\n");
        return 2;
    }
    return 0;
}

static int print_piece(void *user, int32_t id, const char *piece)
{
    (void)user;
    (void)id;
    fputs(piece, stderr);
    fflush(stderr);
    return 0;
}

/* Prints one result: plain text, or a JSON object with the inputs that produced it. */
static void print_result(const gen_args *a, const char *image, const char *text)
{
    if (!a->json) {
        if (a->stream)
            fputc('\n', stderr);
        puts(text);
        return;
    }
    json_t *o = json_object();
    if (image)
        json_object_set_new(o, "image", json_string(image));
    else {
        json_t *imgs = json_array();
        for (int i = 0; i < a->n_images; i++)
            json_array_append_new(imgs, json_string(a->images[i]));
        json_object_set_new(o, "images", imgs);
    }
    if (a->prompt)
        json_object_set_new(o, "prompt", json_string(a->prompt));
    json_object_set_new(o, "text", json_string(text));
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s)
        puts(s);
    free(s);
    json_decref(o);
}

static int print_item_piece(void *user, size_t item, int32_t id, const char *piece)
{
    (void)item;
    return print_piece(user, id, piece);
}

/* One caption per image, a->batch images per forward pass (1 with --stream, so pieces come in order);
 * a bad image fails its own line only. */
static int describe_all(gen_args *a, emu2_model *m, const emu2_image_bytes *imgs)
{
    int rc = 0, per = a->stream ? 1 : a->batch;
    emu2_request *rq = calloc((size_t)per, sizeof *rq);
    emu2_result *res = calloc((size_t)per, sizeof *res);
    /* emu2_describe's prompt rule: the image, then the question (NULL request prompt = the default one) */
    char *prompt = NULL;
    if (a->prompt) {
        size_t len = strlen(a->prompt) + sizeof "[<IMG_PLH>]";
        if ((prompt = malloc(len)))
            snprintf(prompt, len, "[<IMG_PLH>]%s", a->prompt);
    }
    if (!rq || !res || (a->prompt && !prompt)) {
        fprintf(stderr, "emu2 describe: out of memory\n");
        rc = 1;
        goto done;
    }
    emu2_batch_hooks hooks;
    emu2_batch_hooks_init(&hooks);
    if (a->stream)
        hooks.on_token = print_item_piece;
    for (int first = 0; first < a->n_images; first += per) {
        int n = a->n_images - first < per ? a->n_images - first : per;
        for (int i = 0; i < n; i++)
            rq[i] = (emu2_request){prompt, &imgs[first + i], 1};
        if (emu2_generate_batch(m, rq, (size_t)n, &a->opts, &hooks, res) != EMU2_OK) {
            fprintf(stderr, "emu2 describe: %s\n", emu2_model_last_error(m));
            rc = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (res[i].status != EMU2_OK) {
                fprintf(stderr, "emu2 describe: %s: %s\n", a->images[first + i], res[i].message);
                rc = 1;
                continue;
            }
            print_result(a, a->images[first + i], res[i].text);
        }
        emu2_results_clear(res, (size_t)n);
    }
done:
    free(prompt);
    free(rq);
    free(res);
    return rc;
}

static int run(gen_args *a)
{
    emu2_load_options lo;
    emu2_cli_load_options(&lo, a->threads, a->device);
    lo.quant = a->quant;
    lo.precision = a->precision;
    if (a->random_weights)
        lo.flags |= EMU2_LOAD_RANDOM_WEIGHTS;
    emu2_model *m = emu2_cli_load_model(a->cmd, a->model_dir, &lo);
    if (!m)
        return 1;
    if (a->stream)
        a->opts.on_token = print_piece;
    if (a->verbose) {
        emu2_model_info info;
        if (emu2_model_get_info(m, &info) == EMU2_OK)
            fprintf(stderr, "emu2 %s: device %s\n", a->cmd, info.device ? info.device : "?");
    }

    int rc;
    emu2_image_bytes *imgs = emu2_cli_read_images(a->cmd, a->images, a->n_images, &rc);
    if (rc == 0 && !strcmp(a->cmd, "describe")) {
        rc = describe_all(a, m, imgs);
    } else if (rc == 0) {
        char *text = NULL;
        if (emu2_generate(m, a->prompt, imgs, (size_t)a->n_images, &a->opts, &text) != EMU2_OK) {
            fprintf(stderr, "emu2 generate: %s\n", emu2_model_last_error(m));
            rc = 1;
        } else {
            print_result(a, NULL, text);
        }
        emu2_free(text);
    }
    emu2_cli_free_images(imgs, a->n_images);
    emu2_model_free(m);
    return rc;
}

static int run_command(const char *cmd, int argc, char **argv)
{
    gen_args a = {.cmd = cmd};
    int rc = parse_args(argc, argv, &a); /* < 0: --help was shown */
    rc = rc == 0 ? run(&a) : rc < 0 ? 0 : rc;
    free(a.images);
    return rc;
}

int emu2_cmd_describe(int argc, char **argv)
{
    return run_command("describe", argc, argv);
}

int emu2_cmd_generate(int argc, char **argv)
{
    return run_command("generate", argc, argv);
}
