/* test_cuda_graph_policy.c: the decisions behind the CUDA backend's decode-step graphs
 * (kernels/graph_policy.c, plain C, compiled into this test): EMU2_CUDA_GRAPHS, the warm-up step
 * of each new shape, update versus instantiate, giving up after refused updates or failures with
 * the reason kept, passing causes retried, and counters that add up along a long random run that
 * drives the policy the way kernels/cuda_graph.c does. Runs everywhere, no GPU needed. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "../../kernels/graph_policy.c"

static double clock_s;
static double tick(void) /* a fake clock: 1 ms per step */
{
    return clock_s += 1e-3;
}

/* Graphs always on (no trial), as EMU2_CUDA_GRAPHS=1 sets them. */
static void init_on(cuda_graph_policy *p)
{
    cuda_graph_policy_init(p, "1");
}

TEST(environment_turns_graphs_off)
{
    const char *off[] = {"0", "off", "OFF", "no", "false"};
    const char *on[] = {"1", "on", "ON", "yes", "true"}, *autos[] = {NULL, "", "auto", "2", "maybe"};
    cuda_graph_policy p;
    for (size_t i = 0; i < 5; i++) {
        cuda_graph_policy_init(&p, off[i]);
        CHECKF(p.off && strstr(p.reason, "EMU2_CUDA_GRAPHS=0"), "\"%s\": off=%d reason \"%s\"", off[i], p.off,
               p.reason);
        CHECK(!cuda_graph_policy_begin(&p, 7, tick()) && !cuda_graph_policy_begin(&p, 7, tick())); /* never records */
        CHECK(p.c.steps == 2 && p.c.eager == 2 && p.c.recorded == 0);
    }
    for (size_t i = 0; i < 5; i++) {
        cuda_graph_policy_init(&p, on[i]);
        CHECKF(!p.off && !p.reason[0] && !p.trial, "\"%s\": off=%d trial=%d", on[i], p.off, p.trial);
        cuda_graph_policy_init(&p, autos[i]);
        CHECKF(!p.off && p.trial, "\"%s\": off=%d trial=%d", autos[i] ? autos[i] : "(unset)", p.off, p.trial);
    }
}

TEST(new_shapes_warm_up_first)
{
    cuda_graph_policy p;
    init_on(&p);
    CHECK(!cuda_graph_policy_begin(&p, 10, tick())); /* first step of a shape: op by op */
    CHECK(cuda_graph_policy_begin(&p, 10, tick()));  /* then recorded */
    cuda_graph_policy_launched(&p, 0);
    CHECK(cuda_graph_policy_begin(&p, 10, tick()));
    cuda_graph_policy_launched(&p, 1);
    CHECK(!cuda_graph_policy_begin(&p, 11, tick())); /* rows changed: warm up again */
    CHECK(cuda_graph_policy_begin(&p, 11, tick()));
    CHECK(!cuda_graph_policy_begin(&p, 10, tick()));                      /* back: warm-up again */
    CHECK(p.c.steps == 6 && p.c.recorded == 3 && p.c.eager == 3);
    CHECK(p.c.launched == 2 && p.c.instantiations == 1 && p.c.updates == 1);
}

TEST(refused_updates_instantiate_then_give_up)
{
    cuda_graph_policy p;
    init_on(&p);
    cuda_graph_policy_begin(&p, 1, tick());
    cuda_graph_policy_begin(&p, 1, tick());
    cuda_graph_policy_launched(&p, 0);
    /* a refusal between accepted updates does not accumulate */
    for (int round = 0; round < 10; round++) {
        CHECK(cuda_graph_policy_begin(&p, 1, tick()));
        CHECK(cuda_graph_policy_update_refused(&p));
        cuda_graph_policy_launched(&p, 0);
        CHECK(cuda_graph_policy_begin(&p, 1, tick()));
        cuda_graph_policy_launched(&p, 1);
    }
    CHECK(!p.off && p.c.instantiations == 11 && p.c.updates == 10);
    /* refused every step: instantiate CUDA_GRAPH_MAX_REFUSALS - 1 times, then off */
    for (int i = 1; i < CUDA_GRAPH_MAX_REFUSALS; i++) {
        CHECK(cuda_graph_policy_begin(&p, 1, tick()));
        CHECK(cuda_graph_policy_update_refused(&p));
        cuda_graph_policy_launched(&p, 0);
    }
    CHECK(cuda_graph_policy_begin(&p, 1, tick()));
    CHECK(!cuda_graph_policy_update_refused(&p));
    CHECKF(p.off && strstr(p.reason, "topology"), "off=%d reason \"%s\"", p.off, p.reason);
    CHECK(!cuda_graph_policy_begin(&p, 1, tick()) && !cuda_graph_policy_begin(&p, 1, tick()));
}

TEST(passing_causes_are_retried_then_given_up)
{
    cuda_graph_policy p;
    init_on(&p);
    cuda_graph_policy_begin(&p, 3, tick());
    /* failures separated by a launch never add up */
    for (int round = 0; round < 10; round++) {
        CHECK(cuda_graph_policy_begin(&p, 3, tick()));
        CHECK(!cuda_graph_policy_failed(&p, 1, "staging ring too small"));
        CHECK(cuda_graph_policy_begin(&p, 3, tick()));
        cuda_graph_policy_launched(&p, round > 0);
    }
    CHECK(!p.off);
    for (int i = 1; i < CUDA_GRAPH_MAX_TRANSIENT; i++) {
        CHECK(cuda_graph_policy_begin(&p, 3, tick()));
        CHECK(!cuda_graph_policy_failed(&p, 1, "staging ring too small"));
    }
    CHECK(cuda_graph_policy_begin(&p, 3, tick()));
    CHECK(cuda_graph_policy_failed(&p, 1, "staging ring too small"));
    CHECKF(p.off && strstr(p.reason, "staging ring too small"), "reason \"%s\"", p.reason);
}

TEST(failures_keep_their_reason_and_drops_change_nothing)
{
    cuda_graph_policy p;
    init_on(&p);
    cuda_graph_policy_begin(&p, 5, tick());
    CHECK(cuda_graph_policy_begin(&p, 5, tick()));
    CHECK(!cuda_graph_policy_dropped(&p)); /* the step's own op failed: graphs stay on */
    CHECK(!p.off && cuda_graph_policy_begin(&p, 5, tick()));
    CHECK(cuda_graph_policy_failed(&p, 0, "stream capture: cudaErrorStreamCaptureUnsupported"));
    CHECK(p.off && !strcmp(p.reason, "stream capture: cudaErrorStreamCaptureUnsupported"));
    CHECK(!cuda_graph_policy_begin(&p, 5, tick()));
    CHECK(p.c.fallbacks == 2 && p.c.launched == 0 && p.c.steps == p.c.eager + p.c.recorded);
    /* turned on again by the caller: a fresh start, warm-up included */
    cuda_graph_policy_set(&p, CUDA_GRAPHS_ON);
    CHECK(!p.off && !p.reason[0]);
    CHECK(!cuda_graph_policy_begin(&p, 5, tick()) && cuda_graph_policy_begin(&p, 5, tick()));
    cuda_graph_policy_set(&p, CUDA_GRAPHS_OFF);
    CHECK(p.off && strstr(p.reason, "caller") && !cuda_graph_policy_begin(&p, 5, tick()));
}

/* Drops in a row (no launch between) give graphs up: an op that fails only while recorded must not
 * cost a recording and a rerun on every step; a launch starts the count again. */
TEST(drops_in_a_row_give_up)
{
    cuda_graph_policy p;
    init_on(&p);
    cuda_graph_policy_begin(&p, 5, tick());
    for (int i = 0; i < CUDA_GRAPH_MAX_DROPPED - 1; i++) {
        CHECK(cuda_graph_policy_begin(&p, 5, tick()));
        CHECK(!cuda_graph_policy_dropped(&p) && !p.off);
    }
    CHECK(cuda_graph_policy_begin(&p, 5, tick()));
    cuda_graph_policy_launched(&p, 0); /* the count starts again */
    for (int i = 0; i < CUDA_GRAPH_MAX_DROPPED - 1; i++) {
        CHECK(cuda_graph_policy_begin(&p, 5, tick()));
        CHECK(!cuda_graph_policy_dropped(&p) && !p.off);
    }
    CHECK(cuda_graph_policy_begin(&p, 5, tick()));
    CHECK(cuda_graph_policy_dropped(&p));
    CHECKF(p.off && strstr(p.reason, "in a row dropped"), "reason \"%s\"", p.reason);
    CHECK(!cuda_graph_policy_begin(&p, 5, tick()));
    CHECK(p.c.fallbacks == 2 * CUDA_GRAPH_MAX_DROPPED - 1 && p.c.launched == 1);
}

/* Mode auto: drives steps of one key whose wall times are `graph_s` with graphs and `eager_s`
 * op by op (every recording launched); returns the steps it took to reach a verdict (0: none in
 * 200). *schedule gets each step's choice, '.' warm-up / op by op, 'g' graphs. */
static int run_trial(cuda_graph_policy *p, double graph_s, double eager_s, char *schedule)
{
    double t = 100.0;
    cuda_graph_policy_init(p, NULL);
    for (int step = 0; step < 200; step++) {
        int rec = cuda_graph_policy_begin(p, 9, t);
        schedule[step] = rec ? 'g' : '.';
        schedule[step + 1] = '\0';
        if (rec)
            cuda_graph_policy_launched(p, p->c.launched > 0);
        t += rec ? graph_s : eager_s;
        if (!p->trial)
            return step + 1;
    }
    return 0;
}

TEST(trial_keeps_graphs_that_are_faster)
{
    cuda_graph_policy p;
    char sched[256];
    int steps = run_trial(&p, 0.8e-3, 1.0e-3, sched);
    printf("    schedule %s\n", sched);
    CHECK(steps > 0 && !p.off && !p.trial);
    CHECK(!strncmp(sched, ".gggg....gggg....", 17)); /* warm-up, then blocks of CUDA_GRAPH_TRIAL_BLOCK */
    CHECK(sched[steps - 1] == 'g');                    /* the verdict's step already records */
    CHECKF(fabs(p.c.graph_us - 800) < 1e-6 && fabs(p.c.eager_us - 1000) < 1e-6, "%g %g", p.c.graph_us,
           p.c.eager_us);
    /* after the verdict every step records */
    for (int i = 0; i < 20; i++)
        CHECK(cuda_graph_policy_begin(&p, 9, 1000.0 + i));
}

TEST(trial_turns_off_graphs_that_do_not_pay)
{
    cuda_graph_policy p;
    char sched[256];
    /* 1% faster is within the noise the trial ignores */
    int steps = run_trial(&p, 0.99e-3, 1.0e-3, sched);
    CHECK(steps > 0 && p.off);
    CHECKF(strstr(p.reason, "not faster") && strstr(p.reason, "990 us/step with graphs") &&
               strstr(p.reason, "1000 us/step without"),
           "reason \"%s\"", p.reason);
    CHECK(sched[steps - 1] == '.' && !cuda_graph_policy_begin(&p, 9, 1e6));
    steps = run_trial(&p, 1.5e-3, 1.0e-3, sched);
    CHECK(steps > 0 && p.off);
}

TEST(trial_samples_skip_warm_ups_and_failures)
{
    cuda_graph_policy p;
    cuda_graph_policy_init(&p, NULL);
    double t = 0;
    /* alternating keys: every step is a warm-up, nothing is sampled, nothing recorded */
    for (int i = 0; i < 50; i++)
        CHECK(!cuda_graph_policy_begin(&p, (uint64_t)(i % 2), t += 1e-3));
    CHECK(p.n_samples[0] == 0 && p.n_samples[1] == 0 && p.trial);
    /* a failed recording is no sample */
    CHECK(!cuda_graph_policy_begin(&p, 5, t += 1e-3)); /* warm-up */
    CHECK(cuda_graph_policy_begin(&p, 5, t += 1e-3));
    CHECK(!cuda_graph_policy_failed(&p, 1, "staging ring too small"));
    cuda_graph_policy_begin(&p, 5, t += 5.0); /* the failed step took long: not counted */
    CHECK(p.n_samples[0] == 0 && p.n_samples[1] == 0);
}

/* The flow of kernels/cuda_graph.c with random outcomes: every step ends launched or op by op,
 * nothing is recorded while off, a graph is updated only when one exists, and once given up graphs
 * stay off with a reason. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static unsigned roll(unsigned n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

TEST(random_runs_add_up)
{
    for (int run = 0; run < 200; run++) {
        cuda_graph_policy p;
        init_on(&p);
        int exec = 0; /* what cuda_graph.c would hold */
        uint64_t key = 1, launches = 0, op_by_op = 0;
        for (int step = 0; step < 300; step++) {
            if (roll(20) == 0)
                key = 1 + roll(3); /* rows change now and then */
            int was_off = p.off;
            if (!cuda_graph_policy_begin(&p, key, tick())) {
                op_by_op++;
                continue;
            }
            CHECK(!was_off);
            unsigned what = roll(200);
            if (what == 0) {
                if (cuda_graph_policy_dropped(&p))
                    exec = 0;
            } else if (what <= 2) {
                if (cuda_graph_policy_failed(&p, what == 1, "x"))
                    exec = 0;
            } else {
                int updated = 0, ok = 1;
                if (exec) {
                    if (roll(30) == 0) {
                        exec = 0;
                        ok = cuda_graph_policy_update_refused(&p);
                    } else {
                        updated = 1;
                    }
                }
                if (!ok)
                    continue;
                exec = 1;
                cuda_graph_policy_launched(&p, updated);
                launches++;
            }
            CHECK(!!p.off == !!p.reason[0]);
        }
        CHECK(p.c.steps == 300 && p.c.launched == launches && p.c.eager == op_by_op);
        CHECK(p.c.steps == p.c.recorded + p.c.eager);
        CHECK(p.c.recorded == p.c.launched + p.c.fallbacks);
        CHECK(p.c.launched == p.c.updates + p.c.instantiations);
    }
}

int main(void)
{
    RUN(environment_turns_graphs_off);
    RUN(new_shapes_warm_up_first);
    RUN(refused_updates_instantiate_then_give_up);
    RUN(passing_causes_are_retried_then_given_up);
    RUN(failures_keep_their_reason_and_drops_change_nothing);
    RUN(drops_in_a_row_give_up);
    RUN(trial_keeps_graphs_that_are_faster);
    RUN(trial_turns_off_graphs_that_do_not_pay);
    RUN(trial_samples_skip_warm_ups_and_failures);
    RUN(random_runs_add_up);
    return check_finish();
}
