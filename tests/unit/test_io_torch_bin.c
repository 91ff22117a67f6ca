/* test_io_torch_bin.c: real torch.save files (f32/f16/bf16, dict and OrderedDict, shared storages)
 * read zero-copy, and malformed archives refused (tests/data/io, written by gen_io_fixtures.py). */
#include <math.h>

#include "check.h"
#include "common/tensor.h"
#include "io/torch_bin.h"
#include "io/zip.h"
#include "test_io_util.h"

/* The generator's formula for element i of the tensor with seed s. */
static float expected_value(uint64_t i, int seed)
{
    return (float)((double)((i * 7 + (uint64_t)seed) % 127) * 0.25 - 15.75);
}

static float element(const emu2_tensor_view *v, uint64_t i)
{
    const uint8_t *p = (const uint8_t *)v->data + i * emu2_dtype_size(v->dtype);
    uint16_t h;
    float f;
    switch (v->dtype) {
    case EMU2_DT_F32: memcpy(&f, p, 4); return f;
    case EMU2_DT_F16: memcpy(&h, p, 2); return emu2_f16_to_f32(h);
    case EMU2_DT_BF16: memcpy(&h, p, 2); return emu2_bf16_to_f32(h);
    default: return NAN;
    }
}

static const emu2_named_tensor *find(const emu2_named_tensor *t, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

/* checks shape and values; seed_offset = storage offset of the view inside its storage */
static int check_tensor(const emu2_named_tensor *ts, size_t n, const char *name, emu2_dtype dt, int ndim,
                        const int64_t *shape, int seed, uint64_t storage_offset)
{
    const emu2_named_tensor *t = find(ts, n, name);
    if (!t || t->view.dtype != dt || t->view.ndim != ndim)
        return 0;
    for (int d = 0; d < ndim; d++)
        if (t->view.shape[d] != shape[d])
            return 0;
    uint64_t numel = emu2_tensor_numel(&t->view);
    if (t->view.nbytes != numel * emu2_dtype_size(dt))
        return 0;
    for (uint64_t i = 0; i < numel; i++)
        if (element(&t->view, i) != expected_value(i + storage_offset, seed))
            return 0;
    return 1;
}

static void check_plain(const char *rel, emu2_dtype dt)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH(rel), &n);
    CHECKF(b != NULL, "missing fixture %s", rel);
    emu2_named_tensor *ts;
    size_t nt;
    emu2_error e = {0};
    CHECKF(emu2_torch_bin_tensors(b, n, &ts, &nt, &e) == EMU2_OK, "%s: %s", rel, e.message);
    CHECKF(nt == 6, "%s: %zu tensors", rel, nt);
    CHECK(check_tensor(ts, nt, "a", dt, 2, (int64_t[]){3, 4}, 1, 0));
    CHECK(check_tensor(ts, nt, "b.weight", dt, 3, (int64_t[]){2, 3, 5}, 2, 0));
    CHECK(check_tensor(ts, nt, "scalar", dt, 0, NULL, 3, 0));
    CHECK(check_tensor(ts, nt, "empty", dt, 2, (int64_t[]){0, 3}, 4, 0));
    CHECK(check_tensor(ts, nt, "slice", dt, 2, (int64_t[]){4, 5}, 5, 10));
    CHECK(check_tensor(ts, nt, "param", dt, 1, (int64_t[]){4}, 6, 0));
    /* zero-copy: the views point into the buffer */
    const emu2_named_tensor *a = find(ts, nt, "a");
    CHECK((const uint8_t *)a->view.data > b && (const uint8_t *)a->view.data + a->view.nbytes <= b + n);
    emu2_named_tensors_free(ts, nt);
    free(b);
}

TEST(reads_f32)
{
    check_plain("tests/data/io/plain_f32.bin", EMU2_DT_F32);
}
TEST(reads_f16)
{
    check_plain("tests/data/io/plain_f16.bin", EMU2_DT_F16);
}
TEST(reads_bf16)
{
    check_plain("tests/data/io/plain_bf16.bin", EMU2_DT_BF16);
}

TEST(reads_plain_dict)
{
    size_t n, nt;
    uint8_t *b = io_read_file(ROOT_PATH("tests/data/io/plain_dict.bin"), &n);
    CHECK(b != NULL);
    emu2_named_tensor *ts;
    emu2_error e = {0};
    CHECKF(emu2_torch_bin_tensors(b, n, &ts, &nt, &e) == EMU2_OK, "%s", e.message);
    CHECK(nt == 2);
    CHECK(check_tensor(ts, nt, "x", EMU2_DT_F32, 2, (int64_t[]){2, 2}, 7, 0));
    CHECK(check_tensor(ts, nt, "y", EMU2_DT_F32, 1, (int64_t[]){3}, 8, 0));
    emu2_named_tensors_free(ts, nt);
    free(b);
}

static void expect_bad_file(const char *rel, const char *pattern)
{
    size_t n, nt;
    uint8_t *b = io_read_file(ROOT_PATH(rel), &n);
    CHECKF(b != NULL, "missing %s", rel);
    emu2_named_tensor *ts;
    emu2_error e = {0};
    emu2_status st = emu2_torch_bin_tensors(b, n, &ts, &nt, &e);
    free(b);
    CHECKF(st != EMU2_OK, "%s accepted", rel);
    CHECKF(strstr(e.message, pattern), "%s: '%s' lacks '%s'", rel, e.message, pattern);
}

TEST(refuses_non_contiguous)
{
    expect_bad_file("tests/data/io/noncontig.bin", "not contiguous");
}

TEST(refuses_compressed_entries)
{
    expect_bad_file("tests/data/io/compressed.bin", "compressed");
}

TEST(refuses_non_zip)
{
    expect_bad_file("tests/data/io/pickle/torch_state_dict.pkl", "end-of-central-directory");
}

TEST(every_truncation_is_refused)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH("tests/data/io/plain_f32.bin"), &n);
    CHECK(b != NULL);
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, b, len);
        emu2_named_tensor *ts;
        size_t nt;
        emu2_error e = {0};
        emu2_status st = emu2_torch_bin_tensors(copy, len, &ts, &nt, &e);
        free(copy);
        if (st == EMU2_OK)
            emu2_named_tensors_free(ts, nt);
        CHECKF(st != EMU2_OK, "prefix of %zu bytes accepted", len);
        CHECK(e.message[0]);
    }
    free(b);
}

/* Offset of the first central directory header. */
static size_t central_dir(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (b[i] == 0x50 && b[i + 1] == 0x4b && b[i + 2] == 1 && b[i + 3] == 2)
            return i;
    return 0;
}

static emu2_status parse_modified(const uint8_t *b, size_t n, emu2_error *e)
{
    emu2_named_tensor *ts;
    size_t nt;
    emu2_status st = emu2_torch_bin_tensors(b, n, &ts, &nt, e);
    if (st == EMU2_OK)
        emu2_named_tensors_free(ts, nt);
    return st;
}

TEST(refuses_entry_beyond_eof)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH("tests/data/io/plain_f32.bin"), &n);
    CHECK(b != NULL);
    size_t cd = central_dir(b, n);
    CHECK(cd > 0);
    /* first entry (data.pkl): compressed and uncompressed sizes far past the end */
    memcpy(b + cd + 20, "\x00\x00\x10\x00", 4);
    memcpy(b + cd + 24, "\x00\x00\x10\x00", 4);
    emu2_error e = {0};
    CHECK(parse_modified(b, n, &e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "past the end of the file"), "%s", e.message);
    free(b);
}

TEST(refuses_bad_central_directory)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH("tests/data/io/plain_f32.bin"), &n);
    CHECK(b != NULL);
    size_t cd = central_dir(b, n);
    CHECK(cd > 0);
    b[cd + 1] = 'X'; /* signature */
    emu2_error e = {0};
    CHECK(parse_modified(b, n, &e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "central directory"), "%s", e.message);
    b[cd + 1] = 0x4b;
    memcpy(b + cd + 42, "\xff\xff\xff\x7f", 4); /* local header offset far away */
    CHECK(parse_modified(b, n, &e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "no local header"), "%s", e.message);
    free(b);
}

/* Single-byte corruptions anywhere never crash. */
TEST(byte_flips_do_not_crash)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH("tests/data/io/plain_bf16.bin"), &n);
    CHECK(b != NULL);
    for (size_t i = 0; i < n; i++)
        for (int v = 0; v < 3; v++) {
            uint8_t saved = b[i];
            b[i] = v == 0 ? 0xff : v == 1 ? 0x00 : (uint8_t)(saved ^ 0x10);
            emu2_error e = {0};
            emu2_named_tensor *ts;
            size_t nt;
            if (emu2_torch_bin_tensors(b, n, &ts, &nt, &e) == EMU2_OK) {
                for (size_t t = 0; t < nt; t++) /* views stay inside the buffer */
                    CHECK((const uint8_t *)ts[t].view.data >= b &&
                          (const uint8_t *)ts[t].view.data + ts[t].view.nbytes <= b + n);
                emu2_named_tensors_free(ts, nt);
            }
            b[i] = saved;
        }
    free(b);
}

int main(void)
{
    RUN(reads_f32);
    RUN(reads_f16);
    RUN(reads_bf16);
    RUN(reads_plain_dict);
    RUN(refuses_non_contiguous);
    RUN(refuses_compressed_entries);
    RUN(refuses_non_zip);
    RUN(every_truncation_is_refused);
    RUN(refuses_entry_beyond_eof);
    RUN(refuses_bad_central_directory);
    RUN(byte_flips_do_not_crash);
    return check_finish();
}
