/* test_topk_op.c: the top_k op of the CPU backend (core/ops/cpu/cpu_topk.c) against a sort-based
 * reference on random rows: ties, -0/+0, -inf, NaN, +inf, k = 1, k = n, odd lengths, many rows
 * over several threads, raw values and log_softmax (bit-identical to the search's
 * emu2_log_softmax), and the argument checks. */
#include <math.h>
#include <stdint.h>

#include "check.h"
#include "generate/logits.h"
#include "ops/ops.h"
#include "ops/topk_check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* Values drawn from a small set now and then, so ties are common; specials by `specials`. */
static float random_value(int specials)
{
    uint32_t r = next_u32() % 1000;
    if (specials && r < 10)
        return -INFINITY;
    if (specials == 2 && r < 12)
        return NAN;
    if (specials == 2 && r < 13)
        return INFINITY;
    if (r < 200)
        return (float)(int)(next_u32() % 7) - 3.0f; /* ties, and 0 */
    if (r < 210)
        return -0.0f;
    return ((float)(next_u32() % 2000001) - 1000000.0f) / 65536.0f;
}

typedef struct ref_entry {
    uint32_t key;
    int32_t id;
    float value;
} ref_entry;

static int ref_order(const void *pa, const void *pb)
{
    const ref_entry *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key > b->key ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int row_is_bad(const float *row, size_t n)
{
    int finite_or_minus = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(row[i]) || row[i] == INFINITY)
            return 1;
        finite_or_minus |= row[i] != -INFINITY;
    }
    return !finite_or_minus;
}

/* Reference for one row: values (log_softmax'd by the search's own function when asked), sorted. */
static void reference_row(const float *row, size_t n, size_t k, int log_form, float *vals, int32_t *ids,
                          ref_entry *tmp, float *work)
{
    if (log_form && row_is_bad(row, n)) {
        for (size_t i = 0; i < k; i++)
            vals[i] = NAN, ids[i] = (int32_t)i;
        return;
    }
    memcpy(work, row, n * sizeof *work);
    if (log_form)
        emu2_log_softmax(work, (int32_t)n);
    for (size_t i = 0; i < n; i++)
        tmp[i] = (ref_entry){emu2_topk_key(work[i]), (int32_t)i, work[i]};
    qsort(tmp, n, sizeof *tmp, ref_order);
    for (size_t i = 0; i < k; i++)
        vals[i] = tmp[i].value, ids[i] = tmp[i].id;
}

/* Runs the op on rows x n random values and compares with the reference, bit for bit. */
static int compare_case(emu2_backend *be, size_t rows, size_t n, size_t k, int log_form, int specials)
{
    float *x = malloc(rows * n * sizeof *x), *work = malloc(n * sizeof *work);
    float *got_v = malloc(rows * k * sizeof *got_v), *want_v = malloc(k * sizeof *want_v);
    int32_t *got_i = malloc(rows * k * sizeof *got_i), *want_i = malloc(k * sizeof *want_i);
    ref_entry *tmp = malloc(n * sizeof *tmp);
    int ok = x && work && got_v && want_v && got_i && want_i && tmp;
    for (size_t i = 0; ok && i < rows * n; i++)
        x[i] = random_value(specials);
    if (ok && rows > 2 && specials) { /* one row all -inf, one with a single finite value */
        for (size_t i = 0; i < n; i++)
            x[i] = -INFINITY, x[n + i] = -INFINITY;
        x[n + n / 2] = 1.5f;
    }
    emu2_error err = {0};
    if (ok && be->ops->top_k(be, rows, n, x, k, log_form ? EMU2_TOPK_LOG_SOFTMAX : 0u, got_v, got_i, &err) != EMU2_OK) {
        printf("    top_k failed: %s\n", err.message);
        ok = 0;
    }
    for (size_t r = 0; ok && r < rows; r++) {
        reference_row(x + r * n, n, k, log_form, want_v, want_i, tmp, work);
        for (size_t i = 0; ok && i < k; i++) {
            int same_value = isnan(want_v[i]) ? isnan(got_v[r * k + i]) : memcmp(&want_v[i], &got_v[r * k + i], 4) == 0;
            if (!same_value || want_i[i] != got_i[r * k + i]) {
                printf("    rows %zu n %zu k %zu log %d: row %zu rank %zu: got (%d, %a), want (%d, %a)\n", rows, n, k,
                       log_form, r, i, (int)got_i[r * k + i], (double)got_v[r * k + i], (int)want_i[i],
                       (double)want_v[i]);
                ok = 0;
            }
        }
    }
    free(x), free(work), free(got_v), free(want_v), free(got_i), free(want_i), free(tmp);
    return ok;
}

static emu2_backend *open_cpu(int threads)
{
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = threads;
    emu2_backend *be = NULL;
    emu2_error err = {0};
    if (emu2_cpu_backend_open(&o, &be, &err) != EMU2_OK)
        printf("    cpu backend: %s\n", err.message);
    return be;
}

TEST(topk_matches_sorted_reference)
{
    emu2_backend *be = open_cpu(2);
    CHECK(be && be->ops->top_k);
    static const size_t shapes[][3] = {{1, 1, 1},    {3, 7, 1},     {3, 7, 7},    {5, 33, 11},   {4, 100, 100},
                                       {37, 250, 5}, {2, 1000, 64}, {9, 997, 256}, {64, 4099, 11}, {2, 32000, 51}};
    int ok = 1;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int log_form = 0; log_form < 2; log_form++)
            for (int specials = 0; specials < 3; specials++)
                ok &= compare_case(be, shapes[s][0], shapes[s][1], shapes[s][2], log_form, specials);
    emu2_backend_close(be);
    CHECK(ok);
}

TEST(topk_single_thread_same_as_threads)
{
    emu2_backend *be = open_cpu(1);
    CHECK(be);
    int ok = compare_case(be, 17, 513, 9, 1, 1) && compare_case(be, 17, 513, 9, 0, 2);
    emu2_backend_close(be);
    CHECK(ok);
}

TEST(topk_order_rules)
{
    emu2_backend *be = open_cpu(1);
    CHECK(be);
    /* NaN first (ties among NaN by index), then +inf, then -0 == +0 in index order, -inf last */
    float x[8] = {0.0f, -INFINITY, NAN, -0.0f, INFINITY, NAN, 1.0f, -1.0f};
    float v[8];
    int32_t id[8];
    emu2_error err = {0};
    CHECK(be->ops->top_k(be, 1, 8, x, 8, 0, v, id, &err) == EMU2_OK);
    static const int32_t want[8] = {2, 5, 4, 6, 0, 3, 7, 1};
    for (int i = 0; i < 8; i++)
        CHECKF(id[i] == want[i], "rank %d: id %d, want %d", i, (int)id[i], (int)want[i]);
    CHECK(signbit(v[5]) && v[5] == 0.0f); /* the value itself is handed back unchanged */
    /* log_softmax of a row with NaN: NaN values, ids 0..k-1 */
    CHECK(be->ops->top_k(be, 1, 8, x, 3, EMU2_TOPK_LOG_SOFTMAX, v, id, &err) == EMU2_OK);
    CHECK(isnan(v[0]) && isnan(v[2]) && id[0] == 0 && id[2] == 2);
    emu2_backend_close(be);
}

TEST(topk_argument_checks)
{
    emu2_backend *be = open_cpu(1);
    CHECK(be);
    float x[4] = {1, 2, 3, 4}, v[300];
    int32_t id[300];
    emu2_error err = {0};
    CHECK(be->ops->top_k(be, 1, 4, x, 0, 0, v, id, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(be->ops->top_k(be, 1, 4, x, 5, 0, v, id, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(strstr(err.message, "top_k: k = 5") != NULL);
    CHECK(be->ops->top_k(be, 1, 4, x, 2, 4u, v, id, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(be->ops->top_k(be, 1, 4, NULL, 2, 0, v, id, &err) == EMU2_ERR_INVALID_ARGUMENT);
    CHECK(be->ops->top_k(be, 1, 0, x, 1, 0, v, id, &err) == EMU2_ERR_INVALID_ARGUMENT);
    float *big = calloc(1000, sizeof *big);
    CHECK(big);
    emu2_status st = be->ops->top_k(be, 1, 1000, big, EMU2_TOPK_MAX_K + 1, 0, v, id, &err);
    free(big);
    CHECK(st == EMU2_ERR_LIMIT && strstr(err.message, "more than the op handles"));
    CHECK(be->ops->top_k(be, 0, 4, x, 2, 0, v, id, &err) == EMU2_OK); /* no rows: nothing to do */
    emu2_backend_close(be);
}

int main(void)
{
    RUN(topk_matches_sorted_reference);
    RUN(topk_single_thread_same_as_threads);
    RUN(topk_order_rules);
    RUN(topk_argument_checks);
    return check_finish();
}
