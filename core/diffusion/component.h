/* component.h: one diffusers component folder (unet/, vae/): its config.json (jansson) and its
 * safetensors weights (mapped, tensors looked up by name), plus a binder that fills the networks'
 * weight structs by formatted name with shape checks, and prepares every bound view for the
 * backend (an upload on a device backend, nothing on the CPU). */
#ifndef EMU2_DIFFUSION_COMPONENT_H
#define EMU2_DIFFUSION_COMPONENT_H

#include <jansson.h>
#include <stddef.h>

#include "common/error.h"
#include "io/mapped_file.h"
#include "io/named_tensor.h"
#include "ops/ops.h"

typedef struct dif_component {
    char dir[1024];
    char weights_file[64];
    json_t *config;
    emu2_mapped_file map;
    emu2_named_tensor *tensors; /* sorted by name */
    size_t n_tensors;
} dif_component;

/* Reads DIR/config.json and the first of diffusion_pytorch_model{.bf16,,.fp16}.safetensors. */
emu2_status dif_component_open(const char *dir, dif_component *c, emu2_error *err);
void dif_component_close(dif_component *c);
const emu2_tensor_view *dif_component_find(const dif_component *c, const char *name);

/* Config readers: a missing key gives `def` (when has_def), else an error naming the key. */
emu2_status dif_config_int(const dif_component *c, const char *key, int has_def, long def, long lo, long hi,
                           long *out, emu2_error *err);
emu2_status dif_config_num(const dif_component *c, const char *key, int has_def, double def, double *out,
                           emu2_error *err);
emu2_status dif_config_bool(const dif_component *c, const char *key, int def, int *out, emu2_error *err);
/* Entry i of an int-or-list key (diffusers allows both for per-level values). */
emu2_status dif_config_int_at(const dif_component *c, const char *key, size_t i, long *out, emu2_error *err);
/* Number of entries of a list key (0 when absent or not a list). */
size_t dif_config_list_len(const dif_component *c, const char *key);
/* String entry i of a list key, or NULL. */
const char *dif_config_str_at(const dif_component *c, const char *key, size_t i);

/* Every view bound to a network, for prepare_weight / release_weight. */
typedef struct dif_views {
    emu2_tensor_view **v;
    size_t n, cap;
    size_t n_prepared; /* the first n_prepared views are prepared */
} dif_views;

typedef struct dif_binder {
    const dif_component *c;
    dif_views *views;
    emu2_error *err;
    emu2_status st; /* first failure; later binds do nothing */
} dif_binder;

/* 1 when tensor NAME exists. */
int dif_has(const dif_binder *b, const char *fmt, ...) EMU2_PRINTF(2, 3);
/* A vector [n] (n = 0: any length; the length is returned). Returns the length, 0 on failure. */
size_t dif_bind_vec(dif_binder *b, emu2_tensor_view *out, size_t n, const char *fmt, ...) EMU2_PRINTF(4, 5);
/* A linear weight [N, K] (0 = any), a 1x1 conv [N, K, 1, 1] is viewed as [N, K]. */
int dif_bind_mat(dif_binder *b, emu2_op_weight *out, size_t N, size_t K, const char *fmt, ...) EMU2_PRINTF(5, 6);
/* A conv weight [O, C, k, k] (O or C 0 = any). */
int dif_bind_conv(dif_binder *b, emu2_op_weight *out, size_t O, size_t C, size_t k, const char *fmt, ...)
    EMU2_PRINTF(6, 7);

/* prepare_weight on every bound view (in place); release undoes it. */
emu2_status dif_views_prepare(emu2_backend *be, dif_views *v, emu2_error *err);
void dif_views_release(emu2_backend *be, dif_views *v);

/* Binds a network's weights from component c (bind fills obj, the network, through the binder), then
 * prepares them on the backend: the load step the UNet and the VAE share. */
typedef emu2_status (*dif_bind_fn)(void *obj, dif_binder *b);
emu2_status dif_bind_and_prepare(const dif_component *c, dif_views *v, emu2_backend *be, dif_bind_fn bind, void *obj,
                                 emu2_error *err);

#endif
