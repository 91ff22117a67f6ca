/* topk_check.h: what every backend's top_k op (ops.h) shares: the argument check (so the CPU and
 * CUDA backends accept and refuse the same calls with the same messages) and the order it ranks
 * by, as an unsigned key. Header-only: the CUDA library compiles it into its host files too. */
#ifndef EMU2_OPS_TOPK_CHECK_H
#define EMU2_OPS_TOPK_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "ops/ops.h"

static inline emu2_status emu2_check_top_k_args(size_t rows, size_t n, const float *x, size_t k, unsigned flags,
                                                const float *values, const int32_t *ids, emu2_error *err)
{
    if (rows == 0)
        return EMU2_OK;
    if (!x || !values || !ids)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "top_k: NULL buffer");
    if (flags & ~EMU2_TOPK_LOG_SOFTMAX)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "top_k: unknown flags 0x%x", flags & ~EMU2_TOPK_LOG_SOFTMAX);
    if (n == 0 || n > INT32_MAX)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "top_k: row length %zu is not in 1..%d", n, INT32_MAX);
    if (k == 0 || k > n)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "top_k: k = %zu is not in 1..%zu (the row length)", k, n);
    if (k > EMU2_TOPK_MAX_K)
        return emu2_fail(err, EMU2_ERR_LIMIT, "top_k: k = %zu is more than the op handles (%d)", k, EMU2_TOPK_MAX_K);
    if (rows > SIZE_MAX / n || rows > SIZE_MAX / k / sizeof(float))
        return emu2_fail(err, EMU2_ERR_LIMIT, "top_k: %zu rows is too many", rows);
    return EMU2_OK;
}

/* The rank of v as an unsigned key (larger = better): NaN (any sign) highest, then +inf, the
 * finite values, -inf; -0 and +0 get the same key. */
static inline uint32_t emu2_topk_key(float v)
{
    if (v != v)
        return UINT32_MAX;
    if (v == 0.0f)
        v = 0.0f;
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

#endif
