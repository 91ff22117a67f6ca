/* buffer_cache.h: freed activation buffers of the CPU backend kept for the next alloc.
 *
 * A generation allocates the same few buffers (KV cache, vision tower activations) call after
 * call; from the allocator each comes back as fresh pages, and on a small model the page faults
 * cost as much as a tenth of a caption. The cache keeps up to CPU_CACHE_SLOTS freed blocks (at
 * most CPU_CACHE_BYTES in all, the oldest dropped first) and hands back the smallest that fits a
 * request without wasting more than half of it. Owned by one backend, used by its one caller at a
 * time (as the rest of the backend), so no lock. */
#ifndef EMU2_OPS_CPU_BUFFER_CACHE_H
#define EMU2_OPS_CPU_BUFFER_CACHE_H

#include <stddef.h>

/* Under AddressSanitizer nothing is kept, so that a use after free still shows. */
#if defined(__SANITIZE_ADDRESS__)
#define CPU_CACHE_ENABLED 0
#else
#define CPU_CACHE_ENABLED 1
#endif

#define CPU_CACHE_SLOTS 32
#define CPU_CACHE_BYTES ((size_t)256 << 20)

typedef struct cpu_buffer_cache {
    void *block[CPU_CACHE_SLOTS]; /* oldest first */
    size_t bytes[CPU_CACHE_SLOTS];
    size_t n, total;
} cpu_buffer_cache;

/* A kept block of at least `bytes` and at most twice that (removed from the cache), or NULL. */
void *cpu_cache_take(cpu_buffer_cache *c, size_t bytes);

/* Keeps the block (free()-able, `bytes` long) or frees it when it is larger than the whole cache;
 * older blocks are freed to make room. */
void cpu_cache_keep(cpu_buffer_cache *c, void *block, size_t bytes);

/* Frees every kept block. */
void cpu_cache_clear(cpu_buffer_cache *c);

#endif
