/* convert_plan.c: what `emu2 convert` writes (see convert.h): one entry per output tensor, their
 * shard, and the bytes of each entry. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/checked.h"
#include "common/error.h"
#include "ops/cpu/kernels.h" /* cpu_load_elem: F32/F16/BF16 elements as f32 */
#include "quant/convert.h"
#include "quant/quant_bind.h"

#define DEFAULT_SHARD_BYTES (4ull << 30)

static int is_float(emu2_dtype dt)
{
    return dt == EMU2_DT_F32 || dt == EMU2_DT_F16 || dt == EMU2_DT_BF16;
}

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

/* "decoder.lm.model.layers.N.<attn/mlp linear>.weight": the linears quantization applies to. */
static int is_llm_linear(const char *name)
{
    static const char *tails[] = {".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
                                  ".self_attn.o_proj.weight", ".mlp.gate_proj.weight",    ".mlp.up_proj.weight",
                                  ".mlp.down_proj.weight"};
    const char *p = "decoder.lm.model.layers.";
    if (!strcmp(name, "decoder.lm.lm_head.weight"))
        return 1;
    if (strncmp(name, p, strlen(p)))
        return 0;
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        size_t m = strlen(tails[i]);
        if (n > m && !strcmp(name + n - m, tails[i]))
            return 1;
    }
    return 0;
}

static emu2_status add(emu2_convert_plan *p, size_t *cap, const emu2_ckpt_tensor *src, const char *name,
                       emu2_convert_kind kind, emu2_quant_spec spec, emu2_dtype dt, int ndim, const int64_t *shape,
                       emu2_error *err)
{
    if (p->n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        emu2_convert_entry *e = realloc(p->e, c * sizeof *e);
        if (!e)
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
        p->e = e;
        *cap = c;
    }
    emu2_convert_entry *e = &p->e[p->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name)))
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    p->n++;
    e->src = src;
    e->kind = kind;
    e->spec = spec;
    e->dtype = dt;
    e->ndim = ndim;
    uint64_t bytes = emu2_dtype_size(dt);
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        if (shape[i] < 0 || !emu2_mul_u64(bytes, (uint64_t)shape[i], &bytes))
            return emu2_fail(err, EMU2_ERR_LIMIT, "%s: size overflows", name);
    }
    e->nbytes = bytes;
    return EMU2_OK;
}

static emu2_status plan_quantized(emu2_convert_plan *p, size_t *cap, const emu2_ckpt_tensor *t, emu2_quant_spec spec,
                                  emu2_error *err)
{
    char base[512], name[520];
    size_t len = strlen(t->name) - strlen(".weight");
    if (len >= sizeof base)
        return emu2_fail(err, EMU2_ERR_LIMIT, "tensor name too long");
    memcpy(base, t->name, len);
    base[len] = '\0';
    spec = emu2_quant_spec_for(spec, base);
    size_t N = (size_t)t->view.shape[0], K = (size_t)t->view.shape[1];
    int64_t qshape[2] = {(int64_t)N, (int64_t)emu2_quant_q_row_bytes(spec, K)};
    int64_t sshape[2] = {(int64_t)N, (int64_t)emu2_quant_scale_row_count(spec, K)};
    emu2_status st;
    snprintf(name, sizeof name, "%s.%s", base, EMU2_QWEIGHT_SUFFIX);
    if ((st = add(p, cap, t, name, EMU2_CONVERT_QVALUES, spec, spec.format == EMU2_WEIGHT_Q8 ? EMU2_DT_I8 : EMU2_DT_U8,
                  2, qshape, err)))
        return st;
    snprintf(name, sizeof name, "%s.%s", base, EMU2_QSCALES_SUFFIX);
    return add(p, cap, t, name, EMU2_CONVERT_QSCALES, spec,
               spec.format == EMU2_WEIGHT_Q8 ? EMU2_DT_F32 : EMU2_DT_F16, spec.format == EMU2_WEIGHT_Q8 ? 1 : 2,
               sshape, err);
}

emu2_status emu2_convert_plan_make(const emu2_checkpoint *ck, const emu2_convert_options *opts,
                                   emu2_convert_plan *out, emu2_error *err)
{
    memset(out, 0, sizeof *out);
    emu2_quant_spec spec;
    emu2_status st = emu2_quant_parse(opts->quant, &spec, err);
    if (st != EMU2_OK)
        return st;
    if (opts->dtype != EMU2_DT_INVALID && !is_float(opts->dtype))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "--dtype must be bf16, f16 or f32");
    size_t cap = 0;
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const emu2_ckpt_tensor *t = &ck->tensors[i];
        const emu2_tensor_view *v = &t->view;
        int vision = !strncmp(t->name, "visual.", 7);
        uint64_t numel = emu2_tensor_numel(v);
        out->params += numel;
        uint64_t before = out->n;
        if (ends_with(t->name, "." EMU2_QWEIGHT_SUFFIX) || ends_with(t->name, "." EMU2_QSCALES_SUFFIX)) {
            /* already quantized (a converted checkpoint): copied as is */
            st = add(out, &cap, t, t->name, EMU2_CONVERT_COPY, spec, v->dtype, v->ndim, v->shape, err);
        } else if (spec.format != EMU2_WEIGHT_FLOAT && is_llm_linear(t->name) && v->ndim == 2 && is_float(v->dtype)) {
            st = plan_quantized(out, &cap, t, spec, err);
            out->linear_params += numel;
        } else if (is_float(v->dtype) && opts->dtype != EMU2_DT_INVALID && opts->dtype != v->dtype &&
                   !(vision && opts->keep_vision)) {
            st = add(out, &cap, t, t->name, EMU2_CONVERT_CAST, spec, opts->dtype, v->ndim, v->shape, err);
        } else {
            st = add(out, &cap, t, t->name, EMU2_CONVERT_COPY, spec, v->dtype, v->ndim, v->shape, err);
        }
        if (st != EMU2_OK) {
            emu2_convert_plan_free(out);
            return st;
        }
        int llm = !strncmp(t->name, "decoder.", 8);
        if (llm)
            out->llm_params += numel;
        for (size_t k = before; k < out->n; k++) {
            out->total_bytes += out->e[k].nbytes;
            if (llm)
                out->llm_bytes += out->e[k].nbytes;
            if (out->e[k].kind == EMU2_CONVERT_QVALUES || out->e[k].kind == EMU2_CONVERT_QSCALES)
                out->linear_bytes += out->e[k].nbytes;
        }
    }
    uint64_t limit = opts->shard_bytes ? opts->shard_bytes : DEFAULT_SHARD_BYTES, used = 0;
    size_t shard = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (used > 0 && used + out->e[i].nbytes > limit) {
            shard++;
            used = 0;
        }
        out->e[i].shard = shard;
        used += out->e[i].nbytes;
    }
    out->n_shards = out->n ? shard + 1 : 0;
    return EMU2_OK;
}

void emu2_convert_plan_free(emu2_convert_plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->e[i].name);
    free(p->e);
    memset(p, 0, sizeof *p);
}

static emu2_status cast(const emu2_convert_entry *e, void *dst, emu2_error *err)
{
    const emu2_tensor_view *v = &e->src->view;
    uint64_t n = emu2_tensor_numel(v);
    for (uint64_t i = 0; i < n; i++) {
        float f = cpu_load_elem(v->data, v->dtype, (size_t)i);
        if (e->dtype == EMU2_DT_F32) {
            memcpy((char *)dst + i * 4, &f, 4);
            continue;
        }
        uint16_t h = e->dtype == EMU2_DT_BF16 ? emu2_f32_to_bf16(f) : emu2_f32_to_f16(f);
        if (isfinite(f) && e->dtype == EMU2_DT_F16 && !isfinite(emu2_f16_to_f32(h)))
            return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: the value %g does not fit f16", e->name, (double)f);
        memcpy((char *)dst + i * 2, &h, 2);
    }
    return EMU2_OK;
}

emu2_status emu2_convert_entry_bytes(const emu2_convert_entry *e, void *dst, emu2_error *err)
{
    const emu2_tensor_view *v = &e->src->view;
    if (e->kind == EMU2_CONVERT_COPY) {
        if (v->nbytes != e->nbytes || (!v->data && e->nbytes))
            return emu2_fail(err, EMU2_ERR_INTERNAL, "%s: size changed", e->name);
        if (e->nbytes)
            memcpy(dst, v->data, (size_t)e->nbytes);
        return EMU2_OK;
    }
    if (e->kind == EMU2_CONVERT_CAST)
        return cast(e, dst, err);
    /* quantized values and scales come from one quantization of the source rows */
    size_t N = (size_t)v->shape[0], K = (size_t)v->shape[1];
    size_t qbytes = N * emu2_quant_q_row_bytes(e->spec, K);
    size_t sbytes = N * emu2_quant_scale_row_count(e->spec, K) * (e->spec.format == EMU2_WEIGHT_Q8 ? 4 : 2);
    uint8_t *other = malloc((e->kind == EMU2_CONVERT_QVALUES ? sbytes : qbytes) + 1);
    if (!other)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory quantizing %s", e->name);
    int T = (int)sysconf(_SC_NPROCESSORS_ONLN);
    emu2_status st = e->kind == EMU2_CONVERT_QVALUES
                         ? emu2_quantize_rows_threads(e->spec, v->data, v->dtype, N, K, dst, other, T, err)
                         : emu2_quantize_rows_threads(e->spec, v->data, v->dtype, N, K, other, dst, T, err);
    free(other);
    if (st != EMU2_OK)
        emu2_fail_prefix(err, "%s: ", e->name);
    return st;
}

uint64_t emu2_convert_hash(const void *data, uint64_t n)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    for (; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ n;
}
