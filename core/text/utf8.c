/* utf8.c: see utf8.h. */
#include "text/utf8.h"

bool emu2_utf8_valid(const char *s, size_t n, size_t *bad_offset)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad;
        }
        if (n - i < len)
            goto bad;
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xC0) != 0x80)
                goto bad;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
        i += len;
    }
    return true;
bad:
    if (bad_offset)
        *bad_offset = i;
    return false;
}

size_t emu2_utf8_decode(const char *s, size_t n, size_t i, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned c = u[i];
    size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    if (len > n - i) /* only on invalid input: treat the byte alone */
        len = 1;
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; k++)
        v = (v << 6) | (u[i + k] & 0x3F);
    *cp = v;
    return len;
}

bool emu2_py_isspace(uint32_t cp)
{
    /* The 29 code points of Python 3.11 for which chr(c).isspace() is true. */
    if (cp <= 0x20)
        return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
        return true;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

size_t emu2_py_lstrip_len(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = emu2_utf8_decode(s, n, i, &cp);
        if (!emu2_py_isspace(cp))
            break;
        i += len;
    }
    return i;
}

size_t emu2_py_rstrip_len(const char *s, size_t n)
{
    size_t end = n;
    while (end > 0) {
        size_t start = end - 1; /* back up to the first byte of the last code point */
        while (start > 0 && ((unsigned char)s[start] & 0xC0) == 0x80 && end - start < 4)
            start--;
        uint32_t cp;
        emu2_utf8_decode(s, end, start, &cp);
        if (!emu2_py_isspace(cp))
            break;
        end = start;
    }
    return n - end;
}
