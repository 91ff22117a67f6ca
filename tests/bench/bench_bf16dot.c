/* bench_bf16dot.c: the "bf16" precision's linear (bf16_gemm.c) against the f32 packed path on the
 * same BF16 weights, at the shapes of the EVA vision tower of the ~1B bench model (257 tokens, width
 * 1024, MLP 4096) and of its LLM prefill (128 tokens, 2048 / 5632), one thread by default; rounds
 * alternate f32 and bf16 in one process, medians. Also measures the core's vdpbf16ps and f32 FMA
 * peaks (24 independent accumulators) so the GEMM's share of the peak can be stated. Times are CPU
 * seconds of the process (per core: divided by the threads), steadier than wall time on a shared
 * machine (they still pay for shared caches and memory). Not in make test.
 *
 *   make BUILD=build lib
 *   cc -O2 -pthread -Icore/include -Icore -D_DEFAULT_SOURCE tests/bench/bench_bf16dot.c build/libemu2.a \
 *      -lturbojpeg -lpng -lsentencepiece -ljansson -lstdc++ -lm -lpthread -ldl -o build/bench/bench_bf16dot
 *   build/bench/bench_bf16dot [threads [rounds]]
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

/* CPU seconds of the whole process (all its threads). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#include "common/tensor.h"
#include "ops/ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define ACC24(op)                                                                                                     \
    op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11) op(12) op(13) op(14) op(15) op(16)      \
        op(17) op(18) op(19) op(20) op(21) op(22) op(23)
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)(i)); /* distinct: no merging of the chains */
#define SUM(i) +_mm512_reduce_add_ps(c##i)
#define DP(i) c##i = _mm512_dpbf16_ps(c##i, a, b);
#define FMA(i) c##i = _mm512_fmadd_ps(fa, fb, c##i);

/* GFLOP/s of n x 24 dependent-free vdpbf16ps (64 FLOP each) / FMA (32 FLOP each) */
__attribute__((target("avx512f,avx512bw,avx512bf16"))) static double peak_bf16(long n)
{
    ACC24(DECL)
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x00010001);
    double t0 = cpu_now();
    for (long k = 0; k < n; k++) {
        ACC24(DP)
        __asm__ volatile("" : "+v"(a));
    }
    double t = cpu_now() - t0;
    volatile float sink = 0 ACC24(SUM);
    (void)sink;
    return 24.0 * 64 * n / t * 1e-9;
}
__attribute__((target("avx512f,fma"))) static double peak_f32(long n)
{
    ACC24(DECL)
    __m512 fa = _mm512_set1_ps(1.0f), fb = _mm512_set1_ps(1e-30f);
    double t0 = cpu_now();
    for (long k = 0; k < n; k++) {
        ACC24(FMA)
        __asm__ volatile("" : "+v"(fa));
    }
    double t = cpu_now() - t0;
    volatile float sink = 0 ACC24(SUM);
    (void)sink;
    return 24.0 * 32 * n / t * 1e-9;
}
#else
static double peak_bf16(long n)
{
    (void)n;
    return 0;
}
static double peak_f32(long n)
{
    (void)n;
    return 0;
}
#endif

typedef struct shape {
    const char *name;
    size_t M, K, N;
} shape;

static const shape shapes[] = {
    {"vision qkv", 257, 1024, 3072}, {"vision fc1", 257, 1024, 4096}, {"vision fc2", 257, 4096, 1024},
    {"prefill gate/up", 128, 2048, 5632}, {"prefill down", 128, 5632, 2048},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])
#define MAX_ROUNDS 32

static double time_linear(emu2_backend *be, const shape *s, const float *x, const emu2_op_weight *w, float *y)
{
    emu2_error err = {0};
    double t0 = cpu_now();
    if (be->ops->linear(be, s->M, s->K, s->N, x, s->K, w, NULL, y, s->N, &err) != EMU2_OK) {
        fprintf(stderr, "bench_bf16dot: %s\n", err.message);
        exit(1);
    }
    return (cpu_now() - t0) / be->threads;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1, rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (threads < 1 || rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_bf16dot [threads [rounds 1..%d]]\n", MAX_ROUNDS);
        return 2;
    }
    emu2_backend *be[2] = {NULL, NULL};
    for (int p = 0; p < 2; p++) {
        emu2_backend_options o;
        emu2_backend_options_init(&o);
        o.threads = threads;
        o.bf16_dot = p;
        emu2_error err = {0};
        if (emu2_cpu_backend_open(&o, &be[p], &err) != EMU2_OK) {
            fprintf(stderr, "bench_bf16dot: %s\n", err.message);
            return 1;
        }
    }
    printf("threads %d, isa %s; bf16 backend: %s\n", threads, emu2_cpu_isa_name(be[1]->isa),
           be[1]->device[0] ? be[1]->device : "?");
    double pb[3], pf[3];
    for (int r = 0; r < 3; r++) {
        pb[r] = peak_bf16(20000000);
        pf[r] = peak_f32(20000000);
    }
    qsort(pb, 3, sizeof *pb, bench_cmp_double);
    qsort(pf, 3, sizeof *pf, bench_cmp_double);
    double peak_b = pb[1] * threads, peak_f = pf[1] * threads;
    printf("peaks (1 core x %d, per CPU-second): vdpbf16ps %.1f GFLOP/s, f32 FMA %.1f GFLOP/s\n", threads, peak_b,
           peak_f);
    for (size_t i = 0; i < N_SHAPES; i++) {
        const shape *s = &shapes[i];
        float *x = malloc(s->M * s->K * 4), *y = malloc(s->M * s->N * 4);
        uint16_t *w = malloc(s->N * s->K * 2);
        for (size_t k = 0; k < s->M * s->K; k++)
            x[k] = (float)((k * 7919) % 1000) / 1000.0f - 0.5f;
        for (size_t k = 0; k < s->N * s->K; k++)
            w[k] = emu2_f32_to_bf16((float)((k * 104729) % 1000) / 1000.0f * 0.1f - 0.05f);
        emu2_op_weight W = {.w = {.dtype = EMU2_DT_BF16, .ndim = 2, .shape = {(int64_t)s->N, (int64_t)s->K},
                                  .data = w, .nbytes = s->N * s->K * 2}};
        double t[2][MAX_ROUNDS];
        time_linear(be[0], s, x, &W, y); /* warm-up: scratch, page-in */
        time_linear(be[1], s, x, &W, y);
        for (int r = 0; r < rounds; r++)
            for (int p = 0; p < 2; p++)
                t[p][r] = time_linear(be[r % 2 ? 1 - p : p], s, x, &W, y);
        /* rounds alternate which precision goes first; t[p] holds backend (r odd ? 1-p : p): sort it out */
        double tf[MAX_ROUNDS], tb[MAX_ROUNDS];
        for (int r = 0; r < rounds; r++) {
            tf[r] = r % 2 ? t[1][r] : t[0][r];
            tb[r] = r % 2 ? t[0][r] : t[1][r];
        }
        qsort(tf, rounds, sizeof *tf, bench_cmp_double);
        qsort(tb, rounds, sizeof *tb, bench_cmp_double);
        double flop = 2.0 * s->M * s->K * s->N, gf = flop / tf[rounds / 2] * 1e-9, gb = flop / tb[rounds / 2] * 1e-9;
        printf("%-16s M=%-4zu K=%-5zu N=%-5zu  f32 %7.1f GFLOP/s (%4.0f%% of FMA peak)   bf16 %7.1f GFLOP/s (%4.0f%% of "
               "bf16 peak)   %.2fx\n",
               s->name, s->M, s->K, s->N, gf, 100 * gf / peak_f, gb, 100 * gb / peak_b, gb / gf);
        free(x), free(y), free(w);
    }
    emu2_backend_close(be[0]);
    emu2_backend_close(be[1]);
    return 0;
}
