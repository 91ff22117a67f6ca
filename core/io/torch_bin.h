/* torch_bin.h: PyTorch's zip checkpoint (torch.save, `pytorch_model*.bin`) read in place:
 * <archive>/data.pkl (restricted pickle), <archive>/data/<key> (raw little-endian storages). */
#ifndef EMU2_IO_TORCH_BIN_H
#define EMU2_IO_TORCH_BIN_H

#include <stdint.h>

#include "emu2.h"
#include "io/named_tensor.h"

/* Parses a .bin held in memory; the returned views point into `file` (no copies). */
emu2_status emu2_torch_bin_tensors(const uint8_t *file, uint64_t size, emu2_named_tensor **out, size_t *n,
                                   emu2_error *err);

#endif
