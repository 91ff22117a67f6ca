/* search.c: emu2_search: checks the options, then runs greedy/sampling or beam search. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "generate/search_internal.h"

void *emu2_search_alloc(size_t count, size_t size, const char *what, emu2_error *err)
{
    size_t bytes;
    if (!emu2_mul_size(count ? count : 1, size, &bytes)) {
        emu2_fail(err, EMU2_ERR_LIMIT, "generation: %s (%zu x %zu bytes) is too large", what, count, size);
        return NULL;
    }
    void *p = malloc(bytes);
    if (!p)
        emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for %s (%zu bytes)", what, bytes);
    return p;
}

emu2_status emu2_ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t v, emu2_error *err)
{
    if (*n == *cap) {
        size_t grown = *cap ? *cap * 2 : 16, bytes;
        if (grown < *cap || !emu2_mul_size(grown, sizeof **ids, &bytes))
            return emu2_fail(err, EMU2_ERR_LIMIT, "generation: token sequence too long");
        int32_t *p = realloc(*ids, bytes);
        if (!p)
            return emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for %zu tokens", grown);
        *ids = p;
        *cap = grown;
    }
    (*ids)[(*n)++] = v;
    return EMU2_OK;
}

emu2_status emu2_search_emit(const emu2_search_ctx *c, size_t item, int32_t id, int *stop, emu2_error *err)
{
    *stop = 0;
    if (!c->on_token)
        return EMU2_OK;
    emu2_error_clear(err);
    emu2_status st = c->on_token(c->on_token_user, item, id, stop, err);
    if (st != EMU2_OK && err && !err->message[0])
        emu2_fail(err, st, "generation: the token callback failed (%s) at token %d of item %zu",
                  emu2_status_name(st), (int)id, item);
    else if (st != EMU2_OK && err)
        err->status = st;
    return st;
}

void emu2_search_result_free(emu2_search_result *r)
{
    if (!r)
        return;
    if (r->items)
        for (size_t i = 0; i < r->batch; i++)
            free(r->items[i].ids);
    free(r->items);
    memset(r, 0, sizeof *r);
}

static emu2_status check_token_id(const char *what, int32_t id, int32_t vocab, emu2_error *err)
{
    if (id < 0 || id >= vocab)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "generation: %s id %d is outside the vocabulary (0..%d)",
                         what, (int)id, (int)vocab - 1);
    return EMU2_OK;
}

static emu2_status check_options(const emu2_gen_options *o, emu2_error *err)
{
    if (o->struct_size < offsetof(emu2_gen_options, on_token))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "emu2_gen_options.struct_size is %zu (initialize it with emu2_gen_options_init)",
                         o->struct_size);
    if (o->max_new_tokens < 1)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "max_new_tokens must be at least 1 (got %d)",
                         o->max_new_tokens);
    if (o->num_beams < 1)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "num_beams must be at least 1 (got %d)", o->num_beams);
    if (o->min_length < 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "min_length must not be negative (got %d)", o->min_length);
    if ((int64_t)o->min_length > (int64_t)o->max_new_tokens + 1) /* HF: "Unfeasible length constraints" */
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "min_length %d is larger than the maximum length (max_new_tokens + 1 = %lld; lengths count "
                         "the BOS)",
                         o->min_length, (long long)o->max_new_tokens + 1);
    if (!isfinite(o->length_penalty))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "length_penalty must be a finite number");
    if (!(o->repetition_penalty > 0.0f) || !isfinite(o->repetition_penalty))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "repetition_penalty must be a positive number (got %g)",
                         (double)o->repetition_penalty);
    if (!o->do_sample)
        return EMU2_OK;
    if (!(o->temperature > 0.0f) || !isfinite(o->temperature))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "temperature must be a positive number (got %g)",
                         (double)o->temperature);
    if (o->top_k < 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "top_k must not be negative (got %d; 0 = off)", o->top_k);
    if (!(o->top_p >= 0.0f && o->top_p <= 1.0f))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "top_p must be within [0, 1] (got %g)", (double)o->top_p);
    return EMU2_OK;
}

emu2_status emu2_search_check(const emu2_gen_options *opts, emu2_search_ids ids, int32_t vocab, emu2_error *err)
{
    if (!opts)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_search: NULL options");
    if (vocab < 2)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_search: vocabulary of %d tokens", (int)vocab);
    emu2_status st = check_options(opts, err);
    if (st == EMU2_OK)
        st = check_token_id("EOS", ids.eos, vocab, err);
    if (st == EMU2_OK)
        st = check_token_id("BOS", ids.bos, vocab, err);
    if (st == EMU2_OK)
        st = check_token_id("pad", ids.pad, vocab, err);
    return st;
}

emu2_status emu2_search(const emu2_lm_stepper *lm, const float *prefill_logits, size_t batch,
                        const emu2_gen_options *opts, emu2_search_ids ids, emu2_search_token_fn on_token,
                        void *on_token_user, emu2_search_result *out, emu2_error *err)
{
    emu2_search_hooks h = {on_token, on_token_user, NULL, NULL};
    return emu2_search_hooked(lm, prefill_logits, batch, opts, ids, &h, out, err);
}

emu2_status emu2_search_hooked(const emu2_lm_stepper *lm, const float *prefill_logits, size_t batch,
                               const emu2_gen_options *opts, emu2_search_ids ids, const emu2_search_hooks *hooks,
                               emu2_search_result *out, emu2_error *err)
{
    static const emu2_search_hooks none = {0};
    if (!hooks)
        hooks = &none;
    if (out)
        memset(out, 0, sizeof *out);
    if (!lm || !lm->step || !prefill_logits || !opts || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_search: NULL argument");
    if (batch == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_search: empty batch");
    emu2_status st = emu2_search_check(opts, ids, lm->vocab, err);
    if (st != EMU2_OK)
        return st;
    size_t rows;
    if (!emu2_mul_size(batch, (size_t)opts->num_beams, &rows) || rows > INT32_MAX)
        return emu2_fail(err, EMU2_ERR_LIMIT, "emu2_search: batch %zu x %d beams is too large", batch,
                         opts->num_beams);
    emu2_search_ctx c = {lm, opts, ids, hooks->on_token, hooks->on_token_user, hooks->cancelled, hooks->cancelled_user};
    if (opts->num_beams == 1)
        st = emu2_search_greedy(&c, prefill_logits, batch, out, err);
    else if (!lm->reorder)
        st = emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_search: beam search needs a stepper with reorder()");
    else
        st = emu2_search_beam(&c, prefill_logits, batch, out, err);
    if (st != EMU2_OK)
        emu2_search_result_free(out);
    return st;
}
