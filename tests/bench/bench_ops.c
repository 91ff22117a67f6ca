/* bench_ops.c: matmul (linear) throughput of the CPU backend, in GFLOP/s, for f32 / f16 / bf16
 * weights at M=1 (decode, memory-bound), M=5 (a 5-beam decode step) and M=256 (prefill, compute-bound),
 * then GELU and attention at the EVA block's size. Not part of make test.
 *
 *   make BUILD=build lib
 *   cc -O2 -Icore/include -Icore tests/bench/bench_ops.c build/libemu2.a -lm -lpthread -ldl -lstdc++ \
 *      -lturbojpeg -lpng -lsentencepiece -ljansson -o build/bench_ops
 *   build/bench_ops [K N [threads [isa]]]     (defaults: 4096 4096, all cores, best ISA; isa = scalar|avx2|avx512)
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#include "common/tensor.h"
#include "ops/ops.h"

/* CPU seconds of the whole process: on a shared machine, GFLOP per CPU-second is steadier than
 * per wall-second (it still pays for cache and frequency sharing). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t K = argc > 1 ? strtoul(argv[1], NULL, 10) : 4096;
    size_t N = argc > 2 ? strtoul(argv[2], NULL, 10) : 4096;
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = argc > 3 ? atoi(argv[3]) : 0;
    if (argc > 4)
        o.max_isa = !strcmp(argv[4], "scalar") ? EMU2_ISA_SCALAR : !strcmp(argv[4], "avx2") ? EMU2_ISA_AVX2
                                                                                              : EMU2_ISA_AVX512;
    emu2_backend *be = NULL;
    emu2_error err = {0};
    if (emu2_cpu_backend_open(&o, &be, &err) != EMU2_OK) {
        fprintf(stderr, "bench_ops: %s\n", err.message);
        return 1;
    }
    printf("cpu backend: isa=%s threads=%d  K=%zu N=%zu\n", emu2_cpu_isa_name(be->isa), be->threads, K, N);
    size_t Mmax = 256;
    float *x = malloc(Mmax * K * 4), *y = malloc(Mmax * N * 4);
    void *w = malloc(N * K * 4);
    for (size_t i = 0; i < Mmax * K; i++)
        x[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (size_t i = 0; i < N * K; i++)
        ((float *)w)[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    static const emu2_dtype dts[] = {EMU2_DT_F32, EMU2_DT_F16, EMU2_DT_BF16};
    static const size_t Ms[] = {1, 5, 256}; /* decode, a 5-beam decode step, prefill */
    for (size_t d = 0; d < 3; d++) {
        if (dts[d] != EMU2_DT_F32) /* rewrite the first half of w as 16-bit values */
            for (size_t i = 0; i < N * K; i++) {
                float f = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
                ((uint16_t *)w)[i] = dts[d] == EMU2_DT_F16 ? emu2_f32_to_f16(f) : emu2_f32_to_bf16(f);
            }
        emu2_op_weight W = {.w = {.dtype = dts[d], .ndim = 2, .shape = {(int64_t)N, (int64_t)K}, .data = w,
                                  .nbytes = N * K * emu2_dtype_size(dts[d])}};
        for (size_t mi = 0; mi < 3; mi++) {
            size_t M = Ms[mi];
            double flops = 2.0 * M * K * N, t0 = bench_now(), c0 = cpu_now(), t;
            int reps = 0;
            do { /* at least 3 runs and 1 second */
                if (be->ops->linear(be, M, K, N, x, K, &W, NULL, y, N, &err) != EMU2_OK) {
                    fprintf(stderr, "bench_ops: %s\n", err.message);
                    return 1;
                }
                reps++;
                t = bench_now() - t0;
            } while (reps < 3 || t < 1.0);
            double s = t / reps, cs = (cpu_now() - c0) / reps;
            printf("linear %-4s M=%-4zu %8.2f GFLOP/s wall %8.2f GFLOP/cpu-s  %8.3f ms  (%.1f GB/s of weights)\n",
                   emu2_dtype_name(dts[d]), M, flops / s * 1e-9, flops / cs * 1e-9, s * 1e3,
                   (double)W.w.nbytes / s * 1e-9);
        }
    }
    free(x), free(y), free(w);

    /* the other heavy ops of one EVA block (1025 tokens, width 1792, 16 heads x 112, MLP 15360) */
    size_t T = 1025, D = 1792, F = 15360;
    float *big = malloc(T * F * 4), *qkv = malloc(T * 3 * D * 4), *att = malloc(T * D * 4);
    for (size_t i = 0; i < T * F; i++)
        big[i] = (float)((i * 7919) % 2000) / 500.0f - 2.0f;
    for (size_t i = 0; i < T * 3 * D; i++)
        qkv[i] = (float)((i * 7919) % 2000) / 2000.0f - 0.5f;
    double t0 = bench_now(), c0 = cpu_now();
    be->ops->gelu(be, T * F, big, big, &err);
    printf("gelu      %zu x %zu            %8.3f ms wall %8.3f cpu-ms\n", T, F, (bench_now() - t0) * 1e3,
           (cpu_now() - c0) * 1e3);
    emu2_attention_args a = {.batch = 1, .n_heads = 16, .head_dim = 112, .q_len = T, .kv_len = T, .scale = 0.0944911f,
                             .q = qkv, .k = qkv + D, .v = qkv + 2 * D, .out = att, .q_stride = 3 * D,
                             .k_stride = 3 * D, .v_stride = 3 * D, .out_stride = D};
    t0 = bench_now(), c0 = cpu_now();
    be->ops->attention(be, &a, &err);
    double ta = bench_now() - t0, ca = cpu_now() - c0;
    printf("attention %zu tok, 16 x 112     %8.3f ms wall  %.2f GFLOP/s wall %.2f GFLOP/cpu-s\n", T, ta * 1e3,
           4.0 * T * T * D / ta * 1e-9, 4.0 * T * T * D / ca * 1e-9);
    free(big), free(qkv), free(att);
    emu2_backend_close(be);
    return 0;
}
