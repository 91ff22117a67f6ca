/* component.c: a diffusers component folder (config.json + safetensors) and the weight binder. */
#include "diffusion/component.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

#define DIF_CONFIG_MAX_BYTES (1u << 20)

static const char *const weight_files[] = {"diffusion_pytorch_model.bf16.safetensors",
                                           "diffusion_pytorch_model.safetensors",
                                           "diffusion_pytorch_model.fp16.safetensors"};

static int by_name(const void *a, const void *b)
{
    return strcmp(((const emu2_named_tensor *)a)->name, ((const emu2_named_tensor *)b)->name);
}

emu2_status dif_component_open(const char *dir, dif_component *c, emu2_error *err)
{
    memset(c, 0, sizeof *c);
    if ((size_t)snprintf(c->dir, sizeof c->dir, "%s", dir) >= sizeof c->dir)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = NULL;
    size_t len = 0;
    emu2_status st = emu2_read_small_file(path, DIF_CONFIG_MAX_BYTES, &text, &len, err);
    if (st != EMU2_OK)
        return st;
    json_error_t jerr;
    c->config = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!c->config || !json_is_object(c->config)) {
        dif_component_close(c);
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: not a JSON object (%s, line %d)", path, jerr.text, jerr.line);
    }
    st = EMU2_ERR_IO;
    for (size_t i = 0; i < sizeof weight_files / sizeof *weight_files && st != EMU2_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, weight_files[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fclose(f);
        snprintf(c->weights_file, sizeof c->weights_file, "%s", weight_files[i]);
        st = emu2_mapped_file_open(path, &c->map, err);
        if (st == EMU2_OK)
            st = emu2_safetensors_tensors(c->map.data, c->map.size, &c->tensors, &c->n_tensors, err);
        if (st != EMU2_OK) {
            emu2_fail_prefix(err, "%s: ", path);
            dif_component_close(c);
            return st;
        }
    }
    if (st != EMU2_OK) {
        dif_component_close(c);
        return emu2_fail(err, EMU2_ERR_IO, "%s: no %s (or .safetensors / .fp16.safetensors)", dir, weight_files[0]);
    }
    qsort(c->tensors, c->n_tensors, sizeof *c->tensors, by_name);
    return EMU2_OK;
}

void dif_component_close(dif_component *c)
{
    if (!c)
        return;
    if (c->config)
        json_decref(c->config);
    emu2_named_tensors_free(c->tensors, c->n_tensors);
    emu2_mapped_file_close(&c->map);
    memset(c, 0, sizeof *c);
}

const emu2_tensor_view *dif_component_find(const dif_component *c, const char *name)
{
    emu2_named_tensor key = {(char *)name, {0}};
    const emu2_named_tensor *t = bsearch(&key, c->tensors, c->n_tensors, sizeof *c->tensors, by_name);
    return t ? &t->view : NULL;
}

/* ---------------------------------------------------------------- config values */

static emu2_status number_of(const json_t *v, const dif_component *c, const char *key, double *out, emu2_error *err)
{
    if (json_is_integer(v))
        *out = (double)json_integer_value(v);
    else if (json_is_real(v))
        *out = json_real_value(v);
    else if (json_is_boolean(v))
        *out = json_is_true(v);
    else
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: '%s' is not a number", c->dir, key);
    if (!isfinite(*out))
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: '%s' is not finite", c->dir, key);
    return EMU2_OK;
}

static emu2_status int_value(const json_t *v, const dif_component *c, const char *key, long lo, long hi, long *out,
                             emu2_error *err)
{
    double d;
    emu2_status st = number_of(v, c, key, &d, err);
    if (st != EMU2_OK)
        return st;
    if (d != floor(d) || d < (double)lo || d > (double)hi)
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: '%s' = %g is not an integer in %ld..%ld", c->dir, key,
                         d, lo, hi);
    *out = (long)d;
    return EMU2_OK;
}

emu2_status dif_config_int(const dif_component *c, const char *key, int has_def, long def, long lo, long hi,
                           long *out, emu2_error *err)
{
    const json_t *v = json_object_get(c->config, key);
    if (!v || json_is_null(v)) {
        if (!has_def)
            return emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: missing key '%s'", c->dir, key);
        *out = def;
        return EMU2_OK;
    }
    return int_value(v, c, key, lo, hi, out, err);
}

emu2_status dif_config_num(const dif_component *c, const char *key, int has_def, double def, double *out,
                           emu2_error *err)
{
    const json_t *v = json_object_get(c->config, key);
    if (!v || json_is_null(v)) {
        if (!has_def)
            return emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: missing key '%s'", c->dir, key);
        *out = def;
        return EMU2_OK;
    }
    return number_of(v, c, key, out, err);
}

emu2_status dif_config_bool(const dif_component *c, const char *key, int def, int *out, emu2_error *err)
{
    const json_t *v = json_object_get(c->config, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return EMU2_OK;
    }
    if (!json_is_boolean(v))
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: '%s' is not true/false", c->dir, key);
    *out = json_is_true(v);
    return EMU2_OK;
}

emu2_status dif_config_int_at(const dif_component *c, const char *key, size_t i, long *out, emu2_error *err)
{
    const json_t *v = json_object_get(c->config, key);
    if (json_is_array(v)) {
        if (i >= json_array_size(v))
            return emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: '%s' has %zu entries, entry %zu is needed", c->dir,
                             key, json_array_size(v), i);
        v = json_array_get(v, i);
    }
    if (!v || json_is_null(v))
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s/config.json: missing key '%s'", c->dir, key);
    return int_value(v, c, key, 1, 1 << 20, out, err);
}

size_t dif_config_list_len(const dif_component *c, const char *key)
{
    const json_t *v = json_object_get(c->config, key);
    return json_is_array(v) ? json_array_size(v) : 0;
}

const char *dif_config_str_at(const dif_component *c, const char *key, size_t i)
{
    const json_t *v = json_object_get(c->config, key);
    return json_is_array(v) ? json_string_value(json_array_get(v, i)) : NULL;
}

/* ---------------------------------------------------------------- binder */

static int remember(dif_binder *b, emu2_tensor_view *v)
{
    dif_views *vs = b->views;
    if (vs->n == vs->cap) {
        size_t cap = vs->cap ? 2 * vs->cap : 256;
        emu2_tensor_view **p = realloc(vs->v, cap * sizeof *p);
        if (!p) {
            b->st = emu2_fail(b->err, EMU2_ERR_NOMEM, "out of memory binding weights");
            return 0;
        }
        vs->v = p;
        vs->cap = cap;
    }
    vs->v[vs->n++] = v;
    return 1;
}

/* Looks NAME up; on failure records the error. */
static const emu2_tensor_view *lookup(dif_binder *b, const char *name)
{
    if (b->st != EMU2_OK)
        return NULL;
    const emu2_tensor_view *t = dif_component_find(b->c, name);
    if (!t) {
        b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s/%s: tensor %s is missing", b->c->dir, b->c->weights_file,
                          name);
        return NULL;
    }
    if (t->dtype != EMU2_DT_F32 && t->dtype != EMU2_DT_F16 && t->dtype != EMU2_DT_BF16) {
        b->st = emu2_fail(b->err, EMU2_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (want F32, F16 or BF16)",
                          b->c->dir, name, emu2_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

static int shape_fail(dif_binder *b, const char *name, const emu2_tensor_view *t, const char *want)
{
    char got[128] = "";
    size_t at = 0;
    for (int d = 0; d < t->ndim && at < sizeof got - 24; d++)
        at += (size_t)snprintf(got + at, sizeof got - at, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    b->st = emu2_fail(b->err, EMU2_ERR_MISMATCH, "%s: tensor %s has shape [%s], expected %s", b->c->dir, name, got,
                      want);
    return 0;
}

int dif_has(const dif_binder *b, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return dif_component_find(b->c, name) != NULL;
}

static size_t bind_vec(dif_binder *b, emu2_tensor_view *out, size_t n, const char *name)
{
    const emu2_tensor_view *t = lookup(b, name);
    if (!t)
        return 0;
    if (t->ndim != 1 || t->shape[0] <= 0 || (n && (size_t)t->shape[0] != n)) {
        char want[48];
        snprintf(want, sizeof want, "[%zu]", n);
        return (size_t)shape_fail(b, name, t, want);
    }
    *out = *t;
    return remember(b, out) ? (size_t)t->shape[0] : 0;
}

size_t dif_bind_vec(dif_binder *b, emu2_tensor_view *out, size_t n, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return bind_vec(b, out, n, name);
}

static int bind_mat(dif_binder *b, emu2_op_weight *out, size_t N, size_t K, const char *name)
{
    const emu2_tensor_view *t = lookup(b, name);
    if (!t)
        return 0;
    int conv1x1 = t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1;
    if ((t->ndim != 2 && !conv1x1) || t->shape[0] <= 0 || t->shape[1] <= 0 || (N && (size_t)t->shape[0] != N) ||
        (K && (size_t)t->shape[1] != K)) {
        char want[64];
        snprintf(want, sizeof want, "[%zu, %zu] (0 = any)", N, K);
        return shape_fail(b, name, t, want);
    }
    memset(out, 0, sizeof *out);
    out->w = *t;
    out->w.ndim = 2;
    out->w.shape[2] = out->w.shape[3] = 0;
    return remember(b, &out->w);
}

int dif_bind_mat(dif_binder *b, emu2_op_weight *out, size_t N, size_t K, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return bind_mat(b, out, N, K, name);
}

static int bind_conv(dif_binder *b, emu2_op_weight *out, size_t O, size_t C, size_t k, const char *name)
{
    const emu2_tensor_view *t = lookup(b, name);
    if (!t)
        return 0;
    if (t->ndim != 4 || t->shape[0] <= 0 || t->shape[1] <= 0 || (O && (size_t)t->shape[0] != O) ||
        (C && (size_t)t->shape[1] != C) || (size_t)t->shape[2] != k || (size_t)t->shape[3] != k) {
        char want[80];
        snprintf(want, sizeof want, "[%zu, %zu, %zu, %zu] (0 = any)", O, C, k, k);
        return shape_fail(b, name, t, want);
    }
    memset(out, 0, sizeof *out);
    out->w = *t;
    return remember(b, &out->w);
}

int dif_bind_conv(dif_binder *b, emu2_op_weight *out, size_t O, size_t C, size_t k, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return bind_conv(b, out, O, C, k, name);
}

emu2_status dif_views_prepare(emu2_backend *be, dif_views *v, emu2_error *err)
{
    for (; v->n_prepared < v->n; v->n_prepared++) {
        emu2_tensor_view host = *v->v[v->n_prepared];
        emu2_status st = be->ops->prepare_weight(be, &host, v->v[v->n_prepared], err);
        if (st != EMU2_OK)
            return st;
    }
    return EMU2_OK;
}

void dif_views_release(emu2_backend *be, dif_views *v)
{
    if (be && be->ops->release_weight)
        for (size_t i = 0; i < v->n_prepared; i++)
            be->ops->release_weight(be, v->v[i]);
    free(v->v);
    memset(v, 0, sizeof *v);
}

emu2_status dif_bind_and_prepare(const dif_component *c, dif_views *v, emu2_backend *be, dif_bind_fn bind, void *obj,
                                 emu2_error *err)
{
    dif_binder b = {c, v, err, EMU2_OK};
    emu2_status st = bind(obj, &b);
    return st == EMU2_OK ? dif_views_prepare(be, v, err) : st;
}
