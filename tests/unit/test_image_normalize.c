/* test_image_normalize.c: ToTensor + Normalize(CLIP) against torchvision (goldens from
 * tests/reference/gen_image_goldens.py): every uint8 value per channel, and rows of the full
 * preprocessing of one seed image. Tolerance: max abs error 1e-6 (exact equality expected). */
#include <math.h>

#include "check.h"
#include "image/image.h"
#include "test_image_support.h"

#define TOLERANCE 1e-6f

static float load_le_float(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

TEST(every_uint8_value_matches_torchvision)
{
    size_t n;
    unsigned char *table = read_whole_file(ROOT_PATH("tests/data/image/normalize_table.f32"), &n);
    CHECK(table != NULL);
    CHECKF(n == 3 * 256 * 4, "normalize_table.f32 is %zu bytes", n);
    uint8_t px[256 * 3];
    for (int v = 0; v < 256; v++)
        px[3 * v] = px[3 * v + 1] = px[3 * v + 2] = (uint8_t)v;
    emu2_rgb_image img = {256, 1, px};
    float got[3 * 256];
    emu2_image_normalize_clip(&img, got);
    float max_err = 0;
    int exact = 0;
    for (int i = 0; i < 3 * 256; i++) {
        float want = load_le_float(table + 4 * i);
        float e = fabsf(got[i] - want);
        max_err = e > max_err ? e : max_err;
        exact += memcmp(&got[i], &want, sizeof want) == 0;
    }
    free(table);
    printf("    768 values: max abs err %.3g, %d bit-identical\n", (double)max_err, exact);
    CHECKF(max_err <= TOLERANCE, "max abs err %g > %g", (double)max_err, (double)TOLERANCE);
}

TEST(seed_image_preprocess_matches_torchvision)
{
    FILE *f = fopen(ROOT_PATH("tests/data/image/seed_rows.txt"), "r");
    CHECK(f != NULL);
    char line[512], seed[256] = "";
    int rows[16], n_rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#')
            continue;
        if (!seed[0]) {
            sscanf(line, "seed:%255s", seed);
            continue;
        }
        char *p = line, *end;
        for (long v; n_rows < 16 && (v = strtol(p, &end, 10), end != p); p = end)
            rows[n_rows++] = (int)v;
    }
    fclose(f);
    CHECK(seed[0] && n_rows > 0);
    char rel[300];
    snprintf(rel, sizeof rel, "fixtures/seed-images/%s", seed);
    size_t n;
    unsigned char *bytes = read_whole_file(SHARED_PATH(rel), &n);
    if (!bytes)
        SKIP("seed image %s is absent", SHARED_PATH(rel));
    size_t n_want = 0;
    unsigned char *want = read_whole_file(ROOT_PATH("tests/data/image/seed_rows.f32"), &n_want);
    float *got = NULL;
    emu2_error err = {0};
    emu2_status st = emu2_image_preprocess(bytes, n, NULL, 448, &got, &err);
    free(bytes);
    if (!want || n_want != (size_t)3 * n_rows * 448 * 4 || st != EMU2_OK) {
        free(want);
        free(got);
        CHECKF(0, "golden size %zu or preprocess failed: %s", n_want, err.message);
    }
    float max_err = 0;
    size_t exact = 0, k = 0;
    for (int c = 0; c < 3; c++)
        for (int r = 0; r < n_rows; r++)
            for (int x = 0; x < 448; x++, k++) {
                float w = load_le_float(want + 4 * k);
                float g = got[((size_t)c * 448 + rows[r]) * 448 + x];
                float e = fabsf(g - w);
                max_err = e > max_err ? e : max_err;
                exact += memcmp(&g, &w, sizeof g) == 0;
            }
    free(want);
    free(got);
    printf("    %s: %zu floats, max abs err %.3g, %zu bit-identical\n", seed, k, (double)max_err,
           exact);
    CHECKF(max_err <= TOLERANCE, "max abs err %g > %g", (double)max_err, (double)TOLERANCE);
}

TEST(preprocess_rejects_bad_arguments)
{
    float *out = (float *)1;
    emu2_error err = {0};
    CHECK(emu2_image_preprocess("x", 1, NULL, 0, &out, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(out == NULL && err.message[0]);
    CHECK(emu2_image_preprocess("not an image", 12, NULL, 448, &out, &err) ==
          EMU2_ERR_UNSUPPORTED);
    CHECK(out == NULL);
    CHECK(emu2_image_preprocess("x", 1, NULL, 448, NULL, &err) == EMU2_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    RUN(every_uint8_value_matches_torchvision);
    RUN(seed_image_preprocess_matches_torchvision);
    RUN(preprocess_rejects_bad_arguments);
    return check_finish();
}
