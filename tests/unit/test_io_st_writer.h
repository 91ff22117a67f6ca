/* test_io_st_writer.h: writes safetensors files for the checkpoint tests: a header for a list of
 * tensors, then either zero bytes (small files) or a sparse hole (ftruncate: full-size layouts). */
#ifndef EMU2_TEST_IO_ST_WRITER_H
#define EMU2_TEST_IO_ST_WRITER_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct st_spec {
    char name[160];
    const char *dtype; /* "F32", "BF16", ... */
    size_t esize;
    int ndim;
    int64_t shape[4];
} st_spec;

/* Returns 1 on success. sparse: the data region is a hole (nothing written, nothing read). */
static inline int st_write(const char *path, const st_spec *t, size_t n, int sparse)
{
    size_t cap = 256 + n * 200, len = 0;
    char *h = malloc(cap);
    if (!h)
        return 0;
    uint64_t off = 0;
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = t[i].esize;
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) {
            len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
            bytes *= (uint64_t)t[i].shape[d];
        }
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                                (unsigned long long)(off + bytes));
        off += bytes;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) /* safetensors pads the header with spaces to 8-byte alignment */
        h[len++] = ' ';
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    int ok = fd >= 0;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)((uint64_t)len >> (8 * i));
    ok = ok && write(fd, lenb, 8) == 8 && write(fd, h, len) == (ssize_t)len;
    if (ok && sparse) {
        ok = ftruncate(fd, (off_t)(8 + len + off)) == 0;
    } else if (ok) {
        uint8_t *z = calloc(1, off ? (size_t)off : 1);
        ok = z && write(fd, z, (size_t)off) == (ssize_t)off;
        free(z);
    }
    if (fd >= 0 && close(fd) != 0)
        ok = 0;
    free(h);
    return ok;
}

static inline st_spec st_tensor(const char *name, const char *dtype, int ndim, int64_t d0, int64_t d1, int64_t d2,
                                int64_t d3)
{
    st_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "%s", name);
    s.dtype = dtype;
    s.esize = !strcmp(dtype, "F32") ? 4 : !strcmp(dtype, "I64") ? 8 : 2;
    s.ndim = ndim;
    s.shape[0] = d0, s.shape[1] = d1, s.shape[2] = d2, s.shape[3] = d3;
    return s;
}

#endif
