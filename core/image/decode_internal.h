/* decode_internal.h: shared pieces of the JPEG and PNG decoders (not part of any public API). */
#ifndef EMU2_IMAGE_DECODE_INTERNAL_H
#define EMU2_IMAGE_DECODE_INTERNAL_H

#include "image/image.h"

/* Limits with the zero ("default") fields resolved. */
typedef struct emu2_image_bounds {
    size_t max_bytes;
    uint64_t max_pixels;
} emu2_image_bounds;

emu2_image_bounds emu2_image_bounds_resolve(const emu2_image_limits *limits);

/* Checks header dimensions (zero sizes, pixel limit) before anything is allocated. */
emu2_status emu2_image_check_dims(const char *format, uint64_t width, uint64_t height,
                                  const emu2_image_bounds *bounds, emu2_error *err);

/* Allocates img->pixels for width*height RGB pixels (dims already checked). */
emu2_status emu2_rgb_image_alloc(emu2_rgb_image *img, int width, int height, emu2_error *err);

/* Both decoders leave *out empty on failure. */
emu2_status emu2_jpeg_decode(const uint8_t *bytes, size_t n, const emu2_image_bounds *bounds,
                             emu2_rgb_image *out, emu2_error *err);
emu2_status emu2_png_decode(const uint8_t *bytes, size_t n, const emu2_image_bounds *bounds,
                            emu2_rgb_image *out, emu2_error *err);

#endif
