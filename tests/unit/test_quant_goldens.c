/* test_quant_goldens.c: int8 / int4 weight-only quantization of the LLM linears against the f32
 * reference: for every run of the network goldens (tiny trained model, vis448 and chat random
 * models), the first-step logits of the quantized engine must keep cosine similarity >= 0.999
 * (int8) and >= 0.99 (int4) with the reference's f32 logits, per batch row, on the tiny trained
 * model (the bound); the pure int4 groups and the random models are printed for
 * information (docs/QUANT.md). The float engine is checked the same way, so a broken harness
 * cannot pass. */
#include "check.h"
#include "model/decoder.h"
#include "test_model_run_support.h"

/* The lowest per-row cosine over every run of case `name` with weights quantized to `quant`;
 * -1 when something failed (message printed). */
static double worst_cosine(const char *name, const char *quant)
{
    golden_case gc;
    if (!golden_case_open(name, 2, &gc))
        return -1;
    emu2_error err;
    emu2_model_weights_free(gc.m.w);
    gc.m.w = NULL;
    if (emu2_model_weights_bind_quant(gc.m.be, gc.m.ck, &gc.m.cfg, quant, &gc.m.w, &err) != EMU2_OK) {
        printf("    %s %s: %s\n", name, quant, err.message);
        golden_case_close(&gc);
        return -1;
    }
    int32_t image_id = image_token_id(gc.dir, &gc.m.cfg);
    json_t *runs = json_object_get(gc.g.manifest, "runs");
    double worst = json_array_size(runs) > 0 && image_id >= 0 ? 2 : -1;
    const size_t V = (size_t)gc.m.cfg.vocab_size;
    for (size_t i = 0; worst >= 0 && i < json_array_size(runs); i++) {
        json_t *run = json_array_get(runs, i);
        run_input r;
        if (!run_input_build(&gc.m, &gc.g, &gc.px, run, image_id, &r)) {
            worst = -1;
            break;
        }
        const emu2_tensor_view *ref = golden_tensor(&gc.g, json_string_value(json_object_get(run, "logits_first_step")));
        float *logits = malloc(r.B * V * sizeof(float));
        emu2_decoder_session *s = NULL;
        emu2_decoder_limits lim = {r.B, r.T, 0};
        if (!ref || !logits || emu2_tensor_numel(ref) != r.B * V ||
            emu2_decoder_session_create(gc.m.be, &gc.m.w->decoder, &gc.m.cfg, &lim, &s, &err) ||
            emu2_decoder_prefill(s, r.B, r.T, r.embeds, r.mask, logits, NULL, &err)) {
            printf("    %s run %zu: %s\n", name, i, ref ? err.message : "no reference logits");
            worst = -1;
        }
        for (size_t b = 0; worst >= 0 && b < r.B; b++) {
            double c = test_cosine(logits + b * V, (const float *)ref->data + b * V, V);
            if (getenv("EMU2_TEST_VERBOSE"))
                printf("      %s %s run %zu row %zu: cosine %.6f\n", name, quant, i, b, c);
            worst = c < worst ? c : worst;
        }
        emu2_decoder_session_free(s);
        free(logits);
        run_input_free(&gc.m, &r);
    }
    golden_case_close(&gc);
    return worst;
}

/* bound < 0: printed, not checked. The done-when bounds are on the tiny trained model; the
 * random-weight models are printed for information: their logits are hypersensitive (on chat,
 * int8 with 0.5% weight error already gives ~0.998), so they bound nothing useful. */
static void check_case(const char *name, int checked)
{
    static const struct {
        const char *quant;
        double min;
    } want[] = {{"none", 0.99999}, {"int8", 0.999}, {"int4", 0.99}, {"int4-g32", -1}, {"int4-g64", -1},
                {"int4-g128", -1}};
    int bad = 0;
    for (size_t q = 0; q < sizeof want / sizeof want[0]; q++) {
        double c = worst_cosine(name, want[q].quant), min = checked ? want[q].min : -1;
        int ok = min < 0 ? c >= 0 : c >= min;
        if (min >= 0)
            printf("    %-7s %-10s worst first-step logits cosine vs f32 %.6f (want >= %g)%s\n", name, want[q].quant,
                   c, min, ok ? "" : "  FAIL");
        else
            printf("    %-7s %-10s worst first-step logits cosine vs f32 %.6f (information)\n", name, want[q].quant, c);
        bad += !ok;
    }
    CHECKF(bad == 0, "%d format(s) below their bound (or failed) on %s", bad, name);
}

TEST(cosine_tiny) { check_case("tiny", 1); }
TEST(cosine_vis448) { check_case("vis448", 0); }
TEST(cosine_chat) { check_case("chat", 0); }

int main(void)
{
    RUN(cosine_tiny);
    RUN(cosine_vis448);
    RUN(cosine_chat);
    return check_finish();
}
