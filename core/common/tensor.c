/* tensor.c: dtype facts and scalar conversions. */
#include "tensor.h"

#include <math.h>
#include <string.h>

static const struct {
    emu2_dtype dt;
    const char *name;
    size_t size;
} dtype_table[] = {
    {EMU2_DT_F32, "F32", 4}, {EMU2_DT_F16, "F16", 2}, {EMU2_DT_BF16, "BF16", 2},
    {EMU2_DT_I64, "I64", 8}, {EMU2_DT_I32, "I32", 4}, {EMU2_DT_I8, "I8", 1},
    {EMU2_DT_U8, "U8", 1},   {EMU2_DT_BOOL, "BOOL", 1}, {EMU2_DT_F64, "F64", 8},
};

size_t emu2_dtype_size(emu2_dtype dt)
{
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].dt == dt)
            return dtype_table[i].size;
    return 0;
}

const char *emu2_dtype_name(emu2_dtype dt)
{
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (dtype_table[i].dt == dt)
            return dtype_table[i].name;
    return "INVALID";
}

emu2_dtype emu2_dtype_from_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof dtype_table / sizeof dtype_table[0]; i++)
        if (strcmp(dtype_table[i].name, name) == 0)
            return dtype_table[i].dt;
    return EMU2_DT_INVALID;
}

uint64_t emu2_tensor_numel(const emu2_tensor_view *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= (uint64_t)t->shape[i];
    return n;
}

float emu2_bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t emu2_f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it a quiet NaN */
        return (uint16_t)((bits >> 16) | 0x0040u);
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

float emu2_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: value = mant * 2^-24 */
            float f = ldexpf((float)mant, -24);
            memcpy(&bits, &f, sizeof bits);
            bits |= sign;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t emu2_f32_to_f16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t absb = bits & 0x7fffffffu;
    if (absb > 0x7f800000u)
        return sign | 0x7e00u;
    if (absb >= 0x477ff000u) /* rounds to >= 65520: infinity */
        return sign | 0x7c00u;
    if (absb < 0x38800000u) { /* below the smallest normal: subnormal or zero */
        float a;
        memcpy(&a, &absb, sizeof a);
        /* scale so that one f16 subnormal ulp is 1.0; rintf rounds to nearest even */
        return sign | (uint16_t)rintf(a * 16777216.0f);
    }
    uint32_t r = absb + 0xfffu + ((absb >> 13) & 1u);
    return sign | (uint16_t)((r - 0x38000000u) >> 13);
}
