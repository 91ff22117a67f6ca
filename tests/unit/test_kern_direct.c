/* test_kern_direct.c: the decode kernels of every ISA this CPU has, called directly, against a
 * double-precision reference.
 *  - tile_direct (the small-M GEMV): mr 1..4 x nr 1..4, K around the unrolled steps (1..16, 31..33,
 *    63..65, 100, 129, 1030, 2050), row strides larger than K (ldx, ldw), misaligned weights,
 *    F32/F16/BF16; x and w past their rows are NaN, so a kernel reading past K fails.
 *  - gemm_nn (attention's small GEMMs; mr = 1 is decode's p.v): mr 1..4, n across the 8/16/64-column
 *    steps, strides, accumulate or overwrite; rows past mr and columns past n of c stay untouched. */
#include <math.h>

#include "check.h"
#include "ops/cpu/kernels.h"
#include "test_ops_util.h"

static const size_t k_values[] = {1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 129, 1030, 2050};

/* Weight values rounded to what dt holds, as the kernel sees them. */
static float as_dtype(float v, emu2_dtype dt)
{
    if (dt == EMU2_DT_BF16)
        return emu2_bf16_to_f32(emu2_f32_to_bf16(v));
    if (dt == EMU2_DT_F16)
        return emu2_f16_to_f32(emu2_f32_to_f16(v));
    return v;
}

static void store_elem(void *p, emu2_dtype dt, size_t i, float v)
{
    if (dt == EMU2_DT_F32) {
        memcpy((char *)p + i * 4, &v, 4);
        return;
    }
    uint16_t h = dt == EMU2_DT_BF16 ? emu2_f32_to_bf16(v) : emu2_f32_to_f16(v);
    memcpy((char *)p + i * 2, &h, 2);
}

/* One (kernels, dtype, mr, nr, K) case; returns the worst error relative to sum |x w| (INFINITY:
 * a non-finite result). */
static double run_tile(const cpu_kernels *kern, emu2_dtype dt, size_t mr, size_t nr, size_t k, int misalign)
{
    size_t ldx = k + 3, ldw = k + 5, es = emu2_dtype_size(dt);
    float *x = malloc(4 * ldx * sizeof(float));
    char *wbuf = malloc(4 * ldw * es + 1);
    void *w = wbuf + (misalign ? 1 : 0);
    float *wf = malloc(4 * k * sizeof(float));
    if (!x || !wbuf || !wf) {
        free(x), free(wbuf), free(wf);
        return INFINITY;
    }
    for (size_t i = 0; i < 4 * ldx; i++)
        x[i] = NAN; /* the gap between x rows must never be read */
    for (size_t i = 0; i < 4 * ldw; i++)
        store_elem(w, dt, i, NAN);
    for (size_t i = 0; i < mr; i++)
        fill_uniform(x + i * ldx, k, -1, 1);
    for (size_t j = 0; j < nr; j++)
        for (size_t q = 0; q < k; q++) {
            wf[j * k + q] = as_dtype(rng_uniform(-1, 1), dt);
            store_elem(w, dt, j * ldw + q, wf[j * k + q]);
        }
    float c[16];
    for (int i = 0; i < 16; i++)
        c[i] = -7.0f;
    kern->tile_direct(x, ldx, mr, w, dt, ldw, nr, k, c);
    double worst = 0;
    for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++) {
            double s = 0, mag = 0;
            for (size_t q = 0; q < k; q++) {
                double t = (double)x[i * ldx + q] * wf[j * k + q];
                s += t;
                mag += fabs(t);
            }
            double got = c[i * CPU_TILE_N + j];
            double e = isfinite(got) ? fabs(got - s) / (mag + 1e-30) : INFINITY;
            worst = e > worst ? e : worst;
        }
    free(x), free(wbuf), free(wf);
    return worst;
}

static const emu2_cpu_isa isas[] = {EMU2_ISA_SCALAR, EMU2_ISA_AVX2, EMU2_ISA_AVX512};

/* The kernels of isa; NULL when this CPU lacks it or (a failure, reported here) they cannot be selected. */
static const cpu_kernels *kernels_for(emu2_cpu_isa isa)
{
    if (!cpu_isa_supported(isa))
        return NULL;
    const cpu_kernels *k = cpu_kernels_select(isa);
    if (k && k->isa == isa)
        return k;
    check_report_failure(__FILE__, __LINE__, "ISA %s: kernels not selectable", emu2_cpu_isa_name(isa));
    return NULL;
}

TEST(direct_tile_matches_reference_on_every_isa)
{
    int ran = 0;
    for (size_t a = 0; a < sizeof isas / sizeof *isas; a++) {
        const cpu_kernels *kern = kernels_for(isas[a]);
        if (!kern)
            continue;
        for (size_t d = 0; d < 3; d++)
            for (size_t ki = 0; ki < sizeof k_values / sizeof *k_values; ki++)
                for (size_t mr = 1; mr <= 4; mr++)
                    for (size_t nr = 1; nr <= 4; nr++) {
                        size_t k = k_values[ki];
                        double e = run_tile(kern, test_float_dtypes[d], mr, nr, k, (int)((mr + nr + k) % 2));
                        /* f32 sums of up to 2050 products, ordered differently from the reference */
                        CHECKF(e < 2e-6, "ISA %s dtype %s mr %zu nr %zu K %zu: relative error %g",
                               emu2_cpu_isa_name(isas[a]), emu2_dtype_name(test_float_dtypes[d]), mr, nr, k, e);
                        ran++;
                    }
    }
    CHECK(ran >= 3 * 17 * 16); /* at least the scalar path ran every case */
}

/* One gemm_nn case; returns the worst relative error, INFINITY if c outside mr x n changed. */
static double run_gemm_nn(const cpu_kernels *kern, size_t mr, size_t n, size_t k, int accumulate)
{
    size_t lda = k + 2, ldb = n + 3, ldc = n + 5;
    float *a = malloc(4 * lda * sizeof(float)), *b = malloc(k * ldb * sizeof(float));
    float *c = malloc(5 * ldc * sizeof(float)), *c0 = malloc(5 * ldc * sizeof(float));
    double worst = 0;
    if (!a || !b || !c || !c0) {
        worst = INFINITY;
        goto done;
    }
    for (size_t i = 0; i < 4 * lda; i++)
        a[i] = NAN; /* rows past mr and the stride gap are never read */
    for (size_t i = 0; i < mr; i++)
        fill_uniform(a + i * lda, k, -1, 1);
    fill_uniform(b, k * ldb, -1, 1);
    fill_uniform(c, 5 * ldc, -1, 1);
    memcpy(c0, c, 5 * ldc * sizeof(float));
    kern->gemm_nn(mr, n, k, a, lda, b, ldb, c, ldc, accumulate);
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < ldc; j++) {
            float got = c[i * ldc + j];
            if (i >= mr || j >= n) {
                if (memcmp(&got, &c0[i * ldc + j], sizeof got) != 0)
                    worst = INFINITY;
                continue;
            }
            double s = accumulate ? c0[i * ldc + j] : 0, mag = fabs(s);
            for (size_t p = 0; p < k; p++) {
                double t = (double)a[i * lda + p] * b[p * ldb + j];
                s += t;
                mag += fabs(t);
            }
            double e = isfinite(got) ? fabs(got - s) / (mag + 1e-30) : INFINITY;
            worst = e > worst ? e : worst;
        }
done:
    free(a), free(b), free(c), free(c0);
    return worst;
}

TEST(gemm_nn_matches_reference_on_every_isa)
{
    static const size_t ns[] = {1, 7, 8, 9, 16, 17, 63, 64, 65, 128, 130};
    static const size_t ks[] = {1, 5, 33, 300};
    int ran = 0;
    for (size_t a = 0; a < sizeof isas / sizeof *isas; a++) {
        const cpu_kernels *kern = kernels_for(isas[a]);
        if (!kern)
            continue;
        for (size_t mr = 1; mr <= 4; mr++)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
                for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
                    for (int acc = 0; acc < 2; acc++) {
                        double e = run_gemm_nn(kern, mr, ns[ni], ks[ki], acc);
                        CHECKF(e < 1e-6, "ISA %s mr %zu n %zu k %zu accumulate %d: relative error %g",
                               emu2_cpu_isa_name(isas[a]), mr, ns[ni], ks[ki], acc, e);
                        ran++;
                    }
    }
    CHECK(ran >= 4 * 11 * 4 * 2);
}

int main(void)
{
    RUN(direct_tile_matches_reference_on_every_isa);
    RUN(gemm_nn_matches_reference_on_every_isa);
    return check_finish();
}
