/* fuzz_safetensors.c: the safetensors header reader on arbitrary bytes (the buffer is the whole file). */
#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    emu2_named_tensor *ts;
    size_t n;
    emu2_error err;
    if (emu2_safetensors_tensors(data, size, &ts, &n, &err) == EMU2_OK) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < n; i++) /* every view must lie inside the buffer: touch its ends */
            if (ts[i].view.nbytes)
                sink ^= ((const uint8_t *)ts[i].view.data)[0] ^
                        ((const uint8_t *)ts[i].view.data)[ts[i].view.nbytes - 1];
        (void)sink;
        emu2_named_tensors_free(ts, n);
    }
    return 0;
}
