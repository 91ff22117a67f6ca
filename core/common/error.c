/* error.c: see error.h. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

emu2_status emu2_fail(emu2_error *err, emu2_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

emu2_status emu2_fail_prefix(emu2_error *err, const char *fmt, ...)
{
    if (!err)
        return EMU2_ERR_INTERNAL;
    char prefix[EMU2_ERROR_MESSAGE_MAX];
    char old[EMU2_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    old[sizeof old - 1] = '\0';
    snprintf(err->message, sizeof err->message, "%s%s", prefix, old);
    return err->status;
}

void emu2_error_clear(emu2_error *err)
{
    if (err) {
        err->status = EMU2_OK;
        err->message[0] = '\0';
    }
}
