/* roofline.c: copy bandwidth and FMA peak of this machine (see roofline.h). */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include "roofline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "bench_util.h"
#endif

#define MAX_THREADS 64

typedef struct job {
    char *dst;
    const char *src;
    size_t n;
    long iters; /* FMA: loop trips */
    int wide;   /* FMA: 1 = AVX-512, 0 = AVX2 */
    float sink;
} job;

static void run_threads(void *(*fn)(void *), job *jobs, int T)
{
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int i = 1; i < T; i++)
        started[i] = pthread_create(&tid[i], NULL, fn, &jobs[i]) == 0;
    fn(&jobs[0]);
    for (int i = 1; i < T; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            fn(&jobs[i]); /* no thread: do its share here (slower, but still correct work) */
    }
}

static void *copy_worker(void *p)
{
    job *j = p;
    memcpy(j->dst, j->src, j->n);
    return NULL;
}

double roofline_copy_seconds(int threads, size_t bytes)
{
    char *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) {
        free(src), free(dst);
        return -1;
    }
    memset(src, 1, bytes), memset(dst, 2, bytes); /* touch every page before timing */
    int T = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    job jobs[MAX_THREADS];
    for (int i = 0; i < T; i++) {
        size_t lo = bytes / T * i, hi = i == T - 1 ? bytes : bytes / T * (i + 1);
        jobs[i] = (job){.dst = dst + lo, .src = src + lo, .n = hi - lo};
    }
    double t0 = bench_now();
    run_threads(copy_worker, jobs, T);
    double t = bench_now() - t0;
    free(src), free(dst);
    return t;
}

#if defined(__x86_64__) || defined(__i386__)
/* 12 independent accumulators in named registers (an array would be spilled to the stack at -O2)
 * hide the FMA latency (4 cycles x 2 pipes). */
#define FMA12(f)                                                                                    \
    a0 = f(a0, m, c), a1 = f(a1, m, c), a2 = f(a2, m, c), a3 = f(a3, m, c), a4 = f(a4, m, c),      \
    a5 = f(a5, m, c), a6 = f(a6, m, c), a7 = f(a7, m, c), a8 = f(a8, m, c), a9 = f(a9, m, c),      \
    a10 = f(a10, m, c), a11 = f(a11, m, c)

__attribute__((target("avx512f"))) static float fma_avx512(long iters)
{
    __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
    __m512 a0 = _mm512_set1_ps(0), a1 = _mm512_set1_ps(1), a2 = _mm512_set1_ps(2), a3 = _mm512_set1_ps(3);
    __m512 a4 = _mm512_set1_ps(4), a5 = _mm512_set1_ps(5), a6 = _mm512_set1_ps(6), a7 = _mm512_set1_ps(7);
    __m512 a8 = _mm512_set1_ps(8), a9 = _mm512_set1_ps(9), a10 = _mm512_set1_ps(10), a11 = _mm512_set1_ps(11);
    for (long i = 0; i < iters; i++)
        FMA12(_mm512_fmadd_ps);
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a0 = _mm512_add_ps(a0, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(a0);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters)
{
    __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-4f);
    __m256 a0 = _mm256_set1_ps(0), a1 = _mm256_set1_ps(1), a2 = _mm256_set1_ps(2), a3 = _mm256_set1_ps(3);
    __m256 a4 = _mm256_set1_ps(4), a5 = _mm256_set1_ps(5), a6 = _mm256_set1_ps(6), a7 = _mm256_set1_ps(7);
    __m256 a8 = _mm256_set1_ps(8), a9 = _mm256_set1_ps(9), a10 = _mm256_set1_ps(10), a11 = _mm256_set1_ps(11);
    for (long i = 0; i < iters; i++)
        FMA12(_mm256_fmadd_ps);
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float v[8];
    _mm256_storeu_ps(v, a0);
    return v[0] + v[7];
}

/* Sums a buffer with 4 independent vector adds: the loads, not the adds, set the pace. */
__attribute__((target("avx512f"))) static float read_avx512(const float *x, size_t n)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + i + 48));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++)
        s += x[i];
    return s;
}

__attribute__((target("avx2"))) static float read_avx2(const float *x, size_t n)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    float v[8], s = 0;
    _mm256_storeu_ps(v, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (int k = 0; k < 8; k++)
        s += v[k];
    for (; i < n; i++)
        s += x[i];
    return s;
}

static void *read_worker(void *p)
{
    job *j = p;
    j->sink = j->wide ? read_avx512((const float *)j->src, j->n / 4) : read_avx2((const float *)j->src, j->n / 4);
    return NULL;
}

double roofline_read_seconds(int threads, size_t bytes)
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2"))
        return 0;
    int wide = __builtin_cpu_supports("avx512f");
    char *src = malloc(bytes);
    if (!src)
        return -1;
    /* not zero: malloc + memset(0) may become calloc, whose untouched pages fault during the timing */
    memset(src, 0x3f, bytes);
    int T = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    job jobs[MAX_THREADS];
    for (int i = 0; i < T; i++) {
        size_t lo = bytes / T * i / 64 * 64, hi = i == T - 1 ? bytes : bytes / T * (i + 1) / 64 * 64;
        jobs[i] = (job){.src = src + lo, .n = hi - lo, .wide = wide};
    }
    double t0 = bench_now();
    run_threads(read_worker, jobs, T);
    double t = bench_now() - t0;
    free(src);
    return t;
}

static void *fma_worker(void *p)
{
    job *j = p;
    j->sink = j->wide ? fma_avx512(j->iters) : fma_avx2(j->iters);
    return NULL;
}

double roofline_fma_seconds(int threads, double flop, const char **isa)
{
    __builtin_cpu_init();
    int wide = __builtin_cpu_supports("avx512f");
    if (!wide && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        *isa = "none";
        return 0;
    }
    *isa = wide ? "avx512" : "avx2";
    int T = threads < 1 ? 1 : threads > MAX_THREADS ? MAX_THREADS : threads;
    double per_trip = 12.0 * (wide ? 16 : 8) * 2; /* FLOP of one loop trip */
    job jobs[MAX_THREADS];
    for (int i = 0; i < T; i++)
        jobs[i] = (job){.iters = (long)(flop / T / per_trip), .wide = wide};
    double t0 = bench_now();
    run_threads(fma_worker, jobs, T);
    return bench_now() - t0;
}
#else
double roofline_read_seconds(int threads, size_t bytes)
{
    (void)threads, (void)bytes;
    return 0;
}

double roofline_fma_seconds(int threads, double flop, const char **isa)
{
    (void)threads, (void)flop;
    *isa = "none";
    return 0;
}
#endif
