/* graph_policy.c: see graph_policy.h. */
#include "graph_policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void turn_off(cuda_graph_policy *p, const char *why)
{
    p->off = 1;
    p->trial = 0;
    p->have_key = 0;
    p->prev_valid = 0;
    snprintf(p->reason, sizeof p->reason, "%s", why && *why ? why : "unknown reason");
}

static int word_in(const char *s, const char *const *words, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (!strcasecmp(s, words[i]))
            return 1;
    return 0;
}

void cuda_graph_policy_init(cuda_graph_policy *p, const char *env)
{
    static const char *const off_words[] = {"0", "off", "no", "false"}, *const on_words[] = {"1", "on", "yes", "true"};
    memset(p, 0, sizeof *p);
    if (word_in(env, off_words, 4)) {
        turn_off(p, "EMU2_CUDA_GRAPHS=0");
        return;
    }
    cuda_graph_policy_set(p, word_in(env, on_words, 4) ? CUDA_GRAPHS_ON : CUDA_GRAPHS_AUTO);
}

void cuda_graph_policy_set(cuda_graph_policy *p, cuda_graph_mode mode)
{
    cuda_graph_counters keep = p->c;
    memset(p, 0, sizeof *p);
    p->c = keep;
    if (mode == CUDA_GRAPHS_OFF) {
        turn_off(p, "turned off by the caller");
        return;
    }
    p->trial = mode == CUDA_GRAPHS_AUTO;
    p->block_graph = 1; /* the trial starts with graphs */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, unsigned n)
{
    double s[CUDA_GRAPH_TRIAL_SAMPLES];
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* Mode auto: the trial's next step (1 = graphs), or its verdict once both sides are measured. */
static int trial_step(cuda_graph_policy *p)
{
    const unsigned full = CUDA_GRAPH_TRIAL_SAMPLES;
    if (p->n_samples[0] >= full && p->n_samples[1] >= full) {
        double eager = median(p->samples[0], full), graph = median(p->samples[1], full);
        p->c.eager_us = eager * 1e6;
        p->c.graph_us = graph * 1e6;
        p->trial = 0;
        if (graph < eager * (1.0 - CUDA_GRAPH_TRIAL_GAIN))
            return 1;
        char why[160];
        snprintf(why, sizeof why, "not faster here: %.0f us/step with graphs, %.0f us/step without (measured)",
                 graph * 1e6, eager * 1e6);
        turn_off(p, why);
        return 0;
    }
    if (p->n_samples[p->block_graph] >= full || p->block_pos >= CUDA_GRAPH_TRIAL_BLOCK) {
        p->block_graph = !p->block_graph;
        p->block_pos = 0;
    }
    p->block_pos++;
    return (int)p->block_graph;
}

int cuda_graph_policy_begin(cuda_graph_policy *p, uint64_t key, double now)
{
    p->c.steps++;
    int same = p->have_key && p->key == key;
    if (p->trial && same && p->prev_valid && now > p->prev_start) { /* the previous step's time */
        unsigned *n = &p->n_samples[p->prev_graph];
        if (*n < CUDA_GRAPH_TRIAL_SAMPLES)
            p->samples[p->prev_graph][(*n)++] = now - p->prev_start;
    }
    p->have_key = 1;
    p->key = key;
    p->prev_start = now;
    p->prev_valid = same; /* a new shape's warm-up step is no sample */
    p->prev_graph = 0;
    int record = !p->off && same && (!p->trial || trial_step(p));
    if (!record) { /* off, the warm-up step of a new shape, or the trial's op-by-op side */
        p->c.eager++;
        return 0;
    }
    p->c.recorded++;
    p->prev_graph = 1;
    return 1;
}

int cuda_graph_policy_update_refused(cuda_graph_policy *p)
{
    if (++p->refusals_in_row >= CUDA_GRAPH_MAX_REFUSALS) {
        char why[96];
        snprintf(why, sizeof why, "the step's graph changed topology %u steps in a row", p->refusals_in_row);
        turn_off(p, why);
        p->c.fallbacks++; /* this part runs op by op */
        return 0;
    }
    return 1;
}

void cuda_graph_policy_launched(cuda_graph_policy *p, int updated)
{
    p->c.launched++;
    if (updated) {
        p->c.updates++;
        p->refusals_in_row = 0;
    } else {
        p->c.instantiations++;
    }
    p->transient_in_row = 0;
    p->dropped_in_row = 0;
}

int cuda_graph_policy_failed(cuda_graph_policy *p, int transient, const char *what)
{
    p->c.fallbacks++;
    p->prev_valid = 0; /* a wasted recording and a rerun: no sample */
    if (transient && ++p->transient_in_row < CUDA_GRAPH_MAX_TRANSIENT)
        return 0;
    if (transient) {
        char why[160];
        snprintf(why, sizeof why, "%u recordings in a row failed (%.100s)", p->transient_in_row,
                 what ? what : "?");
        turn_off(p, why);
    } else {
        turn_off(p, what);
    }
    return 1;
}

int cuda_graph_policy_dropped(cuda_graph_policy *p)
{
    p->c.fallbacks++;
    p->prev_valid = 0;
    if (++p->dropped_in_row < CUDA_GRAPH_MAX_DROPPED)
        return 0;
    char why[96];
    snprintf(why, sizeof why, "%u recordings in a row dropped by a failing op", p->dropped_in_row);
    turn_off(p, why);
    return 1;
}
