/* buffer_cache.c: see buffer_cache.h. */
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/buffer_cache.h"

static void drop(cpu_buffer_cache *c, size_t i)
{
    c->total -= c->bytes[i];
    memmove(c->block + i, c->block + i + 1, (c->n - i - 1) * sizeof c->block[0]);
    memmove(c->bytes + i, c->bytes + i + 1, (c->n - i - 1) * sizeof c->bytes[0]);
    c->n--;
}

void *cpu_cache_take(cpu_buffer_cache *c, size_t bytes)
{
    size_t best = c->n;
    if (!CPU_CACHE_ENABLED)
        return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->bytes[i] >= bytes && c->bytes[i] / 2 <= bytes && (best == c->n || c->bytes[i] < c->bytes[best]))
            best = i;
    if (best == c->n)
        return NULL;
    void *p = c->block[best];
    drop(c, best);
    return p;
}

void cpu_cache_keep(cpu_buffer_cache *c, void *block, size_t bytes)
{
    if (!block)
        return;
    if (!CPU_CACHE_ENABLED || bytes > CPU_CACHE_BYTES) {
        free(block);
        return;
    }
    while (c->n > 0 && (c->n == CPU_CACHE_SLOTS || c->total + bytes > CPU_CACHE_BYTES)) {
        free(c->block[0]);
        drop(c, 0);
    }
    c->block[c->n] = block;
    c->bytes[c->n] = bytes;
    c->n++;
    c->total += bytes;
}

void cpu_cache_clear(cpu_buffer_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->block[i]);
    c->n = c->total = 0;
}
