/* param_count.c: how many model parameters one stored tensor holds.
 *
 * A checkpoint written by `emu2 convert --quant` stores a linear as NAME.qweight + NAME.scales
 * (docs/QUANT.md): int4 packs two weights per U8 byte, and the scales are metadata, not parameters.
 * Counting stored elements would report an int4 model at about half its size. */
#include <string.h>

#include "io/checkpoint.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

uint64_t emu2_param_count(const char *name, const emu2_tensor_view *v)
{
    uint64_t numel = emu2_tensor_numel(v);
    if (!name)
        return numel;
    if (ends_with(name, ".scales") && (v->dtype == EMU2_DT_F16 || v->dtype == EMU2_DT_F32))
        return 0;
    if (ends_with(name, ".qweight") && v->dtype == EMU2_DT_U8)
        return numel * 2; /* two int4 weights per byte (the last group's padding included) */
    return numel;
}
