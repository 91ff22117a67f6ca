/* test_io_inspect.c: emu2_inspect on full-size Emu2 layouts and on the small test models.
 *
 * The full-size test writes, at test time, a SPARSE safetensors file with every tensor name and shape
 * of the published Emu2 checkpoint (EMU2-SPEC.md §7.2, spelled out here from the spec's literal
 * sizes, independently of core/io/layout.c): a real header, then ftruncate to the full ~148 GB (f32)
 * so no data block is written or read. Once with native names (q_bias/v_bias), once with HF names
 * (fused qkv.bias + rotary_emb.inv_freq buffers), then copies with one tensor mis-shaped / missing. */
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"
#include "common/error.h"
#include "emu2.h"
#include "test_io_st_writer.h"
#include "test_io_util.h"

#define SPEC_TOTAL_NATIVE 36906513152ull /* EMU2-SPEC.md §7.3 */
#define SPEC_FUSED_EXTRA 114688ull       /* 64 blocks x 1792 k-bias elements */

enum naming { NATIVE, HF };

typedef struct layout {
    st_spec *t;
    size_t n, cap;
} layout;

static void push(layout *l, const char *dtype, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                 const char *fmt, int i, const char *prefix)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 2048;
        l->t = realloc(l->t, l->cap * sizeof *l->t);
    }
    char name[128], full[160];
    snprintf(name, sizeof name, fmt, i);
    snprintf(full, sizeof full, "%s%s", prefix, name);
    l->t[l->n++] = st_tensor(full, dtype, ndim, d0, d1, d2, d3);
}

/* Emu2 (vocab 32272) or Emu2-Chat (32274), all from §7.2's literal shapes. */
static layout emu2_layout(enum naming naming, int64_t V)
{
    layout l = {0};
    const char *m = naming == HF ? "model." : "";
    const char *F = "F32";
    push(&l, F, 2, 6656, 1792, 0, 0, "project_up.weight", 0, "");
    push(&l, F, 2, 1792, 6656, 0, 0, "project_down.weight", 0, "");
    push(&l, F, 3, 1, 1, 1792, 0, "visual.cls_token", 0, m);
    push(&l, F, 3, 1, 1025, 1792, 0, "visual.pos_embed", 0, m);
    push(&l, F, 4, 1792, 3, 14, 14, "visual.patch_embed.proj.weight", 0, m);
    push(&l, F, 1, 1792, 0, 0, 0, "visual.patch_embed.proj.bias", 0, m);
    for (int i = 0; i < 64; i++) {
        push(&l, F, 1, 1792, 0, 0, 0, "visual.blocks.%d.norm1.weight", i, m);
        push(&l, F, 1, 1792, 0, 0, 0, "visual.blocks.%d.norm1.bias", i, m);
        push(&l, F, 2, 5376, 1792, 0, 0, "visual.blocks.%d.attn.qkv.weight", i, m);
        if (naming == HF) {
            push(&l, F, 1, 5376, 0, 0, 0, "visual.blocks.%d.attn.qkv.bias", i, m);
        } else {
            push(&l, F, 1, 1792, 0, 0, 0, "visual.blocks.%d.attn.q_bias", i, m);
            push(&l, F, 1, 1792, 0, 0, 0, "visual.blocks.%d.attn.v_bias", i, m);
        }
        push(&l, F, 2, 1792, 1792, 0, 0, "visual.blocks.%d.attn.proj.weight", i, m);
        push(&l, F, 1, 1792, 0, 0, 0, "visual.blocks.%d.attn.proj.bias", i, m);
        push(&l, F, 1, 1792, 0, 0, 0, "visual.blocks.%d.norm2.weight", i, m);
        push(&l, F, 1, 1792, 0, 0, 0, "visual.blocks.%d.norm2.bias", i, m);
        push(&l, F, 2, 15360, 1792, 0, 0, "visual.blocks.%d.mlp.fc1.weight", i, m);
        push(&l, F, 1, 15360, 0, 0, 0, "visual.blocks.%d.mlp.fc1.bias", i, m);
        push(&l, F, 2, 1792, 15360, 0, 0, "visual.blocks.%d.mlp.fc2.weight", i, m);
        push(&l, F, 1, 1792, 0, 0, 0, "visual.blocks.%d.mlp.fc2.bias", i, m);
    }
    push(&l, F, 2, V, 6656, 0, 0, "decoder.lm.model.embed_tokens.weight", 0, m);
    for (int j = 0; j < 60; j++) {
        push(&l, F, 1, 6656, 0, 0, 0, "decoder.lm.model.layers.%d.input_layernorm.weight", j, m);
        push(&l, F, 2, 6656, 6656, 0, 0, "decoder.lm.model.layers.%d.self_attn.q_proj.weight", j, m);
        push(&l, F, 2, 6656, 6656, 0, 0, "decoder.lm.model.layers.%d.self_attn.k_proj.weight", j, m);
        push(&l, F, 2, 6656, 6656, 0, 0, "decoder.lm.model.layers.%d.self_attn.v_proj.weight", j, m);
        push(&l, F, 2, 6656, 6656, 0, 0, "decoder.lm.model.layers.%d.self_attn.o_proj.weight", j, m);
        if (naming == HF)
            push(&l, F, 1, 64, 0, 0, 0, "decoder.lm.model.layers.%d.self_attn.rotary_emb.inv_freq", j, m);
        push(&l, F, 1, 6656, 0, 0, 0, "decoder.lm.model.layers.%d.post_attention_layernorm.weight", j, m);
        push(&l, F, 2, 17920, 6656, 0, 0, "decoder.lm.model.layers.%d.mlp.gate_proj.weight", j, m);
        push(&l, F, 2, 17920, 6656, 0, 0, "decoder.lm.model.layers.%d.mlp.up_proj.weight", j, m);
        push(&l, F, 2, 6656, 17920, 0, 0, "decoder.lm.model.layers.%d.mlp.down_proj.weight", j, m);
    }
    push(&l, F, 1, 6656, 0, 0, 0, "decoder.lm.model.norm.weight", 0, m);
    push(&l, F, 2, V, 6656, 0, 0, "decoder.lm.lm_head.weight", 0, m);
    return l;
}

static st_spec *find_spec(layout *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, name))
            return &l->t[i];
    return NULL;
}

/* Writes DIR/config.json (copied from the published one) and DIR/model.safetensors (sparse). */
static int make_model_dir(char *dir, size_t size, const char *config_src, const layout *l)
{
    if (!io_temp_dir(dir, size, "fullsize"))
        return 0;
    char p[700];
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (!io_copy_file(config_src, p))
        return 0;
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    return st_write(p, l->t, l->n, 1);
}

/* Runs `$EMU2_BIN inspect DIR` when the binary is there; returns its exit code (-1: not run) and
 * whether stdout+stderr contained `needle`. */
static int run_cli(const char *dir, const char *needle, int *found)
{
    const char *bin = getenv("EMU2_BIN");
    *found = 0;
    if (!bin || access(bin, X_OK) != 0)
        return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' inspect '%s' 2>&1", bin, dir);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char line[1024];
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            *found = 1;
    int rc = pclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static const char *published_config(const char *which)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/config.json", SHARED_PATH(which));
    return access(path, R_OK) == 0 ? path : NULL;
}

static void full_size_case(enum naming naming, const char *which, int64_t vocab, uint64_t want)
{
    const char *cfg = published_config(which);
    if (!cfg)
        SKIP("no published config under fixtures/emu2-configs");
    layout l = emu2_layout(naming, vocab);
    char dir[512];
    int made = make_model_dir(dir, sizeof dir, cfg, &l);
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    struct stat st;
    int stat_ok = made && stat(p, &st) == 0;
    char *report = NULL;
    uint64_t n_params = 0;
    emu2_error e = {0};
    emu2_status rs = made ? emu2_inspect(dir, &report, &n_params, &e) : EMU2_ERR_IO;
    int cli_found = 0;
    int cli_rc = made ? run_cli(dir, "OK", &cli_found) : -1;
    char grouped_total[32];
    snprintf(grouped_total, sizeof grouped_total, "%llu", (unsigned long long)want);
    free(l.t);
    io_rm_tree(dir);
    CHECKF(made, "could not write the sparse checkpoint in %s", dir);
    /* sparse: >100 GB apparent, (almost) no blocks */
    CHECKF(stat_ok && st.st_size > 100000000000LL && st.st_blocks * 512LL < 64LL << 20,
           "size %lld blocks %lld", (long long)st.st_size, (long long)st.st_blocks);
    CHECKF(rs == EMU2_OK, "%s\n%s", e.message, report ? report : "");
    CHECKF(n_params == want, "n_params %llu, want %llu", (unsigned long long)n_params, (unsigned long long)want);
    CHECK(report && strstr(report, "result:      OK"));
    CHECKF(strstr(report, naming == HF ? "naming:      hf" : "naming:      native"), "%s", report);
    free(report);
    CHECKF(cli_rc == -1 || (cli_rc == 0 && cli_found), "emu2 inspect exit %d", cli_rc);
}

TEST(full_size_emu2_native_names)
{
    full_size_case(NATIVE, "fixtures/emu2-configs/Emu2", 32272, SPEC_TOTAL_NATIVE);
}

TEST(full_size_emu2_hf_fused_names)
{
    full_size_case(HF, "fixtures/emu2-configs/Emu2", 32272, SPEC_TOTAL_NATIVE + SPEC_FUSED_EXTRA);
}

TEST(full_size_emu2_chat_native_names)
{
    /* Chat: vocab 32274, i.e. 2 more rows in embed_tokens and lm_head */
    full_size_case(NATIVE, "fixtures/emu2-configs/Emu2-Chat", 32274, SPEC_TOTAL_NATIVE + 2 * 2 * 6656);
}

/* One changed shape, one missing tensor, one extra tensor: each named in the report, exit 1. */
TEST(full_size_mismatches_are_named)
{
    const char *cfg = published_config("fixtures/emu2-configs/Emu2");
    if (!cfg)
        SKIP("no published config under fixtures/emu2-configs");
    layout l = emu2_layout(NATIVE, 32272);
    find_spec(&l, "decoder.lm.model.layers.17.mlp.up_proj.weight")->shape[1] = 6655;
    char dir[512];
    int made = make_model_dir(dir, sizeof dir, cfg, &l);
    char *report = NULL;
    uint64_t n_params = 0;
    emu2_error e = {0};
    emu2_status rs = made ? emu2_inspect(dir, &report, &n_params, &e) : EMU2_ERR_IO;
    int cli_found = 0;
    int cli_rc = made ? run_cli(dir, "decoder.lm.model.layers.17.mlp.up_proj.weight", &cli_found) : -1;
    io_rm_tree(dir);

    /* second copy: lm_head removed, a stray tensor added */
    st_spec *lm = find_spec(&l, "decoder.lm.lm_head.weight");
    snprintf(lm->name, sizeof lm->name, "decoder.lm.extra_head.weight");
    find_spec(&l, "decoder.lm.model.layers.17.mlp.up_proj.weight")->shape[1] = 6656;
    char dir2[512];
    int made2 = make_model_dir(dir2, sizeof dir2, cfg, &l);
    char *report2 = NULL;
    emu2_error e2 = {0};
    emu2_status rs2 = made2 ? emu2_inspect(dir2, &report2, &n_params, &e2) : EMU2_ERR_IO;
    io_rm_tree(dir2);
    free(l.t);

    CHECK(made && made2);
    CHECKF(rs == EMU2_ERR_MISMATCH, "status %d: %s", rs, e.message);
    CHECKF(strstr(e.message, "decoder.lm.model.layers.17.mlp.up_proj.weight"), "%s", e.message);
    CHECKF(report && strstr(report, "wrong shape: decoder.lm.model.layers.17.mlp.up_proj.weight expected [17920, 6656] "
                                    "found [17920, 6655]"),
           "%s", report ? report : "(no report)");
    CHECK(strstr(report, "MISMATCH (1 problem(s))"));
    CHECKF(cli_rc == -1 || (cli_rc == 1 && cli_found), "emu2 inspect exit %d", cli_rc);
    CHECKF(rs2 == EMU2_ERR_MISMATCH && report2, "status %d: %s", rs2, e2.message);
    CHECKF(strstr(report2, "missing:     decoder.lm.lm_head.weight [32272, 6656]"), "%s", report2);
    CHECKF(strstr(report2, "unexpected:  decoder.lm.extra_head.weight [32272, 6656]"), "%s", report2);
    free(report);
    free(report2);
}

TEST(small_models_pass_inspect)
{
    static const char *dirs[] = {"models/emu2-tiny-digits", "tests/models/rand-vis448", "tests/models/rand-chat",
                                 "tests/models/gen-tiny"};
    int tried = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char cfg[1024], cfg2[1024];
        snprintf(cfg, sizeof cfg, "%s/config.json", ROOT_PATH(dirs[i]));
        snprintf(cfg2, sizeof cfg2, "%s/multimodal_encoder/config.json", ROOT_PATH(dirs[i]));
        if (access(cfg, R_OK) != 0 && access(cfg2, R_OK) != 0)
            continue;
        tried++;
        char *report = NULL;
        uint64_t n = 0;
        emu2_error e = {0};
        emu2_status st = emu2_inspect(ROOT_PATH(dirs[i]), &report, &n, &e);
        CHECKF(st == EMU2_OK && n > 0, "%s: %s\n%s", dirs[i], e.message, report ? report : "");
        free(report);
    }
    if (!tried)
        SKIP("no small models present yet");
}

TEST(unreadable_folders_give_errors_not_reports)
{
    char *report = (char *)1;
    uint64_t n = 7;
    emu2_error e = {0};
    CHECK(emu2_inspect("/nonexistent-emu2", &report, &n, &e) == EMU2_ERR_IO && report == NULL && n == 0);
    CHECK(strstr(e.message, "config.json"));
    CHECK(emu2_inspect(NULL, &report, &n, &e) == EMU2_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    RUN(full_size_emu2_native_names);
    RUN(full_size_emu2_hf_fused_names);
    RUN(full_size_emu2_chat_native_names);
    RUN(full_size_mismatches_are_named);
    RUN(small_models_pass_inspect);
    RUN(unreadable_folders_give_errors_not_reports);
    return check_finish();
}
