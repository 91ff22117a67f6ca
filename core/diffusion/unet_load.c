/* unet_load.c: the UNet's config checks and weight binding (unet.h). */
#include <stdlib.h>
#include <string.h>

#include "diffusion/unet.h"

#define UNET_MAX_LEVELS 8
#define UNET_MAX_LAYERS 8

/* A string config value, or def when absent / null. */
static const char *config_str(const dif_component *c, const char *key, const char *def)
{
    const json_t *v = json_object_get(c->config, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

/* Keys whose non-default values change the math in ways this engine does not implement. */
static emu2_status check_supported(const dif_component *c, emu2_error *err)
{
    static const char *const must_be_null[] = {"class_embed_type", "encoder_hid_dim", "time_cond_proj_dim",
                                               "time_embedding_act_fn", "timestep_post_act", "num_class_embeds"};
    for (size_t i = 0; i < sizeof must_be_null / sizeof *must_be_null; i++) {
        const json_t *v = json_object_get(c->config, must_be_null[i]);
        if (v && !json_is_null(v))
            return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s/config.json: '%s' must be null for this engine", c->dir,
                             must_be_null[i]);
    }
    static const char *const must_be_false[] = {"dual_cross_attention", "only_cross_attention", "center_input_sample",
                                                "resnet_skip_time_act", "class_embeddings_concat"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof *must_be_false; i++) {
        const json_t *v = json_object_get(c->config, must_be_false[i]);
        if (json_is_true(v))
            return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s/config.json: '%s' must be false for this engine", c->dir,
                             must_be_false[i]);
    }
    const struct {
        const char *key, *want;
    } strs[] = {{"addition_embed_type", "text_time"},  {"time_embedding_type", "positional"},
                {"resnet_time_scale_shift", "default"}, {"act_fn", "silu"},
                {"mid_block_type", "UNetMidBlock2DCrossAttn"}};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++) {
        const char *v = config_str(c, strs[i].key, strs[i].want);
        if (strcmp(v, strs[i].want))
            return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s/config.json: '%s' is \"%s\"; this engine handles \"%s\"",
                             c->dir, strs[i].key, v, strs[i].want);
    }
    const char *nums[] = {"mid_block_scale_factor", "resnet_out_scale_factor"};
    for (size_t i = 0; i < 2; i++) {
        double v;
        emu2_status st = dif_config_num(c, nums[i], 1, 1.0, &v, err);
        if (st != EMU2_OK)
            return st;
        if (v != 1.0)
            return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s/config.json: '%s' = %g (only 1 is handled)", c->dir,
                             nums[i], v);
    }
    long k;
    emu2_status st = dif_config_int(c, "conv_in_kernel", 1, 3, 1, 15, &k, err);
    if (st == EMU2_OK && k != 3)
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s/config.json: conv_in_kernel %ld (want 3)", c->dir, k);
    if (st == EMU2_OK)
        st = dif_config_int(c, "conv_out_kernel", 1, 3, 1, 15, &k, err);
    if (st == EMU2_OK && k != 3)
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s/config.json: conv_out_kernel %ld (want 3)", c->dir, k);
    return st;
}

/* Heads of level i (mid = the last level): num_attention_heads, else attention_head_dim (diffusers
 * reads the latter as a head count when the former is null). */
static emu2_status heads_at(const dif_component *c, size_t i, long *out, emu2_error *err)
{
    const json_t *v = json_object_get(c->config, "num_attention_heads");
    return dif_config_int_at(c, v && !json_is_null(v) ? "num_attention_heads" : "attention_head_dim", i, out, err);
}

static emu2_status bind_level(dif_binder *b, dif_unet_level *L, const char *kind, size_t i, size_t n_res,
                              int cross, long heads, const dif_unet *u)
{
    L->n_res = n_res;
    L->res = calloc(n_res, sizeof *L->res);
    if (cross) {
        L->attn = calloc(n_res, sizeof *L->attn);
        L->n_attn = n_res;
    }
    if (!L->res || (cross && !L->attn))
        return b->st = emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory");
    char p[128];
    for (size_t j = 0; j < n_res && b->st == EMU2_OK; j++) {
        snprintf(p, sizeof p, "%s.%zu.resnets.%zu", kind, i, j);
        dif_bind_resnet(b, &L->res[j], u->temb_dim, p);
        if (cross) {
            snprintf(p, sizeof p, "%s.%zu.attentions.%zu", kind, i, j);
            dif_bind_transformer(b, &L->attn[j], (size_t)heads, u->cross_dim, p);
            if (b->st == EMU2_OK && L->attn[j].C != L->res[j].cout)
                b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s: %s has %zu channels after a %zu-channel resnet",
                                  b->c->dir, p, L->attn[j].C, L->res[j].cout);
        } else if (dif_has(b, "%s.%zu.attentions.%zu.norm.weight", kind, i, j)) {
            b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s: %s.%zu has attentions but config.json says it has none",
                              b->c->dir, kind, i);
        }
    }
    const char *sampler = strcmp(kind, "down_blocks") ? "upsamplers" : "downsamplers";
    if (b->st == EMU2_OK && dif_has(b, "%s.%zu.%s.0.conv.weight", kind, i, sampler)) {
        size_t C = L->res[n_res - 1].cout;
        L->has_sampler = 1;
        dif_bind_conv(b, &L->sampler, C, C, 3, "%s.%zu.%s.0.conv.weight", kind, i, sampler);
        dif_bind_vec(b, &L->sampler_b, C, "%s.%zu.%s.0.conv.bias", kind, i, sampler);
    }
    return b->st;
}

static void free_level(dif_unet_level *L)
{
    if (L->attn)
        for (size_t j = 0; j < L->n_attn; j++)
            dif_transformer_free(&L->attn[j]);
    free(L->attn);
    free(L->res);
    memset(L, 0, sizeof *L);
}

static emu2_status read_geometry(dif_unet *u, emu2_error *err)
{
    const dif_component *c = &u->comp;
    long v;
    double d;
    emu2_status st = check_supported(c, err);
    if (st == EMU2_OK && (st = dif_config_int(c, "in_channels", 1, 4, 1, 64, &v, err)) == EMU2_OK)
        u->in_ch = (size_t)v;
    if (st == EMU2_OK && (st = dif_config_int(c, "out_channels", 1, 4, 1, 64, &v, err)) == EMU2_OK)
        u->out_ch = (size_t)v;
    if (st == EMU2_OK && (st = dif_config_int(c, "norm_num_groups", 1, 32, 1, 4096, &v, err)) == EMU2_OK)
        u->groups = (size_t)v;
    if (st == EMU2_OK && (st = dif_config_num(c, "norm_eps", 1, 1e-5, &d, err)) == EMU2_OK)
        u->norm_eps = (float)d;
    if (st == EMU2_OK && (st = dif_config_int(c, "cross_attention_dim", 0, 0, 1, 1 << 16, &v, err)) == EMU2_OK)
        u->cross_dim = (size_t)v;
    if (st == EMU2_OK && (st = dif_config_int(c, "addition_time_embed_dim", 0, 0, 2, 1 << 14, &v, err)) == EMU2_OK)
        u->add_time_dim = (size_t)v;
    if (st == EMU2_OK && (st = dif_config_int(c, "sample_size", 1, 128, 1, 1 << 14, &v, err)) == EMU2_OK)
        u->sample_size = (size_t)v;
    if (st == EMU2_OK && (st = dif_config_num(c, "freq_shift", 1, 0, &u->freq_shift, err)) == EMU2_OK)
        st = dif_config_bool(c, "flip_sin_to_cos", 1, &u->flip_sin_to_cos, err);
    if (st != EMU2_OK)
        return st;
    u->n_levels = dif_config_list_len(c, "block_out_channels");
    if (u->n_levels < 1 || u->n_levels > UNET_MAX_LEVELS || dif_config_list_len(c, "down_block_types") != u->n_levels ||
        dif_config_list_len(c, "up_block_types") != u->n_levels)
        return emu2_fail(err, EMU2_ERR_FORMAT,
                         "%s/config.json: block_out_channels, down_block_types and up_block_types must be lists of "
                         "the same length (1..%d)",
                         c->dir, UNET_MAX_LEVELS);
    if (u->add_time_dim % 2)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s/config.json: odd addition_time_embed_dim", c->dir);
    return EMU2_OK;
}

static int block_kind(const char *name, const char *plain, const char *cross)
{
    if (name && !strcmp(name, plain))
        return 0;
    if (name && !strcmp(name, cross))
        return 1;
    return -1;
}

/* The down (up = 0) or up (up = 1) blocks: each a DownBlock2D / UpBlock2D or its CrossAttn variant with
 * the heads of its level (the up blocks walk the levels in reverse); an up block has one more resnet. */
static emu2_status bind_levels(dif_unet *u, dif_binder *b, int up, size_t layers)
{
    const dif_component *c = &u->comp;
    const char *side = up ? "up" : "down";
    char key[32], prefix[32], plain[32], cross_name[48];
    snprintf(key, sizeof key, "%s_block_types", side);
    snprintf(prefix, sizeof prefix, "%s_blocks", side);
    snprintf(plain, sizeof plain, "%sBlock2D", up ? "Up" : "Down");
    snprintf(cross_name, sizeof cross_name, "CrossAttn%s", plain);
    dif_unet_level *levels = up ? u->up : u->down;
    size_t n = u->n_levels;
    for (size_t i = 0; i < n && b->st == EMU2_OK; i++) {
        long heads = 0;
        int cross = block_kind(dif_config_str_at(c, key, i), plain, cross_name);
        if (cross < 0)
            return b->st = emu2_fail(b->err, EMU2_ERR_UNSUPPORTED, "%s/config.json: %s block %zu is not %s or %s",
                                     c->dir, side, i, plain, cross_name);
        if (cross && (b->st = heads_at(c, up ? n - 1 - i : i, &heads, b->err)) != EMU2_OK)
            return b->st;
        bind_level(b, &levels[i], prefix, i, layers + (size_t)up, cross, heads, u);
    }
    return b->st;
}

static emu2_status bind_all(void *obj, dif_binder *b)
{
    dif_unet *u = obj;
    const dif_component *c = &u->comp;
    long layers;
    emu2_status st = dif_config_int(c, "layers_per_block", 1, 2, 1, UNET_MAX_LAYERS, &layers, b->err);
    if (st != EMU2_OK)
        return b->st = st;
    if (!dif_bind_mat(b, &u->time_l1, 0, 0, "time_embedding.linear_1.weight"))
        return b->st;
    u->temb_dim = (size_t)u->time_l1.w.shape[0];
    u->c0 = (size_t)u->time_l1.w.shape[1];
    dif_bind_vec(b, &u->time_l1_b, u->temb_dim, "time_embedding.linear_1.bias");
    dif_bind_mat(b, &u->time_l2, u->temb_dim, u->temb_dim, "time_embedding.linear_2.weight");
    dif_bind_vec(b, &u->time_l2_b, u->temb_dim, "time_embedding.linear_2.bias");
    u->add_in_dim = u->cross_dim + 6 * u->add_time_dim; /* text_embeds = mean of the condition tokens */
    dif_bind_mat(b, &u->add_l1, u->temb_dim, u->add_in_dim, "add_embedding.linear_1.weight");
    dif_bind_vec(b, &u->add_l1_b, u->temb_dim, "add_embedding.linear_1.bias");
    dif_bind_mat(b, &u->add_l2, u->temb_dim, u->temb_dim, "add_embedding.linear_2.weight");
    dif_bind_vec(b, &u->add_l2_b, u->temb_dim, "add_embedding.linear_2.bias");
    dif_bind_conv(b, &u->conv_in, u->c0, u->in_ch, 3, "conv_in.weight");
    dif_bind_vec(b, &u->conv_in_b, u->c0, "conv_in.bias");
    dif_bind_vec(b, &u->norm_out_w, u->c0, "conv_norm_out.weight");
    dif_bind_vec(b, &u->norm_out_b, u->c0, "conv_norm_out.bias");
    dif_bind_conv(b, &u->conv_out, u->out_ch, u->c0, 3, "conv_out.weight");
    dif_bind_vec(b, &u->conv_out_b, u->out_ch, "conv_out.bias");
    if (b->st != EMU2_OK)
        return b->st;
    u->down = calloc(u->n_levels, sizeof *u->down);
    u->up = calloc(u->n_levels, sizeof *u->up);
    if (!u->down || !u->up)
        return b->st = emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory");
    size_t n = u->n_levels;
    if (bind_levels(u, b, 0, (size_t)layers) != EMU2_OK)
        return b->st;
    long mid_heads;
    if (b->st == EMU2_OK && (b->st = heads_at(c, n - 1, &mid_heads, b->err)) == EMU2_OK) {
        dif_unet_level *m = &u->mid;
        m->n_res = 2;
        m->res = calloc(2, sizeof *m->res);
        m->attn = calloc(1, sizeof *m->attn);
        m->n_attn = 1;
        if (!m->res || !m->attn)
            return b->st = emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory");
        dif_bind_resnet(b, &m->res[0], u->temb_dim, "mid_block.resnets.0");
        dif_bind_transformer(b, &m->attn[0], (size_t)mid_heads, u->cross_dim, "mid_block.attentions.0");
        dif_bind_resnet(b, &m->res[1], u->temb_dim, "mid_block.resnets.1");
    }
    if (b->st == EMU2_OK)
        bind_levels(u, b, 1, (size_t)layers);
    return b->st;
}

emu2_status dif_unet_load(const char *dir, emu2_backend *be, dif_unet **out, emu2_error *err)
{
    *out = NULL;
    dif_unet *u = calloc(1, sizeof *u);
    if (!u)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    emu2_status st = dif_component_open(dir, &u->comp, err);
    if (st == EMU2_OK)
        st = read_geometry(u, err);
    if (st == EMU2_OK)
        st = dif_bind_and_prepare(&u->comp, &u->views, be, bind_all, u, err);
    if (st != EMU2_OK) {
        dif_unet_free(u, be);
        return st;
    }
    *out = u;
    return EMU2_OK;
}

void dif_unet_free(dif_unet *u, emu2_backend *be)
{
    if (!u)
        return;
    dif_views_release(be, &u->views);
    for (size_t i = 0; i < u->n_levels; i++) {
        if (u->down)
            free_level(&u->down[i]);
        if (u->up)
            free_level(&u->up[i]);
    }
    free(u->down);
    free(u->up);
    free_level(&u->mid);
    dif_component_close(&u->comp);
    free(u);
}
