/* cli_util.c: see cli_util.h. */
#include "cli/cli_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image/image.h"

unsigned char *emu2_cli_read_file(const char *cmd, const char *path, size_t max_bytes, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "emu2 %s: %s: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    while (buf) {
        size_t want = cap - len;
        size_t got = fread(buf + len, 1, want, f);
        len += got;
        if (got < want || len > max_bytes)
            break;
        unsigned char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf || failed) {
        fprintf(stderr, "emu2 %s: %s: %s\n", cmd, path, buf ? "read error" : "out of memory");
        free(buf);
        return NULL;
    }
    *n = len;
    return buf;
}

int emu2_cli_parse_int(const char *cmd, const char *opt, const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < min || v > max) {
        fprintf(stderr, "emu2 %s: %s needs an integer in %ld..%ld, got '%s'\n", cmd, opt, min, max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int emu2_cli_parse_float(const char *cmd, const char *opt, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "emu2 %s: %s needs a number in %g..%g, got '%s'\n", cmd, opt, min, max, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int emu2_cli_int_option(const char *cmd, const char *opt, const char *s, long min, long max, int *out)
{
    long v;
    if (emu2_cli_parse_int(cmd, opt, s, min, max, &v))
        return -1;
    *out = (int)v;
    return 0;
}

int emu2_cli_float_option(const char *cmd, const char *opt, const char *s, double min, double max, float *out)
{
    double v;
    if (emu2_cli_parse_float(cmd, opt, s, min, max, &v))
        return -1;
    *out = (float)v;
    return 0;
}

emu2_image_bytes *emu2_cli_read_images(const char *cmd, const char **paths, int n, int *failed)
{
    emu2_image_bytes *imgs = calloc((size_t)n + 1, sizeof *imgs);
    *failed = !imgs;
    for (int i = 0; imgs && i < n; i++) {
        size_t size = 0;
        imgs[i].data = emu2_cli_read_file(cmd, paths[i], EMU2_IMAGE_DEFAULT_MAX_BYTES, &size);
        imgs[i].size = size;
        if (!imgs[i].data)
            *failed = 1;
    }
    return imgs;
}

void emu2_cli_free_images(emu2_image_bytes *imgs, int n)
{
    for (int i = 0; imgs && i < n; i++)
        free((void *)imgs[i].data);
    free(imgs);
}

void emu2_cli_usage_threads_device(FILE *f, int width)
{
    fprintf(f, "  %-*s%s\n", width, "--threads N", "CPU threads (default: all cores)");
    fprintf(f, "  %-*s%s\n", width, "--device D", "auto, cpu, cuda, cuda:N (default auto)");
}

void emu2_cli_load_options(emu2_load_options *lo, int threads, const char *device)
{
    emu2_load_options_init(lo);
    lo->threads = threads;
    if (device)
        lo->device = device;
}

emu2_model *emu2_cli_load_model(const char *cmd, const char *dir, emu2_load_options *lo)
{
    lo->progress = emu2_cli_progress;
    lo->progress_user = (void *)"loading model";
    emu2_model *m;
    emu2_error err;
    if (emu2_model_load(dir, lo, &m, &err) != EMU2_OK) {
        fprintf(stderr, "emu2 %s: %s\n", cmd, err.message);
        return NULL;
    }
    return m;
}

int emu2_cli_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    if (!isatty(STDERR_FILENO))
        return 0;
    const char *label = user ? (const char *)user : "loading";
    int width = 30;
    int filled = total ? (int)(done * (uint64_t)width / total) : width;
    fprintf(stderr, "\r%s [%.*s%*s] %-10s", label, filled, "##############################", width - filled, "",
            stage);
    if (total && done >= total)
        fprintf(stderr, "\r%*s\r", width + 40, "");
    fflush(stderr);
    return 0;
}
