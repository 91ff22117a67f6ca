/* zip.h: the central directory of a zip archive held in memory (a mapped PyTorch .bin).
 *
 * Why not libzip/minizip: we need the file offset of each *stored* entry's bytes so tensor data can be
 * used in place from the mmap (zero-copy, 10 GB shards); those libraries hand out decompressing read
 * streams instead. PyTorch's writer only emits stored entries, so the reader needs no inflate at all. */
#ifndef EMU2_IO_ZIP_H
#define EMU2_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

typedef struct emu2_zip_entry {
    char *name;
    uint64_t data_offset; /* offset of the entry's (possibly compressed) bytes in the archive */
    uint64_t comp_size;
    uint64_t size;        /* uncompressed */
    uint16_t method;      /* 0 = stored */
    uint16_t flags;       /* general purpose bits; bit 0 = encrypted */
} emu2_zip_entry;

typedef struct emu2_zip {
    emu2_zip_entry *entries; /* sorted by name */
    size_t n_entries;
} emu2_zip;

/* Parses the end record (ZIP64 included), the central directory and every local header; checks that
 * each entry's bytes lie inside the archive. Names are unique. */
emu2_status emu2_zip_parse(const uint8_t *buf, uint64_t size, emu2_zip *out, emu2_error *err);
const emu2_zip_entry *emu2_zip_find(const emu2_zip *z, const char *name);
/* The bytes of a stored, unencrypted entry; an error for compressed or encrypted entries. */
emu2_status emu2_zip_stored_bytes(const emu2_zip_entry *e, emu2_error *err);
void emu2_zip_free(emu2_zip *z);

#endif
