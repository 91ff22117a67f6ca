/* cmd_gen_image.c: `emu2 gen-image`, Emu2-Gen's images out: a prompt (with one placeholder per IMAGE)
 * -> a PNG file; without --prompt, one IMAGE is autoencoded. Exit 0 on success, 1 when the work fails
 * (message on stderr), 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "emu2.h"
#include "image/image.h"

#define CMD "gen-image"

typedef struct gi_args {
    const char *model_dir, *prompt, *out, *device;
    const char **images;
    int n_images, threads;
    emu2_image_options opts;
} gi_args;

static void usage(FILE *f)
{
    fprintf(f, "usage: emu2 gen-image -m MODEL_DIR [--prompt P] [options] [IMAGE...] -o OUT.png\n"
               "  Draws an image with an Emu2-Gen model (a folder with model_index.json, unet/, vae/).\n"
               "  --prompt P: text with one image placeholder (\"[]\" or \"[<IMG_PLH>]\") per IMAGE, in order;\n"
               "  without --prompt, exactly one IMAGE is autoencoded (its EVA features are the condition).\n"
               "options:\n"
               "  -m, --model DIR      the Emu2-Gen folder\n"
               "  -p, --prompt P       the prompt (may be \"\")\n"
               "  -o, --output FILE    where to write the PNG\n"
               "  --width N --height N pixels, multiples of 8 (default: the model's, 1024 for Emu2-Gen)\n"
               "  --steps N            Euler steps (default 50)\n"
               "  --guidance F         classifier-free guidance scale >= 0 (default 3.0; <= 1 turns it off)\n"
               "  --seed N             initial noise (default 0)\n"
               "  --vae-tiling         decode the latents in overlapping tiles (large images, less memory)\n");
    emu2_cli_usage_threads_device(f, 21);
}

static int parse_args(int argc, char **argv, gi_args *a)
{
    emu2_image_options_init(&a->opts);
    a->images = calloc((size_t)argc, sizeof *a->images);
    if (!a->images)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        int takes_value = strcmp(o, "-h") && strcmp(o, "--help") && strcmp(o, "--vae-tiling") && o[0] == '-' && o[1];
        if (takes_value && !v) {
            fprintf(stderr, "emu2 " CMD ": %s needs a value\n", o);
            return 2;
        }
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(o, "--vae-tiling")) {
            a->opts.vae_tiling = 1;
            continue;
        } else if (!takes_value) {
            a->images[a->n_images++] = o;
            continue;
        }
        i++;
        if (!strcmp(o, "-m") || !strcmp(o, "--model"))
            a->model_dir = v;
        else if (!strcmp(o, "-p") || !strcmp(o, "--prompt"))
            a->prompt = v;
        else if (!strcmp(o, "-o") || !strcmp(o, "--output"))
            a->out = v;
        else if (!strcmp(o, "--device"))
            a->device = v;
        else if (!strcmp(o, "--width") || !strcmp(o, "--height")) {
            if (emu2_cli_parse_int(CMD, o, v, 8, 4096, &n))
                return 2;
            if (n % 8) {
                fprintf(stderr, "emu2 " CMD ": %s must be a multiple of 8, got %ld\n", o, n);
                return 2;
            }
            *(o[2] == 'w' ? &a->opts.width : &a->opts.height) = (int)n;
        } else if (!strcmp(o, "--steps")) {
            if (emu2_cli_int_option(CMD, o, v, 1, 1000, &a->opts.steps))
                return 2;
        } else if (!strcmp(o, "--seed")) {
            if (emu2_cli_parse_int(CMD, o, v, 0, 0x7fffffffL, &n))
                return 2;
            a->opts.seed = (uint64_t)n;
        } else if (!strcmp(o, "--threads")) {
            if (emu2_cli_int_option(CMD, o, v, 0, 1024, &a->threads))
                return 2;
        } else if (!strcmp(o, "--guidance")) {
            if (emu2_cli_float_option(CMD, o, v, 0, 1000, &a->opts.guidance))
                return 2;
        } else {
            fprintf(stderr, "emu2 " CMD ": unknown option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (!a->model_dir || !a->out) {
        fprintf(stderr, "emu2 " CMD ": -m MODEL_DIR and -o OUT.png are required\n");
        return 2;
    }
    if (!a->prompt && a->n_images != 1) {
        fprintf(stderr, "emu2 " CMD ": give --prompt P, or exactly one IMAGE to autoencode\n");
        return 2;
    }
    return 0;
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "emu2 " CMD ": %s: cannot open for writing\n", path);
        return 1;
    }
    int ok = fwrite(data, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        fprintf(stderr, "emu2 " CMD ": %s: write failed\n", path);
    return ok ? 0 : 1;
}

static int run(gi_args *a)
{
    emu2_load_options lo;
    emu2_cli_load_options(&lo, a->threads, a->device);
    emu2_model *m = emu2_cli_load_model(CMD, a->model_dir, &lo);
    if (!m)
        return 1;
    int rc;
    emu2_image_bytes *imgs = emu2_cli_read_images(CMD, a->images, a->n_images, &rc);
    a->opts.progress = emu2_cli_progress;
    a->opts.progress_user = (void *)"generating";
    void *png = NULL;
    size_t png_size = 0;
    if (rc == 0 && emu2_generate_image(m, a->prompt, imgs, (size_t)a->n_images, &a->opts, &png, &png_size) != EMU2_OK) {
        fprintf(stderr, "emu2 " CMD ": %s\n", emu2_model_last_error(m));
        rc = 1;
    }
    if (rc == 0)
        rc = write_file(a->out, png, png_size);
    emu2_free(png);
    emu2_cli_free_images(imgs, a->n_images);
    emu2_model_free(m);
    return rc;
}

int emu2_cmd_gen_image(int argc, char **argv)
{
    gi_args a;
    memset(&a, 0, sizeof a);
    int rc = parse_args(argc, argv, &a); /* < 0: --help was shown */
    rc = rc == 0 ? run(&a) : rc < 0 ? 0 : rc;
    free(a.images);
    return rc;
}
