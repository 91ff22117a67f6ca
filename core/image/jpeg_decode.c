/* jpeg_decode.c: JPEG -> RGB through TurboJPEG, matching Pillow 10.1's open().convert('RGB'):
 * 1 component -> L -> grey replicated; 3 -> libjpeg's RGB output; 4 (CMYK, or YCCK which libjpeg
 * turns into CMYK) -> Pillow's "CMYK;I" (it always assumes Adobe's inverted CMYK) and then its
 * cmyk2rgb formula. Default libjpeg settings like Pillow (islow IDCT, fancy upsampling). */
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "common/error.h"
#include "image/decode_internal.h"

/* Pillow's MULDIV255 + CLIP8 (Convert.c cmyk2rgb): an exact (a*b)/255 rounding. */
static uint8_t muldiv255(int a, int b)
{
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static void cmyk_inverted_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t n_pixels)
{
    for (size_t i = 0; i < n_pixels; i++, cmyk += 4, rgb += 3) {
        /* stored values are inverted (Adobe); Pillow's "CMYK;I" rawmode un-inverts them first */
        int k = 255 - cmyk[3], nk = 255 - k;
        for (int c = 0; c < 3; c++) {
            int v = nk - muldiv255(255 - cmyk[c], nk);
            rgb[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

/* Pillow ignores libjpeg warnings (corrupt-data warnings still yield an image) but fails with
 * "image file is truncated" when the data runs out. libjpeg reports running out as a warning,
 * yet TurboJPEG only keeps the first warning's text, so the marker walk below decides too. */
static int is_truncation_warning(const char *msg)
{
    return msg && strstr(msg, "Premature end of JPEG file") != NULL;
}

/* Walks the marker segments (skipping entropy-coded data, stuffed 0xFF00 and RSTn) and reports
 * whether an EOI marker is reached before the bytes run out. */
static int reaches_eoi(const uint8_t *b, size_t n)
{
    size_t pos = 2; /* after SOI */
    while (pos < n) {
        if (b[pos] != 0xff) {
            pos++;
            continue;
        }
        while (pos < n && b[pos] == 0xff) /* fill bytes */
            pos++;
        if (pos >= n)
            return 0;
        uint8_t marker = b[pos++];
        if (marker == 0xd9)
            return 1;
        if (marker == 0x00 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7))
            continue; /* stuffed byte, TEM, restart: no length field */
        if (n - pos < 2)
            return 0;
        size_t len = (size_t)b[pos] << 8 | b[pos + 1];
        if (len < 2 || len > n - pos)
            return 0;
        pos += len; /* for SOS the entropy-coded data follows and is skipped byte by byte */
    }
    return 0;
}

static emu2_status decode_with(tjhandle tj, const uint8_t *bytes, size_t n,
                               const emu2_image_bounds *bounds, emu2_rgb_image *out,
                               emu2_error *err)
{
    int w = 0, h = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(tj, bytes, (unsigned long)n, &w, &h, &subsamp, &colorspace) != 0)
        return emu2_fail(err, EMU2_ERR_FORMAT, "JPEG header: %s", tjGetErrorStr2(tj));
    emu2_status st = emu2_image_check_dims("JPEG", (uint64_t)(w < 0 ? 0 : w),
                                           (uint64_t)(h < 0 ? 0 : h), bounds, err);
    if (st != EMU2_OK)
        return st;
    st = emu2_rgb_image_alloc(out, w, h, err);
    if (st != EMU2_OK)
        return st;

    size_t n_pixels = (size_t)w * (size_t)h;
    int is_cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
    int is_gray = colorspace == TJCS_GRAY;
    uint8_t *cmyk = NULL;
    uint8_t *dst = out->pixels;
    int pf = TJPF_RGB;
    if (is_cmyk) {
        cmyk = malloc(n_pixels * 4);
        if (!cmyk)
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory decoding a %dx%d CMYK JPEG", w,
                             h);
        dst = cmyk;
        pf = TJPF_CMYK;
    } else if (is_gray) {
        pf = TJPF_GRAY; /* decoded into the first third, expanded below */
    }
    /* LIMITSCANS: a progressive file with hundreds of scans is a denial-of-service, not a photo */
    int rc = tjDecompress2(tj, bytes, (unsigned long)n, dst, w, 0, h, pf, TJFLAG_LIMITSCANS);
    if (rc != 0) {
        const char *msg = tjGetErrorStr2(tj);
        int fatal = tjGetErrorCode(tj) != TJERR_WARNING;
        if (fatal || is_truncation_warning(msg) || !reaches_eoi(bytes, n)) {
            free(cmyk);
            if (fatal)
                return emu2_fail(err, EMU2_ERR_FORMAT, "JPEG data: %s", msg);
            return emu2_fail(err, EMU2_ERR_FORMAT, "JPEG data is truncated (libjpeg: %s)", msg);
        }
    }
    if (is_cmyk) {
        cmyk_inverted_to_rgb(cmyk, out->pixels, n_pixels);
        free(cmyk);
    } else if (is_gray) {
        for (size_t i = n_pixels; i-- > 0;) {
            uint8_t v = out->pixels[i];
            out->pixels[3 * i] = out->pixels[3 * i + 1] = out->pixels[3 * i + 2] = v;
        }
    }
    return EMU2_OK;
}

emu2_status emu2_jpeg_decode(const uint8_t *bytes, size_t n, const emu2_image_bounds *bounds,
                             emu2_rgb_image *out, emu2_error *err)
{
    tjhandle tj = tjInitDecompress();
    if (!tj)
        return emu2_fail(err, EMU2_ERR_NOMEM, "JPEG: cannot create a decompressor: %s",
                         tjGetErrorStr2(NULL));
    emu2_status st = decode_with(tj, bytes, n, bounds, out, err);
    tjDestroy(tj);
    if (st != EMU2_OK)
        emu2_rgb_image_free(out);
    return st;
}
