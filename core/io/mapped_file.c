/* mapped_file.c: see mapped_file.h. */
#include "io/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"

emu2_status emu2_mapped_file_open(const char *path, emu2_mapped_file *out, emu2_error *err)
{
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return emu2_fail(err, EMU2_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return emu2_fail(err, EMU2_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return emu2_fail(err, EMU2_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return EMU2_OK;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: file too large to map", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file alive */
    if (p == MAP_FAILED)
        return emu2_fail(err, EMU2_ERR_IO, "%s: cannot map: %s", path, strerror(e));
    out->data = p;
    out->size = (uint64_t)st.st_size;
    return EMU2_OK;
}

void emu2_mapped_file_close(emu2_mapped_file *f)
{
    if (f && f->data)
        munmap((void *)f->data, (size_t)f->size);
    if (f) {
        f->data = NULL;
        f->size = 0;
    }
}

emu2_status emu2_read_small_file(const char *path, size_t max_bytes, char **text, size_t *len,
                                 emu2_error *err)
{
    *text = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return emu2_fail(err, EMU2_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return emu2_fail(err, EMU2_ERR_IO, "%s: not a readable regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: %llu bytes, more than the limit of %zu", path,
                         (unsigned long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return emu2_fail(err, EMU2_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return emu2_fail(err, EMU2_ERR_IO, "%s: read failed: %s", path,
                             r == 0 ? "file shrank" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return EMU2_OK;
}
