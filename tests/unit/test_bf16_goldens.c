/* test_bf16_goldens.c: the "bf16" precision on a whole model against the f32 goldens. The tiny
 * trained model is converted to bf16 weights (emu2 convert's library code, into a temporary folder),
 * loaded with the precision on, and every run of the "tiny" golden case (images through the vision
 * tower, then the decoder's prefill) must keep first-step logits cosine >= 0.9999 with the
 * reference's f32 logits per batch row, and the same arg-max token. The same bf16 weights with f32
 * activations are measured too (information: what rounding the weights alone costs), so the bound
 * says what rounding the activations adds. Skips with the reason without AVX512_BF16. */
#include <dirent.h>
#include <unistd.h>

#include "check.h"
#include "model/decoder.h"
#include "ops/cpu/kern_bf16dot.h"
#include "quant/convert.h"
#include "test_model_run_support.h"

#define MIN_COSINE 0.9999

static size_t argmax(const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* Writes src_dir's checkpoint cast to bf16 into dst_dir. */
static int convert_to_bf16(const char *src_dir, const emu2_checkpoint *ck, const char *dst_dir)
{
    emu2_convert_options o = {.dtype = EMU2_DT_BF16};
    emu2_convert_plan plan;
    emu2_error err = {0};
    if (emu2_convert_plan_make(ck, &o, &plan, &err) != EMU2_OK) {
        printf("    plan: %s\n", err.message);
        return 0;
    }
    int ok = emu2_convert_write(src_dir, dst_dir, &plan, &o, &err) == EMU2_OK;
    if (!ok)
        printf("    convert: %s\n", err.message);
    emu2_convert_plan_free(&plan);
    return ok;
}

static void remove_folder(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(dir);
}

static int open_model(const char *dir, int threads, int bf16, test_model *m)
{
    memset(m, 0, sizeof *m);
    emu2_error err = {0};
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = threads;
    o.bf16_dot = bf16;
    if (emu2_config_load(dir, &m->cfg, &err) != EMU2_OK || emu2_checkpoint_open(dir, &m->ck, &err) != EMU2_OK ||
        emu2_cpu_backend_open(&o, &m->be, &err) != EMU2_OK ||
        emu2_model_weights_bind(m->be, m->ck, &m->cfg, &m->w, &err) != EMU2_OK) {
        printf("    %s: %s\n", dir, err.message);
        test_model_close(m);
        return 0;
    }
    return 1;
}

/* Lowest per-row cosine over the case's runs of model m against the f32 goldens (-1 on failure);
 * *argmax_same: whether every row's top token matches. */
static double worst_cosine(golden_case *gc, test_model *m, int *argmax_same)
{
    int32_t image_id = image_token_id(gc->dir, &m->cfg);
    json_t *runs = json_object_get(gc->g.manifest, "runs");
    double worst = json_array_size(runs) > 0 && image_id >= 0 ? 2 : -1;
    const size_t V = (size_t)m->cfg.vocab_size;
    *argmax_same = 1;
    for (size_t i = 0; worst >= 0 && i < json_array_size(runs); i++) {
        json_t *run = json_array_get(runs, i);
        run_input r;
        if (!run_input_build(m, &gc->g, &gc->px, run, image_id, &r))
            return -1;
        const emu2_tensor_view *ref = golden_tensor(&gc->g, json_string_value(json_object_get(run, "logits_first_step")));
        float *logits = malloc(r.B * V * sizeof(float));
        emu2_decoder_session *s = NULL;
        emu2_decoder_limits lim = {r.B, r.T, 0};
        emu2_error err = {0};
        if (!ref || !logits || emu2_tensor_numel(ref) != r.B * V ||
            emu2_decoder_session_create(m->be, &m->w->decoder, &m->cfg, &lim, &s, &err) ||
            emu2_decoder_prefill(s, r.B, r.T, r.embeds, r.mask, logits, NULL, &err)) {
            printf("    run %zu: %s\n", i, ref ? err.message : "no reference logits");
            worst = -1;
        }
        for (size_t b = 0; worst >= 0 && b < r.B; b++) {
            const float *want = (const float *)ref->data + b * V;
            double c = test_cosine(logits + b * V, want, V);
            worst = c < worst ? c : worst;
            *argmax_same &= argmax(logits + b * V, V) == argmax(want, V);
        }
        emu2_decoder_session_free(s);
        free(logits);
        run_input_free(m, &r);
    }
    return worst;
}

static void check_tiny(int threads)
{
    if (!cpu_bf16dot_supported())
        SKIP("this CPU has no AVX512_BF16 (the bf16 precision falls back to f32 here)");
    golden_case gc;
    if (!golden_case_open("tiny", threads, &gc))
        SKIP("no tiny golden case or model (see messages above)");
    char tmpl[] = "/tmp/emu2-bf16-XXXXXX", dst[64];
    int ok = mkdtemp(tmpl) != NULL;
    snprintf(dst, sizeof dst, "%s/m", tmpl);
    ok = ok && convert_to_bf16(ROOT_PATH(gc.dir), gc.m.ck, dst);
    double c[2] = {-1, -1};
    int same[2] = {0, 0};
    for (int p = 0; ok && p < 2; p++) {
        test_model m;
        if (!open_model(dst, threads, p, &m)) {
            ok = 0;
            break;
        }
        c[p] = worst_cosine(&gc, &m, &same[p]);
        test_model_close(&m);
    }
    remove_folder(dst);
    rmdir(tmpl);
    golden_case_close(&gc);
    CHECK(ok);
    printf("    %dt: worst first-step logits cosine vs the f32 goldens: bf16 weights + f32 activations %.7f, "
           "bf16 precision %.7f (want >= %g); same top token: %s / %s\n",
           threads, c[0], c[1], MIN_COSINE, same[0] ? "yes" : "no", same[1] ? "yes" : "no");
    CHECKF(c[0] >= MIN_COSINE, "bf16 weights with f32 activations: cosine %.7f", c[0]);
    CHECKF(c[1] >= MIN_COSINE, "bf16 precision: cosine %.7f", c[1]);
    CHECK(same[1]);
}

TEST(tiny_bf16_precision_matches_f32_goldens) { run_per_thread_count(check_tiny); }

int main(void)
{
    RUN(tiny_bf16_precision_matches_f32_goldens);
    return check_finish();
}
