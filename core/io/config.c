/* config.c: Emu2's config.json (untrusted) -> emu2_config, with every value range-checked. */
#include "io/config.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "io/mapped_file.h"

#define CONFIG_MAX_BYTES (1u << 20) /* a real config.json is ~1.5 kB */

/* Upper bounds far above any Emu2 size, low enough that products of two of them fit comfortably in
 * 64 bits and that a hostile config cannot make later code allocate absurd tables. */
#define MAX_WIDTH 131072
#define MAX_LAYERS 4096
#define MAX_IMAGE 16384
#define MAX_VOCAB 4194304
#define MAX_INTERMEDIATE 1048576
#define MAX_POSITIONS 1048576

typedef struct reader {
    json_t *obj;
    const char *prefix; /* "" or "vision_config." for messages */
    emu2_error *err;
} reader;

/* Integer key; when absent, `def` is used if allow_missing, else an error naming the key. */
static emu2_status get_int(const reader *r, const char *key, int allow_missing, long long def,
                           long long lo, long long hi, int *out)
{
    json_t *v = json_object_get(r->obj, key);
    long long x;
    if (!v || json_is_null(v)) {
        if (!allow_missing)
            return emu2_fail(r->err, EMU2_ERR_FORMAT, "config.json: missing key '%s%s'", r->prefix, key);
        x = def;
    } else if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
               fabs(json_real_value(v)) < 1e15) {
        x = (long long)json_real_value(v);
    } else {
        return emu2_fail(r->err, EMU2_ERR_FORMAT, "config.json: '%s%s' must be an integer", r->prefix, key);
    }
    if (x < lo || x > hi)
        return emu2_fail(r->err, EMU2_ERR_FORMAT, "config.json: '%s%s' = %lld is out of range [%lld, %lld]",
                         r->prefix, key, x, lo, hi);
    *out = (int)x;
    return EMU2_OK;
}

static emu2_status get_real(const reader *r, const char *key, double def, double lo, double hi, double *out)
{
    json_t *v = json_object_get(r->obj, key);
    double x = def;
    if (v && !json_is_null(v)) {
        if (!json_is_number(v))
            return emu2_fail(r->err, EMU2_ERR_FORMAT, "config.json: '%s%s' must be a number", r->prefix, key);
        x = json_number_value(v);
    }
    if (!(x >= lo && x <= hi))
        return emu2_fail(r->err, EMU2_ERR_FORMAT, "config.json: '%s%s' = %g is out of range [%g, %g]",
                         r->prefix, key, x, lo, hi);
    *out = x;
    return EMU2_OK;
}

static emu2_status get_bool(const reader *r, const char *key, int def, int *out)
{
    json_t *v = json_object_get(r->obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return EMU2_OK;
    }
    if (!json_is_boolean(v))
        return emu2_fail(r->err, EMU2_ERR_FORMAT, "config.json: '%s%s' must be true or false", r->prefix, key);
    *out = json_is_true(v);
    return EMU2_OK;
}

static int int_sqrt_exact(int n, int *root)
{
    int s = (int)llround(sqrt((double)n));
    for (int c = s > 1 ? s - 1 : 0; c <= s + 1; c++)
        if ((long long)c * c == n) {
            *root = c;
            return 1;
        }
    return 0;
}

static emu2_status parse_vision(json_t *vj, emu2_vision_config *v, emu2_error *err)
{
    reader r = {vj, "vision_config.", err};
    emu2_status st;
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((st = (x)) != EMU2_OK)                                                                 \
            return st;                                                                             \
    } while (0)
    TRY(get_int(&r, "image_size", 0, 0, 1, MAX_IMAGE, &v->image_size));
    TRY(get_int(&r, "patch_size", 0, 0, 1, MAX_IMAGE, &v->patch_size));
    TRY(get_int(&r, "width", 0, 0, 1, MAX_WIDTH, &v->width));
    TRY(get_int(&r, "layers", 0, 0, 1, MAX_LAYERS, &v->layers));
    TRY(get_int(&r, "head_width", 0, 0, 1, MAX_WIDTH, &v->head_width));
    TRY(get_int(&r, "n_query", 0, 0, 1, MAX_IMAGE, &v->n_query));
    TRY(get_int(&r, "v_query", 1, v->n_query, 1, MAX_IMAGE, &v->v_query));
    TRY(get_real(&r, "layer_norm_eps", 1e-6, 1e-30, 1.0, &v->layer_norm_eps));
    TRY(get_bool(&r, "postnorm", 1, &v->postnorm));
    TRY(get_bool(&r, "qkv_bias", 1, &v->qkv_bias));

    json_t *inter = json_object_get(vj, "intermediate_size");
    if (inter && !json_is_null(inter)) {
        TRY(get_int(&r, "intermediate_size", 0, 0, 1, MAX_INTERMEDIATE, &v->intermediate_size));
    } else {
        double ratio;
        if (!json_object_get(vj, "mlp_ratio"))
            return emu2_fail(err, EMU2_ERR_FORMAT,
                             "config.json: missing key 'vision_config.intermediate_size' (or 'mlp_ratio')");
        TRY(get_real(&r, "mlp_ratio", 0, 1e-6, 1024, &ratio));
        double is = floor((double)v->width * ratio); /* Python's int(width * mlp_ratio) */
        if (is < 1 || is > MAX_INTERMEDIATE)
            return emu2_fail(err, EMU2_ERR_FORMAT,
                             "config.json: 'vision_config.mlp_ratio' gives an MLP size of %g, out of range", is);
        v->intermediate_size = (int)is;
    }
#undef TRY
    if (!v->postnorm)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "config.json: 'vision_config.postnorm' is false; only Emu2's post-norm EVA is supported");
    if (!v->qkv_bias)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "config.json: 'vision_config.qkv_bias' is false; only Emu2's q/v-bias EVA is supported");
    if (v->width % v->head_width)
        return emu2_fail(err, EMU2_ERR_FORMAT,
                         "config.json: 'vision_config.width' %d is not divisible by 'vision_config.head_width' %d",
                         v->width, v->head_width);
    if (v->image_size % v->patch_size)
        return emu2_fail(err, EMU2_ERR_FORMAT,
                         "config.json: 'vision_config.image_size' %d is not divisible by 'vision_config.patch_size' %d",
                         v->image_size, v->patch_size);
    v->heads = v->width / v->head_width;
    v->grid = v->image_size / v->patch_size;
    const char *qkeys[2] = {"n_query", "v_query"};
    int qvals[2] = {v->n_query, v->v_query};
    for (int i = 0; i < 2; i++) {
        int root;
        if (!int_sqrt_exact(qvals[i], &root))
            return emu2_fail(err, EMU2_ERR_FORMAT, "config.json: 'vision_config.%s' %d is not a perfect square",
                             qkeys[i], qvals[i]);
        if (v->grid % root)
            return emu2_fail(err, EMU2_ERR_FORMAT,
                             "config.json: 'vision_config.%s' %d: the patch grid %d is not divisible by its root %d",
                             qkeys[i], qvals[i], v->grid, root);
        if (i == 0)
            v->pool_kernel = v->grid / root;
    }
    long long tokens = (long long)v->grid * v->grid + 1;
    if (tokens > 1048576)
        return emu2_fail(err, EMU2_ERR_FORMAT, "config.json: %lld vision tokens per image is absurd", tokens);
    v->n_tokens = (int)tokens;
    return EMU2_OK;
}

static emu2_status parse_root(json_t *root, emu2_config *c, emu2_error *err)
{
    reader r = {root, "", err};
    emu2_status st;
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((st = (x)) != EMU2_OK)                                                                 \
            return st;                                                                             \
    } while (0)
    json_t *mv = json_object_get(root, "model_version");
    const char *version = "base";
    if (mv && !json_is_null(mv)) {
        if (!json_is_string(mv))
            return emu2_fail(err, EMU2_ERR_FORMAT, "config.json: 'model_version' must be a string");
        version = json_string_value(mv);
    }
    if (strcmp(version, "base") && strcmp(version, "chat"))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "config.json: 'model_version' must be \"base\" or \"chat\" (got \"%.40s\")", version);
    snprintf(c->model_version, sizeof c->model_version, "%s", version);

    TRY(get_int(&r, "hidden_size", 0, 0, 1, MAX_WIDTH, &c->hidden_size));
    TRY(get_int(&r, "intermediate_size", 0, 0, 1, MAX_INTERMEDIATE, &c->intermediate_size));
    TRY(get_int(&r, "num_hidden_layers", 0, 0, 1, MAX_LAYERS, &c->num_hidden_layers));
    TRY(get_int(&r, "num_attention_heads", 0, 0, 1, MAX_WIDTH, &c->num_attention_heads));
    TRY(get_int(&r, "num_key_value_heads", 1, c->num_attention_heads, 1, MAX_WIDTH, &c->num_key_value_heads));
    TRY(get_int(&r, "vocab_size", 0, 0, 1, MAX_VOCAB, &c->vocab_size));
    TRY(get_int(&r, "max_position_embeddings", 1, 2048, 1, MAX_POSITIONS, &c->max_position_embeddings));
    TRY(get_real(&r, "rms_norm_eps", 1e-6, 1e-30, 1.0, &c->rms_norm_eps));
    TRY(get_real(&r, "rope_theta", 10000.0, 1.0, 1e12, &c->rope_theta));
    TRY(get_int(&r, "bos_token_id", 1, 1, 0, MAX_VOCAB, &c->bos_token_id));
    TRY(get_int(&r, "eos_token_id", 1, 2, 0, MAX_VOCAB, &c->eos_token_id));
    TRY(get_int(&r, "pad_token_id", 1, -1, -1, MAX_VOCAB, &c->pad_token_id));
    TRY(get_bool(&r, "tie_word_embeddings", 0, &c->tie_word_embeddings));
    int attention_bias;
    TRY(get_bool(&r, "attention_bias", 0, &attention_bias));
#undef TRY
    if (attention_bias)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "config.json: 'attention_bias' true is not supported (LLaMA has none)");
    json_t *rs = json_object_get(root, "rope_scaling");
    if (rs && !json_is_null(rs))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "config.json: 'rope_scaling' must be null");
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !(json_is_string(act) && !strcmp(json_string_value(act), "silu")))
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "config.json: 'hidden_act' must be \"silu\"");

    if (c->hidden_size % c->num_attention_heads)
        return emu2_fail(err, EMU2_ERR_FORMAT,
                         "config.json: 'hidden_size' %d is not divisible by 'num_attention_heads' %d",
                         c->hidden_size, c->num_attention_heads);
    if (c->num_attention_heads % c->num_key_value_heads)
        return emu2_fail(err, EMU2_ERR_FORMAT,
                         "config.json: 'num_attention_heads' %d is not divisible by 'num_key_value_heads' %d",
                         c->num_attention_heads, c->num_key_value_heads);
    c->head_dim = c->hidden_size / c->num_attention_heads;
    if (c->head_dim % 2)
        return emu2_fail(err, EMU2_ERR_FORMAT, "config.json: head dim %d (hidden_size / num_attention_heads) must be even for RoPE",
                         c->head_dim);
    const char *ids[3] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    int idv[3] = {c->bos_token_id, c->eos_token_id, c->pad_token_id};
    for (int i = 0; i < 3; i++)
        if (idv[i] >= c->vocab_size)
            return emu2_fail(err, EMU2_ERR_FORMAT, "config.json: '%s' %d is not below 'vocab_size' %d", ids[i],
                             idv[i], c->vocab_size);

    json_t *vj = json_object_get(root, "vision_config");
    if (!vj || !json_is_object(vj))
        return emu2_fail(err, EMU2_ERR_FORMAT, "config.json: missing object 'vision_config'");
    if ((st = parse_vision(vj, &c->vision, err)) != EMU2_OK)
        return st;
    reader rd = {root, "", err};
    if ((st = get_int(&rd, "d_model", 1, c->vision.width, 1, MAX_WIDTH, &c->d_model)) != EMU2_OK)
        return st;
    if (c->d_model != c->vision.width)
        return emu2_fail(err, EMU2_ERR_FORMAT, "config.json: 'd_model' %d differs from 'vision_config.width' %d",
                         c->d_model, c->vision.width);
    return EMU2_OK;
}

emu2_status emu2_config_parse(const char *json, size_t len, emu2_config *cfg, emu2_error *err)
{
    if (!json || !cfg)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_config_parse: NULL argument");
    memset(cfg, 0, sizeof *cfg);
    if (len > CONFIG_MAX_BYTES)
        return emu2_fail(err, EMU2_ERR_LIMIT, "config.json: %zu bytes, more than the limit of %u", len,
                         CONFIG_MAX_BYTES);
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return emu2_fail(err, EMU2_ERR_FORMAT, "config.json: invalid JSON at line %d column %d: %s", jerr.line,
                         jerr.column, jerr.text);
    emu2_status st;
    if (!json_is_object(root))
        st = emu2_fail(err, EMU2_ERR_FORMAT, "config.json: the top level must be an object");
    else
        st = parse_root(root, cfg, err);
    json_decref(root);
    if (st != EMU2_OK)
        memset(cfg, 0, sizeof *cfg);
    return st;
}

emu2_status emu2_config_load(const char *dir, emu2_config *cfg, emu2_error *err)
{
    if (!dir || !cfg)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_config_load: NULL argument");
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/config.json", dir) >= sizeof path)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "model folder path too long");
    char *text;
    size_t len;
    emu2_status st = emu2_read_small_file(path, CONFIG_MAX_BYTES, &text, &len, err);
    if (st != EMU2_OK)
        return st;
    st = emu2_config_parse(text, len, cfg, err);
    free(text);
    if (st != EMU2_OK)
        emu2_fail_prefix(err, "%s: ", dir);
    return st;
}
