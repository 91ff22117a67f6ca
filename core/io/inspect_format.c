/* inspect_format.c: the text and JSON renderings of an inspect result. */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/inspect.h"

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->len + (size_t)n + 1)
            c *= 2;
        char *s = realloc(b->s, c);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = c;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* 36906513152 -> "36,906,513,152" */
static const char *grouped(uint64_t x, char buf[32])
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, x), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

static void sb_shape(strbuf *b, int ndim, const int64_t *shape)
{
    sb_printf(b, "[");
    for (int i = 0; i < ndim; i++)
        sb_printf(b, "%s%" PRId64, i ? ", " : "", shape[i]);
    sb_printf(b, "]");
}

char *emu2_inspect_format_text(const emu2_inspect_result *r, int with_tensors)
{
    strbuf b = {0};
    char g[32];
    const emu2_config *c = &r->config;
    sb_printf(&b, "weights:     %s\n", r->weights_dir);
    sb_printf(&b, "config:      %s; vision %dx%d/%d, width %d, %d layers, %d tokens/image; LLM hidden %d, %d layers, "
                  "%d heads, vocab %d\n",
              c->model_version, c->vision.image_size, c->vision.image_size, c->vision.patch_size, c->vision.width,
              c->vision.layers, c->vision.n_query, c->hidden_size, c->num_hidden_layers, c->num_attention_heads,
              c->vocab_size);
    sb_printf(&b, "format:      %s, %zu file(s)%s%s\n", r->format, r->n_files, r->index_file[0] ? ", index " : "",
              r->index_file);
    sb_printf(&b, "naming:      %s%s\n", r->naming, r->fused_qkv_bias ? " (fused qkv.bias split into q/k/v views)" : "");
    for (size_t i = 0; with_tensors && r->tensors && i < r->n_tensors; i++) {
        const emu2_inspect_tensor *t = &r->tensors[i];
        sb_printf(&b, "  %-60s %-4s ", t->name, emu2_dtype_name(t->dtype));
        sb_shape(&b, t->ndim, t->shape);
        int renamed = strcmp(t->name, t->stored_name) != 0;
        sb_printf(&b, "  %s%s%s%s\n", r->files[t->file], renamed ? " (stored as " : "", renamed ? t->stored_name : "",
                  renamed ? ")" : "");
    }
    sb_printf(&b, "tensors:     %zu", r->n_tensors);
    for (size_t d = 0; d < sizeof r->dtype_count / sizeof r->dtype_count[0]; d++)
        if (r->dtype_count[d])
            sb_printf(&b, ", %zu %s", r->dtype_count[d], emu2_dtype_name((emu2_dtype)d));
    if (r->n_ignored)
        sb_printf(&b, " (%zu rotary_emb.inv_freq buffers ignored)", r->n_ignored);
    sb_printf(&b, "\nparameters:\n");
    for (int k = 0; k < EMU2_COMP_COUNT; k++)
        if (k != EMU2_COMP_OTHER || r->params[k])
            sb_printf(&b, "  %-12s %20s\n", emu2_component_name((emu2_component)k), grouped(r->params[k], g));
    sb_printf(&b, "  %-12s %20s  (%s bytes)\n", "total", grouped(r->n_params, g), grouped(r->bytes, (char[32]){0}));
    for (size_t i = 0; i < r->n_problems; i++) {
        const emu2_inspect_problem *p = &r->problems[i];
        switch (p->kind) {
        case EMU2_PROBLEM_MISSING:
            sb_printf(&b, "missing:     %s ", p->name);
            sb_shape(&b, p->expected_ndim, p->expected_shape);
            break;
        case EMU2_PROBLEM_UNEXPECTED:
            sb_printf(&b, "unexpected:  %s ", p->name);
            sb_shape(&b, p->found_ndim, p->found_shape);
            break;
        case EMU2_PROBLEM_SHAPE:
            sb_printf(&b, "wrong shape: %s expected ", p->name);
            sb_shape(&b, p->expected_ndim, p->expected_shape);
            sb_printf(&b, " found ");
            sb_shape(&b, p->found_ndim, p->found_shape);
            break;
        case EMU2_PROBLEM_DTYPE:
            sb_printf(&b, "wrong dtype: %s is %s (F32, F16 or BF16 expected)", p->name, emu2_dtype_name(p->dtype));
            break;
        }
        sb_printf(&b, "\n");
    }
    if (r->n_problems)
        sb_printf(&b, "result:      MISMATCH (%zu problem(s))\n", r->n_problems);
    else
        sb_printf(&b, "result:      OK (checkpoint matches config.json)\n");
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static json_t *shape_json(int ndim, const int64_t *shape)
{
    json_t *a = json_array();
    for (int i = 0; a && i < ndim; i++)
        json_array_append_new(a, json_integer(shape[i]));
    return a;
}

char *emu2_inspect_format_json(const emu2_inspect_result *r, int with_tensors)
{
    static const char *kinds[] = {"missing", "unexpected", "shape", "dtype"};
    json_t *o = json_object(), *params = json_object(), *dtypes = json_object(), *problems = json_array();
    if (!o || !params || !dtypes || !problems) {
        json_decref(o), json_decref(params), json_decref(dtypes), json_decref(problems);
        return NULL;
    }
    json_object_set_new(o, "ok", json_boolean(r->n_problems == 0));
    json_object_set_new(o, "weights_dir", json_string(r->weights_dir));
    json_object_set_new(o, "model_version", json_string(r->config.model_version));
    json_object_set_new(o, "format", json_string(r->format));
    json_object_set_new(o, "naming", json_string(r->naming));
    json_object_set_new(o, "fused_qkv_bias", json_boolean(r->fused_qkv_bias));
    json_object_set_new(o, "index_file", r->index_file[0] ? json_string(r->index_file) : json_null());
    json_object_set_new(o, "files", json_integer((json_int_t)r->n_files));
    json_object_set_new(o, "tensors", json_integer((json_int_t)r->n_tensors));
    json_object_set_new(o, "ignored_buffers", json_integer((json_int_t)r->n_ignored));
    for (size_t d = 0; d < sizeof r->dtype_count / sizeof r->dtype_count[0]; d++)
        if (r->dtype_count[d])
            json_object_set_new(dtypes, emu2_dtype_name((emu2_dtype)d), json_integer((json_int_t)r->dtype_count[d]));
    json_object_set_new(o, "dtypes", dtypes);
    for (int k = 0; k < EMU2_COMP_COUNT; k++)
        json_object_set_new(params, emu2_component_name((emu2_component)k), json_integer((json_int_t)r->params[k]));
    json_object_set_new(params, "total", json_integer((json_int_t)r->n_params));
    json_object_set_new(o, "parameters", params);
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
    for (size_t i = 0; i < r->n_problems; i++) {
        const emu2_inspect_problem *p = &r->problems[i];
        json_t *e = json_object();
        if (!e)
            continue;
        json_object_set_new(e, "kind", json_string(kinds[p->kind]));
        json_object_set_new(e, "name", json_string(p->name));
        if (p->kind != EMU2_PROBLEM_UNEXPECTED)
            json_object_set_new(e, "expected_shape", shape_json(p->expected_ndim, p->expected_shape));
        if (p->kind != EMU2_PROBLEM_MISSING) {
            json_object_set_new(e, "found_shape", shape_json(p->found_ndim, p->found_shape));
            json_object_set_new(e, "dtype", json_string(emu2_dtype_name(p->dtype)));
        }
        json_array_append_new(problems, e);
    }
    json_object_set_new(o, "problems", problems);
    if (with_tensors && r->tensors) {
        json_t *list = json_array();
        for (size_t i = 0; list && i < r->n_tensors; i++) {
            const emu2_inspect_tensor *t = &r->tensors[i];
            json_t *e = json_object();
            if (!e)
                continue;
            json_object_set_new(e, "name", json_string(t->name));
            json_object_set_new(e, "stored_name", json_string(t->stored_name));
            json_object_set_new(e, "file", json_string(r->files[t->file]));
            json_object_set_new(e, "dtype", json_string(emu2_dtype_name(t->dtype)));
            json_object_set_new(e, "shape", shape_json(t->ndim, t->shape));
            json_array_append_new(list, e);
        }
        json_object_set_new(o, "tensor_list", list);
    }
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}
