/* png_write.c: an RGB image as an 8-bit PNG, into a file (for humans inspecting preprocessing) or into
 * memory (emu2_generate_image's output). One libpng encoder; the sink is a FILE or a growing buffer. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "image/image.h"

typedef struct png_sink {
    FILE *f;             /* the file sink, or NULL: the memory sink below */
    unsigned char *data; /* memory sink */
    size_t size, cap;
    int nomem;
    char message[200];
} png_sink;

static int grow(png_sink *s, size_t need)
{
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < need)
        cap *= 2;
    unsigned char *p = realloc(s->data, cap);
    if (!p)
        return 0;
    s->data = p;
    s->cap = cap;
    return 1;
}

static void on_write(png_structp png, png_bytep bytes, png_size_t n)
{
    png_sink *s = png_get_io_ptr(png);
    if (s->f) {
        if (fwrite(bytes, 1, n, s->f) != n)
            png_error(png, "Write Error");
        return;
    }
    if (s->size + n > s->cap && !grow(s, s->size + n)) {
        s->nomem = 1;
        png_error(png, "out of memory");
    }
    memcpy(s->data + s->size, bytes, n);
    s->size += n;
}

static void on_flush(png_structp png)
{
    png_sink *s = png_get_io_ptr(png);
    if (s->f)
        fflush(s->f);
}

static void on_error(png_structp png, png_const_charp msg)
{
    png_sink *s = png_get_error_ptr(png);
    snprintf(s->message, sizeof s->message, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int write_body(png_structp png, png_infop info, png_sink *s, const emu2_rgb_image *img)
{
    if (setjmp(png_jmpbuf(png)))
        return 0;
    png_set_write_fn(png, s, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, img->pixels + (size_t)y * (size_t)img->width * 3);
    png_write_end(png, NULL);
    return 1;
}

/* Encodes img into s; 1 on success, 0 with s->message (empty: out of memory) on failure. */
static int encode(const emu2_rgb_image *img, png_sink *s)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    int ok = png && info && write_body(png, info, s, img);
    png_destroy_write_struct(&png, &info);
    return ok;
}

static int image_is_empty(const emu2_rgb_image *img)
{
    return !img || !img->pixels || img->width <= 0 || img->height <= 0;
}

emu2_status emu2_image_write_png(const emu2_rgb_image *img, const char *path, emu2_error *err)
{
    if (image_is_empty(img) || !path)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "write PNG: empty image or no path");
    png_sink s;
    memset(&s, 0, sizeof s);
    s.f = fopen(path, "wb");
    if (!s.f)
        return emu2_fail(err, EMU2_ERR_IO, "%s: cannot open for writing", path);
    int ok = encode(img, &s);
    int closed = fclose(s.f) == 0;
    if (!ok)
        return emu2_fail(err, EMU2_ERR_IO, "%s: cannot write PNG: %s", path,
                         s.message[0] ? s.message : "out of memory");
    if (!closed)
        return emu2_fail(err, EMU2_ERR_IO, "%s: write failed", path);
    return EMU2_OK;
}

emu2_status emu2_image_encode_png(const emu2_rgb_image *img, void **png, size_t *png_size, emu2_error *err)
{
    if (image_is_empty(img) || !png || !png_size)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "PNG encode: empty image");
    png_sink s;
    memset(&s, 0, sizeof s);
    if (!encode(img, &s)) {
        free(s.data);
        if (s.nomem || !s.message[0])
            return emu2_fail(err, EMU2_ERR_NOMEM, "PNG encode: out of memory");
        return emu2_fail(err, EMU2_ERR_INTERNAL, "PNG encode: %s", s.message);
    }
    *png = s.data;
    *png_size = s.size;
    return EMU2_OK;
}
