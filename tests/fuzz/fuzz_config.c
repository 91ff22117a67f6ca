/* fuzz_config.c: config.json parsing on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "io/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    emu2_config cfg;
    emu2_error err;
    emu2_config_parse((const char *)data, size, &cfg, &err);
    return 0;
}
