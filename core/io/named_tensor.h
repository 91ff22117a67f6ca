/* named_tensor.h: a tensor as a checkpoint file stores it: its stored name and a view of its bytes. */
#ifndef EMU2_IO_NAMED_TENSOR_H
#define EMU2_IO_NAMED_TENSOR_H

#include <stddef.h>

#include "common/tensor.h"

typedef struct emu2_named_tensor {
    char *name; /* malloc'd */
    emu2_tensor_view view;
} emu2_named_tensor;

void emu2_named_tensors_free(emu2_named_tensor *t, size_t n);

#endif
