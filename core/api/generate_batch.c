/* generate_batch.c: emu2_generate_batch: many requests in one forward pass.
 *
 * Each request is checked, templated, tokenized and its images decoded on its own, so a bad request
 * fails alone. The good ones become one left-padded batch (as transformers pads for generate): one
 * vision-tower pass over all their images, one prefill, one search. Per-request streaming, stop and
 * cancel go through the search's per-item hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/generate_internal.h"
#include "api/model_internal.h"
#include "common/checked.h"
#include "common/error.h"
#include "generate/text_stream.h"
#include "model/pipeline.h"

void emu2_batch_hooks_init(emu2_batch_hooks *h)
{
    if (!h)
        return;
    memset(h, 0, sizeof *h);
    h->struct_size = sizeof *h;
}

void emu2_results_clear(emu2_result *results, size_t n)
{
    if (!results)
        return;
    for (size_t i = 0; i < n; i++) {
        emu2_free(results[i].text);
        memset(&results[i], 0, sizeof results[i]);
    }
}

void emu2_api_result_fail(emu2_result *r, const emu2_error *e)
{
    r->status = e->status != EMU2_OK ? e->status : EMU2_ERR_INTERNAL;
    snprintf(r->message, sizeof r->message, "%s", e->message[0] ? e->message : emu2_status_name(r->status));
}

/* One good request on its way through the batch. */
typedef struct batch_item {
    size_t request;       /* index in the caller's arrays */
    int32_t *ids;         /* tokenized prompt */
    size_t n_ids;
    float *pixels;        /* its images, n x [3, S, S] */
    size_t n_images;
    emu2_text_stream ts;  /* streaming (only with hooks->on_token) */
    struct batch_run *run;
} batch_item;

typedef struct batch_run {
    const emu2_batch_hooks *hooks;
    batch_item *items;
} batch_run;

/* emu2_token_fn of one item's text stream -> the caller's per-request callback. */
static int item_piece(void *user, int32_t id, const char *piece)
{
    batch_item *it = user;
    return it->run->hooks->on_token(it->run->hooks->user, it->request, id, piece);
}

/* emu2_search_token_fn: routes a token to its item's stream; the caller's "stop" ends that item only. */
static emu2_status item_token(void *user, size_t item, int32_t id, int *stop, emu2_error *err)
{
    batch_run *run = user;
    emu2_status st = emu2_text_stream_token(&run->items[item].ts, 0, id, stop, err);
    if (*stop)
        *stop = EMU2_SEARCH_STOP_ITEM;
    return st;
}

static int item_cancelled(void *user, size_t item)
{
    batch_run *run = user;
    return run->hooks->cancelled(run->hooks->user, run->items[item].request);
}

emu2_status emu2_api_prepare_request(const emu2_model *m, const emu2_request *rq, int32_t **ids, size_t *n_ids,
                                     float **pixels, emu2_error *err)
{
    *ids = NULL;
    *pixels = NULL;
    if (rq->n_images && !rq->images)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "images is NULL but n_images is %zu", rq->n_images);
    char *describe = rq->prompt ? NULL : emu2_api_describe_prompt(NULL);
    if (!rq->prompt && !describe)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    emu2_status st = emu2_api_prepare_prompt(m, rq->prompt ? rq->prompt : describe, rq->n_images, ids, n_ids, err);
    free(describe);
    if (st == EMU2_OK)
        st = emu2_api_preprocess_images(m, rq->images, rq->n_images, pixels, err);
    return st;
}

/* Checks, templates, tokenizes and decodes the images of request i. */
static emu2_status prepare_item(const emu2_model *m, const emu2_request *rq, batch_item *it, emu2_error *err)
{
    it->n_images = rq->n_images;
    return emu2_api_prepare_request(m, rq, &it->ids, &it->n_ids, &it->pixels, err);
}

/* The left-padded batch of the good items: ids, mask and their images in (row, position) order. */
static emu2_status assemble(const emu2_model *m, batch_item *items, size_t n, emu2_prompt_batch *p, int32_t **ids_out,
                            uint8_t **mask_out, float **px_out, emu2_error *err)
{
    size_t T = 0, n_img = 0, cells, px_floats;
    const size_t per = 3 * (size_t)m->cfg.vision.image_size * (size_t)m->cfg.vision.image_size;
    for (size_t i = 0; i < n; i++) {
        T = items[i].n_ids > T ? items[i].n_ids : T;
        n_img += items[i].n_images;
    }
    if (!emu2_mul_size(n, T, &cells) || !emu2_mul_size(n_img, per, &px_floats))
        return emu2_fail(err, EMU2_ERR_LIMIT, "the batch is too large");
    int32_t *ids = malloc(cells * sizeof *ids);
    uint8_t *mask = malloc(cells);
    float *px = n_img ? malloc(px_floats * sizeof *px) : NULL;
    if (!ids || !mask || (n_img && !px)) {
        free(ids), free(mask), free(px);
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for a batch of %zu requests", n);
    }
    size_t img = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pad = T - items[i].n_ids;
        for (size_t t = 0; t < pad; t++) {
            ids[i * T + t] = m->cfg.pad_token_id;
            mask[i * T + t] = 0;
        }
        memcpy(ids + i * T + pad, items[i].ids, items[i].n_ids * sizeof *ids);
        memset(mask + i * T + pad, 1, items[i].n_ids);
        if (items[i].n_images)
            memcpy(px + img * per, items[i].pixels, items[i].n_images * per * sizeof *px);
        img += items[i].n_images;
    }
    *p = (emu2_prompt_batch){.ids = ids,
                             .mask = mask,
                             .rows = n,
                             .T = T,
                             .image_token_id = m->image_token_id,
                             .pixels = px,
                             .n_images = n_img};
    *ids_out = ids;
    *mask_out = mask;
    *px_out = px;
    return EMU2_OK;
}

/* Runs the good items; fills their results. A failure here is a failure of the whole batch. */
static emu2_status run_items(emu2_model *m, batch_item *items, size_t n, const emu2_gen_options *opts,
                             const emu2_batch_hooks *hooks, emu2_result *results, emu2_error *err)
{
    emu2_prompt_batch p;
    int32_t *ids = NULL;
    uint8_t *mask = NULL;
    float *px = NULL;
    emu2_status st = assemble(m, items, n, &p, &ids, &mask, &px, err);
    if (st != EMU2_OK)
        return st;
    batch_run run = {hooks, items};
    for (size_t i = 0; i < n; i++) {
        items[i].run = &run;
        emu2_text_stream_init(&items[i].ts, emu2_api_decode_for_stream, m->tok, hooks->on_token ? item_piece : NULL,
                              &items[i]);
    }
    emu2_search_hooks sh = {item_token, &run, hooks->cancelled ? item_cancelled : NULL, &run};
    emu2_search_ids sid = {m->cfg.bos_token_id, m->cfg.eos_token_id, m->cfg.pad_token_id};
    emu2_search_result res = {0};
    st = emu2_generate_tokens_hooked(m->be, m->w, &m->cfg, &p, opts, sid, &sh, &res, err);
    for (size_t i = 0; i < n && st == EMU2_OK; i++) {
        emu2_result *r = &results[items[i].request];
        const emu2_search_item *si = &res.items[i];
        if (si->cancelled) {
            r->status = EMU2_ERR_CANCELLED;
            r->stopped = 1;
            snprintf(r->message, sizeof r->message, "cancelled");
            continue;
        }
        if (hooks->on_token && !si->stopped && (st = emu2_text_stream_finish(&items[i].ts, err)) != EMU2_OK)
            break;
        emu2_error e;
        emu2_error_clear(&e);
        emu2_status one = emu2_tokenizer_decode(m->tok, si->ids, si->n_ids, 1, &r->text, &e);
        if (one != EMU2_OK) {
            emu2_api_result_fail(r, &e);
            continue;
        }
        r->status = EMU2_OK;
        r->n_tokens = si->n_ids;
        r->stopped = si->stopped;
    }
    for (size_t i = 0; i < n; i++)
        emu2_text_stream_free(&items[i].ts);
    emu2_search_result_free(&res);
    free(ids);
    free(mask);
    free(px);
    return st;
}

emu2_status emu2_generate_batch(emu2_model *m, const emu2_request *requests, size_t n, const emu2_gen_options *opts_in,
                                const emu2_batch_hooks *hooks_in, emu2_result *results)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    emu2_error e;
    emu2_error_clear(&e);
    if (!results || (n && !requests))
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT, "emu2_generate_batch: NULL argument"});
    memset(results, 0, n * sizeof *results);
    emu2_batch_hooks hooks;
    emu2_batch_hooks_init(&hooks);
    emu2_gen_options opts;
    emu2_status st = EMU2_OK;
    if (hooks_in) {
        if (hooks_in->struct_size < offsetof(emu2_batch_hooks, user) + sizeof(void *) ||
            hooks_in->struct_size > sizeof hooks)
            st = emu2_fail(&e, EMU2_ERR_INVALID_ARGUMENT,
                           "emu2_batch_hooks.struct_size is %zu: call emu2_batch_hooks_init first",
                           hooks_in->struct_size);
        else
            memcpy(&hooks, hooks_in, hooks_in->struct_size);
    }
    if (st == EMU2_OK)
        st = emu2_read_gen_options(opts_in, &opts, &e);
    if (st == EMU2_OK && !m->w)
        st = emu2_fail(&e, EMU2_ERR_INVALID_ARGUMENT, "the model was loaded without weights (EMU2_LOAD_NO_WEIGHTS)");
    batch_item *items = NULL;
    if (st == EMU2_OK && n && !(items = calloc(n, sizeof *items)))
        st = emu2_fail(&e, EMU2_ERR_NOMEM, "out of memory for a batch of %zu requests", n);
    size_t good = 0;
    for (size_t i = 0; i < n && st == EMU2_OK; i++) {
        batch_item *it = &items[good];
        memset(it, 0, sizeof *it);
        it->request = i;
        emu2_error one;
        emu2_error_clear(&one);
        if (prepare_item(m, &requests[i], it, &one) != EMU2_OK) {
            emu2_api_result_fail(&results[i], &one);
            free(it->ids);
            free(it->pixels);
            continue;
        }
        good++;
    }
    if (st == EMU2_OK && good)
        st = run_items(m, items, good, &opts, &hooks, results, &e);
    for (size_t i = 0; i < good; i++) {
        free(items[i].ids);
        free(items[i].pixels);
    }
    free(items);
    if (st != EMU2_OK) {
        emu2_results_clear(results, n);
        for (size_t i = 0; i < n; i++)
            emu2_api_result_fail(&results[i], &e);
        return emu2_model_fail(m, &e);
    }
    m->last_error[0] = '\0';
    return EMU2_OK;
}
