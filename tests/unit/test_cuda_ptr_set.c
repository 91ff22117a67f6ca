/* test_cuda_ptr_set.c: the CUDA backend's ownership sets (kernels/ptr_set.c, plain C, compiled into
 * this test) against a brute-force list, through growth and many removals (each removal re-places
 * the rest of its probe run: a bug there loses entries). Runs everywhere, no GPU needed. */
#include <stdint.h>

#include "check.h"
#include "../../kernels/ptr_set.c"

#define N_PTRS 5000

static uint64_t state = 12345;
static uint64_t next(void)
{
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return state;
}

TEST(matches_a_plain_list)
{
    static void *ptrs[N_PTRS];
    static int in[N_PTRS];
    for (size_t i = 0; i < N_PTRS; i++) /* aligned, clustered addresses, like cudaMalloc's */
        ptrs[i] = (void *)(uintptr_t)(0x7f0000000000ull + (i * 256) + ((next() % 4) << 40));
    cuda_ptr_set s = {0};
    size_t count = 0;
    int ok = 1;
    for (int round = 0; round < 200000 && ok; round++) {
        size_t i = next() % N_PTRS;
        if (next() % 3) {
            ok = cuda_ptr_set_add(&s, ptrs[i]);
            count += !in[i];
            in[i] = 1;
        } else {
            ok = cuda_ptr_set_remove(&s, ptrs[i]) == in[i];
            count -= in[i];
            in[i] = 0;
        }
        ok = ok && s.count == count;
    }
    for (size_t i = 0; ok && i < N_PTRS; i++)
        ok = cuda_ptr_set_has(&s, ptrs[i]) == in[i];
    size_t listed = 0;
    for (size_t i = 0; i < s.cap; i++)
        listed += s.slots[i] != NULL;
    CHECK(ok);
    CHECK(listed == count && 2 * count <= s.cap);
    cuda_ptr_set_free(&s);
    CHECK(s.slots == NULL && s.count == 0);
}

TEST(null_and_empty)
{
    cuda_ptr_set s = {0};
    CHECK(!cuda_ptr_set_add(&s, NULL));
    CHECK(!cuda_ptr_set_remove(&s, (void *)16));
    CHECK(!cuda_ptr_set_has(&s, (void *)16));
    CHECK(cuda_ptr_set_add(&s, (void *)16) && cuda_ptr_set_add(&s, (void *)16) && s.count == 1);
    CHECK(cuda_ptr_set_remove(&s, (void *)16) && !cuda_ptr_set_remove(&s, (void *)16) && s.count == 0);
    cuda_ptr_set_free(&s);
}

int main(void)
{
    RUN(matches_a_plain_list);
    RUN(null_and_empty);
    return check_finish();
}
