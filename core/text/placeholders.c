/* placeholders.c: see placeholders.h; also the public emu2_count_placeholders. */
#include "text/placeholders.h"

#include <string.h>

#include "common/error.h"
#include "emu2.h"

size_t emu2_placeholder_at(const char *text, size_t n, size_t pos)
{
    static const char long_form[] = EMU2_IMG_PLACEHOLDER;
    static const char short_form[] = EMU2_IMG_PLACEHOLDER_SHORT;
    if (pos >= n || text[pos] != '[')
        return 0;
    size_t left = n - pos;
    if (left >= sizeof long_form - 1 && !memcmp(text + pos, long_form, sizeof long_form - 1))
        return sizeof long_form - 1;
    if (left >= sizeof short_form - 1 && !memcmp(text + pos, short_form, sizeof short_form - 1))
        return sizeof short_form - 1;
    return 0;
}

size_t emu2_placeholder_count(const char *text, size_t n)
{
    size_t count = 0;
    for (size_t pos = 0; pos < n;) {
        const char *open = memchr(text + pos, '[', n - pos);
        if (!open)
            break;
        pos = (size_t)(open - text);
        size_t len = emu2_placeholder_at(text, n, pos);
        count += len != 0;
        pos += len ? len : 1;
    }
    return count;
}

emu2_status emu2_count_placeholders(const char *prompt, size_t *count)
{
    if (!prompt || !count)
        return EMU2_ERR_INVALID_ARGUMENT;
    *count = emu2_placeholder_count(prompt, strlen(prompt));
    return EMU2_OK;
}
