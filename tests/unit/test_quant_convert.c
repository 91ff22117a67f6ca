/* test_quant_convert.c: `emu2 convert` (core/quant/convert*.c) and the loader's side of it:
 *  - the full-size Emu2 layout (a SPARSE safetensors file with every tensor of the published
 *    config, f32, ~148 GB apparent, no data blocks; the plan reads headers only): every decoder
 *    linear becomes <name>.qweight + <name>.scales of the right dtype and shape, everything else
 *    keeps its name and shape (cast to bf16), and the byte counts (int4-g32 linears: 0.5625
 *    bytes/param incl. scales; the "int4" preset with down_proj in int8; int8);
 *  - the tiny model converted for real (int8, int4, with and without --dtype bf16): the converted
 *    folder's quantized linears are bit-identical to load-time quantization of the source, and
 *    its float tensors equal the source (or its bf16 rounding);
 *  - a torch .bin sharded source (rand-vis448) converts and loads;
 *  - refusals: the source folder as output, an output folder that already holds weights. */
#include <math.h>
#include <sys/stat.h>

#include "check.h"
#include "io/config.h"
#include "io/layout.h"
#include "model/weights.h"
#include "quant/convert.h"
#include "quant/quant_bind.h"
#include "test_io_st_writer.h"
#include "test_io_util.h"

/* Emu2's LLM (EMU2-SPEC.md §7.2): per layer 4*6656^2 + 3*6656*17920 linear weights in 68480 rows */
#define LAYER_W 535035904.0
#define DOWN_W 119275520.0

static int is_linear(const char *name)
{
    return (!strncmp(name, "decoder.lm.model.layers.", 24) && strstr(name, "_proj.weight") != NULL) ||
           !strcmp(name, "decoder.lm.lm_head.weight");
}

/* Writes DIR/config.json + a sparse model.safetensors of cfg_path's full layout (F32). */
static int sparse_full_size(const char *cfg_path, char *dir, size_t size, emu2_config *cfg)
{
    emu2_error err;
    if (!io_temp_dir(dir, size, "convert-full"))
        return 0;
    char p[700];
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (!io_copy_file(cfg_path, p) || emu2_config_load(dir, cfg, &err) != EMU2_OK)
        return 0;
    emu2_expected_tensor *exp;
    size_t n;
    if (emu2_expected_layout(cfg, &exp, &n, &err) != EMU2_OK)
        return 0;
    st_spec *t = calloc(n, sizeof *t);
    size_t k = 0;
    for (size_t i = 0; t && i < n; i++)
        if (!exp[i].optional)
            t[k++] = st_tensor(exp[i].name, "F32", exp[i].ndim, exp[i].shape[0], exp[i].shape[1], exp[i].shape[2],
                               exp[i].shape[3]);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    int ok = t && st_write(p, t, k, 1);
    free(t);
    free(exp);
    return ok;
}

/* want_layer_bytes: bytes of one layer's 7 linears; lm_head [32272, 6656] is int8 in every mode */
static void full_size_plan(const char *quant, double want_layer_bytes, double max_llm_bpp)
{
    char cfg_path[1024];
    snprintf(cfg_path, sizeof cfg_path, "%s", SHARED_PATH("fixtures/emu2-configs/Emu2/config.json"));
    if (access(cfg_path, R_OK) != 0)
        SKIP("no published config under fixtures/emu2-configs");
    char dir[512];
    emu2_config cfg;
    int made = sparse_full_size(cfg_path, dir, sizeof dir, &cfg);
    emu2_checkpoint *ck = NULL;
    emu2_error err = {0};
    emu2_convert_plan plan = {0};
    emu2_convert_options o = {.dtype = EMU2_DT_BF16, .quant = quant};
    int opened = made && emu2_checkpoint_open(dir, &ck, &err) == EMU2_OK;
    int planned = opened && emu2_convert_plan_make(ck, &o, &plan, &err) == EMU2_OK;
    char cmd[1200], line[256];
    double cli_bpp = -1;
    const char *bin = getenv("EMU2_BIN");
    if (planned && bin && access(bin, X_OK) == 0) { /* the command line gives the same numbers */
        snprintf(cmd, sizeof cmd, "'%s' convert --dry-run --dtype bf16 --quant %s '%s' 2>&1", bin, quant, dir);
        FILE *f = popen(cmd, "r");
        while (f && fgets(line, sizeof line, f))
            sscanf(line, "quantized_bytes_per_param: %lf", &cli_bpp);
        if (f)
            pclose(f);
    }
    int bad_names = 0, linears = 0, others = 0;
    for (size_t i = 0; planned && i < ck->n_tensors; i++) {
        const emu2_ckpt_tensor *t = &ck->tensors[i];
        if (is_linear(t->name)) {
            linears++;
            char q[300], s[300];
            snprintf(q, sizeof q, "%.*s.qweight", (int)(strlen(t->name) - 7), t->name);
            snprintf(s, sizeof s, "%.*s.scales", (int)(strlen(t->name) - 7), t->name);
            const emu2_convert_entry *eq = NULL, *es = NULL;
            for (size_t j = 0; j < plan.n; j++) {
                if (!strcmp(plan.e[j].name, q))
                    eq = &plan.e[j];
                if (!strcmp(plan.e[j].name, s))
                    es = &plan.e[j];
                if (!strcmp(plan.e[j].name, t->name))
                    bad_names++; /* the float weight must not be written too */
            }
            emu2_quant_spec spec;
            emu2_quant_parse(quant, &spec, NULL);
            char base[300];
            snprintf(base, sizeof base, "%.*s", (int)(strlen(t->name) - 7), t->name);
            spec = emu2_quant_spec_for(spec, base);
            int64_t N = t->view.shape[0], K = t->view.shape[1];
            int q8 = spec.format == EMU2_WEIGHT_Q8;
            int64_t rb = q8 ? K : (K + spec.group - 1) / spec.group * spec.group / 2, sc = q8 ? 1 : (K + spec.group - 1) / spec.group;
            if (!eq || !es || eq->dtype != (q8 ? EMU2_DT_I8 : EMU2_DT_U8) || eq->shape[0] != N || eq->shape[1] != rb ||
                es->dtype != (q8 ? EMU2_DT_F32 : EMU2_DT_F16) || es->shape[0] != N || (!q8 && es->shape[1] != sc) ||
                eq->nbytes != (uint64_t)(N * rb) || es->nbytes != (uint64_t)(N * sc * (q8 ? 4 : 2)))
                bad_names++;
        } else {
            others++;
            const emu2_convert_entry *e = NULL;
            for (size_t j = 0; j < plan.n; j++)
                if (!strcmp(plan.e[j].name, t->name))
                    e = &plan.e[j];
            if (!e || e->dtype != EMU2_DT_BF16 || e->nbytes != emu2_tensor_numel(&t->view) * 2)
                bad_names++;
        }
    }
    double linear_bpp = planned ? (double)plan.linear_bytes / (double)plan.linear_params : 0;
    double llm_bpp = planned ? (double)plan.llm_bytes / (double)plan.llm_params : 0;
    printf("    %s: %zu tensors in, %zu out, %zu shard(s) of <= 4 GiB; linears %.4f bytes/param, LLM %.4f "
           "bytes/param (embeddings and norms bf16), %.2f GB in all\n",
           quant, opened ? ck->n_tensors : 0, plan.n, plan.n_shards, linear_bpp, llm_bpp, plan.total_bytes / 1e9);
    size_t n_in = opened ? ck->n_tensors : 0;
    emu2_convert_plan_free(&plan);
    emu2_checkpoint_close(ck);
    io_rm_tree(dir);
    CHECKF(planned, "%s", err.message);
    CHECKF(linears == 60 * 7 + 1 && others > 0, "linears %d others %d", linears, others);
    const double lm = 32272.0 * 6656, want_linear_bpp = (60 * want_layer_bytes + lm + 4 * 32272.0) / (60 * LAYER_W + lm);
    CHECKF(bad_names == 0, "%d tensors planned wrongly", bad_names);
    CHECKF(n_in + (size_t)linears > 0, "no tensors");
    CHECKF(fabs(linear_bpp - want_linear_bpp) < 1e-5, "linears: %.4f bytes/param, want %.4f", linear_bpp,
           want_linear_bpp);
    CHECKF(llm_bpp < max_llm_bpp, "LLM: %.4f bytes/param", llm_bpp);
    CHECKF(cli_bpp < 0 || fabs(cli_bpp - linear_bpp) < 1e-3, "emu2 convert --dry-run says %.4f", cli_bpp);
}

/* int4-g32: 0.5 + 2/32 (an f16 scale per 32 values). The "int4" preset keeps down_proj
 * (6656*17920 = 119275520 weights, 6656 rows) in int8. int8: 1 byte + one f32 scale per row. */
TEST(full_size_int4_g32_plan) { full_size_plan("int4-g32", 0.5625 * LAYER_W, 0.59); }
TEST(full_size_int4_preset_plan) { full_size_plan("int4", 0.5625 * (LAYER_W - DOWN_W) + DOWN_W + 4.0 * 6656, 0.69); }
TEST(full_size_int8_plan) { full_size_plan("int8", LAYER_W + 4.0 * 68480, 1.03); }

/* Converts the tiny model to a temp folder; 1 on success. */
static int convert_to(const char *src, const char *quant, emu2_dtype dt, char *dir, size_t size, emu2_error *err)
{
    if (!io_temp_dir(dir, size, "convert"))
        return 0;
    emu2_checkpoint *ck;
    emu2_convert_plan plan = {0};
    emu2_convert_options o = {.dtype = dt, .quant = quant, .shard_bytes = 1u << 20};
    if (emu2_checkpoint_open(src, &ck, err) != EMU2_OK)
        return 0;
    int ok = emu2_convert_plan_make(ck, &o, &plan, err) == EMU2_OK && emu2_convert_write(src, dir, &plan, &o, err) == EMU2_OK;
    emu2_convert_plan_free(&plan);
    emu2_checkpoint_close(ck);
    return ok;
}

static int same_view(const emu2_tensor_view *a, const emu2_tensor_view *b)
{
    return a->dtype == b->dtype && a->nbytes == b->nbytes && !memcmp(a->data, b->data, (size_t)a->nbytes);
}

static void roundtrip(const char *quant, emu2_dtype dt)
{
    const char *src = ROOT_PATH("models/emu2-tiny-digits");
    char dir[512];
    emu2_error err = {0};
    int converted = convert_to(src, quant, dt, dir, sizeof dir, &err);
    emu2_config cfg;
    emu2_checkpoint *cs = NULL, *cd = NULL;
    emu2_backend *be = NULL;
    emu2_model_weights *wl = NULL, *wc = NULL;
    int ok = converted && emu2_config_load(src, &cfg, &err) == EMU2_OK && emu2_checkpoint_open(src, &cs, &err) == EMU2_OK &&
             emu2_checkpoint_open(dir, &cd, &err) == EMU2_OK && emu2_cpu_backend_open(NULL, &be, &err) == EMU2_OK &&
             emu2_model_weights_bind_quant(be, cs, &cfg, quant, &wl, &err) == EMU2_OK &&
             emu2_model_weights_bind_quant(be, cd, &cfg, NULL, &wc, &err) == EMU2_OK;
    int differ = 0, quantized = 0, floats = 0;
    for (size_t l = 0; ok && l < wl->decoder.n_layers; l++)
        for (int m = 0; m < 7; m++) {
            const emu2_op_weight *a = &(&wl->decoder.layers[l].q)[m], *b = &(&wc->decoder.layers[l].q)[m];
            quantized += b->format != EMU2_WEIGHT_FLOAT;
            differ += a->format != b->format || a->group != b->group || !same_view(&a->w, &b->w) ||
                      !same_view(&a->scales, &b->scales);
        }
    /* float tensors: as stored, or rounded to bf16 */
    for (size_t i = 0; ok && i < cs->n_tensors; i++) {
        const emu2_ckpt_tensor *t = &cs->tensors[i], *u = emu2_checkpoint_find(cd, t->name);
        if (is_linear(t->name))
            continue;
        floats++;
        if (!u) {
            differ++;
            continue;
        }
        uint64_t n = emu2_tensor_numel(&t->view);
        for (uint64_t k = 0; k < n; k++) {
            float a = ((const float *)t->view.data)[k]; /* the tiny model is f32 */
            uint16_t h;
            memcpy(&h, (const char *)u->view.data + k * 2, 2);
            float b = dt == EMU2_DT_BF16 ? emu2_bf16_to_f32(h) : ((const float *)u->view.data)[k];
            float want = dt == EMU2_DT_BF16 ? emu2_bf16_to_f32(emu2_f32_to_bf16(a)) : a;
            if (memcmp(&b, &want, 4)) {
                differ++;
                break;
            }
        }
    }
    int lm_q8 = ok && wc->decoder.lm_head.format == EMU2_WEIGHT_Q8 && same_view(&wl->decoder.lm_head.w, &wc->decoder.lm_head.w) &&
                same_view(&wl->decoder.lm_head.scales, &wc->decoder.lm_head.scales);
    emu2_model_weights_free(wl);
    emu2_model_weights_free(wc);
    emu2_backend_close(be);
    emu2_checkpoint_close(cs);
    emu2_checkpoint_close(cd);
    if (converted)
        io_rm_tree(dir);
    CHECKF(ok, "%s", err.message);
    CHECKF(quantized == 4 * 7 && lm_q8, "%d linears read back quantized; lm_head int8 and equal: %d", quantized,
           lm_q8);
    CHECKF(floats > 50 && differ == 0, "%d of %d tensors differ", differ, floats + quantized);
}

TEST(tiny_int8_equals_load_time) { roundtrip("int8", EMU2_DT_INVALID); }
TEST(tiny_int4_bf16_equals_load_time) { roundtrip("int4", EMU2_DT_BF16); }
TEST(tiny_int4_g128_equals_load_time) { roundtrip("int4-g128", EMU2_DT_INVALID); }

TEST(torch_bin_source_converts)
{
    char dir[512];
    emu2_error err = {0};
    int ok = convert_to(ROOT_PATH("tests/models/rand-vis448"), "int8", EMU2_DT_BF16, dir, sizeof dir, &err);
    emu2_model *m = NULL;
    emu2_load_options lo;
    emu2_load_options_init(&lo);
    lo.device = "cpu";
    lo.threads = 1;
    int loaded = ok && emu2_model_load(dir, &lo, &m, &err) == EMU2_OK;
    emu2_model_free(m);
    io_rm_tree(dir);
    CHECKF(ok && loaded, "%s", err.message);
}

TEST(bad_destinations_refused)
{
    const char *src = ROOT_PATH("models/emu2-tiny-digits");
    emu2_checkpoint *ck;
    emu2_error err = {0};
    CHECK(emu2_checkpoint_open(src, &ck, &err) == EMU2_OK);
    emu2_convert_plan plan;
    emu2_convert_options o = {.quant = "int8"};
    CHECK(emu2_convert_plan_make(ck, &o, &plan, &err) == EMU2_OK);
    emu2_status same = emu2_convert_write(src, src, &plan, &o, &err);
    char dir[512];
    int made = io_temp_dir(dir, sizeof dir, "convert-full");
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    made = made && io_write_file(p, "x", 1);
    emu2_status occupied = made ? emu2_convert_write(src, dir, &plan, &o, &err) : EMU2_OK;
    int msg = strstr(err.message, "already holds") != NULL;
    emu2_convert_options bad = {.quant = "int5"};
    emu2_convert_plan p2;
    emu2_status bad_quant = emu2_convert_plan_make(ck, &bad, &p2, &err);
    emu2_convert_plan_free(&plan);
    emu2_checkpoint_close(ck);
    if (made)
        io_rm_tree(dir);
    CHECKF(same == EMU2_ERR_INVALID_ARGUMENT, "converting into the source folder: %d", same);
    CHECKF(occupied == EMU2_ERR_INVALID_ARGUMENT && msg, "an occupied folder: %d", occupied);
    CHECKF(bad_quant == EMU2_ERR_INVALID_ARGUMENT, "int5: %d", bad_quant);
}

int main(void)
{
    RUN(full_size_int4_g32_plan);
    RUN(full_size_int4_preset_plan);
    RUN(full_size_int8_plan);
    RUN(tiny_int8_equals_load_time);
    RUN(tiny_int4_bf16_equals_load_time);
    RUN(tiny_int4_g128_equals_load_time);
    RUN(torch_bin_source_converts);
    RUN(bad_destinations_refused);
    return check_finish();
}
