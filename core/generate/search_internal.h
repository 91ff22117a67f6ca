/* search_internal.h: what the search strategies (greedy/sampling, beam) share. */
#ifndef EMU2_GENERATE_SEARCH_INTERNAL_H
#define EMU2_GENERATE_SEARCH_INTERNAL_H

#include "generate/generate.h"

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

#endif
