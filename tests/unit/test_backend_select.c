/* test_backend_select.c: device names, the CUDA library search and the fall-back rules
 * (core/ops/backend.c). On a machine without a usable GPU (CI): "auto" runs on the CPU and says
 * why, "cuda"/"cuda:N" fail with the reason, never a silent fall-back. With a GPU the CUDA cases
 * check the other way round. */
#include <dlfcn.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "common/error.h"
#include "emu2.h"
#include "ops/ops.h"

/* Whether this machine can open a CUDA backend (decides which way the CUDA checks go). */
static int cuda_works(void)
{
    emu2_backend *be = NULL;
    emu2_error err;
    if (emu2_backend_open("cuda", NULL, &be, &err) != EMU2_OK)
        return 0;
    emu2_backend_close(be);
    return 1;
}

TEST(cpu_by_name)
{
    emu2_backend *be = NULL;
    emu2_error err;
    CHECKF(emu2_backend_open("cpu", NULL, &be, &err) == EMU2_OK, "%s", err.message);
    CHECK(!strcmp(be->ops->name, "cpu"));
    CHECKF(!strcmp(be->device, "cpu"), "device text: %s", be->device);
    emu2_backend_close(be);
}

TEST(auto_falls_back_with_reason)
{
    emu2_backend *be = NULL;
    emu2_error err;
    CHECKF(emu2_backend_open("auto", NULL, &be, &err) == EMU2_OK, "%s", err.message);
    if (!strcmp(be->ops->name, "cuda")) {
        CHECKF(!strncmp(be->device, "cuda:0 (", 8), "device text: %s", be->device);
    } else {
        CHECKF(!strncmp(be->device, "cpu (cuda unavailable: ", 23) && strlen(be->device) > 30 &&
                   be->device[strlen(be->device) - 1] == ')',
               "device text: %s", be->device);
    }
    emu2_backend_close(be);
    be = NULL;
    CHECK(emu2_backend_open(NULL, NULL, &be, &err) == EMU2_OK); /* NULL means auto */
    emu2_backend_close(be);
}

/* The library nvcc built in this build folder (tests/../libemu2_cuda.so) loads with all its CUDA
 * dependencies, exports both entry points, and its open either works (a GPU) or says why not. */
TEST(built_library_loads_and_answers)
{
    char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 64);
    CHECK(n > 0);
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    CHECK(slash != NULL);
    strcpy(slash, "/../libemu2_cuda.so");
    if (access(path, F_OK) != 0)
        SKIP("libemu2_cuda.so was not built in this build folder (no nvcc)");
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECKF(lib != NULL, "%s", dlerror());
    void *open_sym = dlsym(lib, EMU2_CUDA_BACKEND_SYMBOL), *fill_sym = dlsym(lib, "emu2_cuda_random_fill");
    emu2_backend_open_fn open_fn;
    memcpy(&open_fn, &open_sym, sizeof open_fn);
    emu2_backend *be = NULL;
    emu2_error err;
    emu2_error_clear(&err);
    emu2_status st = open_fn ? open_fn(NULL, &be, &err) : EMU2_ERR_INTERNAL;
    int ok = open_fn && fill_sym && (st == EMU2_OK ? be != NULL : (be == NULL && err.message[0] != '\0'));
    if (st == EMU2_OK)
        be->ops->destroy(be);
    else
        printf("    the library says: %s\n", err.message);
    dlclose(lib);
    CHECKF(ok, "status %d: %s", (int)st, err.message);
}

TEST(explicit_cuda_never_falls_back)
{
    if (cuda_works())
        SKIP("a GPU is usable here: the no-GPU error path cannot be seen");
    const char *names[] = {"cuda", "cuda:0", "cuda:3"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        emu2_backend *be = (emu2_backend *)1;
        emu2_error err;
        emu2_status st = emu2_backend_open(names[i], NULL, &be, &err);
        CHECKF(st == EMU2_ERR_UNSUPPORTED && be == NULL, "%s: status %d", names[i], (int)st);
        CHECKF(strstr(err.message, names[i]) && strstr(err.message, "cuda unavailable") &&
                   strstr(err.message, "libemu2_cuda.so"),
               "%s: %s", names[i], err.message);
    }
}

TEST(library_override_is_honoured)
{
    const char *old = getenv("EMU2_CUDA_LIBRARY");
    char saved[1024] = "";
    if (old)
        snprintf(saved, sizeof saved, "%s", old);
    setenv("EMU2_CUDA_LIBRARY", "/nonexistent/libemu2_cuda.so", 1);
    emu2_backend *be = NULL;
    emu2_error err;
    emu2_status st = emu2_backend_open("cuda:0", NULL, &be, &err);
    int ok_cuda = st == EMU2_ERR_UNSUPPORTED && strstr(err.message, "EMU2_CUDA_LIBRARY") != NULL;
    char cuda_msg[sizeof err.message];
    snprintf(cuda_msg, sizeof cuda_msg, "%s", err.message);
    st = emu2_backend_open("auto", NULL, &be, &err);
    int ok_auto = st == EMU2_OK && !strcmp(be->ops->name, "cpu") && strstr(be->device, "EMU2_CUDA_LIBRARY");
    char auto_dev[sizeof be->device] = "";
    if (be) {
        snprintf(auto_dev, sizeof auto_dev, "%s", be->device);
        emu2_backend_close(be);
    }
    if (old)
        setenv("EMU2_CUDA_LIBRARY", saved, 1);
    else
        unsetenv("EMU2_CUDA_LIBRARY");
    CHECKF(ok_cuda, "cuda:0 with a missing override: %s", cuda_msg);
    CHECKF(ok_auto, "auto with a missing override: %s", auto_dev);
}

TEST(bad_names_are_errors)
{
    const char *bad[] = {"tpu", "cuda:x", "cuda:", "cuda0", "cuda:1x", "", "CPU", "cuda:-1", "cuda:0,", "cuda:0,x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        emu2_backend *be = (emu2_backend *)1;
        emu2_error err;
        emu2_status st = emu2_backend_open(bad[i], NULL, &be, &err);
        CHECKF(st == EMU2_ERR_INVALID_ARGUMENT && be == NULL, "\"%s\": status %d", bad[i], (int)st);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
        CHECKF(strstr(err.message, quoted) != NULL, "\"%s\": %s", bad[i], err.message);
    }
}

/* "cuda:0,1" opens the layer split (docs/CUDA.md); without GPUs it fails saying which one. */
TEST(multi_gpu_is_reserved)
{
    emu2_backend *be = (emu2_backend *)1;
    emu2_error err;
    emu2_status st = emu2_backend_open("cuda:0,1", NULL, &be, &err);
    if (st == EMU2_OK) {
        emu2_backend_close(be);
        return;
    }
    CHECKF(be == NULL && strstr(err.message, "cuda:0,1") && strstr(err.message, "unavailable"), "status %d: %s",
           (int)st, err.message);
}

/* The model reports the device text (emu2_model_info.device). */
TEST(model_info_names_the_device)
{
    emu2_load_options o;
    emu2_load_options_init(&o);
    o.threads = 1;
    emu2_model *m = NULL;
    emu2_error err;
    CHECKF(emu2_model_load(ROOT_PATH("models/emu2-tiny-digits"), &o, &m, &err) == EMU2_OK, "%s", err.message);
    emu2_model_info info;
    CHECK(emu2_model_get_info(m, &info) == EMU2_OK);
    int ok = !strncmp(info.device, "cpu (cuda unavailable: ", 23) || !strncmp(info.device, "cuda:0 (", 8);
    char dev[256];
    snprintf(dev, sizeof dev, "%s", info.device);
    emu2_model_free(m);
    CHECKF(ok, "info.device: %s", dev);

    o.device = "cpu";
    CHECK(emu2_model_load(ROOT_PATH("models/emu2-tiny-digits"), &o, &m, &err) == EMU2_OK);
    CHECK(emu2_model_get_info(m, &info) == EMU2_OK);
    ok = !strcmp(info.device, "cpu");
    emu2_model_free(m);
    CHECK(ok);
}

int main(void)
{
    RUN(cpu_by_name);
    RUN(auto_falls_back_with_reason);
    RUN(built_library_loads_and_answers);
    RUN(explicit_cuda_never_falls_back);
    RUN(library_override_is_honoured);
    RUN(bad_names_are_errors);
    RUN(multi_gpu_is_reserved);
    RUN(model_info_names_the_device);
    return check_finish();
}
