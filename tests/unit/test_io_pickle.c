/* test_io_pickle.c: the restricted pickle reader on a real torch data.pkl and on hostile pickles. */
#include "check.h"
#include "io/pickle.h"
#include "test_io_util.h"

static emu2_status load(const char *rel, emu2_pickle_state_dict *sd, emu2_error *e)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH(rel), &n);
    if (!b) {
        e->status = EMU2_ERR_IO;
        snprintf(e->message, sizeof e->message, "cannot read %s", rel);
        return EMU2_ERR_IO;
    }
    emu2_status st = emu2_pickle_load_state_dict(b, n, sd, e);
    free(b);
    return st;
}

TEST(real_torch_state_dict)
{
    emu2_pickle_state_dict sd;
    emu2_error e = {0};
    CHECKF(load("tests/data/io/pickle/torch_state_dict.pkl", &sd, &e) == EMU2_OK, "%s", e.message);
    CHECKF(sd.n_tensors == 6, "n=%zu", sd.n_tensors);
    CHECK(!strcmp(sd.tensors[0].name, "a") && sd.tensors[0].ndim == 2 && sd.tensors[0].shape[0] == 3 &&
          sd.tensors[0].shape[1] == 4 && sd.tensors[0].dtype == EMU2_DT_BF16);
    CHECK(!strcmp(sd.tensors[2].name, "scalar") && sd.tensors[2].ndim == 0);
    CHECK(!strcmp(sd.tensors[3].name, "empty") && sd.tensors[3].shape[0] == 0);
    const emu2_pickle_tensor *s = &sd.tensors[4];
    CHECK(!strcmp(s->name, "slice") && s->storage_offset == 10 && s->storage_numel == 64 && s->ndim == 2);
    CHECK(!strcmp(sd.tensors[5].name, "param") && sd.tensors[5].shape[0] == 4);
    emu2_pickle_state_dict_free(&sd);
}

TEST(valid_handmade_pickle)
{
    emu2_pickle_state_dict sd;
    emu2_error e = {0};
    CHECKF(load("tests/data/io/pickle/valid_one_tensor.pkl", &sd, &e) == EMU2_OK, "%s", e.message);
    CHECK(sd.n_tensors == 1 && sd.tensors[0].dtype == EMU2_DT_F32 && sd.tensors[0].shape[1] == 3 &&
          !strcmp(sd.tensors[0].storage_key, "0"));
    emu2_pickle_state_dict_free(&sd);
}

static void expect_refused(const char *name, emu2_status want, const char *pattern)
{
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/io/pickle/%s.pkl", name);
    emu2_pickle_state_dict sd;
    emu2_error e = {0};
    emu2_status st = load(rel, &sd, &e);
    CHECKF(st != EMU2_OK && st != EMU2_ERR_IO, "%s: accepted (status %d)", name, st);
    CHECKF(want == EMU2_OK || st == want, "%s: status %d, want %d (%s)", name, st, want, e.message);
    CHECKF(strstr(e.message, pattern) != NULL, "%s: message '%s' lacks '%s'", name, e.message, pattern);
    CHECK(sd.tensors == NULL && sd.n_tensors == 0);
}

TEST(refuses_os_system)
{
    expect_refused("global_os_system", EMU2_ERR_UNSUPPORTED, "refusing global 'os.system'");
    expect_refused("global_posix_system", EMU2_ERR_UNSUPPORTED, "refusing global 'posix.system'");
    expect_refused("global_builtins_eval", EMU2_ERR_UNSUPPORTED, "builtins.eval");
}

TEST(refuses_unknown_and_unsafe_opcodes)
{
    expect_refused("unknown_opcode", EMU2_ERR_UNSUPPORTED, "opcode 0xff");
    expect_refused("inst_opcode", EMU2_ERR_UNSUPPORTED, "opcode 0x69");
    expect_refused("storage_global_called", EMU2_ERR_UNSUPPORTED, "storage");
}

TEST(refuses_absurd_sizes_and_nesting)
{
    expect_refused("huge_string_length", EMU2_ERR_FORMAT, "past the end");
    expect_refused("deep_nesting", EMU2_ERR_LIMIT, "nesting too deep");
    expect_refused("huge_memo_index", EMU2_ERR_LIMIT, "memo index");
    expect_refused("absurd_shape", EMU2_OK, "overflow");
}

TEST(refuses_malformed_structure)
{
    expect_refused("truncated", EMU2_ERR_FORMAT, "no STOP");
    expect_refused("memo_get_unset", EMU2_ERR_FORMAT, "unset");
    expect_refused("stack_underflow", EMU2_ERR_FORMAT, "underflow");
    expect_refused("not_a_dict", EMU2_ERR_UNSUPPORTED, "not a dict");
    expect_refused("value_not_tensor", EMU2_ERR_UNSUPPORTED, "value of 'a' is not a tensor");
    expect_refused("bad_persistent_id", EMU2_ERR_UNSUPPORTED, "persistent id");
    expect_refused("storage_key_with_slash", EMU2_ERR_FORMAT, "storage key");
}

TEST(refuses_bad_tensors)
{
    expect_refused("tensor_past_storage", EMU2_ERR_FORMAT, "past the end of its storage");
    expect_refused("non_contiguous", EMU2_ERR_UNSUPPORTED, "not contiguous");
}

/* Every prefix of a valid pickle is refused cleanly (no crash, no leak under ASan). */
TEST(every_truncation_is_refused)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH("tests/data/io/pickle/torch_state_dict.pkl"), &n);
    CHECK(b != NULL);
    for (size_t len = 0; len < n; len++) {
        emu2_pickle_state_dict sd;
        emu2_error e = {0};
        uint8_t *copy = malloc(len ? len : 1); /* exact-size buffer so ASan sees any overread */
        memcpy(copy, b, len);
        emu2_status st = emu2_pickle_load_state_dict(copy, len, &sd, &e);
        free(copy);
        if (st == EMU2_OK)
            emu2_pickle_state_dict_free(&sd);
        CHECKF(st != EMU2_OK, "prefix of %zu bytes accepted", len);
    }
    free(b);
}

/* Single-byte corruptions never crash; whatever is accepted is a well-formed result. */
TEST(byte_flips_do_not_crash)
{
    size_t n;
    uint8_t *b = io_read_file(ROOT_PATH("tests/data/io/pickle/torch_state_dict.pkl"), &n);
    CHECK(b != NULL);
    static const uint8_t vals[] = {0x00, 0xff, 0x7f, 0x80, '.', '(', 'R', 'Q', 'h'};
    for (size_t i = 0; i < n; i++)
        for (size_t v = 0; v < sizeof vals; v++) {
            uint8_t saved = b[i];
            b[i] = vals[v];
            emu2_pickle_state_dict sd;
            emu2_error e = {0};
            if (emu2_pickle_load_state_dict(b, n, &sd, &e) == EMU2_OK) {
                for (size_t t = 0; t < sd.n_tensors; t++)
                    CHECK(sd.tensors[t].name && sd.tensors[t].storage_key && sd.tensors[t].ndim <= EMU2_MAX_DIMS);
                emu2_pickle_state_dict_free(&sd);
            } else {
                CHECK(e.message[0] != '\0');
            }
            b[i] = saved;
        }
    free(b);
}

int main(void)
{
    RUN(real_torch_state_dict);
    RUN(valid_handmade_pickle);
    RUN(refuses_os_system);
    RUN(refuses_unknown_and_unsafe_opcodes);
    RUN(refuses_absurd_sizes_and_nesting);
    RUN(refuses_malformed_structure);
    RUN(refuses_bad_tensors);
    RUN(every_truncation_is_refused);
    RUN(byte_flips_do_not_crash);
    return check_finish();
}
