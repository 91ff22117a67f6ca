/* image_sniff.c: width and height from a PNG or JPEG header, without decoding, so a backend can
 * refuse a decompression bomb (emu2.max_pixels) before the image reaches the worker. Anything this
 * cannot read is left to the engine's decoder, which reports it. */
#include "emu2_pg.h"

static uint32 be16(const unsigned char *p)
{
    return ((uint32)p[0] << 8) | p[1];
}

static uint32 be32(const unsigned char *p)
{
    return ((uint32)p[0] << 24) | ((uint32)p[1] << 16) | ((uint32)p[2] << 8) | p[3];
}

static bool png_dims(const unsigned char *p, Size n, uint32 *w, uint32 *h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n < 24 || memcmp(p, sig, 8) != 0 || memcmp(p + 12, "IHDR", 4) != 0)
        return false;
    *w = be32(p + 16);
    *h = be32(p + 20);
    return true;
}

/* SOFn markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not. */
static bool is_sof(unsigned char m)
{
    return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
}

static bool jpeg_dims(const unsigned char *p, Size n, uint32 *w, uint32 *h)
{
    if (n < 4 || p[0] != 0xFF || p[1] != 0xD8)
        return false;
    Size i = 2;
    while (i + 4 <= n) {
        if (p[i] != 0xFF)
            return false;
        unsigned char m = p[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* markers without a length */
            i += 2;
            continue;
        }
        if (m == 0xD9 || m == 0xDA) /* end of image, start of scan: no frame header before it */
            return false;
        uint32 len = be16(p + i + 2);
        if (len < 2)
            return false;
        if (is_sof(m)) {
            if (len < 7 || i + 2 + 7 > n)
                return false;
            *h = be16(p + i + 5);
            *w = be16(p + i + 7);
            return true;
        }
        i += 2 + (Size)len;
    }
    return false;
}

bool emu2_pg_image_dims(const unsigned char *p, Size n, uint32 *w, uint32 *h)
{
    return png_dims(p, n, w, h) || jpeg_dims(p, n, w, h);
}
