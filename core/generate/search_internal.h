/* search_internal.h: what the search strategies (greedy/sampling, beam) share. */
#ifndef EMU2_GENERATE_SEARCH_INTERNAL_H
#define EMU2_GENERATE_SEARCH_INTERNAL_H

#include "generate/generate.h"
#include "generate/search_item.h"

typedef struct emu2_search_ctx {
    const emu2_lm_stepper *lm;
    const emu2_gen_options *opts; /* validated by emu2_search */
    emu2_search_ids ids;
    emu2_search_token_fn on_token;
    void *on_token_user;
    emu2_search_cancel_fn cancelled;
    void *cancelled_user;
} emu2_search_ctx;

/* The cancel poll for one item (0 without a hook). */
static inline int emu2_search_item_cancelled(const emu2_search_ctx *c, size_t item)
{
    return c->cancelled && c->cancelled(c->cancelled_user, item);
}

emu2_status emu2_search_greedy(const emu2_search_ctx *c, const float *prefill_logits, size_t batch,
                               emu2_search_result *out, emu2_error *err);
emu2_status emu2_search_beam(const emu2_search_ctx *c, const float *prefill_logits, size_t batch,
                             emu2_search_result *out, emu2_error *err);

/* Appends v to a growable id array (capacity doubles). */
emu2_status emu2_ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t v, emu2_error *err);
/* Calls c->on_token (when set) for one token; a failing callback always leaves a message. */
emu2_status emu2_search_emit(const emu2_search_ctx *c, size_t item, int32_t id, int *stop, emu2_error *err);
/* malloc(count * size) with the product checked; NULL + message on failure. */
void *emu2_search_alloc(size_t count, size_t size, const char *what, emu2_error *err);

/* One request searched step by step (continuous batching, search_item.c): the state of
 * emu2_search_beam / emu2_search_greedy for a batch of one, driven from outside. */
typedef struct emu2_beam_item emu2_beam_item;
typedef struct emu2_greedy_item emu2_greedy_item;
emu2_status emu2_beam_item_create(const emu2_search_ctx *c, emu2_beam_item **out, emu2_error *err);
/* logits: 1 row on the first call (the prefill), num_beams rows after. Writes num_beams tokens and
 * parent rows (indices into the rows of the previous call). */
emu2_status emu2_beam_item_next(const emu2_search_ctx *c, emu2_beam_item *b, const float *logits, int32_t *tokens,
                                int32_t *src, int *live, emu2_error *err);
/* out: a result of batch 1 with its item allocated; streams the winner through c->on_token. */
emu2_status emu2_beam_item_finish(const emu2_search_ctx *c, emu2_beam_item *b, emu2_search_result *out,
                                  emu2_error *err);
void emu2_beam_item_free(emu2_beam_item *b);
emu2_status emu2_greedy_item_create(const emu2_search_ctx *c, emu2_greedy_item **out, emu2_error *err);
emu2_status emu2_greedy_item_next(const emu2_search_ctx *c, emu2_greedy_item *g, const float *logits, int32_t *token,
                                  int *live, emu2_error *err);
emu2_status emu2_greedy_item_finish(emu2_greedy_item *g, emu2_search_result *out, emu2_error *err);
void emu2_greedy_item_free(emu2_greedy_item *g);
/* The top-k path for one item (search_topk.h): the candidates per row its next choice can use (0:
 * the full rows), then the choice from them; *decided = 0 leaves the state untouched, and the
 * full rows go to the plain _next. */
size_t emu2_beam_item_topk(const emu2_search_ctx *c, const emu2_beam_item *b, size_t topk_max);
emu2_status emu2_beam_item_next_topk(const emu2_search_ctx *c, emu2_beam_item *b, const float *values,
                                     const int32_t *ids, size_t k, int32_t *tokens, int32_t *src, int *live,
                                     int *decided, emu2_error *err);
size_t emu2_greedy_item_topk(const emu2_search_ctx *c, const emu2_greedy_item *g, size_t topk_max);
emu2_status emu2_greedy_item_next_topk(const emu2_search_ctx *c, emu2_greedy_item *g, const float *values,
                                       const int32_t *ids, size_t k, int32_t *token, int *live, int *decided,
                                       emu2_error *err);

#endif
