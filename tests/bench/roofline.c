/* roofline.c: copy bandwidth and FMA peak of this machine (see roofline.h). */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include "roofline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define MAX_THREADS 64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

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
    double t0 = now();
    run_threads(copy_worker, jobs, T);
    double t = now() - t0;
    free(src), free(dst);
    return t;
}

#if defined(__x86_64__) || defined(__i386__)
/* 12 independent accumulators hide the FMA latency (4 cycles x 2-3 pipes). */
__attribute__((target("avx512f"))) static float fma_avx512(long iters)
{
    __m512 a[12], m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-4f);
    for (int k = 0; k < 12; k++)
        a[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++)
            a[k] = _mm512_fmadd_ps(a[k], m, c);
    for (int k = 1; k < 12; k++)
        a[0] = _mm512_add_ps(a[0], a[k]);
    return _mm512_reduce_add_ps(a[0]);
}

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters)
{
    __m256 a[12], m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-4f);
    for (int k = 0; k < 12; k++)
        a[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++)
            a[k] = _mm256_fmadd_ps(a[k], m, c);
    for (int k = 1; k < 12; k++)
        a[0] = _mm256_add_ps(a[0], a[k]);
    float v[8];
    _mm256_storeu_ps(v, a[0]);
    return v[0] + v[7];
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
    double t0 = now();
    run_threads(fma_worker, jobs, T);
    return now() - t0;
}
#else
double roofline_fma_seconds(int threads, double flop, const char **isa)
{
    (void)threads, (void)flop;
    *isa = "none";
    return 0;
}
#endif
