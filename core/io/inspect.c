/* inspect.c: checkpoint vs config (see inspect.h) and the public emu2_inspect. */
#include "io/inspect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "io/checkpoint.h"
#include "quant/quant_bind.h"

static int add_problem(emu2_inspect_result *r, size_t *cap, emu2_problem_kind kind, const char *name,
                       const emu2_expected_tensor *exp, const emu2_tensor_view *found)
{
    if (r->n_problems == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        emu2_inspect_problem *p = realloc(r->problems, c * sizeof *p);
        if (!p)
            return 0;
        r->problems = p;
        *cap = c;
    }
    emu2_inspect_problem *p = &r->problems[r->n_problems++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    snprintf(p->name, sizeof p->name, "%s", name);
    if (exp) {
        p->expected_ndim = exp->ndim;
        memcpy(p->expected_shape, exp->shape, (size_t)exp->ndim * sizeof exp->shape[0]);
    }
    if (found) {
        p->found_ndim = found->ndim;
        memcpy(p->found_shape, found->shape, sizeof p->found_shape);
        p->dtype = found->dtype;
    }
    return 1;
}

static int same_shape(const emu2_expected_tensor *e, const emu2_tensor_view *v)
{
    if (e->ndim != v->ndim)
        return 0;
    for (int i = 0; i < e->ndim; i++)
        if (e->shape[i] != v->shape[i])
            return 0;
    return 1;
}

static int is_float(emu2_dtype dt)
{
    return dt == EMU2_DT_F32 || dt == EMU2_DT_F16 || dt == EMU2_DT_BF16;
}

static emu2_status compare(const emu2_checkpoint *ck, const emu2_expected_tensor *exp, size_t n_exp,
                           emu2_inspect_result *r, emu2_error *err)
{
    size_t cap = 0;
    char *matched = calloc(ck->n_tensors ? ck->n_tensors : 1, 1);
    if (!matched)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    int ok = 1;
    for (size_t i = 0; i < n_exp && ok; i++) {
        const emu2_ckpt_tensor *t = emu2_checkpoint_find(ck, exp[i].name);
        if (!t && exp[i].ndim == 2) { /* a linear `emu2 convert` quantized: <base>.qweight + .scales */
            int q = emu2_quant_match_stored(ck, exp[i].name, exp[i].shape[0], exp[i].shape[1], matched);
            if (q > 0)
                continue;
            if (q < 0) {
                ok = add_problem(r, &cap, EMU2_PROBLEM_SHAPE, exp[i].name, &exp[i], NULL);
                continue;
            }
        }
        if (!t) {
            if (!exp[i].optional)
                ok = add_problem(r, &cap, EMU2_PROBLEM_MISSING, exp[i].name, &exp[i], NULL);
            continue;
        }
        matched[t - ck->tensors] = 1;
        if (!same_shape(&exp[i], &t->view))
            ok = add_problem(r, &cap, EMU2_PROBLEM_SHAPE, t->name, &exp[i], &t->view);
        else if (!is_float(t->view.dtype))
            ok = add_problem(r, &cap, EMU2_PROBLEM_DTYPE, t->name, &exp[i], &t->view);
    }
    for (size_t i = 0; i < ck->n_tensors && ok; i++)
        if (!matched[i])
            ok = add_problem(r, &cap, EMU2_PROBLEM_UNEXPECTED, ck->tensors[i].name, NULL, &ck->tensors[i].view);
    free(matched);
    return ok ? EMU2_OK : emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
}

static int list_tensors(const emu2_checkpoint *ck, emu2_inspect_result *r)
{
    r->tensors = calloc(ck->n_tensors ? ck->n_tensors : 1, sizeof *r->tensors);
    r->files = calloc(ck->n_files ? ck->n_files : 1, sizeof *r->files);
    if (!r->tensors || !r->files)
        return 0;
    for (size_t i = 0; i < ck->n_files; i++)
        snprintf(r->files[i], sizeof r->files[i], "%s", ck->files[i].name);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const emu2_ckpt_tensor *t = &ck->tensors[i];
        emu2_inspect_tensor *o = &r->tensors[i];
        snprintf(o->name, sizeof o->name, "%s", t->name);
        snprintf(o->stored_name, sizeof o->stored_name, "%s", t->stored_name);
        o->file = t->file;
        o->dtype = t->view.dtype;
        o->ndim = t->view.ndim;
        memcpy(o->shape, t->view.shape, sizeof o->shape);
    }
    return 1;
}

static void summarize(const emu2_checkpoint *ck, emu2_inspect_result *r)
{
    snprintf(r->format, sizeof r->format, "%s", ck->format ? ck->format : "unknown");
    const char *naming = ck->has_hf_names && ck->has_native_names ? "mixed"
                         : ck->has_hf_names                       ? "hf"
                         : ck->has_native_names                   ? "native"
                                                                  : "unknown";
    snprintf(r->naming, sizeof r->naming, "%s", naming);
    snprintf(r->weights_dir, sizeof r->weights_dir, "%s", ck->weights_dir);
    snprintf(r->index_file, sizeof r->index_file, "%s", ck->index_file ? ck->index_file : "");
    r->n_files = ck->n_files;
    r->n_tensors = ck->n_tensors;
    r->n_ignored = ck->n_ignored;
    r->fused_qkv_bias = ck->fused_qkv_bias;
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const emu2_tensor_view *v = &ck->tensors[i].view;
        uint64_t numel = emu2_param_count(ck->tensors[i].name, v); /* sizes were checked by the reader */
        r->params[emu2_component_of(ck->tensors[i].name)] += numel;
        r->n_params += numel;
        r->bytes += v->nbytes;
        if ((unsigned)v->dtype < sizeof r->dtype_count / sizeof r->dtype_count[0])
            r->dtype_count[v->dtype]++;
    }
}

emu2_status emu2_inspect_run(const char *dir, emu2_inspect_result *r, emu2_error *err)
{
    memset(r, 0, sizeof *r);
    if (!dir)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_inspect: NULL folder");
    /* Emu2-Gen keeps the multimodal encoder's config.json and weights in DIR/multimodal_encoder. */
    char sub[4096];
    struct stat st_cfg;
    const char *cfg_dir = dir;
    if ((size_t)snprintf(sub, sizeof sub, "%s/config.json", dir) < sizeof sub && stat(sub, &st_cfg) != 0 &&
        (size_t)snprintf(sub, sizeof sub, "%s/multimodal_encoder/config.json", dir) < sizeof sub &&
        stat(sub, &st_cfg) == 0) {
        snprintf(sub, sizeof sub, "%s/multimodal_encoder", dir);
        cfg_dir = sub;
    }
    emu2_status st = emu2_config_load(cfg_dir, &r->config, err);
    if (st != EMU2_OK)
        return st;
    emu2_checkpoint *ck;
    if ((st = emu2_checkpoint_open(dir, &ck, err)) != EMU2_OK)
        return st;
    emu2_expected_tensor *exp = NULL;
    size_t n_exp = 0;
    st = emu2_expected_layout(&r->config, &exp, &n_exp, err);
    if (st == EMU2_OK) {
        summarize(ck, r);
        st = compare(ck, exp, n_exp, r, err);
        if (st == EMU2_OK && !list_tensors(ck, r))
            st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    }
    free(exp);
    emu2_checkpoint_close(ck);
    if (st != EMU2_OK)
        emu2_inspect_result_free(r);
    return st;
}

void emu2_inspect_result_free(emu2_inspect_result *r)
{
    if (r) {
        free(r->problems);
        free(r->tensors);
        free(r->files);
        r->problems = NULL;
        r->tensors = NULL;
        r->files = NULL;
        r->n_problems = 0;
    }
}

EMU2_API emu2_status emu2_inspect(const char *dir, char **report, uint64_t *n_params, emu2_error *err)
{
    if (report)
        *report = NULL;
    if (n_params)
        *n_params = 0;
    emu2_inspect_result r;
    emu2_status st = emu2_inspect_run(dir, &r, err);
    if (st != EMU2_OK)
        return st;
    if (report && !(*report = emu2_inspect_format_text(&r, 0))) {
        emu2_inspect_result_free(&r);
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the report");
    }
    if (n_params)
        *n_params = r.n_params;
    if (r.n_problems) {
        const emu2_inspect_problem *p = &r.problems[0];
        static const char *what[] = {"missing", "unexpected", "wrong shape", "not a float type"};
        st = emu2_fail(err, EMU2_ERR_MISMATCH, "%s: checkpoint does not match config.json: %zu problem(s), first: %s tensor '%s'",
                       dir, r.n_problems, what[p->kind], p->name);
    } else {
        emu2_error_clear(err);
    }
    emu2_inspect_result_free(&r);
    return st;
}
