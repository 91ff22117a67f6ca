/* png_memory.h: an RGB image as an 8-bit PNG file in memory (libpng with a write callback). */
#ifndef EMU2_DIFFUSION_PNG_MEMORY_H
#define EMU2_DIFFUSION_PNG_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

/* rgb: width*height*3 bytes, row-major. *png: malloc'd (emu2_free). */
emu2_status dif_png_encode(const uint8_t *rgb, int width, int height, void **png, size_t *png_size, emu2_error *err);

#endif
