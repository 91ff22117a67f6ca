/* test_random_weights.c: EMU2_LOAD_RANDOM_WEIGHTS (core/model/random_weights.c) on the CPU:
 * the plan matches the real tiny checkpoint's parameter count and a closed formula for the
 * full-size published configs (without allocating them); the values follow the rules (seeded,
 * std 0.02, norms 1, biases of norms 0); a config-only folder loads and runs end to end. */
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_io_util.h"
#include "common/tensor.h"
#include "emu2.h"
#include "io/config.h"
#include "io/layout.h"
#include "model/random_weights.h"
#include "ops/ops.h"

static const char *tiny(void)
{
    return ROOT_PATH("models/emu2-tiny-digits");
}

/* Parameters of an Emu2 config, by hand from the architecture (EVA-CLIP + LLaMA + projections). */
static uint64_t params_by_formula(const emu2_config *c, size_t *n_tensors)
{
    uint64_t W = (uint64_t)c->vision.width, I = (uint64_t)c->vision.intermediate_size;
    uint64_t P = (uint64_t)c->vision.patch_size, T = (uint64_t)c->vision.n_tokens, LV = (uint64_t)c->vision.layers;
    uint64_t H = (uint64_t)c->hidden_size, F = (uint64_t)c->intermediate_size, V = (uint64_t)c->vocab_size;
    uint64_t L = (uint64_t)c->num_hidden_layers;
    uint64_t vis_block = 4 * W /* norms */ + 3 * W * W + 3 * W /* qkv + biases */ + W * W + W /* proj */ +
                         I * W + I + W * I + W /* mlp */;
    uint64_t visual = W /* cls */ + T * W /* pos */ + W * 3 * P * P + W /* patch */ + LV * vis_block;
    uint64_t dec_layer = 2 * H + 4 * H * H + 3 * H * F;
    uint64_t decoder = V * H /* embed */ + L * dec_layer + H /* norm */ + (c->tie_word_embeddings ? 0 : V * H);
    *n_tensors = 2 + 4 + 14 * (size_t)LV + 1 + 9 * (size_t)L + 1 + (c->tie_word_embeddings ? 0 : 1);
    return visual + decoder + 2 * H * W;
}

TEST(plan_matches_the_tiny_checkpoint)
{
    emu2_config cfg;
    emu2_error err;
    CHECKF(emu2_config_load(tiny(), &cfg, &err) == EMU2_OK, "%s", err.message);
    emu2_random_plan plan;
    CHECK(emu2_random_weights_plan(&cfg, &plan, &err) == EMU2_OK);
    char *report = NULL;
    uint64_t real = 0;
    CHECKF(emu2_inspect(tiny(), &report, &real, &err) == EMU2_OK, "%s", err.message);
    emu2_free(report);
    CHECKF(plan.n_params == real, "plan %llu, checkpoint %llu", (unsigned long long)plan.n_params,
           (unsigned long long)real);
    CHECK(plan.n_bytes == 2 * plan.n_params);
    size_t n_formula;
    CHECK(params_by_formula(&cfg, &n_formula) == plan.n_params && n_formula == plan.n_tensors);
}

static void check_full_size(const char *name)
{
    const char *dir = SHARED_PATH(name);
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (access(path, R_OK) != 0)
        SKIP("%.200s is absent (set EMU2_SHARED)", path);
    emu2_config cfg;
    emu2_error err;
    CHECKF(emu2_config_load(dir, &cfg, &err) == EMU2_OK, "%s", err.message);
    emu2_random_plan plan;
    CHECK(emu2_random_weights_plan(&cfg, &plan, &err) == EMU2_OK);
    size_t n_formula;
    uint64_t p = params_by_formula(&cfg, &n_formula);
    CHECKF(plan.n_params == p && plan.n_tensors == n_formula, "plan %llu params / %zu tensors, formula %llu / %zu",
           (unsigned long long)plan.n_params, plan.n_tensors, (unsigned long long)p, n_formula);
    /* the published Emu2 is "37B": EVA-CLIP-E (~4.4B) + LLaMA-33B (~32.5B) */
    CHECKF(plan.n_params > 36000000000ull && plan.n_params < 38000000000ull, "%llu params",
           (unsigned long long)plan.n_params);
    CHECK(plan.n_bytes == 2 * plan.n_params);
    printf("    %s: %zu tensors, %llu parameters, %.1f GB in bf16\n", name, plan.n_tensors,
           (unsigned long long)plan.n_params, (double)plan.n_bytes / 1e9);
}

TEST(plan_full_size_emu2)
{
    check_full_size("fixtures/emu2-configs/Emu2");
}

TEST(plan_full_size_emu2_chat)
{
    check_full_size("fixtures/emu2-configs/Emu2-Chat");
}

static const emu2_ckpt_tensor *find(const emu2_checkpoint *ck, const char *name)
{
    return emu2_checkpoint_find(ck, name);
}

TEST(values_follow_the_rules)
{
    emu2_config cfg;
    emu2_error err;
    CHECK(emu2_config_load(tiny(), &cfg, &err) == EMU2_OK);
    emu2_backend *be;
    CHECK(emu2_backend_open("cpu", NULL, &be, &err) == EMU2_OK);
    emu2_checkpoint *a = NULL, *b = NULL, *c = NULL;
    CHECKF(emu2_random_checkpoint(be, &cfg, 1, &a, &err) == EMU2_OK, "%s", err.message);
    CHECK(emu2_random_checkpoint(be, &cfg, 1, &b, &err) == EMU2_OK);
    CHECK(emu2_random_checkpoint(be, &cfg, 2, &c, &err) == EMU2_OK);

    /* every tensor of the layout, with its shape, in BF16 */
    emu2_expected_tensor *t;
    size_t n;
    CHECK(emu2_expected_layout(&cfg, &t, &n, &err) == EMU2_OK);
    int shapes_ok = a->n_tensors == n;
    for (size_t i = 0; shapes_ok && i < n; i++) {
        const emu2_ckpt_tensor *x = find(a, t[i].name);
        shapes_ok = x && x->view.dtype == EMU2_DT_BF16 && x->view.ndim == t[i].ndim;
        for (int d = 0; shapes_ok && d < t[i].ndim; d++)
            shapes_ok = x->view.shape[d] == t[i].shape[d];
    }
    free(t);

    const emu2_ckpt_tensor *norm = find(a, "decoder.lm.model.norm.weight");
    const emu2_ckpt_tensor *ln_b = find(a, "visual.blocks.1.norm2.bias");
    const emu2_ckpt_tensor *kb = find(a, "visual.blocks.0.attn.k_bias");
    const emu2_ckpt_tensor *up = find(a, "decoder.lm.model.layers.2.mlp.up_proj.weight");
    const emu2_ckpt_tensor *up_b = find(b, "decoder.lm.model.layers.2.mlp.up_proj.weight");
    const emu2_ckpt_tensor *up_c = find(c, "decoder.lm.model.layers.2.mlp.up_proj.weight");
    const emu2_ckpt_tensor *gate = find(a, "decoder.lm.model.layers.2.mlp.gate_proj.weight");
    int consts_ok = norm && ln_b && kb;
    for (int64_t i = 0; consts_ok && i < norm->view.shape[0]; i++)
        consts_ok = emu2_bf16_to_f32(((const uint16_t *)norm->view.data)[i]) == 1.0f &&
                    emu2_bf16_to_f32(((const uint16_t *)ln_b->view.data)[i]) == 0.0f &&
                    emu2_bf16_to_f32(((const uint16_t *)kb->view.data)[i]) == 0.0f;
    size_t un = (size_t)emu2_tensor_numel(&up->view);
    double s = 0, s2 = 0, bound = 0;
    for (size_t i = 0; i < un; i++) {
        double v = emu2_bf16_to_f32(((const uint16_t *)up->view.data)[i]);
        s += v;
        s2 += v * v;
        bound = fabs(v) > bound ? fabs(v) : bound;
    }
    double mean = s / (double)un, sd = sqrt(s2 / (double)un - mean * mean);
    int same_seed = !memcmp(up->view.data, up_b->view.data, un * 2);
    int other_seed = memcmp(up->view.data, up_c->view.data, un * 2) != 0;
    int other_tensor = memcmp(up->view.data, gate->view.data, un * 2) != 0;

    emu2_checkpoint_close(a);
    emu2_checkpoint_close(b);
    emu2_checkpoint_close(c);
    emu2_backend_close(be);
    CHECK(shapes_ok);
    CHECK(consts_ok);
    CHECKF(fabs(mean) < 0.001 && fabs(sd - 0.02) < 0.001 && bound <= 0.02 * sqrt(3.0) * 1.004, "mean %g sd %g max %g",
           mean, sd, bound);
    CHECK(same_seed);
    CHECK(other_seed);
    CHECK(other_tensor);
}

/* A folder with the tiny model's config and tokenizer but no weights. */
static int make_config_only(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/emu2-random-XXXXXX");
    if (!mkdtemp(dir))
        return 0;
    const char *files[] = {"config.json", "tokenizer.model", "added_tokens.json", "special_tokens_map.json",
                           "tokenizer_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char from[1200], to[1200];
        snprintf(from, sizeof from, "%s/%s", tiny(), files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        if (access(from, R_OK) == 0 && !io_copy_file(from, to))
            return 0;
    }
    return 1;
}

TEST(config_only_folder_loads_and_runs)
{
    char dir[64];
    CHECK(make_config_only(dir, sizeof dir));
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.device = "cpu";
    o.threads = 2;
    emu2_model *m = NULL;
    emu2_error err;
    emu2_status no_flag = emu2_model_load(dir, &o, &m, &err); /* no weights, no flag: an error */
    o.flags = EMU2_LOAD_RANDOM_WEIGHTS;
    o.random_seed = 42;
    emu2_status st = emu2_model_load(dir, &o, &m, &err);
    io_rm_tree(dir);
    CHECK(no_flag != EMU2_OK);
    CHECKF(st == EMU2_OK, "%s", err.message);
    emu2_model_info info;
    CHECK(emu2_model_get_info(m, &info) == EMU2_OK);
    uint64_t n_params = info.n_params;
    size_t n_img = 0;
    unsigned char *img = io_read_file(ROOT_PATH("models/emu2-tiny-digits/examples/blue_black_1_top_left.jpg"), &n_img);
    int have_img = img != NULL;
    emu2_gen_options g;
    emu2_gen_options_init(&g);
    g.num_beams = 1;
    g.max_new_tokens = 4;
    char *text = NULL;
    emu2_status run = have_img ? emu2_describe(m, img, n_img, NULL, &g, &text) : EMU2_ERR_IO;
    char msg[600];
    snprintf(msg, sizeof msg, "%s", emu2_model_last_error(m));
    emu2_free(text);
    free(img);
    emu2_model_free(m);
    CHECK(n_params == 1910784); /* the tiny checkpoint's count (plan_matches_the_tiny_checkpoint) */
    CHECKF(run == EMU2_OK, "describe on random weights: %s", msg);
}

int main(void)
{
    RUN(plan_matches_the_tiny_checkpoint);
    RUN(plan_full_size_emu2);
    RUN(plan_full_size_emu2_chat);
    RUN(values_follow_the_rules);
    RUN(config_only_folder_loads_and_runs);
    return check_finish();
}
