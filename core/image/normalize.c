/* normalize.c: torchvision ToTensor + Normalize with the OpenAI CLIP constants, in float32 step
 * by step as torch computes it (x / 255, then (x - mean) / std, each rounded to float), and the
 * whole preprocessing chain. */
#include <stdlib.h>

#include "common/checked.h"
#include "common/error.h"
#include "image/image.h"

void emu2_image_normalize_clip(const emu2_rgb_image *img, float *chw_out)
{
    /* torch.as_tensor(list_of_python_floats, float32): decimal -> double -> float */
    const float mean[3] = {(float)0.48145466, (float)0.4578275, (float)0.40821073};
    const float std[3] = {(float)0.26862954, (float)0.26130258, (float)0.27577711};
    size_t plane = (size_t)img->width * (size_t)img->height;
    for (int c = 0; c < 3; c++) {
        float *dst = chw_out + (size_t)c * plane;
        const uint8_t *src = img->pixels + c;
        for (size_t i = 0; i < plane; i++, src += 3) {
            float x = (float)*src / 255.0f;
            x = x - mean[c];
            dst[i] = x / std[c];
        }
    }
}

emu2_status emu2_image_preprocess(const void *bytes, size_t n, const emu2_image_limits *limits,
                                  int size, float **chw_out, emu2_error *err)
{
    if (!chw_out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "preprocess: no output pointer");
    *chw_out = NULL;
    if (size <= 0 || size > 65536)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "preprocess: invalid image size %d",
                         size);
    emu2_rgb_image decoded, resized;
    emu2_status st = emu2_image_decode(bytes, n, limits, &decoded, err);
    if (st != EMU2_OK)
        return st;
    st = emu2_image_resize_bicubic(&decoded, size, size, &resized, err);
    emu2_rgb_image_free(&decoded);
    if (st != EMU2_OK)
        return st;
    size_t count;
    float *out = NULL;
    if (emu2_mul_size((size_t)size * (size_t)size, 3 * sizeof(float), &count))
        out = malloc(count);
    if (!out) {
        emu2_rgb_image_free(&resized);
        return emu2_fail(err, EMU2_ERR_NOMEM, "preprocess: out of memory for a %dx%d tensor",
                         size, size);
    }
    emu2_image_normalize_clip(&resized, out);
    emu2_rgb_image_free(&resized);
    *chw_out = out;
    return EMU2_OK;
}
