/* ptr_set.h: a set of pointers (open addressing, linear probing), for the allocations the CUDA
 * backend owns (activation buffers freed on close, weight uploads freed on release). Plain C with
 * no CUDA in it, so tests/unit/test_cuda_ptr_set.c checks it on any machine. */
#ifndef EMU2_KERNELS_PTR_SET_H
#define EMU2_KERNELS_PTR_SET_H

#include <stddef.h>

typedef struct cuda_ptr_set {
    void **slots; /* cap entries, NULL = empty; cap is 0 or a power of two */
    size_t cap, count;
} cuda_ptr_set;

/* 1 when p is in the set afterwards (also when it already was); 0 for NULL or out of memory. */
int cuda_ptr_set_add(cuda_ptr_set *s, void *p);
/* 1 when p was in the set (and is removed). */
int cuda_ptr_set_remove(cuda_ptr_set *s, void *p);
int cuda_ptr_set_has(const cuda_ptr_set *s, const void *p);
void cuda_ptr_set_free(cuda_ptr_set *s);

#endif
