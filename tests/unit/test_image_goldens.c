/* test_image_goldens.c: decode and resize must be Pillow-identical (tests/data/image/goldens.tsv,
 * written by tests/reference/gen_image_goldens.py with Pillow 10.1.0). Every case compares the
 * SHA-256 of our RGB bytes; where the full expected pixels are committed, a mismatch also reports
 * how many bytes differ. */
#include "check.h"
#include "image/image.h"
#include "test_image_support.h"

typedef struct tally {
    int decode_ok, resize_ok, errors_ok, failures, skipped_inputs;
} tally;

/* Number of bytes that differ from the committed expected PNG, or -1 when unavailable. */
static long count_differing(const char *expected, const emu2_rgb_image *got)
{
    if (!strcmp(expected, "-"))
        return -1;
    char rel[512];
    snprintf(rel, sizeof rel, "tests/data/image/expected/%s", expected);
    size_t n;
    unsigned char *bytes = read_whole_file(ROOT_PATH(rel), &n);
    if (!bytes)
        return -1;
    emu2_rgb_image want;
    emu2_error err;
    long diff = -1;
    if (emu2_image_decode(bytes, n, NULL, &want, &err) == EMU2_OK) {
        if (want.width == got->width && want.height == got->height) {
            diff = 0;
            for (size_t i = 0; i < (size_t)want.width * want.height * 3; i++)
                diff += want.pixels[i] != got->pixels[i];
        }
        emu2_rgb_image_free(&want);
    }
    free(bytes);
    return diff;
}

static int matches(const golden_case *c, const emu2_rgb_image *img, tally *t)
{
    char hex[65];
    sha256_hex(img->pixels, (size_t)img->width * img->height * 3, hex);
    if (img->width == c->w && img->height == c->h && !strcmp(hex, c->sha))
        return 1;
    long diff = count_differing(c->expected, img);
    printf("    MISMATCH %s %s %dx%d (got %dx%d): %s\n", c->kind, c->input, c->w, c->h, img->width,
           img->height,
           diff >= 0 ? "" : "hash differs (no full expected data for a byte count)");
    if (diff >= 0)
        printf("      %ld differing bytes of %d\n", diff, c->w * c->h * 3);
    t->failures++;
    return 0;
}

static const char *input_path(const char *input, int *is_seed)
{
    static char rel[400];
    *is_seed = !strncmp(input, "seed:", 5);
    if (*is_seed) {
        snprintf(rel, sizeof rel, "fixtures/seed-images/%.250s", input + 5);
        return SHARED_PATH(rel);
    }
    snprintf(rel, sizeof rel, "tests/data/image/%.250s", input);
    return ROOT_PATH(rel);
}

/* Runs every case whose input is (want_seed ? a seed image : committed). */
static void run_cases(int want_seed, tally *t)
{
    FILE *f = fopen(ROOT_PATH("tests/data/image/goldens.tsv"), "r");
    if (!f) {
        printf("    cannot open tests/data/image/goldens.tsv\n");
        t->failures++;
        return;
    }
    golden_case c;
    char current[256] = "";
    emu2_rgb_image decoded = {0, 0, NULL};
    int have_decoded = 0;
    while (golden_next(f, &c)) {
        if (!strcmp(c.kind, "bad")) {
            t->failures++;
            continue;
        }
        int is_seed;
        const char *path = input_path(c.input, &is_seed);
        if (is_seed != want_seed)
            continue;
        emu2_error err = {0};
        if (!strcmp(c.kind, "error")) {
            size_t n;
            unsigned char *bytes = read_whole_file(path, &n);
            emu2_rgb_image img;
            if (!bytes) {
                printf("    missing input %s\n", c.input);
                t->failures++;
            } else if (emu2_image_decode(bytes, n, NULL, &img, &err) == EMU2_OK) {
                printf("    %s: decoded, but Pillow refuses it\n", c.input);
                emu2_rgb_image_free(&img);
                t->failures++;
            } else if (!err.message[0]) {
                printf("    %s: failed without a message\n", c.input);
                t->failures++;
            } else {
                t->errors_ok++;
            }
            free(bytes);
            continue;
        }
        if (!strcmp(c.kind, "truncate"))
            continue; /* see truncated_inputs_like_pillow */
        if (strcmp(current, c.input)) { /* cases come grouped by input: decode once */
            emu2_rgb_image_free(&decoded);
            have_decoded = 0;
            snprintf(current, sizeof current, "%s", c.input);
            size_t n;
            unsigned char *bytes = read_whole_file(path, &n);
            if (!bytes) {
                if (is_seed) {
                    t->skipped_inputs++;
                } else {
                    printf("    missing input %s\n", c.input);
                    t->failures++;
                }
                continue;
            }
            if (emu2_image_decode(bytes, n, NULL, &decoded, &err) == EMU2_OK) {
                have_decoded = 1;
            } else {
                printf("    %s: decode failed: %s\n", c.input, err.message);
                t->failures++;
            }
            free(bytes);
        }
        if (!have_decoded)
            continue;
        if (!strcmp(c.kind, "decode")) {
            t->decode_ok += matches(&c, &decoded, t);
        } else if (!strcmp(c.kind, "resize")) {
            emu2_rgb_image r;
            if (emu2_image_resize_bicubic(&decoded, c.w, c.h, &r, &err) != EMU2_OK) {
                printf("    %s -> %dx%d: resize failed: %s\n", c.input, c.w, c.h, err.message);
                t->failures++;
                continue;
            }
            t->resize_ok += matches(&c, &r, t);
            emu2_rgb_image_free(&r);
        }
    }
    emu2_rgb_image_free(&decoded);
    fclose(f);
}

TEST(committed_inputs_match_pillow)
{
    tally t = {0};
    run_cases(0, &t);
    printf("    committed inputs: %d decode + %d resize cases identical to Pillow, %d error cases "
           "refused, %d mismatches\n",
           t.decode_ok, t.resize_ok, t.errors_ok, t.failures);
    CHECKF(t.failures == 0, "%d cases differ from Pillow", t.failures);
    CHECK(t.decode_ok >= 50 && t.resize_ok >= 200 && t.errors_ok >= 5);
}

TEST(seed_images_match_pillow)
{
    tally t = {0};
    run_cases(1, &t);
    if (t.skipped_inputs && !t.decode_ok)
        SKIP("no seed images under %s", SHARED_PATH("fixtures/seed-images"));
    printf("    seed images: %d decode + %d resize cases identical to Pillow, %d mismatches\n",
           t.decode_ok, t.resize_ok, t.failures);
    CHECKF(t.failures == 0, "%d cases differ from Pillow", t.failures);
    CHECKF(t.skipped_inputs == 0, "%d seed images missing", t.skipped_inputs);
}

/* Pillow refuses most truncated files but accepts some that lack only trailing bytes it never
 * reads (a PNG's IEND, a baseline JPEG's EOI). Where Pillow refuses, we must refuse; where it
 * accepts, we must give its pixels or refuse (stricter) -- the stricter cases are listed. */
TEST(truncated_inputs_like_pillow)
{
    FILE *f = fopen(ROOT_PATH("tests/data/image/goldens.tsv"), "r");
    CHECK(f != NULL);
    golden_case c;
    int n = 0, agree = 0, stricter = 0, failures = 0;
    while (golden_next(f, &c)) {
        if (strcmp(c.kind, "truncate"))
            continue;
        int is_seed;
        size_t size;
        unsigned char *bytes = read_whole_file(input_path(c.input, &is_seed), &size);
        if (!bytes || c.w < 0 || (size_t)c.w > size) {
            printf("    %s: missing or shorter than %d bytes\n", c.input, c.w);
            failures++;
            free(bytes);
            continue;
        }
        n++;
        emu2_rgb_image img;
        emu2_error err = {0};
        int ok = emu2_image_decode(bytes, (size_t)c.w, NULL, &img, &err) == EMU2_OK;
        int pillow_ok = !strcmp(c.expected, "ok");
        if (!ok && !err.message[0]) {
            printf("    %s[:%d]: failed without a message\n", c.input, c.w);
            failures++;
        } else if (ok && !pillow_ok) {
            printf("    %s[:%d]: decoded, but Pillow refuses it\n", c.input, c.w);
            failures++;
        } else if (ok) {
            char hex[65];
            sha256_hex(img.pixels, (size_t)img.width * img.height * 3, hex);
            if (strcmp(hex, c.sha)) {
                printf("    %s[:%d]: pixels differ from Pillow's\n", c.input, c.w);
                failures++;
            } else {
                agree++;
            }
        } else if (pillow_ok) {
            printf("    stricter than Pillow: %s[:%d] of %zu: %s\n", c.input, c.w, size,
                   err.message);
            stricter++;
        } else {
            agree++;
        }
        if (ok)
            emu2_rgb_image_free(&img);
        free(bytes);
    }
    fclose(f);
    printf("    %d truncations: %d like Pillow, %d refused where Pillow accepts\n", n, agree,
           stricter);
    CHECKF(failures == 0, "%d truncated inputs handled unlike Pillow", failures);
    CHECK(n >= 100);
}

int main(void)
{
    RUN(committed_inputs_match_pillow);
    RUN(seed_images_match_pillow);
    RUN(truncated_inputs_like_pillow);
    return check_finish();
}
