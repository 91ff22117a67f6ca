/* placeholders.h: image placeholders in prompts: "[<IMG_PLH>]" (Emu2's constant) and "[]" (how the
 * published examples print it). Both stand for [IMG] + <image> x n_query + [/IMG]. Matching is
 * left to right without overlaps, trying the long form first (Python's re.sub with
 * "\[<IMG_PLH>\]|\[\]"). */
#ifndef EMU2_TEXT_PLACEHOLDERS_H
#define EMU2_TEXT_PLACEHOLDERS_H

#include <stddef.h>

#define EMU2_IMG_PLACEHOLDER "[<IMG_PLH>]"
#define EMU2_IMG_PLACEHOLDER_SHORT "[]"

/* Byte length of the placeholder that starts at text[pos] (0 if none). */
size_t emu2_placeholder_at(const char *text, size_t n, size_t pos);
/* Number of placeholders in text[0..n). */
size_t emu2_placeholder_count(const char *text, size_t n);

#endif
