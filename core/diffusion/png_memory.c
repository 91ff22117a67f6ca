/* png_memory.c: PNG encoding into a growing memory buffer (png_memory.h). */
#include "diffusion/png_memory.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

typedef struct png_sink {
    unsigned char *data;
    size_t size, cap;
    int nomem;
    char message[200];
} png_sink;

static void on_write(png_structp png, png_bytep bytes, png_size_t n)
{
    png_sink *s = png_get_io_ptr(png);
    if (s->size + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->size + n)
            cap *= 2;
        unsigned char *p = realloc(s->data, cap);
        if (!p) {
            s->nomem = 1;
            png_error(png, "out of memory");
        }
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + s->size, bytes, n);
    s->size += n;
}

static void on_flush(png_structp png)
{
    (void)png;
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

static int write_body(png_structp png, png_infop info, png_sink *s, const uint8_t *rgb, int w, int h)
{
    if (setjmp(png_jmpbuf(png)))
        return 0;
    png_set_write_fn(png, s, on_write, on_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, rgb + (size_t)y * (size_t)w * 3);
    png_write_end(png, NULL);
    return 1;
}

emu2_status dif_png_encode(const uint8_t *rgb, int width, int height, void **png, size_t *png_size, emu2_error *err)
{
    if (!rgb || width <= 0 || height <= 0 || !png || !png_size)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "PNG encode: empty image");
    png_sink s;
    memset(&s, 0, sizeof s);
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &s, on_error, on_warning);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    int ok = p && info && write_body(p, info, &s, rgb, width, height);
    png_destroy_write_struct(&p, &info);
    if (!ok) {
        free(s.data);
        if (s.nomem || !s.message[0])
            return emu2_fail(err, EMU2_ERR_NOMEM, "PNG encode: out of memory");
        return emu2_fail(err, EMU2_ERR_INTERNAL, "PNG encode: %s", s.message);
    }
    *png = s.data;
    *png_size = s.size;
    return EMU2_OK;
}
