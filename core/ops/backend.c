/* backend.c: opening a backend by device name. The CPU backend is built in; CUDA lives in
 * libemu2_cuda.so, loaded with dlopen only when asked for (or on "auto"), so libemu2 never links
 * against CUDA. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "ops/ops.h"

void emu2_backend_options_init(emu2_backend_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->max_isa = EMU2_ISA_AUTO;
}

/* "cuda" -> 0, "cuda:3" -> 3; -1 when the text is not a CUDA device name. */
static int cuda_index(const char *device)
{
    if (strncmp(device, "cuda", 4) != 0)
        return -1;
    if (device[4] == '\0')
        return 0;
    if (device[4] != ':' || device[5] < '0' || device[5] > '9')
        return -1;
    char *end;
    long v = strtol(device + 5, &end, 10);
    return (*end || v > 1024) ? -1 : (int)v;
}

static emu2_status open_cuda(int index, const emu2_backend_options *opts, emu2_backend **out, emu2_error *err)
{
    void *lib = dlopen(EMU2_CUDA_BACKEND_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "cuda backend: cannot load %s: %s", EMU2_CUDA_BACKEND_LIBRARY,
                         why ? why : "unknown reason");
    }
    emu2_backend_open_fn open_fn;
    void *sym = dlsym(lib, EMU2_CUDA_BACKEND_SYMBOL);
    memcpy(&open_fn, &sym, sizeof open_fn); /* object pointer to function pointer, the POSIX way */
    if (!open_fn) {
        dlclose(lib);
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "cuda backend: %s does not export %s", EMU2_CUDA_BACKEND_LIBRARY,
                         EMU2_CUDA_BACKEND_SYMBOL);
    }
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    if (opts && opts->struct_size >= sizeof o)
        o = *opts;
    o.device_index = index;
    emu2_status st = open_fn(&o, out, err);
    if (st != EMU2_OK) {
        dlclose(lib);
        return st;
    }
    (*out)->library = lib;
    return EMU2_OK;
}

emu2_status emu2_backend_open(const char *device, const emu2_backend_options *opts, emu2_backend **out,
                              emu2_error *err)
{
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "backend: NULL output pointer");
    *out = NULL;
    if (!device || !strcmp(device, "auto")) {
        if (open_cuda(opts ? opts->device_index : 0, opts, out, NULL) == EMU2_OK)
            return EMU2_OK;
        return emu2_cpu_backend_open(opts, out, err);
    }
    if (!strcmp(device, "cpu"))
        return emu2_cpu_backend_open(opts, out, err);
    int index = cuda_index(device);
    if (index >= 0)
        return open_cuda(index, opts, out, err);
    return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "backend: unknown device \"%s\" (want auto, cpu, cuda or cuda:N)",
                     device);
}

void emu2_backend_close(emu2_backend *be)
{
    if (!be)
        return;
    void *lib = be->library;
    be->ops->destroy(be);
    if (lib)
        dlclose(lib);
}
