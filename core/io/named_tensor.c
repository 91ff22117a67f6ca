/* named_tensor.c: see named_tensor.h. */
#include "io/named_tensor.h"

#include <stdlib.h>

void emu2_named_tensors_free(emu2_named_tensor *t, size_t n)
{
    for (size_t i = 0; t && i < n; i++)
        free(t[i].name);
    free(t);
}
