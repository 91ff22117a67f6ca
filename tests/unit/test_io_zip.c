/* test_io_zip.c: ZIP64 archives as PyTorch writes them for multi-GB shards, built here in C: one in
 * memory, and one sparse file of ~4.5 GiB whose second storage and central directory lie past 4 GiB
 * (only headers and 16 bytes of data are written; the hole is never read). */
#include <fcntl.h>
#include <sys/stat.h>

#include "check.h"
#include "io/mapped_file.h"
#include "io/torch_bin.h"
#include "io/zip.h"
#include "test_io_util.h"

/* Output either to a growing memory buffer or to a file at explicit offsets (holes stay sparse). */
typedef struct sink {
    uint8_t *mem;
    size_t cap;
    int fd; /* -1: memory */
    uint64_t pos;
    int failed;
} sink;

static void put(sink *s, const void *data, uint64_t n)
{
    if (s->failed)
        return;
    if (s->fd >= 0) {
        if (data && pwrite(s->fd, data, (size_t)n, (off_t)s->pos) != (ssize_t)n)
            s->failed = 1;
    } else {
        if (s->pos + n > s->cap) {
            size_t c = (size_t)(s->pos + n) * 2;
            uint8_t *m = realloc(s->mem, c);
            if (!m) {
                s->failed = 1;
                return;
            }
            memset(m + s->cap, 0, c - s->cap);
            s->mem = m;
            s->cap = c;
        }
        if (data)
            memcpy(s->mem + s->pos, data, (size_t)n);
    }
    s->pos += n;
}

static void put16(sink *s, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(s, b, 2);
}
static void put32(sink *s, uint32_t v)
{
    put16(s, (uint16_t)v);
    put16(s, (uint16_t)(v >> 16));
}
static void put64(sink *s, uint64_t v)
{
    put32(s, (uint32_t)v);
    put32(s, (uint32_t)(v >> 32));
}

typedef struct zent {
    const char *name;
    const void *data; /* NULL: a hole of `size` bytes */
    uint64_t size;
    uint64_t local; /* filled by write_zip64 */
} zent;

/* Every entry stored, every size and offset in ZIP64 extra fields, ZIP64 end records. */
static void write_zip64(sink *s, zent *e, int n)
{
    for (int i = 0; i < n; i++) {
        e[i].local = s->pos;
        uint16_t nl = (uint16_t)strlen(e[i].name);
        put32(s, 0x04034b50), put16(s, 45), put16(s, 0), put16(s, 0), put32(s, 0), put32(s, 0);
        put32(s, 0xffffffffu), put32(s, 0xffffffffu), put16(s, nl), put16(s, 20);
        put(s, e[i].name, nl);
        put16(s, 1), put16(s, 16), put64(s, e[i].size), put64(s, e[i].size);
        put(s, e[i].data, e[i].size);
    }
    uint64_t cd = s->pos;
    for (int i = 0; i < n; i++) {
        uint16_t nl = (uint16_t)strlen(e[i].name);
        put32(s, 0x02014b50), put16(s, 45), put16(s, 45), put16(s, 0), put16(s, 0), put32(s, 0), put32(s, 0);
        put32(s, 0xffffffffu), put32(s, 0xffffffffu), put16(s, nl), put16(s, 28), put16(s, 0), put16(s, 0);
        put16(s, 0), put32(s, 0), put32(s, 0xffffffffu);
        put(s, e[i].name, nl);
        put16(s, 1), put16(s, 24), put64(s, e[i].size), put64(s, e[i].size), put64(s, e[i].local);
    }
    uint64_t cd_size = s->pos - cd, eocd64 = s->pos;
    put32(s, 0x06064b50), put64(s, 44), put16(s, 45), put16(s, 45), put32(s, 0), put32(s, 0);
    put64(s, (uint64_t)n), put64(s, (uint64_t)n), put64(s, cd_size), put64(s, cd);
    put32(s, 0x07064b50), put32(s, 0), put64(s, eocd64), put32(s, 1);
    put32(s, 0x06054b50), put16(s, 0), put16(s, 0), put16(s, 0xffff), put16(s, 0xffff);
    put32(s, 0xffffffffu), put32(s, 0xffffffffu), put16(s, 0);
}

/* {'w': FloatStorage '0' [rows, 1024], 'b': FloatStorage '1' [4]} */
static size_t make_pickle(uint8_t *out, uint32_t rows)
{
    static const char head[] = "\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n"
                               "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0"
                               "X\x03\x00\x00\x00" "cpuJ";
    size_t n = 0;
    memcpy(out, head, sizeof head - 1), n += sizeof head - 1;
    uint32_t numel = rows * 1024u;
    memcpy(out + n, &numel, 4), n += 4; /* little-endian host */
    memcpy(out + n, "tQK\x00J", 5), n += 5;
    memcpy(out + n, &rows, 4), n += 4;
    static const char mid[] = "M\x00\x04\x86M\x00\x04K\x01\x86\x89}tR"
                              "X\x01\x00\x00\x00" "bctorch._utils\n_rebuild_tensor_v2\n"
                              "((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "1"
                              "X\x03\x00\x00\x00" "cpuK\x04tQK\x00K\x04\x85K\x01\x85\x89}tRu.";
    memcpy(out + n, mid, sizeof mid - 1), n += sizeof mid - 1;
    return n;
}

static const float small_values[4] = {1.5f, -2.0f, 3.25f, 0.0f};

TEST(zip64_in_memory)
{
    uint8_t pkl[512];
    size_t pn = make_pickle(pkl, 2);
    float big[2048];
    for (int i = 0; i < 2048; i++)
        big[i] = (float)i;
    zent e[] = {{"arc/data.pkl", pkl, pn, 0}, {"arc/data/0", big, sizeof big, 0},
                {"arc/data/1", small_values, sizeof small_values, 0}, {"arc/version", "3\n", 2, 0}};
    sink s = {.fd = -1};
    write_zip64(&s, e, 4);
    CHECK(!s.failed);
    emu2_named_tensor *ts;
    size_t nt;
    emu2_error err = {0};
    CHECKF(emu2_torch_bin_tensors(s.mem, s.pos, &ts, &nt, &err) == EMU2_OK, "%s", err.message);
    CHECK(nt == 2 && !strcmp(ts[0].name, "w") && ts[0].view.shape[0] == 2 && ts[0].view.shape[1] == 1024);
    CHECK(!memcmp(ts[0].view.data, big, sizeof big));
    CHECK(!memcmp(ts[1].view.data, small_values, sizeof small_values));
    emu2_named_tensors_free(ts, nt);

    /* a locator pointing nowhere */
    uint8_t *loc = s.mem + s.pos - 22 - 20;
    CHECK(loc[0] == 0x50 && loc[2] == 6 && loc[3] == 7);
    uint64_t saved;
    memcpy(&saved, loc + 8, 8);
    uint64_t bad = s.pos * 4;
    memcpy(loc + 8, &bad, 8);
    CHECK(emu2_torch_bin_tensors(s.mem, s.pos, &ts, &nt, &err) == EMU2_ERR_FORMAT);
    CHECKF(strstr(err.message, "ZIP64"), "%s", err.message);
    memcpy(loc + 8, &saved, 8);
    /* the locator removed: the end record still asks for ZIP64 */
    loc[0] = 0;
    CHECK(emu2_torch_bin_tensors(s.mem, s.pos, &ts, &nt, &err) == EMU2_ERR_FORMAT);
    CHECKF(strstr(err.message, "ZIP64"), "%s", err.message);
    free(s.mem);
}

TEST(zip64_sparse_file_past_4_gib)
{
    char dir[512], path[600];
    CHECK(io_temp_dir(dir, sizeof dir, "zip64"));
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    CHECK(fd >= 0);
    uint32_t rows = 1179648; /* 1179648 x 1024 floats = 4.5 GiB */
    uint8_t pkl[512];
    size_t pn = make_pickle(pkl, rows);
    zent e[] = {{"arc/data.pkl", pkl, pn, 0}, {"arc/data/0", NULL, (uint64_t)rows * 4096u, 0},
                {"arc/data/1", small_values, sizeof small_values, 0}};
    sink s = {.fd = fd};
    write_zip64(&s, e, 3);
    int ok = !s.failed && ftruncate(fd, (off_t)s.pos) == 0;
    close(fd);
    struct stat st;
    stat(path, &st);
    emu2_mapped_file map = {0};
    emu2_error err = {0};
    emu2_named_tensor *ts = NULL;
    size_t nt = 0;
    emu2_status rs = EMU2_ERR_INTERNAL;
    if (ok && emu2_mapped_file_open(path, &map, &err) == EMU2_OK)
        rs = emu2_torch_bin_tensors(map.data, map.size, &ts, &nt, &err);
    int good = rs == EMU2_OK && nt == 2 && ts[0].view.shape[0] == rows &&
               ts[0].view.nbytes == (uint64_t)rows * 4096u &&
               (uint64_t)((const uint8_t *)ts[1].view.data - map.data) > (1ull << 32) &&
               !memcmp(ts[1].view.data, small_values, sizeof small_values);
    emu2_named_tensors_free(ts, nt);
    emu2_mapped_file_close(&map);
    io_rm_tree(dir);
    CHECKF(ok, "could not write the sparse archive");
    CHECKF(st.st_size > (off_t)(1ull << 32) && st.st_blocks * 512 < (1 << 20), "size %lld, %lld blocks",
           (long long)st.st_size, (long long)st.st_blocks);
    CHECKF(rs == EMU2_OK, "%s", err.message);
    CHECK(good);
}

TEST(rejects_short_and_garbage_archives)
{
    emu2_zip z;
    emu2_error err = {0};
    CHECK(emu2_zip_parse((const uint8_t *)"PK", 2, &z, &err) == EMU2_ERR_FORMAT);
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    CHECK(emu2_zip_parse(junk, sizeof junk, &z, &err) == EMU2_ERR_FORMAT);
    CHECKF(strstr(err.message, "end-of-central-directory"), "%s", err.message);
    /* an end record claiming 1000 entries in a 0-byte directory */
    uint8_t eocd[22] = {0x50, 0x4b, 5, 6, 0, 0, 0, 0, 0xe8, 3, 0xe8, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(emu2_zip_parse(eocd, sizeof eocd, &z, &err) == EMU2_ERR_FORMAT);
    CHECKF(strstr(err.message, "entries"), "%s", err.message);
}

int main(void)
{
    RUN(zip64_in_memory);
    RUN(zip64_sparse_file_past_4_gib);
    RUN(rejects_short_and_garbage_archives);
    return check_finish();
}
