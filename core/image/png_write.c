/* png_write.c: an RGB image as an 8-bit PNG file (for humans inspecting preprocessing). */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "image/image.h"

typedef struct png_writer {
    FILE *f;
    png_structp png;
    png_infop info;
    char message[200];
} png_writer;

static void on_write_error(png_structp png, png_const_charp msg)
{
    png_writer *w = png_get_error_ptr(png);
    snprintf(w->message, sizeof w->message, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void on_write_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int write_body(png_writer *w, const emu2_rgb_image *img)
{
    if (setjmp(png_jmpbuf(w->png)))
        return 0;
    png_init_io(w->png, w->f);
    png_set_IHDR(w->png, w->info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(w->png, w->info);
    for (int y = 0; y < img->height; y++)
        png_write_row(w->png, img->pixels + (size_t)y * img->width * 3);
    png_write_end(w->png, NULL);
    return 1;
}

emu2_status emu2_image_write_png(const emu2_rgb_image *img, const char *path, emu2_error *err)
{
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 || !path)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "write PNG: empty image or no path");
    png_writer w;
    memset(&w, 0, sizeof w);
    w.f = fopen(path, "wb");
    if (!w.f)
        return emu2_fail(err, EMU2_ERR_IO, "%s: cannot open for writing", path);
    w.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w, on_write_error, on_write_warning);
    w.info = w.png ? png_create_info_struct(w.png) : NULL;
    int ok = w.png && w.info && write_body(&w, img);
    png_destroy_write_struct(&w.png, &w.info);
    int closed = fclose(w.f) == 0;
    if (!ok)
        return emu2_fail(err, EMU2_ERR_IO, "%s: cannot write PNG: %s", path,
                         w.message[0] ? w.message : "out of memory");
    if (!closed)
        return emu2_fail(err, EMU2_ERR_IO, "%s: write failed", path);
    return EMU2_OK;
}
