/* model.c: the emu2_model handle: loading a model folder and the calls that only need the input
 * layer (info, tokenize, preprocess). The networks plug in here as they land. */
#include <stdlib.h>
#include <string.h>

#include "api/model_internal.h"
#include "common/error.h"
#include "diffusion/gen_model.h"
#include "image/image.h"
#include "model/random_weights.h"

void emu2_load_options_init(emu2_load_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->device = "auto";
}

/* Copies the caller's options, tolerating an older (smaller) struct. */
static emu2_status read_load_options(const emu2_load_options *in, emu2_load_options *out, emu2_error *err)
{
    emu2_load_options_init(out);
    if (!in)
        return EMU2_OK;
    if (in->struct_size < offsetof(emu2_load_options, progress) || in->struct_size > sizeof *out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "emu2_load_options.struct_size is %zu: call emu2_load_options_init first",
                         in->struct_size);
    memcpy(out, in, in->struct_size);
    if (out->threads < 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "threads must be >= 0 (0 = all cores), got %d",
                         out->threads);
    if (!out->device)
        out->device = "auto";
    if (out->precision && strcmp(out->precision, "f32") && strcmp(out->precision, "bf16"))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "precision must be \"f32\" or \"bf16\", got \"%.64s\"",
                         out->precision);
    return EMU2_OK;
}

/* Parameters as stored (a fused qkv.bias counts once, whatever views the canonical layout makes). */
static uint64_t stored_param_count(const emu2_checkpoint *ck)
{
    uint64_t n = 0;
    for (size_t f = 0; f < ck->n_files; f++)
        for (size_t i = 0; i < ck->files[f].n_stored; i++)
            n += emu2_param_count(ck->files[f].stored[i].name, &ck->files[f].stored[i].view);
    return n;
}

static int report_progress(const emu2_load_options *o, const char *stage, uint64_t done, uint64_t total)
{
    return o->progress ? o->progress(o->progress_user, stage, done, total) : 0;
}

emu2_status emu2_model_load(const char *dir, const emu2_load_options *opts, emu2_model **out, emu2_error *err)
{
    emu2_error local;
    if (!err)
        err = &local;
    emu2_error_clear(err);
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_model_load: out is NULL");
    *out = NULL;
    if (!dir || !*dir)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_model_load: no model folder given");

    emu2_model *m = calloc(1, sizeof *m);
    if (!m)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    emu2_status st = read_load_options(opts, &m->opts, err);
    char gen_enc[1024], gen_tok[1024]; /* Emu2-Gen: config in multimodal_encoder/, tokenizer in tokenizer/ */
    const int is_gen = emu2_gen_folder_paths(dir, gen_enc, gen_tok, sizeof gen_enc);
    if (st == EMU2_OK && report_progress(&m->opts, "config", 0, 3))
        st = emu2_fail(err, EMU2_ERR_CANCELLED, "loading cancelled");
    if (st == EMU2_OK) {
        st = emu2_config_load(is_gen ? gen_enc : dir, &m->cfg, err);
        if (st != EMU2_OK)
            emu2_fail_prefix(err, "%s: ", dir);
    }
    if (st == EMU2_OK && report_progress(&m->opts, "tokenizer", 1, 3))
        st = emu2_fail(err, EMU2_ERR_CANCELLED, "loading cancelled");
    if (st == EMU2_OK) {
        st = emu2_tokenizer_load(is_gen ? gen_tok : dir, m->cfg.model_version, &m->tok, err);
        if (st == EMU2_OK && emu2_tokenizer_vocab_size(m->tok) > m->cfg.vocab_size)
            st = emu2_fail(err, EMU2_ERR_MISMATCH,
                           "%s: the tokenizer has %d tokens but config.json says vocab_size %d", dir,
                           (int)emu2_tokenizer_vocab_size(m->tok), m->cfg.vocab_size);
        if (st == EMU2_OK) {
            m->image_token_id = emu2_tokenizer_token_id(m->tok, "<image>");
            if (m->image_token_id < 0)
                st = emu2_fail(err, EMU2_ERR_FORMAT, "%s: the tokenizer has no <image> token", dir);
        }
    }
    if (st == EMU2_OK && !(m->opts.flags & EMU2_LOAD_NO_WEIGHTS)) {
        if (report_progress(&m->opts, "weights", 2, 3))
            st = emu2_fail(err, EMU2_ERR_CANCELLED, "loading cancelled");
        else if (!(m->opts.flags & EMU2_LOAD_RANDOM_WEIGHTS)) /* random: built below, in the backend's memory */
            st = emu2_checkpoint_open(dir, &m->ckpt, err);
        if (st == EMU2_OK && m->ckpt)
            m->n_params = stored_param_count(m->ckpt);
        if (st == EMU2_OK) {
            emu2_backend_options bo;
            emu2_backend_options_init(&bo);
            bo.threads = m->opts.threads;
            bo.bf16_dot = m->opts.precision && !strcmp(m->opts.precision, "bf16");
            st = emu2_backend_open(m->opts.device, &bo, &m->be, err);
        }
        if (st == EMU2_OK && !m->ckpt) {
            st = emu2_random_checkpoint(m->be, &m->cfg, m->opts.random_seed, &m->ckpt, err);
            if (st == EMU2_OK)
                m->n_params = stored_param_count(m->ckpt);
        }
        if (st == EMU2_OK) {
            st = emu2_model_weights_bind_quant(m->be, m->ckpt, &m->cfg, m->opts.quant, &m->w, err);
            if (st != EMU2_OK)
                emu2_fail_prefix(err, "%s: ", dir);
        }
        if (st == EMU2_OK && is_gen)
            st = emu2_gen_model_load(dir, m->be, m->opts.device, m->opts.threads, &m->cfg, &m->gen, err);
    }
    if (st == EMU2_OK)
        report_progress(&m->opts, "done", 3, 3);
    if (st != EMU2_OK) {
        emu2_model_free(m);
        return st;
    }
    m->last_error[0] = '\0';
    *out = m;
    return EMU2_OK;
}

void emu2_model_free(emu2_model *m)
{
    if (!m)
        return;
    /* weights and backend hold views into the checkpoint's mappings: release them first */
    emu2_gen_model_free(m->gen);
    if (m->w)
        emu2_model_weights_free(m->w);
    if (m->be)
        emu2_backend_close(m->be);
    if (m->ckpt)
        emu2_checkpoint_close(m->ckpt);
    if (m->tok)
        emu2_tokenizer_free(m->tok);
    free(m);
}

const char *emu2_model_last_error(const emu2_model *m)
{
    return m ? m->last_error : "no model";
}

emu2_status emu2_model_fail(emu2_model *m, const emu2_error *e)
{
    snprintf(m->last_error, sizeof m->last_error, "%s", e->message);
    return e->status;
}

emu2_status emu2_model_get_info(emu2_model *m, emu2_model_info *info)
{
    if (!m || !info)
        return EMU2_ERR_INVALID_ARGUMENT;
    const emu2_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    info->model_version = c->model_version;
    info->image_size = c->vision.image_size;
    info->patch_size = c->vision.patch_size;
    info->vision_width = c->vision.width;
    info->vision_layers = c->vision.layers;
    info->n_query = c->vision.n_query;
    info->hidden_size = c->hidden_size;
    info->num_layers = c->num_hidden_layers;
    info->num_heads = c->num_attention_heads;
    info->vocab_size = c->vocab_size;
    info->bos_id = c->bos_token_id;
    info->eos_id = c->eos_token_id;
    info->pad_id = c->pad_token_id;
    info->image_token_id = m->image_token_id;
    info->n_params = m->n_params;
    info->device = m->be ? (m->be->device[0] ? m->be->device : m->be->ops->name) : "none (loaded without weights)";
    m->last_error[0] = '\0';
    return EMU2_OK;
}

emu2_status emu2_tokenize(emu2_model *m, const char *text, unsigned flags, int32_t **ids, size_t *n_ids)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    emu2_error e;
    emu2_error_clear(&e);
    if (!text || !ids || !n_ids)
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT, "emu2_tokenize: NULL argument"});
    emu2_status st = emu2_tokenizer_encode(m->tok, text, flags, m->cfg.vision.n_query, ids, n_ids, &e);
    if (st != EMU2_OK)
        return emu2_model_fail(m, &e);
    m->last_error[0] = '\0';
    return EMU2_OK;
}

emu2_status emu2_detokenize(emu2_model *m, const int32_t *ids, size_t n_ids, int skip_special, char **text)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    emu2_error e;
    emu2_error_clear(&e);
    if ((!ids && n_ids) || !text)
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT, "emu2_detokenize: NULL argument"});
    emu2_status st = emu2_tokenizer_decode(m->tok, ids, n_ids, skip_special, text, &e);
    if (st != EMU2_OK)
        return emu2_model_fail(m, &e);
    m->last_error[0] = '\0';
    return EMU2_OK;
}

emu2_status emu2_preprocess(emu2_model *m, const void *bytes, size_t n_bytes, const emu2_image_limits *limits,
                            float **out, size_t *n_out)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    emu2_error e;
    emu2_error_clear(&e);
    if (!bytes || !out || !n_out)
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT, "emu2_preprocess: NULL argument"});
    int s = m->cfg.vision.image_size;
    emu2_status st = emu2_image_preprocess(bytes, n_bytes, limits, s, out, &e);
    if (st != EMU2_OK)
        return emu2_model_fail(m, &e);
    *n_out = (size_t)3 * (size_t)s * (size_t)s;
    m->last_error[0] = '\0';
    return EMU2_OK;
}
