/* test_buffer_cache.c: the CPU backend's cache of freed activation buffers: a request gets the
 * smallest kept block that fits without wasting more than half of it, blocks too small or too big
 * are left, the oldest go first when the slots or the byte budget run out, and through the
 * backend a freed buffer comes back for the next alloc of a like size (and not for a much smaller
 * one). */
#include <stdlib.h>

#include "check.h"
#include "ops/cpu/buffer_cache.h"
#include "ops/ops.h"

TEST(take_picks_the_smallest_block_that_fits)
{
    if (!CPU_CACHE_ENABLED)
        SKIP("the cache is off under AddressSanitizer");
    cpu_buffer_cache c = {0};
    void *a = malloc(1000), *b = malloc(4000), *d = malloc(1500);
    cpu_cache_keep(&c, a, 1000);
    cpu_cache_keep(&c, b, 4000);
    cpu_cache_keep(&c, d, 1500);
    CHECK(c.n == 3 && c.total == 6500);
    CHECK(cpu_cache_take(&c, 1200) == d);  /* 1000 too small, 4000 and 1500 fit: the smaller */
    CHECK(cpu_cache_take(&c, 1200) == NULL); /* 4000 would waste more than half */
    CHECK(cpu_cache_take(&c, 2000) == b);
    CHECK(cpu_cache_take(&c, 1000) == a);
    CHECK(c.n == 0 && c.total == 0);
    free(a), free(b), free(d);
}

TEST(oldest_blocks_go_first_when_full)
{
    if (!CPU_CACHE_ENABLED)
        SKIP("the cache is off under AddressSanitizer");
    cpu_buffer_cache c = {0};
    void *first = malloc(16);
    cpu_cache_keep(&c, first, 16);
    for (int i = 1; i < CPU_CACHE_SLOTS; i++)
        cpu_cache_keep(&c, malloc(16), 16);
    CHECK(c.n == CPU_CACHE_SLOTS);
    cpu_cache_keep(&c, malloc(17), 17); /* the first block is freed to make room */
    CHECK(c.n == CPU_CACHE_SLOTS);
    for (size_t i = 0; i < c.n; i++)
        CHECK(c.block[i] != first);
    CHECK(c.bytes[c.n - 1] == 17);
    /* a block near the byte budget pushes out everything before it */
    size_t big = CPU_CACHE_BYTES - 8;
    cpu_cache_keep(&c, malloc(big), big);
    CHECK(c.n == 1 && c.total == big);
    cpu_cache_keep(&c, malloc(16), 16); /* over budget together: the big one goes */
    CHECK(c.n == 1 && c.total == 16);
    cpu_cache_keep(&c, malloc(64), CPU_CACHE_BYTES + 1); /* larger than the cache: freed at once */
    CHECK(c.n == 1 && c.total == 16);
    cpu_cache_keep(&c, NULL, 100);
    CHECK(c.n == 1);
    cpu_cache_clear(&c);
    CHECK(c.n == 0 && c.total == 0);
}

TEST(backend_alloc_reuses_a_freed_buffer)
{
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = 1;
    emu2_backend *be = NULL;
    emu2_error err = {0};
    CHECK(emu2_cpu_backend_open(&o, &be, &err) == EMU2_OK);
    if (!be)
        return;
    float *p = be->ops->alloc(be, 100000, &err);
    CHECK(p != NULL && ((uintptr_t)p & 63) == 0);
    for (size_t i = 0; i < 100000; i++) /* all of it is usable */
        p[i] = (float)i;
    be->ops->free(be, p);
    float *q = be->ops->alloc(be, 90000, &err);
    CHECK(q != NULL && (q == p) == CPU_CACHE_ENABLED); /* under ASan: never reused */
    float *r = be->ops->alloc(be, 100000, &err); /* q is in use: a new block */
    CHECK(r != NULL && r != q);
    be->ops->free(be, q);
    float *s = be->ops->alloc(be, 10, &err); /* much smaller: not the 400 kB block */
    CHECK(s != NULL && s != q);
    be->ops->free(be, r);
    be->ops->free(be, s);
    be->ops->free(be, NULL);
    emu2_backend_close(be);
}

int main(void)
{
    RUN(take_picks_the_smallest_block_that_fits);
    RUN(oldest_blocks_go_first_when_full);
    RUN(backend_alloc_reuses_a_freed_buffer);
    return check_finish();
}
