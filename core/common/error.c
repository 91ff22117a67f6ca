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
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t plen = n < 0 ? 0 : (size_t)n;
    if (plen > sizeof prefix - 1)
        plen = sizeof prefix - 1;
    size_t cap = sizeof err->message - 1;
    size_t mlen = strnlen(err->message, cap);
    /* keep the prefix whole; cut the old message's tail when both do not fit */
    if (plen + mlen > cap)
        mlen = cap - plen;
    memmove(err->message + plen, err->message, mlen);
    memcpy(err->message, prefix, plen);
    err->message[plen + mlen] = '\0';
    return err->status;
}

void emu2_error_clear(emu2_error *err)
{
    if (err) {
        err->status = EMU2_OK;
        err->message[0] = '\0';
    }
}
