/* decoder_stepper.c: adapts a decoder session to the search's stepper interface. Where the backend
 * has the top_k op (ops.h), the stepper also offers step_topk: the lm_head output stays in backend
 * memory and only k candidates per row are downloaded (last_logits fetches the full rows when the
 * search asks for them). EMU2_SEARCH_FULL_LOGITS=1 turns that off (the full-logits path). */
#include "model/decoder_stepper.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "model/decoder_internal.h"

static emu2_status check_rows(const emu2_decoder_session *s, size_t n_rows, emu2_error *err)
{
    if (n_rows != emu2_decoder_rows(s))
        return emu2_fail(err, EMU2_ERR_INTERNAL, "search stepped %zu rows but the decoder holds %zu", n_rows,
                         emu2_decoder_rows(s));
    return EMU2_OK;
}

static emu2_status stepper_step(void *user, const int32_t *tokens, size_t n_rows, float *logits, emu2_error *err)
{
    emu2_decoder_session *s = user;
    emu2_status st = check_rows(s, n_rows, err);
    return st != EMU2_OK ? st : emu2_decoder_step(s, tokens, logits, NULL, err);
}

static emu2_status stepper_step_topk(void *user, const int32_t *tokens, size_t n_rows, size_t k, int log_softmax,
                                     float *values, int32_t *ids, emu2_error *err)
{
    emu2_decoder_session *s = user;
    emu2_backend *be = s->be;
    emu2_status st = check_rows(s, n_rows, err);
    if (st == EMU2_OK)
        st = emu2_decoder_step_resident(s, tokens, err);
    if (st == EMU2_OK)
        st = be->ops->top_k(be, s->rows, s->V, s->logits, k, log_softmax ? EMU2_TOPK_LOG_SOFTMAX : 0u, values, ids,
                            err);
    return st;
}

static emu2_status stepper_last_logits(void *user, float *logits, emu2_error *err)
{
    emu2_decoder_session *s = user;
    return s->be->ops->download(s->be, logits, s->logits, s->rows * s->V, err);
}

static emu2_status stepper_reorder(void *user, const int32_t *src, size_t n_rows, emu2_error *err)
{
    return emu2_decoder_select_rows(user, n_rows, src, err);
}

int emu2_search_full_logits_forced(void)
{
    const char *v = getenv("EMU2_SEARCH_FULL_LOGITS");
    return v && *v && strcmp(v, "0") != 0;
}

/* The largest k the session's backend takes (0: no top_k op, or the full-logits path forced). */
static size_t session_topk_max(const emu2_decoder_session *s)
{
    if (!s->be->ops->top_k || emu2_search_full_logits_forced())
        return 0;
    return s->V < EMU2_TOPK_MAX_K ? s->V : EMU2_TOPK_MAX_K;
}

emu2_status emu2_decoder_item_next(emu2_decoder_session *s, size_t row0, emu2_item_search *item, float *host_rows,
                                   int32_t *tokens, int32_t *src, int *live, emu2_error *err)
{
    const size_t n = emu2_item_search_rows(item);
    if (row0 > s->rows || n > s->rows - row0)
        return emu2_fail(err, EMU2_ERR_INTERNAL, "search rows %zu..%zu outside the decoder's %zu", row0, row0 + n,
                         s->rows);
    int log_softmax = 0;
    size_t k = emu2_item_search_topk(item, session_topk_max(s), &log_softmax);
    const float *rows = s->logits + row0 * s->V;
    if (k) {
        float *values = malloc(n * k * sizeof *values);
        int32_t *ids = malloc(n * k * sizeof *ids);
        int decided = 0;
        emu2_status st = values && ids ? EMU2_OK
                                       : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for %zu x %zu candidates", n, k);
        if (st == EMU2_OK)
            st = s->be->ops->top_k(s->be, n, s->V, rows, k, log_softmax ? EMU2_TOPK_LOG_SOFTMAX : 0u, values, ids,
                                   err);
        if (st == EMU2_OK)
            st = emu2_item_search_next_topk(item, values, ids, k, tokens, src, live, &decided, err);
        free(values);
        free(ids);
        if (st != EMU2_OK || decided)
            return st;
    }
    emu2_status st = s->be->ops->download(s->be, host_rows, rows, n * s->V, err);
    return st != EMU2_OK ? st : emu2_item_search_next(item, host_rows, tokens, src, live, err);
}

void emu2_decoder_stepper(emu2_decoder_session *s, emu2_lm_stepper *out)
{
    memset(out, 0, sizeof *out);
    out->user = s;
    out->vocab = (int32_t)emu2_decoder_vocab(s);
    out->step = stepper_step;
    out->reorder = stepper_reorder;
    out->topk_max = session_topk_max(s);
    if (out->topk_max) {
        out->step_topk = stepper_step_topk;
        out->last_logits = stepper_last_logits;
    }
}
