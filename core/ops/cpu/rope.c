/* rope.c: rotary position embedding, Hugging Face rotate-half layout (LLaMA, transformers 4.31):
 *   inv_freq[i] = 1 / theta^(2i/d)  (f32),  angle = pos * inv_freq[i]  (f32),
 *   out[i]      = x[i] cos - x[i+d/2] sin,   out[i+d/2] = x[i+d/2] cos + x[i] sin,  i < d/2. */
#include <math.h>

#include "common/error.h"
#include "ops/cpu/cpu_internal.h"

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
    float cs[EMU2_ROPE_MAX_HALF], sn[EMU2_ROPE_MAX_HALF];
    for (size_t r = r0; r < r1; r++) {
        float fpos = (float)j->pos[r];
        /* the rows of a batched decode step mostly share one position: its table is kept */
        for (size_t i = 0; i < j->half && (r == r0 || j->pos[r] != j->pos[r - 1]); i++) {
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
    emu2_status st = emu2_check_rope_args(rows, n_heads, head_dim, x, stride, positions, theta, flags, err);
    if (st != EMU2_OK)
        return st;
    float inv_freq[EMU2_ROPE_MAX_HALF];
    size_t half = head_dim / 2;
    emu2_rope_inv_freq(theta, head_dim, inv_freq);
    struct rope_job j = {n_heads, half, x, stride, positions, inv_freq, (flags & EMU2_ROPE_TABLE_BF16) != 0};
    cpu_parallel_for(cpu_of(be), rows, 1 + 4096 / (n_heads * head_dim), rope_rows, &j);
    return EMU2_OK;
}
