/* test_io_util.h: small file helpers shared by the checkpoint-reader tests (test_io_*.c). */
#ifndef EMU2_TEST_IO_UTIL_H
#define EMU2_TEST_IO_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whole file into a malloc'd buffer (NULL if unreadable). */
static inline uint8_t *io_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = n > 0 ? (size_t)n : 0;
    return b;
}

static inline int io_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

static inline int io_write_text(const char *dir, const char *name, const char *text)
{
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return io_write_file(p, text, strlen(text));
}

/* A fresh folder under $TMPDIR (or /tmp); path written into buf. */
static inline int io_temp_dir(char *buf, size_t size, const char *tag)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, size, "%s/emu2-%s-XXXXXX", t && *t ? t : "/tmp", tag);
    return mkdtemp(buf) != NULL;
}

/* Removes a folder the tests made (files and sub-folders, no symlink following: d_type checked). */
static inline void io_rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[4096];
            if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= sizeof p)
                continue;
            if (e->d_type == DT_DIR)
                io_rm_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Copies a file (small files only). */
static inline int io_copy_file(const char *from, const char *to)
{
    size_t n;
    uint8_t *b = io_read_file(from, &n);
    int ok = b && io_write_file(to, b, n);
    free(b);
    return ok;
}

#endif
