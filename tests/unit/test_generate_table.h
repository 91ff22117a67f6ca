/* test_generate_table.h: the "table LM" of tests/reference/gen_generate_goldens.py as an
 * emu2_lm_stepper. Each row keeps a state h that hashes its whole history:
 *   prefill of batch item i: logits = start[i], h = i + 1
 *   feeding token t:         h = (h * mul + t + 7) % mod, logits = rows[h % n_table_rows]
 * so a wrong beam reorder changes the logits. Counts calls so tests can check the protocol. */
#ifndef EMU2_TEST_GENERATE_TABLE_H
#define EMU2_TEST_GENERATE_TABLE_H

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "generate/generate.h"

#define TABLE_MAX_ROWS 64

typedef struct table_lm {
    const float *start; /* [n_items, vocab] */
    const float *rows;  /* [mod, vocab] */
    int32_t vocab;
    int64_t mod, mul, n_table_rows;
    int64_t h[TABLE_MAX_ROWS];
    size_t n_rows;
    int steps, reorders;
    int fail_at_step; /* > 0: step number fail_at_step returns EMU2_ERR_IO */
} table_lm;

static emu2_status table_step(void *user, const int32_t *tokens, size_t n_rows, float *logits, emu2_error *err)
{
    table_lm *t = user;
    if (n_rows != t->n_rows)
        return emu2_fail(err, EMU2_ERR_INTERNAL, "table_lm: step with %zu rows, have %zu", n_rows, t->n_rows);
    if (t->fail_at_step && t->steps + 1 == t->fail_at_step)
        return emu2_fail(err, EMU2_ERR_IO, "table_lm: simulated failure at step %d", t->fail_at_step);
    t->steps++;
    for (size_t i = 0; i < n_rows; i++) {
        if (tokens[i] < 0 || tokens[i] >= t->vocab)
            return emu2_fail(err, EMU2_ERR_INTERNAL, "table_lm: token %d out of range", (int)tokens[i]);
        t->h[i] = (t->h[i] * t->mul + tokens[i] + 7) % t->mod;
        const float *src = t->rows + (t->h[i] % t->n_table_rows) * t->vocab;
        memcpy(logits + i * (size_t)t->vocab, src, (size_t)t->vocab * sizeof(float));
    }
    return EMU2_OK;
}

static emu2_status table_reorder(void *user, const int32_t *src, size_t n_rows, emu2_error *err)
{
    table_lm *t = user;
    int64_t h[TABLE_MAX_ROWS];
    if (n_rows > TABLE_MAX_ROWS)
        return emu2_fail(err, EMU2_ERR_INTERNAL, "table_lm: %zu rows", n_rows);
    int identity = n_rows == t->n_rows;
    for (size_t i = 0; i < n_rows; i++) {
        if (src[i] < 0 || (size_t)src[i] >= t->n_rows)
            return emu2_fail(err, EMU2_ERR_INTERNAL, "table_lm: reorder source %d of %zu rows", (int)src[i],
                             t->n_rows);
        h[i] = t->h[src[i]];
        identity &= src[i] == (int32_t)i;
    }
    if (identity)
        return emu2_fail(err, EMU2_ERR_INTERNAL, "table_lm: reorder called with the identity");
    memcpy(t->h, h, n_rows * sizeof *h);
    t->n_rows = n_rows;
    t->reorders++;
    return EMU2_OK;
}

/* Prefills items[0..batch): writes logits [batch, vocab] and returns the stepper. */
static emu2_lm_stepper table_prefill(table_lm *t, const int *items, size_t batch, float *logits)
{
    for (size_t b = 0; b < batch; b++) {
        t->h[b] = items[b] + 1;
        memcpy(logits + b * (size_t)t->vocab, t->start + (size_t)items[b] * (size_t)t->vocab,
               (size_t)t->vocab * sizeof(float));
    }
    t->n_rows = batch;
    t->steps = t->reorders = 0;
    return (emu2_lm_stepper){.user = t, .vocab = t->vocab, .step = table_step, .reorder = table_reorder};
}

#endif
