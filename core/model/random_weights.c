/* random_weights.c: see random_weights.h. The stand-in checkpoint has one pseudo-file holding every
 * tensor (so parameter counts work as for a real one); its bytes are one block of backend memory:
 * an anonymous mapping on the CPU (released by emu2_checkpoint_close), a device buffer on CUDA
 * (filled there by the library's emu2_cuda_random_fill, owned and released by the backend). */
#define _GNU_SOURCE /* MAP_ANONYMOUS */
#include "model/random_weights.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/checked.h"
#include "common/error.h"
#include "io/layout.h"

#define TENSOR_ALIGN 256

uint64_t emu2_random_stream_of(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && !strcmp(s + n - t, tail);
}

int emu2_random_constant_of(const char *name, float *constant)
{
    if (ends_with(name, ".k_bias")) { /* EVA has no k bias: the fused qkv.bias holds zeros there */
        *constant = 0.0f;
        return 1;
    }
    if (!strstr(name, "norm"))
        return 0;
    if (ends_with(name, ".weight")) {
        *constant = 1.0f;
        return 1;
    }
    if (ends_with(name, ".bias")) {
        *constant = 0.0f;
        return 1;
    }
    return 0;
}

static uint64_t numel_of(const emu2_expected_tensor *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= (uint64_t)t->shape[d];
    return n;
}

emu2_status emu2_random_weights_plan(const emu2_config *cfg, emu2_random_plan *plan, emu2_error *err)
{
    if (!cfg || !plan)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "random weights: NULL argument");
    emu2_expected_tensor *t;
    size_t n;
    emu2_status st = emu2_expected_layout(cfg, &t, &n, err);
    if (st != EMU2_OK)
        return st;
    memset(plan, 0, sizeof *plan);
    plan->n_tensors = n;
    for (size_t i = 0; i < n; i++)
        plan->n_params += numel_of(&t[i]);
    plan->n_bytes = plan->n_params * 2;
    free(t);
    return EMU2_OK;
}

/* Host fill of one BF16 tensor (the CPU backend's memory). */
static void fill_host(uint16_t *dst, uint64_t n, const char *name, uint64_t seed)
{
    float constant;
    if (emu2_random_constant_of(name, &constant)) {
        uint16_t c = emu2_rw_bf16(constant);
        for (uint64_t i = 0; i < n; i++)
            dst[i] = c;
        return;
    }
    uint64_t key = emu2_rw_key(seed, emu2_random_stream_of(name));
    for (uint64_t i = 0; i < n; i++)
        dst[i] = emu2_rw_bf16(emu2_rw_value(key, i, EMU2_RANDOM_WEIGHT_STD));
}

static emu2_status fill_device(emu2_random_fill_fn fill, emu2_backend *be, void *dst, uint64_t n, const char *name,
                               uint64_t seed, emu2_error *err)
{
    float constant = 0.0f, scale = EMU2_RANDOM_WEIGHT_STD;
    if (emu2_random_constant_of(name, &constant))
        scale = 0.0f;
    uint64_t key = emu2_rw_key(seed, emu2_random_stream_of(name));
    return fill(be, dst, (size_t)n, EMU2_DT_BF16, key, scale, constant, err);
}

static emu2_status build_tables(emu2_checkpoint *ck, const emu2_expected_tensor *t, size_t n, emu2_error *err)
{
    ck->files = calloc(1, sizeof *ck->files);
    if (!ck->files)
        return emu2_fail(err, EMU2_ERR_NOMEM, "random weights: out of memory");
    ck->n_files = 1;
    ck->files[0].name = strdup("(random weights)");
    ck->files[0].stored = calloc(n ? n : 1, sizeof *ck->files[0].stored);
    ck->tensors = calloc(n ? n : 1, sizeof *ck->tensors);
    if (!ck->files[0].name || !ck->files[0].stored || !ck->tensors)
        return emu2_fail(err, EMU2_ERR_NOMEM, "random weights: out of memory");
    for (size_t i = 0; i < n; i++) {
        emu2_named_tensor *s = &ck->files[0].stored[i];
        if (!(s->name = strdup(t[i].name)))
            return emu2_fail(err, EMU2_ERR_NOMEM, "random weights: out of memory");
        ck->files[0].n_stored = i + 1;
        s->view.dtype = EMU2_DT_BF16;
        s->view.ndim = t[i].ndim;
        for (int d = 0; d < t[i].ndim; d++)
            s->view.shape[d] = t[i].shape[d];
        s->view.nbytes = numel_of(&t[i]) * 2;
        emu2_ckpt_tensor *c = &ck->tensors[i];
        if (!(c->name = strdup(t[i].name)))
            return emu2_fail(err, EMU2_ERR_NOMEM, "random weights: out of memory");
        ck->n_tensors = i + 1;
        c->stored_name = s->name;
        c->file = 0;
    }
    return EMU2_OK;
}

emu2_status emu2_random_checkpoint(emu2_backend *be, const emu2_config *cfg, uint64_t seed, emu2_checkpoint **out,
                                   emu2_error *err)
{
    if (!be || !cfg || !out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "random weights: NULL argument");
    *out = NULL;
    emu2_random_fill_fn fill = NULL;
    if (be->library) { /* a device backend: its library builds the values in device memory */
        void *sym = dlsym(be->library, EMU2_CUDA_RANDOM_FILL_SYMBOL);
        memcpy(&fill, &sym, sizeof fill);
        if (!fill)
            return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "random weights: the %s backend cannot build them (no %s)",
                             be->ops->name, EMU2_CUDA_RANDOM_FILL_SYMBOL);
    }
    emu2_expected_tensor *t;
    size_t n;
    emu2_status st = emu2_expected_layout(cfg, &t, &n, err);
    if (st != EMU2_OK)
        return st;
    emu2_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) {
        free(t);
        return emu2_fail(err, EMU2_ERR_NOMEM, "random weights: out of memory");
    }
    ck->format = "random";
    ck->has_native_names = 1;
    ck->weights_dir = strdup("(random weights)");
    st = ck->weights_dir ? build_tables(ck, t, n, err) : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");

    /* offsets in one block, each tensor TENSOR_ALIGN-aligned */
    uint64_t total = 0;
    for (size_t i = 0; st == EMU2_OK && i < n; i++) {
        uint64_t bytes = ck->files[0].stored[i].view.nbytes;
        ck->files[0].stored[i].view.data = (const void *)(uintptr_t)total; /* offset for now */
        if (!emu2_add_u64(total, (bytes + TENSOR_ALIGN - 1) / TENSOR_ALIGN * TENSOR_ALIGN, &total) ||
            total > SIZE_MAX / 2)
            st = emu2_fail(err, EMU2_ERR_LIMIT, "random weights: the model is too large");
    }
    unsigned char *block = NULL;
    if (st == EMU2_OK && !fill) {
        void *p = mmap(NULL, (size_t)(total ? total : 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            st = emu2_fail(err, EMU2_ERR_NOMEM, "random weights: cannot map %llu bytes of host memory",
                           (unsigned long long)total);
        else {
            block = p;
            ck->files[0].map.data = block;
            ck->files[0].map.size = total ? total : 1;
        }
    } else if (st == EMU2_OK) {
        block = (unsigned char *)be->ops->alloc(be, (size_t)(total / sizeof(float) + 1), err);
        if (!block)
            st = emu2_fail_prefix(err, "random weights (%llu bytes): ", (unsigned long long)total);
    }
    for (size_t i = 0; st == EMU2_OK && i < n; i++) {
        emu2_named_tensor *s = &ck->files[0].stored[i];
        unsigned char *dst = block + (uintptr_t)s->view.data;
        s->view.data = dst;
        ck->tensors[i].view = s->view;
        if (fill)
            st = fill_device(fill, be, dst, s->view.nbytes / 2, s->name, seed, err);
        else
            fill_host((uint16_t *)dst, s->view.nbytes / 2, s->name, seed);
    }
    if (st == EMU2_OK && fill)
        st = be->ops->sync(be, err);
    if (st == EMU2_OK && block && !fill)
        mprotect(block, (size_t)ck->files[0].map.size, PROT_READ); /* weights are read-only, as a mapped file */
    free(t);
    if (st != EMU2_OK) {
        if (fill && block)
            be->ops->free(be, (float *)block);
        emu2_checkpoint_close(ck);
        return st;
    }
    *out = ck;
    return EMU2_OK;
}
