/* image_decode.c: format detection, limits and the RGB image buffer. */
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "image/decode_internal.h"

emu2_image_bounds emu2_image_bounds_resolve(const emu2_image_limits *limits)
{
    emu2_image_bounds b = {EMU2_IMAGE_DEFAULT_MAX_BYTES, EMU2_IMAGE_DEFAULT_MAX_PIXELS};
    if (limits && limits->max_bytes)
        b.max_bytes = limits->max_bytes;
    if (limits && limits->max_pixels)
        b.max_pixels = limits->max_pixels;
    return b;
}

emu2_status emu2_image_check_dims(const char *format, uint64_t width, uint64_t height,
                                  const emu2_image_bounds *bounds, emu2_error *err)
{
    if (width == 0 || height == 0)
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s header: image size %llux%llu is empty", format,
                         (unsigned long long)width, (unsigned long long)height);
    uint64_t pixels;
    if (width > INT32_MAX || height > INT32_MAX || !emu2_mul_u64(width, height, &pixels) ||
        pixels > bounds->max_pixels)
        return emu2_fail(err, EMU2_ERR_LIMIT,
                         "%s header: image size %llux%llu exceeds the limit of %llu pixels", format,
                         (unsigned long long)width, (unsigned long long)height,
                         (unsigned long long)bounds->max_pixels);
    return EMU2_OK;
}

emu2_status emu2_rgb_image_alloc(emu2_rgb_image *img, int width, int height, emu2_error *err)
{
    size_t n;
    img->width = img->height = 0;
    img->pixels = NULL;
    if (width <= 0 || height <= 0 || !emu2_mul_size((size_t)width, (size_t)height, &n) ||
        !emu2_mul_size(n, 3, &n))
        return emu2_fail(err, EMU2_ERR_LIMIT, "image size %dx%d is not representable", width,
                         height);
    img->pixels = malloc(n);
    if (!img->pixels)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for a %dx%d RGB image", width,
                         height);
    img->width = width;
    img->height = height;
    return EMU2_OK;
}

void emu2_rgb_image_free(emu2_rgb_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
}

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

emu2_status emu2_image_decode(const void *bytes, size_t n, const emu2_image_limits *limits,
                              emu2_rgb_image *out, emu2_error *err)
{
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "image decode: no output image");
    out->width = out->height = 0;
    out->pixels = NULL;
    if (!bytes && n)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "image decode: NULL bytes");
    emu2_image_bounds bounds = emu2_image_bounds_resolve(limits);
    if (n > bounds.max_bytes)
        return emu2_fail(err, EMU2_ERR_LIMIT, "image is %zu bytes, over the limit of %zu bytes",
                         n, bounds.max_bytes);
    const uint8_t *b = bytes;
    emu2_status st;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        st = emu2_jpeg_decode(b, n, &bounds, out, err);
    else if (n >= sizeof png_signature && !memcmp(b, png_signature, sizeof png_signature))
        st = emu2_png_decode(b, n, &bounds, out, err);
    else
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "image format not recognized (%zu bytes): only JPEG and PNG are supported",
                         n);
    if (st != EMU2_OK)
        emu2_rgb_image_free(out);
    return st;
}
