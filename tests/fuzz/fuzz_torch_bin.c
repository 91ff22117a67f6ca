/* fuzz_torch_bin.c: a whole PyTorch .bin (zip central directory + restricted pickle) on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "io/torch_bin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    emu2_named_tensor *ts;
    size_t n;
    emu2_error err;
    if (emu2_torch_bin_tensors(data, size, &ts, &n, &err) == EMU2_OK) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < n; i++)
            if (ts[i].view.nbytes)
                sink ^= ((const uint8_t *)ts[i].view.data)[ts[i].view.nbytes - 1];
        (void)sink;
        emu2_named_tensors_free(ts, n);
    }
    return 0;
}
