/* pipeline.c: vision tower -> splice -> prefill -> token search. */
#include "model/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "model/decoder.h"
#include "model/decoder_stepper.h"
#include "model/embed_splice.h"
#include "model/vision_tower.h"

/* Slots of `id` must be exactly n x per visual rows. */
static emu2_status check_slots(const emu2_prompt_batch *p, size_t n_ids, int32_t id, size_t n, int per,
                               const char *what, emu2_error *err)
{
    size_t slots = emu2_count_slots(p->ids, n_ids, id), want;
    if (!emu2_mul_size(n, (size_t)per, &want) || slots != want)
        return emu2_fail(err, EMU2_ERR_MISMATCH,
                         "the prompt has %zu slots of token %d but %zu %s x %d tokens = %zu visual embeddings", slots,
                         (int)id, n, what, per, n * (size_t)per);
    return EMU2_OK;
}

static emu2_status check_batch(const emu2_config *cfg, const emu2_prompt_batch *p, size_t *n_ids, emu2_error *err)
{
    if (!p || (!p->ids && p->rows && p->T) || (p->n_images && !p->pixels) || (p->n_frames && !p->frame_pixels))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "prompt batch: NULL ids or pixels");
    if (p->rows == 0 || p->T == 0 || !emu2_mul_size(p->rows, p->T, n_ids))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "prompt batch of %zu rows x %zu positions", p->rows, p->T);
    if (p->n_frames && p->frame_token_id <= 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "video frames given without a frame slot token");
    if (p->frame_token_id > 0 && p->frame_token_id == p->image_token_id)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "image and frame slots use the same token %d",
                         (int)p->image_token_id);
    emu2_status st =
        check_slots(p, *n_ids, p->image_token_id, p->n_images, cfg->vision.n_query, "<image> image(s)", err);
    if (st == EMU2_OK && p->frame_token_id > 0)
        st = check_slots(p, *n_ids, p->frame_token_id, p->n_frames, cfg->vision.v_query, "video frame(s)", err);
    return st;
}

/* Encodes n images at `per` tokens each and splices them at slot `id`. */
static emu2_status splice_visual(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                 const emu2_prompt_batch *p, size_t n_ids, int32_t id, const float *pixels, size_t n,
                                 int per, float *embeds, emu2_error *err)
{
    const size_t D = (size_t)cfg->hidden_size, n_visual = n * (size_t)per;
    if (n_visual == 0)
        return emu2_splice_rows(be, p->ids, n_ids, id, NULL, 0, D, embeds, err);
    float *visual = be->ops->alloc(be, n_visual * D, err);
    if (!visual)
        return err ? err->status : EMU2_ERR_NOMEM;
    emu2_status st = emu2_vision_encode(be, &w->vision, cfg, pixels, n, per, visual, NULL, err);
    if (st == EMU2_OK)
        st = emu2_splice_rows(be, p->ids, n_ids, id, visual, n_visual, D, embeds, err);
    be->ops->free(be, visual);
    return st;
}

emu2_status emu2_prompt_embeds(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                               const emu2_prompt_batch *p, float *embeds, emu2_error *err)
{
    if (!be || !w || !cfg || !embeds)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_prompt_embeds: NULL argument");
    size_t n_ids;
    emu2_status st = check_batch(cfg, p, &n_ids, err);
    if (st == EMU2_OK)
        st = emu2_embed_tokens(be, &w->decoder.embed, p->ids, n_ids, embeds, err);
    if (st == EMU2_OK)
        st = splice_visual(be, w, cfg, p, n_ids, p->image_token_id, p->pixels, p->n_images, cfg->vision.n_query,
                           embeds, err);
    if (st == EMU2_OK && p->frame_token_id > 0)
        st = splice_visual(be, w, cfg, p, n_ids, p->frame_token_id, p->frame_pixels, p->n_frames,
                           cfg->vision.v_query, embeds, err);
    return st;
}

emu2_status emu2_generate_tokens(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                 const emu2_prompt_batch *p, const emu2_gen_options *opts, emu2_search_ids ids,
                                 emu2_search_token_fn on_token, void *on_token_user, emu2_search_result *out,
                                 emu2_error *err)
{
    emu2_search_hooks h = {on_token, on_token_user, NULL, NULL};
    return emu2_generate_tokens_hooked(be, w, cfg, p, opts, ids, &h, out, err);
}

emu2_status emu2_generate_tokens_hooked(emu2_backend *be, const emu2_model_weights *w, const emu2_config *cfg,
                                        const emu2_prompt_batch *p, const emu2_gen_options *opts,
                                        emu2_search_ids ids, const emu2_search_hooks *hooks,
                                        emu2_search_result *out, emu2_error *err)
{
    if (!be || !w || !cfg || !p || !opts || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_generate_tokens: NULL argument");
    memset(out, 0, sizeof *out);
    size_t n_ids, max_rows, max_len;
    emu2_status st = check_batch(cfg, p, &n_ids, err);
    if (st != EMU2_OK)
        return st;
    if (opts->max_new_tokens < 1 || opts->num_beams < 1)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "max_new_tokens (%d) and num_beams (%d) must be >= 1",
                         opts->max_new_tokens, opts->num_beams);
    if (!emu2_mul_size(p->rows, (size_t)opts->num_beams, &max_rows) ||
        !emu2_add_size(p->T, (size_t)opts->max_new_tokens, &max_len))
        return emu2_fail(err, EMU2_ERR_LIMIT, "generation size overflows");
    const size_t D = (size_t)cfg->hidden_size, V = (size_t)cfg->vocab_size;
    float *embeds = be->ops->alloc(be, n_ids * D, err);
    float *logits = malloc(p->rows * V * sizeof *logits);
    emu2_decoder_session *s = NULL;
    emu2_decoder_limits lim = {max_rows, max_len, 0};
    if (!embeds || !logits)
        st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the prompt");
    if (st == EMU2_OK)
        st = emu2_prompt_embeds(be, w, cfg, p, embeds, err);
    if (st == EMU2_OK)
        st = emu2_decoder_session_create(be, &w->decoder, cfg, &lim, &s, err);
    if (st == EMU2_OK)
        st = emu2_decoder_prefill(s, p->rows, p->T, embeds, p->mask, logits, NULL, err);
    if (embeds) /* the cache holds what the search needs from here on */
        be->ops->free(be, embeds);
    if (st == EMU2_OK) {
        emu2_lm_stepper lm;
        emu2_decoder_stepper(s, &lm);
        st = emu2_search_hooked(&lm, logits, p->rows, opts, ids, hooks, out, err);
    }
    emu2_decoder_session_free(s);
    free(logits);
    return st;
}
