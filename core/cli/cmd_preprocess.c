/* cmd_preprocess.c: `emu2 preprocess`: an image's normalized CHW float32 tensor, exactly what the
 * vision encoder receives (decode -> RGB -> Pillow bicubic resize -> CLIP normalize). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "image/image.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: emu2 preprocess (-m MODEL_DIR | --size S) IMAGE -o OUT.f32 [--png OUT.png]\n"
            "  writes the normalized image tensor: float32 little-endian, CHW (R,G,B planes), S x S\n"
            "  -m DIR       model folder: S = vision_config.image_size of DIR/config.json\n"
            "  --size S     image size (overrides the model's)\n"
            "  -o FILE      output tensor file\n"
            "  --png FILE   also write the resized uint8 image (before normalization) as PNG\n");
}

/* vision_config.image_size from DIR/config.json; 0 with a message on failure. */
static int image_size_from_config(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) {
        fprintf(stderr, "emu2 preprocess: %s: %s (line %d)\n", path, jerr.text, jerr.line);
        return 0;
    }
    json_t *v = json_object_get(json_object_get(root, "vision_config"), "image_size");
    json_int_t size = json_is_integer(v) ? json_integer_value(v) : 0;
    json_decref(root);
    if (size <= 0 || size > 65536) {
        fprintf(stderr, "emu2 preprocess: %s: no valid vision_config.image_size\n", path);
        return 0;
    }
    return (int)size;
}

static int write_f32_le(const char *path, const float *v, size_t count)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "emu2 preprocess: %s: %s\n", path, strerror(errno));
        return 0;
    }
    int ok = 1;
    for (size_t i = 0; i < count && ok; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                              (unsigned char)(u >> 24)};
        ok = fwrite(b, 1, 4, f) == 4;
    }
    ok = (fclose(f) == 0) && ok;
    if (!ok)
        fprintf(stderr, "emu2 preprocess: %s: write failed\n", path);
    return ok;
}

int emu2_cmd_preprocess(int argc, char **argv)
{
    const char *model_dir = NULL, *image_path = NULL, *out_path = NULL, *png_path = NULL;
    int size = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        int takes_value = !strcmp(a, "-m") || !strcmp(a, "-o") || !strcmp(a, "--size") ||
                          !strcmp(a, "--png");
        if (takes_value && i + 1 >= argc) {
            fprintf(stderr, "emu2 preprocess: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-m")) {
            model_dir = argv[++i];
        } else if (!strcmp(a, "-o")) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--png")) {
            png_path = argv[++i];
        } else if (!strcmp(a, "--size")) {
            char *end;
            long s = strtol(argv[++i], &end, 10);
            if (*end || s <= 0 || s > 65536) {
                fprintf(stderr, "emu2 preprocess: --size must be 1..65536, got '%s'\n", argv[i]);
                return 2;
            }
            size = (int)s;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "emu2 preprocess: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!image_path) {
            image_path = a;
        } else {
            fprintf(stderr, "emu2 preprocess: one image at a time ('%s' is extra)\n", a);
            return 2;
        }
    }
    if (!image_path || !out_path || (!model_dir && !size)) {
        usage(stderr);
        return 2;
    }
    if (!size && !(size = image_size_from_config(model_dir)))
        return 1;

    size_t n = 0;
    unsigned char *bytes = emu2_cli_read_file("preprocess", image_path, EMU2_IMAGE_DEFAULT_MAX_BYTES, &n);
    if (!bytes)
        return 1;
    emu2_error err = {0};
    emu2_rgb_image decoded, resized;
    emu2_status st = emu2_image_decode(bytes, n, NULL, &decoded, &err);
    free(bytes);
    if (st != EMU2_OK) {
        fprintf(stderr, "emu2 preprocess: %s: %s\n", image_path, err.message);
        return 1;
    }
    st = emu2_image_resize_bicubic(&decoded, size, size, &resized, &err);
    emu2_rgb_image_free(&decoded);
    if (st != EMU2_OK) {
        fprintf(stderr, "emu2 preprocess: %s: %s\n", image_path, err.message);
        return 1;
    }
    size_t count = (size_t)3 * size * size;
    float *chw = malloc(count * sizeof *chw);
    int ok = chw != NULL;
    if (!ok)
        fprintf(stderr, "emu2 preprocess: out of memory\n");
    if (ok) {
        emu2_image_normalize_clip(&resized, chw);
        ok = write_f32_le(out_path, chw, count);
    }
    if (ok && png_path && emu2_image_write_png(&resized, png_path, &err) != EMU2_OK) {
        fprintf(stderr, "emu2 preprocess: %s\n", err.message);
        ok = 0;
    }
    free(chw);
    emu2_rgb_image_free(&resized);
    return ok ? 0 : 1;
}
