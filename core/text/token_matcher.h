/* token_matcher.h: finds added/special tokens in text, longest match first (a byte trie).
 *
 * transformers' Trie.split picks, from left to right, the earliest-starting match and extends it
 * to the longest token starting there; for token sets where no token occurs inside another except
 * as a prefix (true for Emu2's), that is exactly "leftmost, then longest", which this does. */
#ifndef EMU2_TEXT_TOKEN_MATCHER_H
#define EMU2_TEXT_TOKEN_MATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

typedef struct emu2_token_matcher emu2_token_matcher;

emu2_status emu2_token_matcher_new(emu2_token_matcher **out, emu2_error *err);
void emu2_token_matcher_free(emu2_token_matcher *m);
/* Adds token s[0..len) with a caller value (>= 0). A token added twice keeps the first value. */
emu2_status emu2_token_matcher_add(emu2_token_matcher *m, const char *s, size_t len, int32_t value,
                                   emu2_error *err);
/* Length of the longest token that starts at text[pos] (0 if none); *value = its value. */
size_t emu2_token_matcher_longest(const emu2_token_matcher *m, const char *text, size_t n,
                                  size_t pos, int32_t *value);
/* Finds the leftmost match at or after pos: returns its start (n if none), *len and *value. */
size_t emu2_token_matcher_find(const emu2_token_matcher *m, const char *text, size_t n, size_t pos,
                               size_t *len, int32_t *value);

#endif
