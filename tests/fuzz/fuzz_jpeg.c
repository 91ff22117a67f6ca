/* fuzz_jpeg.c: the JPEG decoder on arbitrary bytes (small limits), then a resize of whatever
 * it decoded. Any crash, leak or sanitizer report is a bug. */
#include <stddef.h>
#include <stdint.h>

#include "image/decode_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    emu2_image_limits limits = {1 << 20, 1 << 20};
    emu2_image_bounds bounds = emu2_image_bounds_resolve(&limits);
    emu2_rgb_image img = {0, 0, NULL}, out = {0, 0, NULL};
    emu2_error err;
    if (size > bounds.max_bytes)
        return 0;
    if (emu2_jpeg_decode(data, size, &bounds, &img, &err) != EMU2_OK)
        return 0;
    /* target size varies with the input so up- and downscaling both get exercised */
    int w = 1 + (int)(size % 61), h = 1 + (int)(size / 61 % 53);
    if (emu2_image_resize_bicubic(&img, w, h, &out, &err) == EMU2_OK)
        emu2_rgb_image_free(&out);
    emu2_rgb_image_free(&img);
    return 0;
}
