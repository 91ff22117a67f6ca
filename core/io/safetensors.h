/* safetensors.h: the safetensors format (8-byte little-endian header length, JSON header, raw data),
 * parsed from bytes already in memory (a mapped file, or a fuzzer's buffer). */
#ifndef EMU2_IO_SAFETENSORS_H
#define EMU2_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"
#include "emu2.h"
#include "io/named_tensor.h"

#define EMU2_ST_MAX_HEADER_BYTES (100u << 20)

typedef struct emu2_st_tensor {
    char *name;
    emu2_dtype dtype;
    int ndim;
    int64_t shape[EMU2_MAX_DIMS];
    uint64_t offset; /* absolute offset of the data in the file */
    uint64_t nbytes;
} emu2_st_tensor;

typedef struct emu2_st_header {
    emu2_st_tensor *tensors; /* in the order of their data offsets */
    size_t n_tensors;
    uint64_t data_start; /* 8 + header length */
} emu2_st_header;

/* Validates the header of a safetensors file of file_size bytes whose first bytes are `file` (the
 * whole file must be addressable: offsets are checked against file_size, data is not read). Every
 * tensor's byte range lies inside the file, ranges do not overlap, dtype x shape = byte length. */
emu2_status emu2_safetensors_parse(const uint8_t *file, uint64_t file_size, emu2_st_header *out,
                                   emu2_error *err);
void emu2_st_header_free(emu2_st_header *h);

/* The same, as named views into `file` (no copies). */
emu2_status emu2_safetensors_tensors(const uint8_t *file, uint64_t file_size, emu2_named_tensor **out,
                                     size_t *n, emu2_error *err);

#endif
