/* error.h: filling an emu2_error with a status and a formatted message. */
#ifndef EMU2_COMMON_ERROR_H
#define EMU2_COMMON_ERROR_H

#include "emu2.h"

#if defined(__GNUC__)
#define EMU2_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define EMU2_PRINTF(a, b)
#endif

/* Sets err (may be NULL) and returns status, so callers can write `return emu2_fail(err, ...)`. */
emu2_status emu2_fail(emu2_error *err, emu2_status status, const char *fmt, ...) EMU2_PRINTF(3, 4);
/* Prefixes an existing message with context ("model.safetensors: " + message). */
emu2_status emu2_fail_prefix(emu2_error *err, const char *fmt, ...) EMU2_PRINTF(2, 3);
void emu2_error_clear(emu2_error *err);

#endif
