/* test_image_decode.c: decoder limits, error reporting, robustness on damaged bytes, and resize
 * edge cases. Pixel exactness against Pillow lives in test_image_goldens.c. */
#include <unistd.h>

#include "check.h"
#include "image/image.h"
#include "test_image_support.h"

static unsigned char *input(const char *name, size_t *n)
{
    char rel[300];
    snprintf(rel, sizeof rel, "tests/data/image/inputs/%s", name);
    return read_whole_file(ROOT_PATH(rel), n);
}

TEST(byte_limit_is_checked_first)
{
    size_t n;
    unsigned char *b = input("jpeg420_300x200.jpg", &n);
    CHECK(b != NULL);
    emu2_image_limits lim = {n - 1, 0};
    emu2_rgb_image img;
    emu2_error err = {0};
    emu2_status st = emu2_image_decode(b, n, &lim, &img, &err);
    free(b);
    CHECKF(st == EMU2_ERR_LIMIT, "status %d: %s", st, err.message);
    CHECK(img.pixels == NULL && strstr(err.message, "limit"));
}

TEST(pixel_limit_is_checked_from_the_header)
{
    const char *names[] = {"jpeg420_300x200.jpg", "rgb8_64x48.png", "rgb8_interlaced_37x29.png"};
    for (size_t i = 0; i < 3; i++) {
        size_t n;
        unsigned char *b = input(names[i], &n);
        CHECK(b != NULL);
        emu2_image_limits lim = {0, 100};
        emu2_rgb_image img;
        emu2_error err = {0};
        emu2_status st = emu2_image_decode(b, n, &lim, &img, &err);
        free(b);
        CHECKF(st == EMU2_ERR_LIMIT, "%s: status %d: %s", names[i], st, err.message);
        CHECK(img.pixels == NULL && img.width == 0);
    }
}

TEST(huge_and_empty_headers_are_clear_errors)
{
    struct {
        const char *name;
        emu2_status want;
        const char *words;
    } cases[] = {
        {"bad_png_huge_header.png", EMU2_ERR_LIMIT, "60000x60000"},
        {"bad_jpeg_huge_header.jpg", EMU2_ERR_LIMIT, "60000x60000"},
        {"bad_jpeg_zero_width.jpg", EMU2_ERR_FORMAT, "JPEG"},
        {"bad_jpeg_truncated.jpg", EMU2_ERR_FORMAT, "truncated"},
        {"bad_png_truncated.png", EMU2_ERR_FORMAT, "truncated"},
        {"bad_not_an_image.bin", EMU2_ERR_UNSUPPORTED, "JPEG and PNG"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        unsigned char *b = input(cases[i].name, &n);
        CHECK(b != NULL);
        emu2_rgb_image img;
        emu2_error err = {0};
        emu2_status st = emu2_image_decode(b, n, NULL, &img, &err);
        free(b);
        CHECKF(st == cases[i].want && strstr(err.message, cases[i].words),
               "%s: status %d, message '%s'", cases[i].name, st, err.message);
    }
}

TEST(empty_and_null_inputs)
{
    emu2_rgb_image img;
    emu2_error err = {0};
    CHECK(emu2_image_decode(NULL, 0, NULL, &img, &err) == EMU2_ERR_UNSUPPORTED);
    CHECK(emu2_image_decode(NULL, 5, NULL, &img, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_image_decode("\xff\xd8\xff", 3, NULL, &img, &err) == EMU2_ERR_FORMAT);
    CHECK(emu2_image_decode("\x89PNG\r\n\x1a\n", 8, NULL, &img, &err) == EMU2_ERR_FORMAT);
    CHECK(emu2_image_decode("x", 1, NULL, NULL, &err) == EMU2_ERR_INVALID_ARGUMENT);
}

/* Damaged copies of real files (cut anywhere, bytes flipped) must decode or fail with a message;
 * never crash (the ASan build of this test is the real check). */
TEST(damaged_files_never_crash)
{
    const char *names[] = {"jpeg420_101x67.jpg", "jpeg420_progressive_101x67.jpg",
                           "jpeg_cmyk_41x23.jpg", "jpeg_ycck_41x23.jpg", "jpeg_arith_101x67.jpg",
                           "rgb8_interlaced_37x29.png", "pal4_37x15.png", "gray16_40x30.png",
                           "la16_27x19.png", "pal8_trns_33x21.png"};
    uint32_t seed = 12345;
    int decoded = 0, refused = 0;
    emu2_image_limits lim = {0, 1 << 20};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n;
        unsigned char *orig = input(names[i], &n);
        CHECKF(orig != NULL, "missing %s", names[i]);
        unsigned char *b = malloc(n);
        CHECK(b != NULL);
        for (int trial = 0; trial < 120; trial++) {
            memcpy(b, orig, n);
            size_t len = n;
            if (trial < 40) {
                len = n * (size_t)trial / 40;
            } else {
                for (int k = 0; k < 1 + trial % 4; k++) {
                    seed = seed * 1103515245u + 12345u;
                    b[(seed >> 8) % n] ^= (unsigned char)(1u << (seed >> 28 & 7));
                }
            }
            emu2_rgb_image img;
            emu2_error err = {0};
            if (emu2_image_decode(b, len, &lim, &img, &err) == EMU2_OK) {
                CHECK(img.width > 0 && img.height > 0 && img.pixels);
                emu2_rgb_image out;
                CHECK(emu2_image_resize_bicubic(&img, 17, 9, &out, &err) == EMU2_OK);
                emu2_rgb_image_free(&out);
                emu2_rgb_image_free(&img);
                decoded++;
            } else {
                CHECKF(err.message[0], "%s trial %d: error without a message", names[i], trial);
                CHECK(img.pixels == NULL);
                refused++;
            }
        }
        free(b);
        free(orig);
    }
    printf("    %d damaged files decoded, %d refused with a message\n", decoded, refused);
}

TEST(resize_edge_cases)
{
    uint8_t px[3] = {10, 200, 255};
    emu2_rgb_image one = {1, 1, px}, out;
    emu2_error err = {0};
    CHECK(emu2_image_resize_bicubic(&one, 448, 448, &out, &err) == EMU2_OK);
    int constant = 1;
    for (size_t i = 0; i < (size_t)448 * 448; i++)
        constant &= !memcmp(out.pixels + 3 * i, px, 3);
    emu2_rgb_image_free(&out);
    CHECKF(constant, "a 1x1 image upscaled is not constant");

    CHECK(emu2_image_resize_bicubic(&one, 1, 1, &out, &err) == EMU2_OK);
    CHECK(!memcmp(out.pixels, px, 3));
    emu2_rgb_image_free(&out);

    CHECK(emu2_image_resize_bicubic(&one, 0, 5, &out, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(out.pixels == NULL && err.message[0]);
    emu2_rgb_image empty = {0, 0, NULL};
    CHECK(emu2_image_resize_bicubic(&empty, 5, 5, &out, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_image_resize_bicubic(NULL, 5, 5, &out, &err) == EMU2_ERR_INVALID_ARGUMENT);
}

TEST(png_writer_round_trips)
{
    size_t n;
    unsigned char *b = input("rgb8_7x301.png", &n);
    CHECK(b != NULL);
    emu2_rgb_image img, back;
    emu2_error err = {0};
    CHECK(emu2_image_decode(b, n, NULL, &img, &err) == EMU2_OK);
    free(b);
    char path[] = "/tmp/emu2_test_image_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    emu2_status st = emu2_image_write_png(&img, path, &err);
    unsigned char *w = read_whole_file(path, &n);
    remove(path);
    CHECKF(st == EMU2_OK && w, "write failed: %s", err.message);
    st = emu2_image_decode(w, n, NULL, &back, &err);
    free(w);
    int same = st == EMU2_OK && back.width == img.width && back.height == img.height &&
               !memcmp(back.pixels, img.pixels, (size_t)img.width * img.height * 3);
    emu2_rgb_image_free(&img);
    emu2_rgb_image_free(&back);
    CHECK(same);
    CHECK(emu2_image_write_png(&img, "/nonexistent-dir/x.png", &err) != EMU2_OK);
}

TEST(png_in_memory_matches_the_file)
{
    size_t n, file_n;
    unsigned char *b = input("rgb8_7x301.png", &n);
    CHECK(b != NULL);
    emu2_rgb_image img;
    emu2_error err = {0};
    CHECK(emu2_image_decode(b, n, NULL, &img, &err) == EMU2_OK);
    free(b);
    void *png = NULL;
    size_t png_n = 0;
    CHECKF(emu2_image_encode_png(&img, &png, &png_n, &err) == EMU2_OK, "%s", err.message);
    char path[] = "/tmp/emu2_test_image_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    emu2_status st = emu2_image_write_png(&img, path, &err);
    unsigned char *file = st == EMU2_OK ? read_whole_file(path, &file_n) : NULL;
    remove(path);
    /* one encoder, two sinks: the same bytes */
    CHECK(file && png && file_n == png_n && !memcmp(file, png, png_n));
    free(file);
    emu2_free(png);
    emu2_rgb_image empty = {0, 0, NULL};
    CHECK(emu2_image_encode_png(&empty, &png, &png_n, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "PNG encode") != NULL);
    CHECK(emu2_image_encode_png(&img, NULL, &png_n, &err) == EMU2_ERR_INVALID_ARGUMENT);
    emu2_rgb_image_free(&img);
}

int main(void)
{
    RUN(byte_limit_is_checked_first);
    RUN(pixel_limit_is_checked_from_the_header);
    RUN(huge_and_empty_headers_are_clear_errors);
    RUN(empty_and_null_inputs);
    RUN(damaged_files_never_crash);
    RUN(resize_edge_cases);
    RUN(png_writer_round_trips);
    RUN(png_in_memory_matches_the_file);
    return check_finish();
}
