/* test_quant_format.c: the reference quantizer (core/quant/quant.c): format names, sizes, the
 * rounding error bound of each format, zero rows, padding of a partial int4 group, non-finite
 * weights refused, and bf16/f16 sources. */
#include <math.h>

#include "check.h"
#include "quant/quant.h"
#include "test_ops_util.h"

TEST(names_and_sizes)
{
    emu2_quant_spec s;
    emu2_error err;
    CHECK(emu2_quant_parse(NULL, &s, &err) == EMU2_OK && s.format == EMU2_WEIGHT_FLOAT);
    CHECK(emu2_quant_parse("none", &s, &err) == EMU2_OK && s.format == EMU2_WEIGHT_FLOAT);
    CHECK(emu2_quant_parse("int8", &s, &err) == EMU2_OK && s.format == EMU2_WEIGHT_Q8);
    CHECK(emu2_quant_parse("int4", &s, &err) == EMU2_OK && s.format == EMU2_WEIGHT_Q4 && s.group == 32);
    CHECK(s.down_int8 && !strcmp(emu2_quant_name(s), "int4"));
    CHECK(emu2_quant_spec_for(s, "decoder.lm.model.layers.7.mlp.down_proj").format == EMU2_WEIGHT_Q8);
    CHECK(emu2_quant_spec_for(s, "decoder.lm.model.layers.7.mlp.up_proj").format == EMU2_WEIGHT_Q4);
    CHECK(emu2_quant_parse("int4-g32", &s, &err) == EMU2_OK && !s.down_int8 && !strcmp(emu2_quant_name(s), "int4-g32"));
    CHECK(emu2_quant_spec_for(s, "decoder.lm.model.layers.7.mlp.down_proj").format == EMU2_WEIGHT_Q4);
    CHECK(emu2_quant_parse("int4-g128", &s, &err) == EMU2_OK && s.group == 128);
    CHECK(!strcmp(emu2_quant_name(s), "int4-g128"));
    CHECK(emu2_quant_parse("int3", &s, &err) == EMU2_ERR_INVALID_ARGUMENT && strstr(err.message, "int3"));
    emu2_quant_spec q4 = {.format = EMU2_WEIGHT_Q4, .group = 32}, q8 = {.format = EMU2_WEIGHT_Q8};
    CHECK(emu2_quant_q_row_bytes(q8, 77) == 77 && emu2_quant_scale_row_count(q8, 77) == 1);
    CHECK(emu2_quant_q_row_bytes(q4, 64) == 32 && emu2_quant_scale_row_count(q4, 64) == 2);
    CHECK(emu2_quant_q_row_bytes(q4, 65) == 48 && emu2_quant_scale_row_count(q4, 65) == 3);
}

static emu2_op_weight view_of(emu2_quant_spec spec, size_t N, size_t K, void *q, void *s)
{
    emu2_op_weight w;
    memset(&w, 0, sizeof w);
    w.format = spec.format;
    w.group = spec.group;
    w.w.data = q;
    w.scales.data = s;
    (void)N, (void)K;
    return w;
}

/* |w - dequant(quant(w))| <= scale/2 (+ f32 rounding) everywhere, per format and source dtype. */
static void error_bound(emu2_quant_spec spec, emu2_dtype dt)
{
    const size_t N = 6, K = 100;
    float v[N * K];
    fill_uniform(v, N * K, -2.0f, 2.0f);
    memset(v + K, 0, K * sizeof(float)); /* row 1: all zeros */
    test_weight tw;
    test_weight_make(&tw, dt, 2, N, K, v); /* v now holds what the source stores */
    uint8_t q[N * K], s[N * 4 * 4];
    emu2_error err;
    CHECKF(emu2_quantize_rows(spec, tw.data, dt, N, K, q, s, &err) == EMU2_OK, "%s", err.message);
    emu2_op_weight w = view_of(spec, N, K, q, s);
    float d[K];
    size_t G = spec.format == EMU2_WEIGHT_Q4 ? (size_t)spec.group : K;
    double worst = 0;
    for (size_t n = 0; n < N; n++) {
        emu2_dequant_row(&w, K, n, 0, K, d);
        for (size_t k0 = 0; k0 < K; k0 += G) {
            float amax = 0;
            for (size_t k = k0; k < k0 + G && k < K; k++)
                amax = fmaxf(amax, fabsf(v[n * K + k]));
            double step = spec.format == EMU2_WEIGHT_Q8 ? amax / 127.0 : amax / 7.0;
            /* int8: round to nearest of the amax/127 grid. int4: the scale is searched (quant.c),
             * so each value is within one amax/7 step and the group's squared error is at most
             * that of plain rounding to the amax/7 grid (f16 scale). */
            double se = 0, se_plain = 0, s7 = emu2_f16_to_f32(emu2_f32_to_f16((float)(amax / 7.0)));
            for (size_t k = k0; k < k0 + G && k < K; k++) {
                double e = fabs((double)d[k] - v[n * K + k]);
                double bound = spec.format == EMU2_WEIGHT_Q8 ? step * 0.5001 : step * 1.001;
                if (n == 1)
                    CHECKF(d[k] == 0.0f, "zero row gives %g", d[k]);
                CHECKF(e <= bound + 1e-7, "row %zu k %zu: %g vs %g (step %g)", n, k, d[k], v[n * K + k], step);
                if (step > 0 && e / step > worst)
                    worst = e / step;
                double r = s7 > 0 ? rint(v[n * K + k] / s7) : 0;
                r = r > 7 ? 7 : r < -8 ? -8 : r;
                se += e * e;
                se_plain += (v[n * K + k] - r * s7) * (v[n * K + k] - r * s7);
            }
            if (spec.format == EMU2_WEIGHT_Q4)
                CHECKF(se <= se_plain * (1 + 1e-6) + 1e-12, "row %zu group %zu: squared error %g > plain %g", n,
                       k0 / G, se, se_plain);
        }
    }
    /* the padding of the last partial int4 group holds the value 0 (nibble 8) */
    if (spec.format == EMU2_WEIGHT_Q4) {
        size_t rb = emu2_quant_q_row_bytes(spec, K), half = G / 2, last = K / G * half;
        for (size_t i = K % G; i < G; i++) {
            uint8_t b = q[rb * 2 + last + (i % half)];
            CHECKF((i < half ? (b & 15) : (b >> 4)) == 8, "padding element %zu is not zero", i);
        }
    }
    test_weight_free(&tw);
    printf("    %s from %s: worst error %.3f amax/7 steps\n", emu2_quant_name(spec), emu2_dtype_name(dt), worst);
}

TEST(int8_error_bound)
{
    for (size_t i = 0; i < 3; i++)
        error_bound((emu2_quant_spec){.format = EMU2_WEIGHT_Q8}, test_float_dtypes[i]);
}

TEST(int4_error_bound)
{
    static const int groups[] = {32, 64, 128};
    for (size_t g = 0; g < 3; g++)
        for (size_t i = 0; i < 3; i++)
            error_bound((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = groups[g]}, test_float_dtypes[i]);
}

TEST(non_finite_and_bad_arguments_refused)
{
    float v[64];
    fill_uniform(v, 64, -1, 1);
    v[40] = NAN;
    uint8_t q[64], s[16];
    emu2_error err;
    CHECK(emu2_quantize_rows((emu2_quant_spec){.format = EMU2_WEIGHT_Q8}, v, EMU2_DT_F32, 1, 64, q, s, &err) ==
          EMU2_ERR_FORMAT);
    v[40] = INFINITY;
    CHECK(emu2_quantize_rows((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 32}, v, EMU2_DT_F32, 1, 64, q, s, &err) ==
          EMU2_ERR_FORMAT);
    v[40] = 0;
    CHECK(emu2_quantize_rows((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 48}, v, EMU2_DT_F32, 1, 64, q, s, &err) ==
          EMU2_ERR_INVALID_ARGUMENT);
    CHECK(emu2_quantize_rows((emu2_quant_spec){.format = EMU2_WEIGHT_Q8}, v, EMU2_DT_I32, 1, 64, q, s, &err) ==
          EMU2_ERR_UNSUPPORTED);
    v[3] = 1e6f; /* int4 scale 1e6/7 overflows f16 */
    CHECK(emu2_quantize_rows((emu2_quant_spec){.format = EMU2_WEIGHT_Q4, .group = 32}, v, EMU2_DT_F32, 1, 64, q, s, &err) ==
          EMU2_ERR_UNSUPPORTED);
}

int main(void)
{
    RUN(names_and_sizes);
    RUN(int8_error_bound);
    RUN(int4_error_bound);
    RUN(non_finite_and_bad_arguments_refused);
    return check_finish();
}
