/* test_io_safetensors.c: the safetensors header reader on good and hostile headers built in memory. */
#include "check.h"
#include "io/safetensors.h"
#include "test_io_util.h"

/* 8-byte length + header + data_len zero bytes, in an exactly-sized buffer (ASan sees overreads). */
static uint8_t *make_file(const char *header, uint64_t data_len, uint64_t *size)
{
    size_t h = strlen(header);
    *size = 8 + h + data_len;
    uint8_t *b = calloc(1, (size_t)*size);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    return b;
}

static emu2_status parse(const char *header, uint64_t data_len, emu2_st_header *out, emu2_error *e)
{
    uint64_t n;
    uint8_t *b = make_file(header, data_len, &n);
    emu2_status st = emu2_safetensors_parse(b, n, out, e);
    free(b);
    return st;
}

TEST(valid_header)
{
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[16,28]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"s\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[28,30]},"
                    "\"z\":{\"dtype\":\"I64\",\"shape\":[0,5],\"data_offsets\":[30,30]}}";
    emu2_st_header sh;
    emu2_error e = {0};
    CHECKF(parse(h, 30, &sh, &e) == EMU2_OK, "%s", e.message);
    CHECKF(sh.n_tensors == 4 && sh.data_start == 8 + strlen(h), "n=%zu start=%llu", sh.n_tensors, (unsigned long long)sh.data_start);
    CHECK(!strcmp(sh.tensors[0].name, "a") && sh.tensors[0].offset == sh.data_start && sh.tensors[0].nbytes == 16);
    CHECK(!strcmp(sh.tensors[1].name, "b") && sh.tensors[1].dtype == EMU2_DT_BF16 && sh.tensors[1].shape[1] == 3);
    CHECK(!strcmp(sh.tensors[2].name, "s") && sh.tensors[2].ndim == 0 && sh.tensors[2].nbytes == 2);
    CHECK(!strcmp(sh.tensors[3].name, "z") && sh.tensors[3].dtype == EMU2_DT_I64 && sh.tensors[3].nbytes == 0);
    emu2_st_header_free(&sh);
}

static void expect_bad(const char *h, uint64_t data_len, emu2_status want, const char *pattern)
{
    emu2_st_header sh;
    emu2_error e = {0};
    emu2_status st = parse(h, data_len, &sh, &e);
    CHECKF(st == want, "status %d want %d (%s) for %s", st, want, e.message, h);
    CHECKF(strstr(e.message, pattern), "'%s' lacks '%s'", e.message, pattern);
    CHECK(sh.tensors == NULL && sh.n_tensors == 0);
}

#define T1(body) "{\"t\":{" body "}}"

TEST(bad_offsets)
{
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]"), 8, EMU2_ERR_FORMAT, "begin 8 > end 0");
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 4, EMU2_ERR_FORMAT, "past the data");
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]"), 8, EMU2_ERR_FORMAT, "non-negative");
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]"), 8, EMU2_ERR_FORMAT, "[begin, end]");
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]"), 8, EMU2_ERR_FORMAT,
               "not valid JSON"); /* jansson refuses integers past int64 */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, EMU2_ERR_FORMAT, "overlap");
}

TEST(dtype_shape_mismatch)
{
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]"), 8, EMU2_ERR_FORMAT,
               "12 bytes for dtype F32");
    expect_bad(T1("\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]"), 16, EMU2_ERR_FORMAT, "data_offsets span 16");
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]"), 0, EMU2_ERR_FORMAT, "non-negative");
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,0]"), 0, EMU2_ERR_FORMAT, "non-negative");
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[4611686018427387904,8],\"data_offsets\":[0,0]"), 0, EMU2_ERR_FORMAT,
               "overflows");
    expect_bad(T1("\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]"), 1, EMU2_ERR_UNSUPPORTED,
               "unsupported dtype");
    expect_bad(T1("\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]"), 4, EMU2_ERR_UNSUPPORTED,
               "9 dimensions");
    expect_bad(T1("\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]"), 4, EMU2_ERR_FORMAT, "needs string 'dtype'");
}

TEST(bad_json)
{
    expect_bad("{\"t\":", 0, EMU2_ERR_FORMAT, "not valid JSON");
    expect_bad("[1,2,3]", 0, EMU2_ERR_FORMAT, "not a JSON object");
    expect_bad("{\"t\":3}", 0, EMU2_ERR_FORMAT, "not an object");
    expect_bad("{\"__metadata__\":[1]}", 0, EMU2_ERR_FORMAT, "__metadata__");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, EMU2_ERR_FORMAT, "duplicate");
}

TEST(bad_header_length)
{
    emu2_st_header sh;
    emu2_error e = {0};
    uint8_t small[7] = {0};
    CHECK(emu2_safetensors_parse(small, sizeof small, &sh, &e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "too short"), "%s", e.message);
    uint8_t b[64] = {0};
    b[0] = 200; /* header length 200 in a 64-byte file */
    CHECK(emu2_safetensors_parse(b, sizeof b, &sh, &e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "past the end"), "%s", e.message);
    memset(b, 0xff, 8); /* 2^64-1 */
    CHECK(emu2_safetensors_parse(b, sizeof b, &sh, &e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "not in [2,"), "%s", e.message);
    memset(b, 0, 8);
    b[3] = 0x10; /* 256 MiB: over the 100 MiB limit, refused before looking at the file size */
    CHECK(emu2_safetensors_parse(b, sizeof b, &sh, &e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "not in [2,"), "%s", e.message);
}

TEST(every_truncation_is_refused)
{
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[16,28]}}";
    uint64_t n;
    uint8_t *full = make_file(h, 28, &n);
    for (uint64_t len = 0; len < n; len++) {
        uint8_t *b = malloc(len ? (size_t)len : 1);
        memcpy(b, full, (size_t)len);
        emu2_st_header sh;
        emu2_error e = {0};
        emu2_status st = emu2_safetensors_parse(b, len, &sh, &e);
        free(b);
        if (st == EMU2_OK)
            emu2_st_header_free(&sh);
        CHECKF(st != EMU2_OK, "prefix %llu accepted", (unsigned long long)len);
    }
    free(full);
}

TEST(real_file_from_reference_kit)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH("tests/models/rand-chat/model.safetensors"), &n);
    if (!b)
        SKIP("tests/models/rand-chat not generated");
    emu2_named_tensor *ts;
    size_t nt;
    emu2_error e = {0};
    emu2_status st = emu2_safetensors_tensors(b, n, &ts, &nt, &e);
    int found = 0;
    for (size_t i = 0; st == EMU2_OK && i < nt; i++)
        if (!strcmp(ts[i].name, "model.visual.blocks.0.attn.qkv.bias") && ts[i].view.ndim == 1)
            found = 1;
    if (st == EMU2_OK)
        emu2_named_tensors_free(ts, nt);
    free(b);
    CHECKF(st == EMU2_OK, "%s", e.message);
    CHECK(found);
}

int main(void)
{
    RUN(valid_header);
    RUN(bad_offsets);
    RUN(dtype_shape_mismatch);
    RUN(bad_json);
    RUN(bad_header_length);
    RUN(every_truncation_is_refused);
    RUN(real_file_from_reference_kit);
    return check_finish();
}
