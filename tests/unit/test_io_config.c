/* test_io_config.c: config.json parsing: the published Emu2 / Emu2-Chat configs, the small test
 * models, and every inconsistency refused with the key named. */
#include <jansson.h>

#include "check.h"
#include "io/config.h"
#include "test_io_util.h"

/* The published Emu2 config.json, compact (kept here so the error tests do not need fixtures). */
static const char *BASE =
    "{\"architectures\":[\"EmuForCausalLM\"],\"attention_bias\":false,\"bos_token_id\":1,\"d_model\":1792,"
    "\"eos_token_id\":2,\"hidden_act\":\"silu\",\"hidden_size\":6656,\"intermediate_size\":17920,"
    "\"max_position_embeddings\":2048,\"model_version\":\"base\",\"num_attention_heads\":52,"
    "\"num_hidden_layers\":60,\"num_key_value_heads\":52,\"pad_token_id\":32000,\"rms_norm_eps\":1e-06,"
    "\"rope_scaling\":null,\"rope_theta\":10000.0,\"tie_word_embeddings\":false,\"vocab_size\":32272,"
    "\"vision_config\":{\"drop_path_rate\":0,\"eva_model_name\":\"eva-clip-E-14-plus\",\"head_width\":112,"
    "\"image_size\":448,\"intermediate_size\":15360,\"layer_norm_eps\":1e-06,\"layers\":64,"
    "\"mlp_ratio\":8.571428571428571,\"n_query\":64,\"patch_size\":14,\"postnorm\":true,\"qkv_bias\":true,"
    "\"v_query\":64,\"width\":1792,\"xattn\":true}}";

static void check_emu2_base(const emu2_config *c)
{
    CHECK(!strcmp(c->model_version, "base"));
    CHECK(c->hidden_size == 6656 && c->intermediate_size == 17920 && c->num_hidden_layers == 60);
    CHECK(c->num_attention_heads == 52 && c->num_key_value_heads == 52 && c->head_dim == 128);
    CHECK(c->vocab_size == 32272 && c->bos_token_id == 1 && c->eos_token_id == 2 && c->pad_token_id == 32000);
    CHECK(c->max_position_embeddings == 2048 && c->rms_norm_eps == 1e-6 && c->rope_theta == 10000.0);
    CHECK(!c->tie_word_embeddings && c->d_model == 1792);
    const emu2_vision_config *v = &c->vision;
    CHECK(v->image_size == 448 && v->patch_size == 14 && v->width == 1792 && v->layers == 64);
    CHECK(v->head_width == 112 && v->heads == 16 && v->intermediate_size == 15360);
    CHECK(v->n_query == 64 && v->v_query == 64 && v->grid == 32 && v->pool_kernel == 4 && v->n_tokens == 1025);
    CHECK(v->layer_norm_eps == 1e-6 && v->postnorm == 1 && v->qkv_bias == 1);
}

TEST(embedded_base_config)
{
    emu2_config c;
    emu2_error e = {0};
    CHECKF(emu2_config_parse(BASE, strlen(BASE), &c, &e) == EMU2_OK, "%s", e.message);
    check_emu2_base(&c);
}

TEST(published_emu2_config)
{
    emu2_config c;
    emu2_error e = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s", SHARED_PATH("fixtures/emu2-configs/Emu2"));
    if (access(path, R_OK) != 0)
        SKIP("no fixture %.200s", path);
    CHECKF(emu2_config_load(path, &c, &e) == EMU2_OK, "%s", e.message);
    check_emu2_base(&c);
}

TEST(published_emu2_chat_config)
{
    emu2_config c;
    emu2_error e = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s", SHARED_PATH("fixtures/emu2-configs/Emu2-Chat"));
    if (access(path, R_OK) != 0)
        SKIP("no fixture %.200s", path);
    CHECKF(emu2_config_load(path, &c, &e) == EMU2_OK, "%s", e.message);
    CHECK(!strcmp(c.model_version, "chat") && c.vocab_size == 32274);
    CHECK(c.vision.n_query == 256 && c.vision.pool_kernel == 2 && c.vision.v_query == 64);
}

TEST(small_model_configs)
{
    static const char *dirs[] = {"models/emu2-tiny-digits", "tests/models/rand-vis448", "tests/models/rand-chat",
                                 "tests/models/gen-tiny/multimodal_encoder"};
    int tried = 0;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char cfg[1024];
        snprintf(cfg, sizeof cfg, "%s/config.json", ROOT_PATH(dirs[i]));
        if (access(cfg, R_OK) != 0)
            continue;
        tried++;
        emu2_config c;
        emu2_error e = {0};
        CHECKF(emu2_config_load(ROOT_PATH(dirs[i]), &c, &e) == EMU2_OK, "%s: %s", dirs[i], e.message);
        CHECK(c.vision.grid * c.vision.patch_size == c.vision.image_size);
        CHECK(c.vision.pool_kernel * c.vision.pool_kernel * c.vision.n_query == c.vision.grid * c.vision.grid);
    }
    if (!tried)
        SKIP("no small models generated yet");
}

/* Parses BASE with one key set (json text value) or removed (value NULL); `vision` selects vision_config. */
static emu2_status parse_modified(int vision, const char *key, const char *value, emu2_config *c, emu2_error *e)
{
    json_t *root = json_loads(BASE, 0, NULL);
    json_t *obj = vision ? json_object_get(root, "vision_config") : root;
    if (value)
        json_object_set_new(obj, key, json_loads(value, JSON_DECODE_ANY, NULL));
    else
        json_object_del(obj, key);
    char *text = json_dumps(root, 0);
    json_decref(root);
    emu2_status st = emu2_config_parse(text, strlen(text), c, e);
    free(text);
    return st;
}

static void expect_error(int vision, const char *key, const char *value, const char *pattern)
{
    emu2_config c;
    emu2_error e = {0};
    emu2_status st = parse_modified(vision, key, value, &c, &e);
    CHECKF(st != EMU2_OK, "%s=%s accepted", key, value ? value : "(removed)");
    CHECKF(strstr(e.message, pattern), "%s=%s: message '%s' lacks '%s'", key, value ? value : "(removed)",
           e.message, pattern);
}

TEST(inconsistent_values_are_refused_naming_the_key)
{
    expect_error(1, "width", "1793", "'vision_config.width' 1793 is not divisible by 'vision_config.head_width'");
    expect_error(1, "image_size", "450", "'vision_config.image_size' 450 is not divisible by 'vision_config.patch_size'");
    expect_error(1, "n_query", "60", "'vision_config.n_query' 60 is not a perfect square");
    expect_error(1, "n_query", "9", "'vision_config.n_query' 9: the patch grid 32 is not divisible by its root 3");
    expect_error(1, "v_query", "50", "'vision_config.v_query' 50 is not a perfect square");
    expect_error(0, "hidden_size", "6657", "'hidden_size' 6657 is not divisible by 'num_attention_heads' 52");
    expect_error(0, "num_key_value_heads", "5", "'num_key_value_heads'");
    expect_error(0, "vocab_size", "1000", "'pad_token_id' 32000 is not below 'vocab_size' 1000");
    expect_error(0, "eos_token_id", "40000", "'eos_token_id' 40000 is not below 'vocab_size'");
    expect_error(1, "postnorm", "false", "'vision_config.postnorm' is false");
    expect_error(1, "qkv_bias", "false", "'vision_config.qkv_bias'");
    expect_error(0, "d_model", "1024", "'d_model' 1024 differs from 'vision_config.width' 1792");
    expect_error(0, "model_version", "\"gen\"", "'model_version'");
    expect_error(0, "rope_scaling", "{\"type\":\"linear\",\"factor\":2.0}", "'rope_scaling'");
    expect_error(0, "attention_bias", "true", "'attention_bias'");
    expect_error(0, "hidden_act", "\"gelu\"", "'hidden_act'");
}

TEST(non_positive_and_absurd_sizes_are_refused)
{
    expect_error(1, "layers", "0", "'vision_config.layers' = 0 is out of range");
    expect_error(1, "patch_size", "-14", "'vision_config.patch_size' = -14 is out of range");
    expect_error(0, "num_hidden_layers", "0", "'num_hidden_layers' = 0 is out of range");
    expect_error(0, "hidden_size", "1000000000000", "'hidden_size' = 1000000000000 is out of range");
    expect_error(0, "vocab_size", "9223372036854775807", "'vocab_size'");
    expect_error(1, "width", "2147483648", "'vision_config.width'");
    expect_error(0, "rms_norm_eps", "-1", "'rms_norm_eps'");
}

TEST(missing_and_mistyped_keys)
{
    expect_error(0, "hidden_size", NULL, "missing key 'hidden_size'");
    expect_error(0, "vision_config", NULL, "missing object 'vision_config'");
    expect_error(1, "width", NULL, "missing key 'vision_config.width'");
    expect_error(0, "num_hidden_layers", "\"60\"", "'num_hidden_layers' must be an integer");
    expect_error(0, "num_hidden_layers", "60.5", "'num_hidden_layers' must be an integer");
    expect_error(1, "postnorm", "1", "'vision_config.postnorm' must be true or false");
}

TEST(intermediate_size_from_mlp_ratio)
{
    /* without intermediate_size the MLP width is int(width * mlp_ratio), as the reference computes it */
    json_t *root = json_loads(BASE, 0, NULL);
    json_t *v = json_object_get(root, "vision_config");
    json_object_del(v, "intermediate_size");
    char *text = json_dumps(root, 0);
    emu2_config c;
    emu2_error e = {0};
    emu2_status st = emu2_config_parse(text, strlen(text), &c, &e);
    free(text);
    json_object_set_new(v, "mlp_ratio", json_real(1e300));
    text = json_dumps(root, 0);
    emu2_status st2 = emu2_config_parse(text, strlen(text), &c, &e);
    free(text);
    json_object_del(v, "mlp_ratio");
    text = json_dumps(root, 0);
    emu2_status st3 = emu2_config_parse(text, strlen(text), &c, &e);
    free(text);
    json_decref(root);
    CHECK(st == EMU2_OK);
    CHECK(st2 != EMU2_OK);
    CHECK(st3 != EMU2_OK && strstr(e.message, "intermediate_size"));
    CHECK(emu2_config_parse(BASE, strlen(BASE), &c, &e) == EMU2_OK);
}

TEST(mlp_ratio_value)
{
    json_t *root = json_loads(BASE, 0, NULL);
    json_object_del(json_object_get(root, "vision_config"), "intermediate_size");
    char *text = json_dumps(root, 0);
    json_decref(root);
    emu2_config c;
    emu2_error e = {0};
    CHECKF(emu2_config_parse(text, strlen(text), &c, &e) == EMU2_OK, "%s", e.message);
    free(text);
    CHECKF(c.vision.intermediate_size == 15360, "got %d", c.vision.intermediate_size);
}

TEST(unknown_keys_are_ignored)
{
    emu2_config c;
    emu2_error e = {0};
    CHECKF(parse_modified(0, "some_future_key", "{\"nested\":[1,2,{\"x\":null}]}", &c, &e) == EMU2_OK, "%s",
           e.message);
    CHECKF(parse_modified(1, "xattn", "\"whatever\"", &c, &e) == EMU2_OK, "%s", e.message);
}

TEST(malformed_json)
{
    emu2_config c;
    emu2_error e = {0};
    CHECK(emu2_config_parse("{\"hidden_size\": ", 16, &c, &e) == EMU2_ERR_FORMAT);
    CHECKF(strstr(e.message, "invalid JSON at line 1"), "%s", e.message);
    CHECK(emu2_config_parse("[]", 2, &c, &e) == EMU2_ERR_FORMAT);
    CHECK(emu2_config_parse("{\"a\":1,\"a\":2}", 13, &c, &e) == EMU2_ERR_FORMAT);
    CHECK(emu2_config_parse("", 0, &c, &e) == EMU2_ERR_FORMAT);
    size_t big = (2u << 20);
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    CHECK(emu2_config_parse(huge, big, &c, &e) == EMU2_ERR_LIMIT);
    free(huge);
    CHECKF(strstr(e.message, "limit"), "%s", e.message);
    /* every prefix of a valid config is refused (no crash) */
    for (size_t len = 0; len < strlen(BASE); len++) {
        char *p = malloc(len ? len : 1);
        memcpy(p, BASE, len);
        emu2_status st = emu2_config_parse(p, len, &c, &e);
        free(p);
        CHECKF(st != EMU2_OK, "prefix %zu accepted", len);
    }
}

TEST(load_errors_name_the_folder)
{
    emu2_config c;
    emu2_error e = {0};
    CHECK(emu2_config_load("/nonexistent-emu2-dir", &c, &e) == EMU2_ERR_IO);
    CHECKF(strstr(e.message, "/nonexistent-emu2-dir/config.json"), "%s", e.message);
}

int main(void)
{
    RUN(embedded_base_config);
    RUN(published_emu2_config);
    RUN(published_emu2_chat_config);
    RUN(small_model_configs);
    RUN(inconsistent_values_are_refused_naming_the_key);
    RUN(non_positive_and_absurd_sizes_are_refused);
    RUN(missing_and_mistyped_keys);
    RUN(intermediate_size_from_mlp_ratio);
    RUN(mlp_ratio_value);
    RUN(unknown_keys_are_ignored);
    RUN(malformed_json);
    RUN(load_errors_name_the_folder);
    return check_finish();
}
