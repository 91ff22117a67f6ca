/* quant_layout.h: where the int8 / int4 kernels find each weight and how they widen it, shared by
 * the kernels (quant.cu, as __host__ __device__ functions) and the CI tests that check them against
 * core/quant's definition (tests/unit/test_cuda_quant_plan.c, plain C). Layouts: core/ops/ops.h.
 * Small integers become floats with the 2^23 trick: the bits 0x4B000000 | v are the float
 * 8388608 + v for v < 2^23, so one OR and one subtraction give v minus an offset, exactly. */
#ifndef EMU2_KERNELS_QUANT_LAYOUT_H
#define EMU2_KERNELS_QUANT_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define EMU2Q_FN static __host__ __device__ __forceinline__
#else
#define EMU2Q_FN static inline
#endif

EMU2Q_FN float emu2q_bits_float(uint32_t bits)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(bits);
#else
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

/* Signed int8 byte b (0..3) of a little-endian word already XORed with 0x80808080: (byte ^ 0x80) - 128. */
EMU2Q_FN float emu2q_q8_byte(uint32_t word_xor80, int b)
{
    return emu2q_bits_float(0x4B000000u | ((word_xor80 >> (8 * b)) & 0xffu)) - (8388608.0f + 128.0f);
}

/* Nibble i (0..7, low nibble of byte j is 2j, high 2j + 1) of a little-endian word, minus 8. */
EMU2Q_FN float emu2q_q4_nibble(uint32_t word, int i)
{
    return emu2q_bits_float(0x4B000000u | ((word >> (4 * i)) & 0xfu)) - (8388608.0f + 8.0f);
}

/* The 16-byte chunk c of an int4 row (bytes 16c .. 16c+15) lies inside one group (group/2 is a
 * multiple of 16): its group *gi, and the first of the 16 consecutive elements in its low nibbles
 * (*k_lo); the high nibbles hold the 16 elements from k_lo + group/2. */
EMU2Q_FN void emu2q_q4_chunk(size_t c, int group, size_t *gi, size_t *k_lo)
{
    size_t half = (size_t)group / 2, byte0 = 16 * c;
    *gi = byte0 / half;
    *k_lo = *gi * (size_t)group + (byte0 - *gi * half);
}

/* Element k of an int4 row: its group *gi, the byte of the row holding it, and the nibble's shift. */
EMU2Q_FN void emu2q_q4_element(size_t k, int group, size_t *gi, size_t *byte, int *shift)
{
    size_t half = (size_t)group / 2;
    *gi = k / (size_t)group;
    size_t e = k - *gi * (size_t)group;
    *byte = *gi * half + (e < half ? e : e - half);
    *shift = e < half ? 0 : 4;
}

#endif
