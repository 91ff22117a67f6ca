/* test_common.c: dtype conversions and error helpers. */
#include <math.h>

#include "check.h"
#include "common/error.h"
#include "common/tensor.h"

TEST(bf16_roundtrip_is_exact_for_bf16_values)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = emu2_bf16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        CHECKF(emu2_f32_to_bf16(f) == h, "h=0x%04x", h);
    }
}

TEST(f16_roundtrip_is_exact_for_f16_values)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = emu2_f16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        CHECKF(emu2_f32_to_f16(f) == h, "h=0x%04x f=%g got 0x%04x", h, f, emu2_f32_to_f16(f));
    }
}

TEST(f16_known_values)
{
    CHECK(emu2_f16_to_f32(0x3c00) == 1.0f);
    CHECK(emu2_f16_to_f32(0xc000) == -2.0f);
    CHECK(emu2_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(emu2_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(emu2_f32_to_f16(65520.0f) == 0x7c00);      /* rounds to infinity */
    CHECK(emu2_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00); /* tie to even */
    CHECK(emu2_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80);  /* tie to even */
}

TEST(dtype_names)
{
    CHECK(emu2_dtype_from_name("BF16") == EMU2_DT_BF16);
    CHECK(emu2_dtype_from_name("bf16") == EMU2_DT_INVALID);
    CHECK(emu2_dtype_size(EMU2_DT_F32) == 4);
    CHECK(strcmp(emu2_dtype_name(EMU2_DT_F16), "F16") == 0);
}

TEST(error_messages)
{
    emu2_error e;
    emu2_error_clear(&e);
    CHECK(emu2_fail(&e, EMU2_ERR_FORMAT, "bad %d", 7) == EMU2_ERR_FORMAT);
    CHECK(strcmp(e.message, "bad 7") == 0);
    emu2_fail_prefix(&e, "%s: ", "file");
    CHECK(strcmp(e.message, "file: bad 7") == 0);
    CHECK(e.status == EMU2_ERR_FORMAT);
    CHECK(emu2_fail(NULL, EMU2_ERR_IO, "x") == EMU2_ERR_IO);
}

int main(void)
{
    RUN(bf16_roundtrip_is_exact_for_bf16_values);
    RUN(f16_roundtrip_is_exact_for_f16_values);
    RUN(f16_known_values);
    RUN(dtype_names);
    RUN(error_messages);
    return check_finish();
}
