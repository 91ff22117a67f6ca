/* resize_bicubic.c: Pillow 10.1's Image.resize(size, BICUBIC) on RGB, reproduced bit for bit
 * (Pillow's libImaging/Resample.c algorithm, rewritten here):
 *  - separable; a horizontal pass (when the width changes) into a uint8 image, then a vertical
 *    pass (when the height changes); each pass rounds and clamps to uint8;
 *  - the filter is the a = -0.5 cubic with support 2, widened by the scale when downsampling
 *    (antialiasing); weights of each output pixel are normalized to sum 1 in double precision,
 *    then converted to fixed point with 22 fractional bits (32 - 8 - 2), rounded away from zero;
 *  - window bounds of output pixel i: center = (i + 0.5) * scale, [int(center - support + 0.5),
 *    int(center + support + 0.5)) clipped to the input.
 * Weights are computed per output pixel instead of one big table, so memory stays at one
 * window even for extreme aspect ratios. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "image/decode_internal.h"

/* Pillow's x86-64 builds never fuse multiply-adds; gcc in ISO C mode does not either, clang needs
 * to be told. */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

enum { PRECISION_BITS = 32 - 8 - 2 };

static double bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* The resampling geometry along one axis. */
typedef struct axis_plan {
    int in_size, out_size;
    double scale, filterscale, support;
    int ksize; /* upper bound on a window's length */
} axis_plan;

static int plan_axis(axis_plan *p, int in_size, int out_size)
{
    p->in_size = in_size;
    p->out_size = out_size;
    /* Pillow passes the box as floats: (float)in_size - 0.0f, exact for any real image size */
    float in0 = 0.0f, in1 = (float)in_size;
    p->scale = p->filterscale = (double)(in1 - in0) / out_size;
    if (p->filterscale < 1.0)
        p->filterscale = 1.0;
    p->support = 2.0 * p->filterscale;
    double k = ceil(p->support) * 2 + 1;
    if (k > in_size + 1.0) /* a window never holds more than the input */
        k = in_size + 1.0;
    if (k > INT32_MAX)
        return 0;
    p->ksize = (int)k;
    return 1;
}

/* Fixed-point weights of output pixel i into w[0..*len); returns the window start. */
static int axis_weights(const axis_plan *p, int i, double *tmp, int32_t *w, int *len)
{
    double center = (i + 0.5) * p->scale;
    double ss = 1.0 / p->filterscale;
    int xmin = (int)(center - p->support + 0.5);
    if (xmin < 0)
        xmin = 0;
    int xmax = (int)(center + p->support + 0.5);
    if (xmax > p->in_size)
        xmax = p->in_size;
    xmax -= xmin;
    if (xmax > p->ksize)
        xmax = p->ksize; /* cannot happen; keeps the buffers safe regardless */
    double ww = 0.0;
    for (int x = 0; x < xmax; x++) {
        double v = bicubic_filter((x + xmin - center + 0.5) * ss);
        tmp[x] = v;
        ww += v;
    }
    for (int x = 0; x < xmax; x++) {
        if (ww != 0.0)
            tmp[x] /= ww;
        /* Pillow: (int)(+-0.5 + k * 2^22), i.e. rounded half away from zero */
        double scaled = tmp[x] * (1 << PRECISION_BITS);
        w[x] = (int32_t)(tmp[x] < 0 ? -0.5 + scaled : 0.5 + scaled);
    }
    *len = xmax < 0 ? 0 : xmax;
    return xmin;
}

static uint8_t clip8(int64_t acc)
{
    if (acc < 0)
        return 0;
    acc >>= PRECISION_BITS;
    return (uint8_t)(acc > 255 ? 255 : acc);
}

typedef struct weight_buffers {
    double *tmp;
    int32_t *w;
} weight_buffers;

static int weights_alloc(weight_buffers *b, int ksize)
{
    b->tmp = malloc(sizeof(double) * (size_t)ksize);
    b->w = malloc(sizeof(int32_t) * (size_t)ksize);
    return b->tmp && b->w;
}

static void weights_free(weight_buffers *b)
{
    free(b->tmp);
    free(b->w);
}

/* src rows [row0, row0+rows) of width src_w -> dst (out_w x rows). */
static void horizontal_pass(const uint8_t *src, int src_w, int row0, int rows, uint8_t *dst,
                            const axis_plan *p, weight_buffers *b)
{
    int out_w = p->out_size;
    for (int xx = 0; xx < out_w; xx++) {
        int len;
        int xmin = axis_weights(p, xx, b->tmp, b->w, &len);
        for (int y = 0; y < rows; y++) {
            const uint8_t *s = src + ((size_t)(row0 + y) * src_w + xmin) * 3;
            int64_t a0 = 1 << (PRECISION_BITS - 1), a1 = a0, a2 = a0;
            for (int x = 0; x < len; x++, s += 3) {
                a0 += (int64_t)s[0] * b->w[x];
                a1 += (int64_t)s[1] * b->w[x];
                a2 += (int64_t)s[2] * b->w[x];
            }
            uint8_t *d = dst + ((size_t)y * out_w + xx) * 3;
            d[0] = clip8(a0);
            d[1] = clip8(a1);
            d[2] = clip8(a2);
        }
    }
}

/* src (width w, rows starting at source row row0) -> dst (w x out_h). */
static void vertical_pass(const uint8_t *src, int w, int row0, uint8_t *dst, const axis_plan *p,
                          weight_buffers *b)
{
    size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < p->out_size; yy++) {
        int len;
        int ymin = axis_weights(p, yy, b->tmp, b->w, &len) - row0;
        uint8_t *d = dst + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int64_t acc = 1 << (PRECISION_BITS - 1);
            const uint8_t *s = src + (size_t)ymin * stride + i;
            for (int y = 0; y < len; y++, s += stride)
                acc += (int64_t)*s * b->w[y];
            d[i] = clip8(acc);
        }
    }
}

/* First and one-past-last source rows any output row reads. */
static void vertical_extent(const axis_plan *p, weight_buffers *b, int *first, int *last)
{
    int len;
    *first = axis_weights(p, 0, b->tmp, b->w, &len);
    int start = axis_weights(p, p->out_size - 1, b->tmp, b->w, &len);
    *last = start + len;
}

emu2_status emu2_image_resize_bicubic(const emu2_rgb_image *in, int out_w, int out_h,
                                      emu2_rgb_image *out, emu2_error *err)
{
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "resize: no output image");
    out->width = out->height = 0;
    out->pixels = NULL;
    if (!in || !in->pixels || in->width <= 0 || in->height <= 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "resize: empty input image");
    if (out_w <= 0 || out_h <= 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "resize: invalid target size %dx%d",
                         out_w, out_h);
    axis_plan ph, pv;
    if (!plan_axis(&ph, in->width, out_w) || !plan_axis(&pv, in->height, out_h))
        return emu2_fail(err, EMU2_ERR_LIMIT, "resize: %dx%d -> %dx%d is too extreme",
                         in->width, in->height, out_w, out_h);
    emu2_status st = emu2_rgb_image_alloc(out, out_w, out_h, err);
    if (st != EMU2_OK)
        return st;
    int need_h = out_w != in->width, need_v = out_h != in->height;
    if (!need_h && !need_v) { /* Pillow returns a copy */
        memcpy(out->pixels, in->pixels, (size_t)out_w * out_h * 3);
        return EMU2_OK;
    }
    weight_buffers b = {NULL, NULL};
    int ksize = ph.ksize > pv.ksize ? ph.ksize : pv.ksize;
    uint8_t *tmp = NULL;
    if (!weights_alloc(&b, ksize))
        goto nomem;
    if (need_h && !need_v) {
        horizontal_pass(in->pixels, in->width, 0, in->height, out->pixels, &ph, &b);
    } else if (!need_h) {
        vertical_pass(in->pixels, in->width, 0, out->pixels, &pv, &b);
    } else {
        /* like Pillow, the horizontal pass covers only the rows the vertical pass reads */
        int first, last;
        vertical_extent(&pv, &b, &first, &last);
        size_t n;
        if (!emu2_mul_size((size_t)out_w * 3, (size_t)(last - first), &n))
            goto nomem;
        tmp = malloc(n ? n : 1);
        if (!tmp)
            goto nomem;
        horizontal_pass(in->pixels, in->width, first, last - first, tmp, &ph, &b);
        vertical_pass(tmp, out_w, first, out->pixels, &pv, &b);
    }
    free(tmp);
    weights_free(&b);
    return EMU2_OK;
nomem:
    free(tmp);
    weights_free(&b);
    emu2_rgb_image_free(out);
    return emu2_fail(err, EMU2_ERR_NOMEM, "resize: out of memory for %dx%d -> %dx%d", in->width,
                     in->height, out_w, out_h);
}
