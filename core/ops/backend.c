/* backend.c: opening a backend by device name. The CPU backend is built in; CUDA lives in
 * libemu2_cuda.so, loaded with dlopen only when asked for (or on "auto"), so libemu2 never links
 * against CUDA.
 *
 * Where the library is looked for, first found wins: $EMU2_CUDA_LIBRARY (that exact file), then
 * next to the object that holds this code (libemu2.so, or the program it is linked into) and in its
 * ../ and ../lib/ (build/bin/emu2 finds build/libemu2_cuda.so, PREFIX/bin/emu2 PREFIX/lib/), then
 * the system search path (LD_LIBRARY_PATH, ld.so.cache).
 *
 * "auto": CUDA when the library loads and reports a usable GPU, else the CPU, with the reason kept
 * in be->device ("cpu (cuda unavailable: no GPU)"). "cuda" / "cuda:N": CUDA or an error saying
 * why, never a silent fall-back. "cuda:0,1": the decoder layers split over those GPUs (docs/CUDA.md). */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "ops/device_split.h"
#include "ops/ops.h"

void emu2_backend_options_init(emu2_backend_options *opts)
{
    if (!opts)
        return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
    opts->max_isa = EMU2_ISA_AUTO;
}

/* A parsed device name. */
typedef struct device_name {
    enum { DEV_BAD, DEV_AUTO, DEV_CPU, DEV_CUDA, DEV_CUDA_MULTI } kind;
    emu2_device_list list; /* cuda:N (one entry) or cuda:N,M,... */
} device_name;

/* "auto", "cpu", "cuda" (= cuda:0), "cuda:N", "cuda:N,M,..." (multi-GPU, core/ops/device_split.c
 * parses the list); anything else is DEV_BAD. */
static device_name parse_device(const char *device)
{
    device_name d;
    memset(&d, 0, sizeof d);
    d.kind = DEV_BAD;
    if (!device || !strcmp(device, "auto"))
        d.kind = DEV_AUTO;
    else if (!strcmp(device, "cpu"))
        d.kind = DEV_CPU;
    else if (!strcmp(device, "cuda")) {
        d.kind = DEV_CUDA;
        d.list.n = 1; /* cuda:0 */
    } else if (emu2_device_list_parse(device, &d.list, NULL) == EMU2_OK)
        d.kind = d.list.n > 1 ? DEV_CUDA_MULTI : DEV_CUDA;
    return d;
}

/* The folder of the file that holds this code (libemu2.so, or the program it is linked into). */
static int own_folder(char *out, size_t size)
{
    Dl_info info;
    char path[PATH_MAX];
    if (dladdr((void *)own_folder, &info) && info.dli_fname && realpath(info.dli_fname, path)) {
        /* found */
    } else {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0)
            return 0;
        path[n] = '\0';
    }
    char *slash = strrchr(path, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    return snprintf(out, size, "%s", path) < (int)size;
}

/* Where the library is: $EMU2_CUDA_LIBRARY, or the first candidate next to us that exists, or just
 * its name (the system search path). 0 (why set) when the override names a missing file. */
static int locate_cuda_library(char *path, size_t size, char *why, size_t wsize)
{
    const char *env = getenv("EMU2_CUDA_LIBRARY");
    if (env && *env) {
        if (access(env, F_OK) != 0) {
            snprintf(why, wsize, "cannot load $EMU2_CUDA_LIBRARY: %.300s does not exist", env);
            return 0;
        }
        snprintf(path, size, "%.*s", (int)(size - 1), env);
        return 1;
    }
    char folder[PATH_MAX], candidate[PATH_MAX + 64];
    if (own_folder(folder, sizeof folder)) {
        static const char *const rel[] = {"", "/..", "/../lib"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            snprintf(candidate, sizeof candidate, "%s%s/%s", folder, rel[i], EMU2_CUDA_BACKEND_LIBRARY);
            if (access(candidate, F_OK) == 0) {
                snprintf(path, size, "%.*s", (int)(size - 1), candidate);
                return 1;
            }
        }
    }
    snprintf(path, size, "%s", EMU2_CUDA_BACKEND_LIBRARY);
    return 1;
}

/* Loads the library found by locate_cuda_library. The CUDA driver (libcuda.so.1) is looked for
 * first: without it no GPU can run, and the check spares loading the CUDA runtime and cuBLAS
 * (hundreds of MB) on every machine without one. */
static void *load_cuda_library(char *loaded_from, size_t lsize, char *why, size_t wsize)
{
    if (!locate_cuda_library(loaded_from, lsize, why, wsize))
        return NULL;
    void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
    if (!driver) {
        const char *e = dlerror();
        snprintf(why, wsize, "no CUDA driver (%.200s); %s not loaded", e ? e : "libcuda.so.1 not found",
                 EMU2_CUDA_BACKEND_LIBRARY);
        return NULL;
    }
    dlclose(driver);
    void *lib = dlopen(loaded_from, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        if (!strchr(loaded_from, '/'))
            snprintf(why, wsize, "library not found: %s (%.300s)", EMU2_CUDA_BACKEND_LIBRARY,
                     e ? e : "not on the search path");
        else /* it is there but cannot load (a missing CUDA runtime): say so */
            snprintf(why, wsize, "cannot load %.150s: %.200s", loaded_from, e ? e : "unknown reason");
    }
    return lib;
}

/* Opens CUDA device `index`; on failure err->message is the bare reason (no prefix). */
static emu2_status open_cuda(int index, const emu2_backend_options *opts, emu2_backend **out, emu2_error *err)
{
    char why[EMU2_ERROR_MESSAGE_MAX] = "", from[PATH_MAX];
    void *lib = load_cuda_library(from, sizeof from, why, sizeof why);
    if (!lib)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s", why);
    emu2_backend_open_fn open_fn;
    void *sym = dlsym(lib, EMU2_CUDA_BACKEND_SYMBOL);
    memcpy(&open_fn, &sym, sizeof open_fn); /* object pointer to function pointer, the POSIX way */
    if (!open_fn) {
        dlclose(lib);
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%.200s does not export %s", from, EMU2_CUDA_BACKEND_SYMBOL);
    }
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    if (opts && opts->struct_size >= sizeof o)
        o = *opts;
    o.device_index = index;
    emu2_error local;
    emu2_status st = open_fn(&o, out, &local);
    if (st != EMU2_OK) {
        dlclose(lib);
        *out = NULL;
        return emu2_fail(err, st, "%.300s (%s loaded from %.150s)", local.message, EMU2_CUDA_BACKEND_LIBRARY, from);
    }
    (*out)->library = lib;
    return EMU2_OK;
}

/* "cuda:N,M,...": one CUDA backend per listed GPU behind the layer-split backend (core/ops/split_backend.c). */
static emu2_status open_split(const char *device, const emu2_device_list *list, const emu2_backend_options *opts,
                              emu2_backend **out, emu2_error *err)
{
    emu2_status st = EMU2_OK;
    emu2_backend *children[EMU2_SPLIT_MAX_DEVICES] = {0};
    int opened = 0;
    for (; opened < list->n; opened++)
        if ((st = open_cuda(list->index[opened], opts, &children[opened], err)) != EMU2_OK) {
            emu2_fail_prefix(err, "device %s: cuda:%d unavailable: ", device, list->index[opened]);
            break;
        }
    if (st == EMU2_OK && (st = emu2_split_backend_create(children, list->n, out, err)) != EMU2_OK)
        emu2_fail_prefix(err, "device %s: ", device);
    if (st != EMU2_OK) {
        for (int i = opened; i-- > 0;)
            emu2_backend_close(children[i]);
        *out = NULL;
        return st;
    }
    snprintf((*out)->device, sizeof (*out)->device, "%.40s, decoder layers split over %d GPUs (first: %.100s)", device,
             list->n, children[0]->device);
    return EMU2_OK;
}

/* be->device = name, then the CPU backend's own note (the bf16 precision), kept: "cpu, <note>". */
static void name_cpu(emu2_backend *be, const char *name)
{
    char note[64];
    snprintf(note, sizeof note, "%.63s", be->device);
    snprintf(be->device, sizeof be->device, "%s%s%.60s", name, note[0] ? ", " : "", note);
}

emu2_status emu2_backend_open(const char *device, const emu2_backend_options *opts, emu2_backend **out,
                              emu2_error *err)
{
    if (!out)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "backend: NULL output pointer");
    *out = NULL;
    device_name d = parse_device(device);
    emu2_status st;
    switch (d.kind) {
    case DEV_CPU:
        if ((st = emu2_cpu_backend_open(opts, out, err)) == EMU2_OK)
            name_cpu(*out, "cpu");
        return st;
    case DEV_AUTO: {
        emu2_error why;
        emu2_error_clear(&why);
        if (open_cuda(opts ? opts->device_index : 0, opts, out, &why) == EMU2_OK)
            return EMU2_OK;
        if ((st = emu2_cpu_backend_open(opts, out, err)) == EMU2_OK) {
            char name[128];
            snprintf(name, sizeof name, "cpu (cuda unavailable: %.100s)", why.message);
            name_cpu(*out, name);
        }
        return st;
    }
    case DEV_CUDA:
        if ((st = open_cuda(d.list.index[0], opts, out, err)) != EMU2_OK)
            emu2_fail_prefix(err, "device %s: cuda unavailable: ", device);
        return st;
    case DEV_CUDA_MULTI:
        return open_split(device, &d.list, opts, out, err);
    default:
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT,
                         "backend: unknown device \"%s\" (want auto, cpu, cuda or cuda:N)", device);
    }
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
