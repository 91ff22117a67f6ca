/* png_decode.c: PNG -> RGB through libpng, matching Pillow 10.1's open().convert('RGB'):
 *   grey 1/2/4-bit -> scaled to 0..255 (modes "1", "L;2", "L;4"); grey 8 -> L;
 *   grey 16 -> mode "I" whose convert('RGB') clips the 16-bit value to 0..255 (not the high byte);
 *   RGB/RGBA/grey+alpha 16 -> high byte; alpha is dropped (no compositing), tRNS is ignored;
 *   palette -> palette colours, indices past the palette -> black, as in Pillow;
 *   chunk CRCs checked before the image data only (Pillow never checks IDAT CRCs).
 * libpng reports errors by longjmp: every buffer lives in a context owned by the caller of the
 * function that calls setjmp, so nothing is lost or left indeterminate when it jumps. */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "image/decode_internal.h"

typedef struct png_reader {
    const uint8_t *bytes;
    size_t n, pos;
    png_structp png;
    png_infop info;
    uint8_t *raw;         /* decoded rows (all rows if interlaced, else one) */
    emu2_rgb_image *out;
    emu2_error *err;
    emu2_status status;   /* set before jumping when the failure is ours, not libpng's */
    int image_complete;   /* the data ended after the last row: only trailing checks are lost */
    /* the geometry decode_body found, kept here so the longjmp path can finish the last rows */
    int width, height, color_type, depth, n_palette, interlaced;
    size_t rowbytes;
    png_colorp palette;
    char message[200];    /* libpng's error text */
} png_reader;

static void on_png_error(png_structp png, png_const_charp msg)
{
    png_reader *r = png_get_error_ptr(png);
    snprintf(r->message, sizeof r->message, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg)
{
    (void)png; /* Pillow ignores what libpng would only warn about */
    (void)msg;
}

static void read_from_memory(png_structp png, png_bytep data, size_t len)
{
    png_reader *r = png_get_io_ptr(png);
    if (len > r->n - r->pos) {
        /* Pillow stops once it has every row, so it accepts files cut in the zlib checksum, the
         * last CRC or IEND; libpng wants those bytes after the last row: note the difference. */
        png_uint_32 row = png_get_current_row_number(png);
        int pass = png_get_current_pass_number(png);
        int reading_rows = r->raw != NULL && r->height > 0; /* not while reading the header */
        r->image_complete =
            reading_rows && (r->interlaced ? pass >= 7 : row >= (png_uint_32)r->height);
        png_error(png, "truncated: the data ends before the image does");
    }
    memcpy(data, r->bytes + r->pos, len);
    r->pos += len;
}

static uint8_t scale_low_depth(unsigned v, int depth)
{
    /* Pillow's "1" (0 or 255), "L;2" (x85), "L;4" (x17) */
    return (uint8_t)(depth == 1 ? (v ? 255 : 0) : depth == 2 ? v * 85 : depth == 4 ? v * 17 : v);
}

/* One raw row (after png_set_packing: one byte per sample below 8 bits) -> RGB. */
static void convert_row(const uint8_t *src, uint8_t *dst, int width, int color_type, int depth,
                        const png_color *palette, int n_palette)
{
    int wide = depth == 16;
    int bps = wide ? 2 : 1;
    for (int x = 0; x < width; x++, dst += 3) {
        switch (color_type) {
        case PNG_COLOR_TYPE_GRAY:
            if (wide) {
                unsigned v = (unsigned)src[2 * x] << 8 | src[2 * x + 1];
                dst[0] = dst[1] = dst[2] = (uint8_t)(v > 255 ? 255 : v);
            } else {
                dst[0] = dst[1] = dst[2] = scale_low_depth(src[x], depth);
            }
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            dst[0] = dst[1] = dst[2] = src[2 * bps * x];
            break;
        case PNG_COLOR_TYPE_RGB:
        case PNG_COLOR_TYPE_RGB_ALPHA: {
            int ch = color_type == PNG_COLOR_TYPE_RGB ? 3 : 4;
            const uint8_t *p = src + (size_t)x * ch * bps;
            dst[0] = p[0];
            dst[1] = p[bps];
            dst[2] = p[2 * bps];
            break;
        }
        case PNG_COLOR_TYPE_PALETTE: {
            int i = src[x];
            if (i < n_palette) {
                dst[0] = palette[i].red;
                dst[1] = palette[i].green;
                dst[2] = palette[i].blue;
            } else {
                dst[0] = dst[1] = dst[2] = 0;
            }
            break;
        }
        }
    }
}

/* Converts the rows in r->raw: all of them (interlaced) or the one row the buffer holds. */
static void convert_buffered(png_reader *r, int only_row)
{
    size_t out_stride = (size_t)r->width * 3;
    for (int y = r->interlaced ? 0 : only_row; y < (r->interlaced ? r->height : only_row + 1); y++)
        convert_row(r->raw + (r->interlaced ? (size_t)y * r->rowbytes : 0),
                    r->out->pixels + (size_t)y * out_stride, r->width, r->color_type, r->depth,
                    r->palette, r->n_palette);
}

/* Everything that may longjmp happens here; r (owned by the caller) keeps all state. */
static int decode_body(png_reader *r, const emu2_image_bounds *bounds)
{
    if (setjmp(png_jmpbuf(r->png))) {
        if (!r->image_complete || !r->raw)
            return 0;
        /* every row reached r->raw before libpng asked for the missing trailer */
        convert_buffered(r, r->height - 1);
        return 1;
    }
    png_set_read_fn(r->png, r, read_from_memory);
    /* our pixel limit decides, not libpng's default 1,000,000-pixel width/height cap */
    png_set_user_limits(r->png, 0x7fffffff, 0x7fffffff);
    /* Pillow checks the CRC of every chunk before the image data (ancillary ones included) but
     * never the CRC of IDAT chunks: strict up to the first IDAT, then lenient. */
    png_set_crc_action(r->png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
    png_read_info(r->png, r->info);
    png_set_crc_action(r->png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);

    png_uint_32 w = 0, h = 0;
    int interlace = 0;
    png_get_IHDR(r->png, r->info, &w, &h, &r->depth, &r->color_type, &interlace, NULL, NULL);
    r->status = emu2_image_check_dims("PNG", w, h, bounds, r->err);
    if (r->status != EMU2_OK)
        return 0;

    if (r->color_type == PNG_COLOR_TYPE_PALETTE &&
        !png_get_PLTE(r->png, r->info, &r->palette, &r->n_palette)) {
        r->status = emu2_fail(r->err, EMU2_ERR_FORMAT, "PNG: palette image without a PLTE chunk");
        return 0;
    }
    if (r->depth < 8)
        png_set_packing(r->png);
    int passes = png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);

    r->rowbytes = png_get_rowbytes(r->png, r->info);
    size_t rows = passes > 1 ? h : 1, total;
    if (!emu2_mul_size(r->rowbytes, rows, &total)) {
        r->status = emu2_fail(r->err, EMU2_ERR_LIMIT, "PNG: %ux%u image is too large", w, h);
        return 0;
    }
    r->status = emu2_rgb_image_alloc(r->out, (int)w, (int)h, r->err);
    if (r->status != EMU2_OK)
        return 0;
    r->width = (int)w;
    r->height = (int)h;
    r->interlaced = passes > 1;
    r->raw = malloc(total ? total : 1);
    if (!r->raw) {
        r->status = emu2_fail(r->err, EMU2_ERR_NOMEM, "out of memory decoding a %ux%u PNG", w, h);
        return 0;
    }
    if (r->interlaced) {
        for (int pass = 0; pass < passes; pass++)
            for (int y = 0; y < r->height; y++)
                png_read_row(r->png, r->raw + (size_t)y * r->rowbytes, NULL);
        convert_buffered(r, 0);
    } else {
        for (int y = 0; y < r->height; y++) {
            png_read_row(r->png, r->raw, NULL);
            convert_buffered(r, y);
        }
    }
    /* like Pillow, do not require the chunks after the image data (png_read_end) */
    return 1;
}

emu2_status emu2_png_decode(const uint8_t *bytes, size_t n, const emu2_image_bounds *bounds,
                            emu2_rgb_image *out, emu2_error *err)
{
    png_reader r;
    memset(&r, 0, sizeof r);
    r.bytes = bytes;
    r.n = n;
    r.out = out;
    r.err = err;
    r.status = EMU2_OK;
    r.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &r, on_png_error, on_png_warning);
    if (!r.png)
        return emu2_fail(err, EMU2_ERR_NOMEM, "PNG: cannot create a libpng reader");
    r.info = png_create_info_struct(r.png);
    if (!r.info) {
        png_destroy_read_struct(&r.png, NULL, NULL);
        return emu2_fail(err, EMU2_ERR_NOMEM, "PNG: cannot create a libpng info struct");
    }
    int ok = decode_body(&r, bounds);
    png_destroy_read_struct(&r.png, &r.info, NULL);
    free(r.raw);
    if (ok)
        return EMU2_OK;
    emu2_rgb_image_free(out);
    if (r.status != EMU2_OK)
        return r.status;
    return emu2_fail(err, EMU2_ERR_FORMAT, "PNG data: %s", r.message);
}
