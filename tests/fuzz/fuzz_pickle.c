/* fuzz_pickle.c: the restricted pickle reader on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "io/pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    emu2_pickle_state_dict sd;
    emu2_error err;
    if (emu2_pickle_load_state_dict(data, size, &sd, &err) == EMU2_OK)
        emu2_pickle_state_dict_free(&sd);
    return 0;
}
