/* pickle.h: a RESTRICTED reader of the pickle that torch.save writes for a state dict (data.pkl).
 *
 * It understands only the opcodes that layout uses and only a whitelist of globals
 * (collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.*Storage).
 * Nothing is ever executed or imported: globals are names we recognise, REDUCE builds a tensor
 * record or an empty dict, anything else is refused with a message. */
#ifndef EMU2_IO_PICKLE_H
#define EMU2_IO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"
#include "emu2.h"

typedef struct emu2_pickle_tensor {
    char *name;           /* state dict key */
    char *storage_key;    /* the zip entry data/<storage_key> */
    emu2_dtype dtype;
    uint64_t storage_numel;  /* elements of the storage, as the pickle declares */
    uint64_t storage_offset; /* in elements */
    int ndim;
    int64_t shape[EMU2_MAX_DIMS];
} emu2_pickle_tensor;

typedef struct emu2_pickle_state_dict {
    emu2_pickle_tensor *tensors; /* in pickle order */
    size_t n_tensors;
} emu2_pickle_state_dict;

/* Reads a pickled {name: tensor} dict (dict or OrderedDict). Tensors must be contiguous row-major
 * views with offset + numel inside the declared storage. */
emu2_status emu2_pickle_load_state_dict(const uint8_t *buf, size_t len, emu2_pickle_state_dict *out,
                                        emu2_error *err);
void emu2_pickle_state_dict_free(emu2_pickle_state_dict *sd);

#endif
