/* random_weights.h: a stand-in checkpoint for EMU2_LOAD_RANDOM_WEIGHTS: every tensor the config's
 * layout (io/layout.h) calls for, under the same canonical names and shapes, in BF16, with seeded
 * random values (standard deviation 0.02; norm weights 1, norm biases 0), built in the backend's
 * own memory: host memory on the CPU, device memory filled by a kernel on CUDA (so a full-size
 * model is never built on the host). The values depend only on (seed, tensor name, index): the
 * CPU and CUDA builds of one seed hold the same weights. */
#ifndef EMU2_MODEL_RANDOM_WEIGHTS_H
#define EMU2_MODEL_RANDOM_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define EMU2_RW_INLINE static inline __host__ __device__
#else
#define EMU2_RW_INLINE static inline
#endif

/* ------------------------------------------------ the value formula (shared with kernels/random.cu) */

/* splitmix64's finaliser: a bijection of 64-bit words with full avalanche. */
EMU2_RW_INLINE uint64_t emu2_rw_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The per-tensor key: seed and the tensor's stream number (a hash of its name). */
EMU2_RW_INLINE uint64_t emu2_rw_key(uint64_t seed, uint64_t stream)
{
    return emu2_rw_mix(seed ^ emu2_rw_mix(stream));
}

/* Element i: uniform in [-scale*sqrt(3), scale*sqrt(3)) (standard deviation `scale`). */
EMU2_RW_INLINE float emu2_rw_value(uint64_t key, uint64_t i, float scale)
{
    uint64_t h = emu2_rw_mix(key + i);
    float u = (float)(h >> 40) * (1.0f / 16777216.0f); /* 24 bits: exact in f32 */
    float centred = u + u - 1.0f;                       /* exact */
    return centred * (scale * 1.7320508f);
}

/* Round-to-nearest-even f32 -> bf16 (values here are finite). */
EMU2_RW_INLINE uint16_t emu2_rw_bf16(float f)
{
    union {
        float f;
        uint32_t u;
    } v;
    v.f = f;
    uint32_t round = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + round) >> 16);
}

#ifndef __CUDACC__

#include "emu2.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "ops/ops.h"

#define EMU2_RANDOM_WEIGHT_STD 0.02f

/* What a random build will hold, without building it: tensor count, elements and bytes (BF16). */
typedef struct emu2_random_plan {
    size_t n_tensors;
    uint64_t n_params;
    uint64_t n_bytes;
} emu2_random_plan;

emu2_status emu2_random_weights_plan(const emu2_config *cfg, emu2_random_plan *plan, emu2_error *err);

/* The stream number of a tensor name (FNV-1a of the name), and the fill rule of a name: the
 * constant for norm weights (1) and norm biases (0), else random. */
uint64_t emu2_random_stream_of(const char *name);
int emu2_random_constant_of(const char *name, float *constant);

/* Builds the stand-in checkpoint in be's memory. The checkpoint's tensor views point into that
 * memory (device memory on CUDA: only the backend's ops may read them); emu2_checkpoint_close
 * releases the host side; on CUDA the device block is owned by the backend (freed with it). */
emu2_status emu2_random_checkpoint(emu2_backend *be, const emu2_config *cfg, uint64_t seed, emu2_checkpoint **out,
                                   emu2_error *err);

/* Name of the symbol a CUDA backend library exports to fill device memory with the formula above:
 *   emu2_status fn(emu2_backend *be, void *dst, size_t n, emu2_dtype dt, uint64_t key, float scale,
 *                  float constant, emu2_error *err);   (scale 0: every element = constant) */
#define EMU2_CUDA_RANDOM_FILL_SYMBOL "emu2_cuda_random_fill"
typedef emu2_status (*emu2_random_fill_fn)(emu2_backend *be, void *dst, size_t n, emu2_dtype dt, uint64_t key,
                                           float scale, float constant, emu2_error *err);

#endif /* !__CUDACC__ */

#endif
