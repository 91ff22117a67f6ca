/* mapped_file.h: a whole file mapped read-only, so checkpoint tensors are views into the page cache. */
#ifndef EMU2_IO_MAPPED_FILE_H
#define EMU2_IO_MAPPED_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

typedef struct emu2_mapped_file {
    const uint8_t *data; /* NULL for an empty file */
    uint64_t size;
} emu2_mapped_file;

/* Maps PATH (read-only, private). An empty file maps to data == NULL, size 0. */
emu2_status emu2_mapped_file_open(const char *path, emu2_mapped_file *out, emu2_error *err);
void emu2_mapped_file_close(emu2_mapped_file *f);

/* Reads a small text file (config, index JSON) into a NUL-terminated malloc'd buffer, refusing files
 * larger than max_bytes before reading them. */
emu2_status emu2_read_small_file(const char *path, size_t max_bytes, char **text, size_t *len,
                                 emu2_error *err);

#endif
