/* test_cuda_topk.c: the CUDA backend's top_k op (kernels/topk.cu) against the CPU backend's on
 * random rows (ties, -0/+0, -inf, NaN, +inf, k = 1, k = n, k = EMU2_TOPK_MAX_K, lengths that are no
 * multiple of anything, thousands of rows): raw values exactly (ids and values bit for bit);
 * log_softmax values within 4e-6 (the device's expf/logf in the normalizer), ids exactly where the
 * rows have no near-ties, the NaN contract for bad rows; the same argument errors; and whole
 * generations on the GPU with the search's top-k path on and off ($EMU2_SEARCH_FULL_LOGITS).
 * Skips, saying why, without a GPU. */
#include "test_cuda_support.h"
#include "emu2.h"

/* Mostly values from a small set (ties), a few specials when asked. */
static float tie_value(int specials)
{
    float u = tc_uniform(0.0f, 1.0f);
    if (specials && u < 0.01f)
        return -INFINITY;
    if (specials == 2 && u < 0.012f)
        return NAN;
    if (specials == 2 && u < 0.013f)
        return INFINITY;
    if (u < 0.3f)
        return (float)(int)(u * 20.0f) - 3.0f;
    if (u < 0.31f)
        return -0.0f;
    return tc_uniform(-20.0f, 20.0f);
}

/* Log form: the device's normalizer is a few ulp from the host's, so two values closer than that
 * may round to a tie on one side only and swap places (or trade the last place with one just
 * outside the k). 1 when the device's id `gid` at rank i is such a near-tie of the CPU's row. */
static int near_tie(const float *cv, const int32_t *ci, size_t k, size_t i, int32_t gid, float tol)
{
    for (size_t o = i ? i - 1 : 0; o < k && o <= i + 1; o++)
        if (ci[o] == gid && fabsf(cv[o] - cv[i]) <= tol)
            return 1;
    return i == k - 1; /* its value is checked against the CPU's k-th */
}

/* Both backends on rows x n; 1 when they agree as the header says. */
static int compare(size_t rows, size_t n, size_t k, int log_form, int specials)
{
    float *x = malloc(rows * n * sizeof *x);
    for (size_t i = 0; i < rows * n; i++)
        x[i] = log_form ? tc_uniform(-12.0f, 12.0f) : tie_value(specials);
    if (log_form && specials && rows > 2) { /* a NaN row and an all -inf row */
        x[n / 2] = NAN;
        for (size_t i = 0; i < n; i++)
            x[n + i] = -INFINITY;
    }
    float *dx = tc_dev(x, rows * n);
    float *cv = malloc(rows * k * sizeof *cv), *gv = malloc(rows * k * sizeof *gv);
    int32_t *ci = malloc(rows * k * sizeof *ci), *gi = malloc(rows * k * sizeof *gi);
    emu2_error e1 = {0}, e2 = {0};
    unsigned flags = log_form ? EMU2_TOPK_LOG_SOFTMAX : 0u;
    int ok = dx && tc_cpu->ops->top_k(tc_cpu, rows, n, x, k, flags, cv, ci, &e1) == EMU2_OK &&
             tc_gpu->ops->top_k(tc_gpu, rows, n, dx, k, flags, gv, gi, &e2) == EMU2_OK;
    if (!ok)
        printf("    top_k failed: %s / %s\n", e1.message, e2.message);
    for (size_t r = 0; ok && r < rows; r++)
        for (size_t i = 0; ok && i < k; i++) {
            size_t j = r * k + i;
            if (isnan(cv[j]) || isnan(gv[j]))
                ok = isnan(cv[j]) && isnan(gv[j]) && ci[j] == gi[j];
            else if (!log_form)
                ok = ci[j] == gi[j] && memcmp(&cv[j], &gv[j], sizeof cv[j]) == 0;
            else {
                float tol = 4e-6f * (1.0f + fabsf(cv[j]));
                ok = fabsf(cv[j] - gv[j]) <= tol &&
                     (ci[j] == gi[j] || near_tie(cv + r * k, ci + r * k, k, i, gi[j], 2.0f * tol));
            }
            if (!ok)
                printf("    rows %zu n %zu k %zu log %d: row %zu rank %zu: cuda (%d, %.9g), cpu (%d, %.9g)\n", rows,
                       n, k, log_form, r, i, (int)gi[j], (double)gv[j], (int)ci[j], (double)cv[j]);
        }
    tc_free(dx);
    free(x), free(cv), free(gv), free(ci), free(gi);
    return ok;
}

TEST(cuda_topk_matches_cpu)
{
    TC_NEED_GPU();
    CHECK(tc_gpu->ops->top_k && tc_cpu->ops->top_k);
    static const size_t shapes[][3] = {{1, 1, 1},     {3, 7, 7},      {5, 33, 11},   {4, 100, 100}, {37, 250, 5},
                                       {2, 1000, 64}, {9, 997, 256},  {64, 4099, 11}, {3, 32000, 51}, {2048, 257, 3},
                                       {8, 32274, 1}, {16, 32274, 11}};
    int ok = 1;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int log_form = 0; log_form < 2; log_form++)
            for (int specials = 0; specials < 3; specials++)
                ok &= compare(shapes[s][0], shapes[s][1], shapes[s][2], log_form, specials);
    CHECK(ok);
}

TEST(cuda_topk_same_argument_errors)
{
    TC_NEED_GPU();
    float *d = tc_dev(NULL, 1000);
    float v[300];
    int32_t id[300];
    emu2_error e1 = {0}, e2 = {0};
    emu2_status c = tc_cpu->ops->top_k(tc_cpu, 1, 1000, d, EMU2_TOPK_MAX_K + 1, 0, v, id, &e1);
    emu2_status g = tc_gpu->ops->top_k(tc_gpu, 1, 1000, d, EMU2_TOPK_MAX_K + 1, 0, v, id, &e2);
    int same_limit = c == EMU2_ERR_LIMIT && g == c && strcmp(e1.message, e2.message) == 0;
    c = tc_cpu->ops->top_k(tc_cpu, 1, 10, d, 11, 0, v, id, &e1);
    g = tc_gpu->ops->top_k(tc_gpu, 1, 10, d, 11, 0, v, id, &e2);
    tc_free(d);
    CHECK(same_limit);
    CHECK(c == EMU2_ERR_INVALID_ARGUMENT && g == c && strcmp(e1.message, e2.message) == 0);
}

/* The trained tiny model on the GPU: greedy and beam 5 over a batch, top-k path on and off. */
TEST(cuda_generate_topk_on_off)
{
    TC_NEED_GPU();
    static const char *names[3] = {"blue_black_1_top_left.jpg", "red_white_3_bottom_left.jpg",
                                   "green_black_4_bottom_right.jpg"};
    static unsigned char buf[3][1 << 16];
    emu2_image_bytes img[3];
    emu2_request req[3];
    for (int i = 0; i < 3; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/emu2-tiny-digits/examples/%s", names[i]);
        FILE *f = fopen(ROOT_PATH(rel), "rb");
        CHECKF(f, "cannot read %s", rel);
        img[i] = (emu2_image_bytes){buf[i], fread(buf[i], 1, sizeof buf[i], f)};
        fclose(f);
        req[i] = (emu2_request){NULL, &img[i], 1};
    }
    emu2_load_options lo;
    emu2_load_options_init(&lo);
    lo.device = "cuda";
    emu2_model *m;
    emu2_error err;
    CHECKF(emu2_model_load(ROOT_PATH("models/emu2-tiny-digits"), &lo, &m, &err) == EMU2_OK, "%s", err.message);
    int ok = 1;
    for (int beams = 1; ok && beams <= 5; beams += 4) {
        emu2_gen_options o;
        emu2_gen_options_init(&o);
        o.num_beams = beams;
        emu2_result a[3], b[3];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        setenv("EMU2_SEARCH_FULL_LOGITS", "1", 1);
        ok = emu2_generate_batch(m, req, 3, &o, NULL, a) == EMU2_OK;
        unsetenv("EMU2_SEARCH_FULL_LOGITS");
        ok = ok && emu2_generate_batch(m, req, 3, &o, NULL, b) == EMU2_OK;
        for (int i = 0; ok && i < 3; i++) {
            ok = a[i].text && b[i].text && strcmp(a[i].text, b[i].text) == 0;
            printf("    beams %d: '%s' / '%s'\n", beams, a[i].text ? a[i].text : a[i].message,
                   b[i].text ? b[i].text : b[i].message);
        }
        emu2_results_clear(a, 3);
        emu2_results_clear(b, 3);
    }
    emu2_model_free(m);
    CHECK(ok);
}

int main(void)
{
    tc_open();
    RUN(cuda_topk_matches_cpu);
    RUN(cuda_topk_same_argument_errors);
    RUN(cuda_generate_topk_on_off);
    if (tc_gpu || tc_cpu)
        tc_close();
    return check_finish();
}
