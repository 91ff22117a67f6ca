/* utf8.h: strict UTF-8 checks and Python's notion of whitespace, for the tokenizer.
 *
 * Python strings (the reference) can only hold valid Unicode, so the engine accepts exactly the
 * byte strings that are valid UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). */
#ifndef EMU2_TEXT_UTF8_H
#define EMU2_TEXT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns true if s[0..n) is valid UTF-8; otherwise false and *bad_offset = first bad byte. */
bool emu2_utf8_valid(const char *s, size_t n, size_t *bad_offset);

/* Decodes the code point at s[i] of a valid UTF-8 string; returns its length in bytes (1..4). */
size_t emu2_utf8_decode(const char *s, size_t n, size_t i, uint32_t *cp);

/* str.isspace() of Python 3 for one code point (what str.strip() removes). */
bool emu2_py_isspace(uint32_t cp);

/* Bytes of leading / trailing Python whitespace in a valid UTF-8 string s[0..n). */
size_t emu2_py_lstrip_len(const char *s, size_t n);
size_t emu2_py_rstrip_len(const char *s, size_t n);

#endif
