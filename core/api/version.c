/* version.c: version and status names. */
#include <stdlib.h>

#include "emu2.h"

const char *emu2_version(void)
{
    return EMU2_VERSION_STRING;
}

const char *emu2_status_name(emu2_status status)
{
    switch (status) {
    case EMU2_OK: return "ok";
    case EMU2_ERR_INVALID_ARGUMENT: return "invalid argument";
    case EMU2_ERR_IO: return "i/o error";
    case EMU2_ERR_FORMAT: return "malformed input";
    case EMU2_ERR_UNSUPPORTED: return "unsupported";
    case EMU2_ERR_LIMIT: return "limit exceeded";
    case EMU2_ERR_MISMATCH: return "mismatch";
    case EMU2_ERR_NOMEM: return "out of memory";
    case EMU2_ERR_CANCELLED: return "cancelled";
    case EMU2_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

void emu2_free(void *ptr)
{
    free(ptr);
}
