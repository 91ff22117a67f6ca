/* ptr_set.c: see ptr_set.h. The load stays under one half; removal re-places the rest of the probe
 * run, so lookups never stop early at a hole. */
#include "ptr_set.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t ptr_hash(const void *p, size_t cap)
{
    uint64_t z = (uint64_t)(uintptr_t)p;
    z ^= z >> 33;
    z *= 0xff51afd7ed558ccdULL;
    z ^= z >> 33;
    return (size_t)z & (cap - 1);
}

static int set_insert(void **slots, size_t cap, void *p)
{
    for (size_t i = ptr_hash(p, cap);; i = (i + 1) & (cap - 1)) {
        if (slots[i] == p)
            return 0;
        if (!slots[i]) {
            slots[i] = p;
            return 1;
        }
    }
}

int cuda_ptr_set_add(cuda_ptr_set *s, void *p)
{
    if (!p)
        return 0;
    if (2 * (s->count + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        void **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return 0;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i])
                set_insert(slots, cap, s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    s->count += (size_t)set_insert(s->slots, s->cap, p);
    return 1;
}

static size_t find(const cuda_ptr_set *s, const void *p)
{
    size_t i = ptr_hash(p, s->cap);
    while (s->slots[i] && s->slots[i] != p)
        i = (i + 1) & (s->cap - 1);
    return i;
}

int cuda_ptr_set_has(const cuda_ptr_set *s, const void *p)
{
    return p && s->cap && s->slots[find(s, p)] == p;
}

int cuda_ptr_set_remove(cuda_ptr_set *s, void *p)
{
    if (!cuda_ptr_set_has(s, p))
        return 0;
    size_t i = find(s, p);
    s->slots[i] = NULL;
    s->count--;
    for (size_t j = (i + 1) & (s->cap - 1); s->slots[j]; j = (j + 1) & (s->cap - 1)) {
        void *q = s->slots[j];
        s->slots[j] = NULL;
        set_insert(s->slots, s->cap, q);
    }
    return 1;
}

void cuda_ptr_set_free(cuda_ptr_set *s)
{
    free(s->slots);
    memset(s, 0, sizeof *s);
}
