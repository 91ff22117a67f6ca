/* test_device_split.c: the multi-GPU layer split's host side (core/ops/device_split.c): device
 * lists (good and bad), and plans against a brute-force search over every contiguous split on
 * small cases (the fullest stage must be as light as the best possible), plus the full-size Emu2
 * layout over 2 and 3 GPUs and capacity errors. No GPU needed. */
#include <stdint.h>

#include "check.h"
#include "ops/device_split.h"
#include "ops/ops.h"

TEST(device_lists)
{
    emu2_device_list d;
    emu2_error err;
    CHECK(emu2_device_list_parse("cuda:0", &d, &err) == EMU2_OK && d.n == 1 && d.index[0] == 0);
    CHECK(emu2_device_list_parse("cuda:0,1", &d, &err) == EMU2_OK && d.n == 2 && d.index[1] == 1);
    CHECK(emu2_device_list_parse("cuda:3,1,2", &d, &err) == EMU2_OK && d.n == 3 && d.index[0] == 3 &&
          d.index[2] == 2);
    CHECK(emu2_device_list_parse("cuda:0,0", &d, &err) == EMU2_OK && d.n == 2); /* one GPU, two stages */
    CHECK(emu2_device_list_parse("cuda:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", &d, &err) == EMU2_OK && d.n == 16);
    const char *bad[] = {"cuda", "cuda:", "cuda:0,", "cuda:,0", "cuda:0,,1", "cuda:x", "cuda:1a", "cuda:-1",
                         "cuda:0 ,1", "cpu", "", "cuda:1025", "cuda:99999999999999999999",
                         "cuda:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        emu2_status st = emu2_device_list_parse(bad[i], &d, &err);
        CHECKF(st == EMU2_ERR_INVALID_ARGUMENT && strstr(err.message, "device"), "\"%s\": %d %s", bad[i], (int)st,
               err.message);
    }
    CHECK(emu2_device_list_parse(NULL, &d, &err) == EMU2_ERR_INVALID_ARGUMENT);
}

/* The least fullest-stage bytes over every split of n layers into k non-empty ranges. */
static uint64_t brute(const uint64_t *w, size_t n, int k, uint64_t first, uint64_t last, size_t start, int s)
{
    if (s == k - 1) {
        uint64_t v = last + (s == 0 ? first : 0);
        for (size_t i = start; i < n; i++)
            v += w[i];
        return v;
    }
    uint64_t best = UINT64_MAX;
    for (size_t end = start + 1; end + (size_t)(k - 1 - s) <= n; end++) {
        uint64_t v = s == 0 ? first : 0;
        for (size_t i = start; i < end; i++)
            v += w[i];
        uint64_t rest = brute(w, n, k, first, last, end, s + 1);
        uint64_t m = v > rest ? v : rest;
        best = m < best ? m : best;
    }
    return best;
}

/* The plan is well formed: contiguous non-empty ranges in order, bytes as stated. */
static int well_formed(const emu2_split_plan *p, const emu2_device_list *d, const uint64_t *w, size_t n,
                       uint64_t first, uint64_t last, uint64_t *fullest)
{
    size_t next = 0;
    *fullest = 0;
    if (p->n_stages != d->n)
        return 0;
    for (int s = 0; s < p->n_stages; s++) {
        const emu2_split_stage *st = &p->stage[s];
        uint64_t v = (s == 0 ? first : 0) + (s == p->n_stages - 1 ? last : 0);
        for (size_t i = 0; i < st->n_layers; i++)
            v += w[st->first_layer + i];
        if (st->device != d->index[s] || st->first_layer != next || st->n_layers == 0 || st->bytes != v)
            return 0;
        next += st->n_layers;
        *fullest = v > *fullest ? v : *fullest;
    }
    return next == n;
}

TEST(plans_are_optimal_on_small_cases)
{
    uint64_t z = 88172645463325252ULL;
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + (size_t)(round % 9);
        int k = 1 + round % 4;
        if ((size_t)k > n)
            continue;
        uint64_t w[16];
        for (size_t i = 0; i < n; i++) {
            z ^= z << 13, z ^= z >> 7, z ^= z << 17;
            w[i] = 1 + z % 1000;
        }
        uint64_t first = round % 3 ? z % 1500 : 0, last = round % 5 ? (z >> 20) % 700 : 0;
        emu2_device_list d = {.n = k, .index = {2, 0, 1, 3}};
        emu2_split_plan p;
        emu2_error err;
        CHECKF(emu2_split_plan_make(w, n, first, last, &d, NULL, &p, &err) == EMU2_OK, "%s", err.message);
        uint64_t fullest;
        CHECKF(well_formed(&p, &d, w, n, first, last, &fullest), "round %d: malformed plan", round);
        uint64_t want = brute(w, n, k, first, last, 0, 0);
        CHECKF(fullest == want, "round %d (n %zu k %d): fullest stage %llu, best possible %llu", round, n, k,
               (unsigned long long)fullest, (unsigned long long)want);
    }
}

/* Emu2 in bf16: 60 equal layers (4 x 6656^2 + 3 x 6656 x 17920 + 2 x 6656 parameters); before
 * them the vision tower and projections (the 36,906,627,840 parameters of the whole model minus the
 * LLM's: 4,374,063,360) and the token embeddings, after them the final norm and lm_head. */
TEST(full_size_emu2_over_two_and_three_gpus)
{
    const uint64_t D = 6656, I = 17920, V = 32272;
    uint64_t layer = 2 * (4 * D * D + 3 * D * I + 2 * D), w[60];
    for (int i = 0; i < 60; i++)
        w[i] = layer;
    uint64_t llm = 60 * (layer / 2) + 2 * V * D + D;
    uint64_t first = 2 * (36906627840ULL - llm + V * D), last = 2 * (V * D + D);
    CHECK(36906627840ULL - llm == 4374063360ULL);
    emu2_device_list two = {.n = 2, .index = {0, 1}}, three = {.n = 3, .index = {0, 1, 2}};
    emu2_split_plan p;
    emu2_error err;
    uint64_t fullest;
    CHECK(emu2_split_plan_make(w, 60, first, last, &two, NULL, &p, &err) == EMU2_OK);
    CHECK(well_formed(&p, &two, w, 60, first, last, &fullest));
    /* the vision tower (~9.2 GB with the embeddings) outweighs about 8 layers: 26 + 34, 37.0 GB at most */
    CHECKF(p.stage[0].n_layers == 26 && p.stage[1].n_layers == 34, "%zu + %zu", p.stage[0].n_layers,
           p.stage[1].n_layers);
    CHECK(fullest == first + 26 * layer);
    CHECK(emu2_split_plan_make(w, 60, first, last, &three, NULL, &p, &err) == EMU2_OK);
    CHECK(well_formed(&p, &three, w, 60, first, last, &fullest) && fullest == brute(w, 60, 3, first, last, 0, 0));
    /* 40 GB GPUs (~38 GB usable): two hold it, one does not */
    uint64_t cap[2] = {38000000000ULL, 38000000000ULL};
    CHECK(emu2_split_plan_make(w, 60, first, last, &two, cap, &p, &err) == EMU2_OK);
    emu2_device_list one = {.n = 1, .index = {0}};
    CHECK(emu2_split_plan_make(w, 60, first, last, &one, cap, &p, &err) == EMU2_ERR_LIMIT);
    CHECKF(strstr(err.message, "stage 0 (GPU 0, layers 0-59)") != NULL, "%s", err.message);
}

TEST(bad_requests)
{
    uint64_t w[3] = {1, 2, 3};
    emu2_device_list four = {.n = 4, .index = {0, 1, 2, 3}}, none = {.n = 0};
    emu2_split_plan p;
    emu2_error err;
    CHECK(emu2_split_plan_make(w, 3, 0, 0, &four, NULL, &p, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_split_plan_make(w, 3, 0, 0, &none, NULL, &p, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_split_plan_make(w, 3, 0, 0, NULL, NULL, &p, &err) == EMU2_ERR_INVALID_ARGUMENT);
    uint64_t huge[2] = {UINT64_MAX / 2, UINT64_MAX / 2};
    emu2_device_list two = {.n = 2, .index = {0, 1}};
    CHECK(emu2_split_plan_make(huge, 2, 0, 0, &two, NULL, &p, &err) == EMU2_ERR_LIMIT);
    /* the same GPU twice is a legal two-stage plan (the split path on one GPU) */
    emu2_device_list same = {.n = 2, .index = {0, 0}};
    CHECK(emu2_split_plan_make(w, 3, 0, 0, &same, NULL, &p, &err) == EMU2_OK && p.stage[0].n_layers == 2 &&
          p.stage[1].n_layers == 1);
}

/* emu2_backend_open reads device names with the same parser: bad lists are invalid arguments
 * before anything is opened; good lists open the split (here, without a GPU, they fail saying
 * which GPU is unavailable; on a GPU machine "cuda:0,0" opens). */
TEST(backend_open_uses_the_parser)
{
    const char *bad[] = {"cuda:0,", "cuda:,1", "cuda:0,,1", "cuda:1025", "cuda:0,x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        emu2_backend *be = (emu2_backend *)1;
        emu2_error err;
        emu2_status st = emu2_backend_open(bad[i], NULL, &be, &err);
        CHECKF(st == EMU2_ERR_INVALID_ARGUMENT && be == NULL, "\"%s\": %d %s", bad[i], (int)st, err.message);
    }
    const char *multi[] = {"cuda:0,0", "cuda:2,0,1"};
    for (size_t i = 0; i < sizeof multi / sizeof multi[0]; i++) {
        emu2_backend *be = (emu2_backend *)1;
        emu2_error err;
        emu2_status st = emu2_backend_open(multi[i], NULL, &be, &err);
        if (st == EMU2_OK) {
            CHECKF(strstr(be->device, "split over") != NULL, "%s", be->device);
            emu2_backend_close(be);
        } else
            CHECKF(be == NULL && strstr(err.message, multi[i]) && strstr(err.message, "unavailable"), "\"%s\": %s",
                   multi[i], err.message);
    }
}

int main(void)
{
    RUN(device_lists);
    RUN(plans_are_optimal_on_small_cases);
    RUN(full_size_emu2_over_two_and_three_gpus);
    RUN(bad_requests);
    RUN(backend_open_uses_the_parser);
    return check_finish();
}
