/* kern_q8q4_scalar.c: portable int8/int4 dot kernels (the fallback, and the shape of the SIMD ones). */
#include <string.h>

#include "common/tensor.h"
#include "ops/cpu/kern_q8q4.h"

float cpu_load_f16(const void *p, size_t i)
{
    uint16_t h;
    memcpy(&h, (const char *)p + i * 2, 2);
    return emu2_f16_to_f32(h);
}

/* sum_{e<n} x[e] * (nibble(e) - 8) over one group of G values packed as in ops.h. */
float cpu_q4_group_dot(const float *x, const uint8_t *q, size_t G, size_t n)
{
    size_t half = G / 2;
    float acc = 0;
    for (size_t i = 0; i < half && i < n; i++)
        acc += x[i] * (float)((q[i] & 15) - 8);
    for (size_t i = 0; i < half && half + i < n; i++)
        acc += x[half + i] * (float)((q[i] >> 4) - 8);
    return acc;
}

static void scalar_dot_q8(const float *x, const int8_t *w, size_t K, size_t nr, const void *scales, float *out)
{
    for (size_t j = 0; j < nr; j++) {
        const int8_t *r = w + j * K;
        float acc = 0, s;
        for (size_t k = 0; k < K; k++)
            acc += x[k] * (float)r[k];
        memcpy(&s, (const char *)scales + j * 4, 4);
        out[j] = acc * s;
    }
}

static void scalar_dot_q4(const float *x, const uint8_t *w, size_t rb, const void *scales, size_t sc, size_t G,
                          size_t K, size_t nr, float *out)
{
    for (size_t j = 0; j < nr; j++) {
        float acc = 0;
        for (size_t g = 0; g * G < K; g++) {
            size_t n = K - g * G < G ? K - g * G : G;
            acc += cpu_q4_group_dot(x + g * G, w + j * rb + g * G / 2, G, n) *
                   cpu_load_f16(scales, j * sc + g);
        }
        out[j] = acc;
    }
}

const cpu_qkernels cpu_qkernels_scalar = {
    .isa = EMU2_ISA_SCALAR,
    .dot_q8 = scalar_dot_q8,
    .dot_q4 = scalar_dot_q4,
};

const cpu_qkernels *cpu_qkernels_for(emu2_cpu_isa isa)
{
#if defined(__x86_64__) || defined(__i386__)
    if (isa == EMU2_ISA_AVX512)
        return &cpu_qkernels_avx512;
    if (isa == EMU2_ISA_AVX2)
        return &cpu_qkernels_avx2;
#else
    (void)isa;
#endif
    return &cpu_qkernels_scalar;
}
