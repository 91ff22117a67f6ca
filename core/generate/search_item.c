/* search_item.c: one request's search driven step by step (search_item.h): dispatches to the
 * batch-of-one states of search_beam.c and search_greedy.c. */
#include "generate/search_item.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/search_internal.h"

struct emu2_item_search {
    emu2_gen_options opts;
    emu2_lm_stepper lm; /* only its vocab: the caller steps the decoder */
    emu2_search_ctx c;
    emu2_beam_item *beam;
    emu2_greedy_item *greedy;
};

emu2_status emu2_item_search_create(const emu2_gen_options *opts, emu2_search_ids ids, int32_t vocab,
                                    const emu2_search_hooks *hooks, emu2_item_search **out, emu2_error *err)
{
    *out = NULL;
    emu2_status st = emu2_search_check(opts, ids, vocab, err);
    if (st != EMU2_OK)
        return st;
    emu2_item_search *s = calloc(1, sizeof *s);
    if (!s)
        return emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for a search");
    s->opts = *opts;
    s->lm.vocab = vocab;
    s->c = (emu2_search_ctx){&s->lm, &s->opts, ids, hooks ? hooks->on_token : NULL,
                             hooks ? hooks->on_token_user : NULL, NULL, NULL};
    st = opts->num_beams > 1 ? emu2_beam_item_create(&s->c, &s->beam, err)
                             : emu2_greedy_item_create(&s->c, &s->greedy, err);
    if (st != EMU2_OK) {
        emu2_item_search_free(s);
        return st;
    }
    *out = s;
    return EMU2_OK;
}

size_t emu2_item_search_rows(const emu2_item_search *s)
{
    return (size_t)s->opts.num_beams;
}

emu2_status emu2_item_search_next(emu2_item_search *s, const float *logits, int32_t *tokens, int32_t *src, int *live,
                                  emu2_error *err)
{
    if (s->beam)
        return emu2_beam_item_next(&s->c, s->beam, logits, tokens, src, live, err);
    src[0] = 0;
    return emu2_greedy_item_next(&s->c, s->greedy, logits, tokens, live, err);
}

size_t emu2_item_search_topk(const emu2_item_search *s, size_t topk_max, int *log_softmax)
{
    *log_softmax = s->beam != NULL;
    return s->beam ? emu2_beam_item_topk(&s->c, s->beam, topk_max) : emu2_greedy_item_topk(&s->c, s->greedy, topk_max);
}

emu2_status emu2_item_search_next_topk(emu2_item_search *s, const float *values, const int32_t *ids, size_t k,
                                       int32_t *tokens, int32_t *src, int *live, int *decided, emu2_error *err)
{
    if (s->beam)
        return emu2_beam_item_next_topk(&s->c, s->beam, values, ids, k, tokens, src, live, decided, err);
    src[0] = 0;
    return emu2_greedy_item_next_topk(&s->c, s->greedy, values, ids, k, tokens, live, decided, err);
}

emu2_status emu2_item_search_finish(emu2_item_search *s, emu2_search_result *out, emu2_error *err)
{
    memset(out, 0, sizeof *out);
    if (!(out->items = calloc(1, sizeof *out->items)))
        return emu2_fail(err, EMU2_ERR_NOMEM, "generation: out of memory for a result");
    out->batch = 1;
    emu2_status st = s->beam ? emu2_beam_item_finish(&s->c, s->beam, out, err)
                             : emu2_greedy_item_finish(s->greedy, out, err);
    if (st != EMU2_OK)
        emu2_search_result_free(out);
    return st;
}

void emu2_item_search_free(emu2_item_search *s)
{
    if (!s)
        return;
    emu2_beam_item_free(s->beam);
    emu2_greedy_item_free(s->greedy);
    free(s);
}
