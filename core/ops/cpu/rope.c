/* rope.c: rotary position embedding, Hugging Face rotate-half layout (LLaMA, transformers 4.31):
 *   inv_freq[i] = 1 / theta^(2i/d)  (f32),  angle = pos * inv_freq[i]  (f32),
 *   out[i]      = x[i] cos - x[i+d/2] sin,   out[i+d/2] = x[i+d/2] cos + x[i] sin,  i < d/2. */
#include <math.h>

#include "common/error.h"
#include "ops/cpu/cpu_internal.h"

#define ROPE_MAX_HALF 512

struct rope_job {
    size_t n_heads, half;
    float *x;
    size_t stride;
    const int32_t *pos;
    const float *inv_freq;
    int bf16_table;
};

static void rope_rows(void *p, size_t r0, size_t r1, int thread)
{
    (void)thread;
    const struct rope_job *j = p;
    float cs[ROPE_MAX_HALF], sn[ROPE_MAX_HALF];
    for (size_t r = r0; r < r1; r++) {
        float fpos = (float)j->pos[r];
        for (size_t i = 0; i < j->half; i++) {
            float angle = fpos * j->inv_freq[i];
            /* f32 of the exact cos/sin, as a correctly rounded f32 cos would give */
            float c = (float)cos((double)angle), s = (float)sin((double)angle);
            if (j->bf16_table) {
                c = emu2_bf16_to_f32(emu2_f32_to_bf16(c));
                s = emu2_bf16_to_f32(emu2_f32_to_bf16(s));
            }
            cs[i] = c;
            sn[i] = s;
        }
        float *row = j->x + r * j->stride;
        for (size_t h = 0; h < j->n_heads; h++) {
            float *a = row + h * 2 * j->half, *b = a + j->half;
            for (size_t i = 0; i < j->half; i++) {
                float x1 = a[i], x2 = b[i];
                a[i] = x1 * cs[i] - x2 * sn[i];
                b[i] = x2 * cs[i] + x1 * sn[i];
            }
        }
    }
}

emu2_status cpu_rope(emu2_backend *be, size_t rows, size_t n_heads, size_t head_dim, float *x, size_t stride,
                     const int32_t *positions, float theta, unsigned flags, emu2_error *err)
{
    static const char op[] = "rope";
    if (rows == 0 || n_heads == 0 || head_dim == 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: empty shape", op);
    if (!x || !positions)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: NULL x or positions", op);
    if (head_dim % 2 || head_dim / 2 > ROPE_MAX_HALF)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: head_dim %zu must be even and at most %d", op, head_dim,
                         2 * ROPE_MAX_HALF);
    if (n_heads > SIZE_MAX / head_dim || stride < n_heads * head_dim)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: row stride %zu is narrower than %zu heads x %zu", op,
                         stride, n_heads, head_dim);
    if (rows - 1 > (SIZE_MAX / 4 - n_heads * head_dim) / stride)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: buffer extent overflows", op);
    if (!(theta > 1.0f) || isinf(theta))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: theta must be finite and > 1", op);
    if (flags & ~EMU2_ROPE_TABLE_BF16)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", op, flags);
    for (size_t r = 0; r < rows; r++)
        if (positions[r] < 0)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: position %d of row %zu is negative", op,
                             (int)positions[r], r);
    float inv_freq[ROPE_MAX_HALF];
    size_t half = head_dim / 2;
    for (size_t i = 0; i < half; i++) /* f32 steps, as torch does them */
        inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
    struct rope_job j = {n_heads, half, x, stride, positions, inv_freq, (flags & EMU2_ROPE_TABLE_BF16) != 0};
    cpu_parallel_for(cpu_of(be), rows, 1 + 4096 / (n_heads * head_dim), rope_rows, &j);
    return EMU2_OK;
}
