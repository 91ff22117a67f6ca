/* image.h: image preprocessing as Emu2's reference code does it with PIL + torchvision:
 * decode JPEG/PNG, convert to RGB as Pillow 10.1's convert('RGB'), resize with Pillow's
 * antialiased bicubic (bit-exact), then ToTensor + Normalize with the CLIP mean/std. */
#ifndef EMU2_IMAGE_IMAGE_H
#define EMU2_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

#define EMU2_IMAGE_DEFAULT_MAX_BYTES ((size_t)64 << 20)
#define EMU2_IMAGE_DEFAULT_MAX_PIXELS ((uint64_t)100000000)

typedef struct emu2_rgb_image {
    int width, height;
    uint8_t *pixels; /* RGB interleaved, row-major, width*height*3 bytes, malloc'd */
} emu2_rgb_image;

/* Decodes JPEG or PNG bytes (detected by signature) into RGB. limits may be NULL (defaults).
 * On failure *out is left empty ({0, 0, NULL}). */
emu2_status emu2_image_decode(const void *bytes, size_t n, const emu2_image_limits *limits,
                              emu2_rgb_image *out, emu2_error *err);
void emu2_rgb_image_free(emu2_rgb_image *img);

/* Pillow's Image.resize((out_w, out_h), BICUBIC) on an RGB image, bit-exact. */
emu2_status emu2_image_resize_bicubic(const emu2_rgb_image *in, int out_w, int out_h,
                                      emu2_rgb_image *out, emu2_error *err);

/* torchvision ToTensor + Normalize(CLIP mean, std) in float32: chw_out gets 3*w*h floats. */
void emu2_image_normalize_clip(const emu2_rgb_image *img, float *chw_out);

/* decode -> resize to size x size -> normalize. *chw_out (3*size*size floats) is malloc'd;
 * release with free() (emu2_free in the public API). */
emu2_status emu2_image_preprocess(const void *bytes, size_t n, const emu2_image_limits *limits,
                                  int size, float **chw_out, emu2_error *err);

/* Writes an RGB image as an 8-bit PNG (for humans: `emu2 preprocess --png`). */
emu2_status emu2_image_write_png(const emu2_rgb_image *img, const char *path, emu2_error *err);
/* The same PNG in memory: *png malloc'd (emu2_free), *png_size bytes. */
emu2_status emu2_image_encode_png(const emu2_rgb_image *img, void **png, size_t *png_size, emu2_error *err);

#endif
