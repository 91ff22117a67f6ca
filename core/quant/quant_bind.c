/* quant_bind.c: binding a quantized linear (see quant_bind.h). */
#include "quant/quant_bind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"

static const emu2_ckpt_tensor *find_part(const emu2_checkpoint *ck, const char *base, const char *suffix)
{
    char name[512];
    if ((size_t)snprintf(name, sizeof name, "%s.%s", base, suffix) >= sizeof name)
        return NULL;
    return emu2_checkpoint_find(ck, name);
}

int emu2_quant_has_stored(const emu2_checkpoint *ck, const char *base)
{
    return find_part(ck, base, EMU2_QWEIGHT_SUFFIX) != NULL;
}

/* The stored pair: the format follows from the dtypes, the int4 group from the two widths. */
static emu2_status bind_stored(const emu2_checkpoint *ck, const char *base, size_t N, size_t K, emu2_op_weight *out,
                               emu2_error *err)
{
    const emu2_ckpt_tensor *q = find_part(ck, base, EMU2_QWEIGHT_SUFFIX);
    const emu2_ckpt_tensor *s = find_part(ck, base, EMU2_QSCALES_SUFFIX);
    if (!s)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "the checkpoint has %s.%s but no %s.%s", base, EMU2_QWEIGHT_SUFFIX,
                         base, EMU2_QSCALES_SUFFIX);
    memset(out, 0, sizeof *out);
    out->w = q->view;
    out->scales = s->view;
    if (q->view.dtype == EMU2_DT_I8) {
        out->format = EMU2_WEIGHT_Q8;
    } else if (q->view.dtype == EMU2_DT_U8) {
        out->format = EMU2_WEIGHT_Q4;
        int64_t bytes = q->view.ndim == 2 ? q->view.shape[1] : 0;
        int64_t groups = s->view.ndim == 2 ? s->view.shape[1] : 0;
        out->group = groups > 0 && bytes > 0 && (2 * bytes) % groups == 0 && 2 * bytes / groups <= 4096
                         ? (int)(2 * bytes / groups)
                         : 0;
    } else {
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s.%s has dtype %s; expected I8 (int8) or U8 (int4)", base,
                         EMU2_QWEIGHT_SUFFIX, emu2_dtype_name(q->view.dtype));
    }
    emu2_status st = emu2_quant_check_weight(out, N, K, err);
    if (st != EMU2_OK)
        emu2_fail_prefix(err, "%s: ", base);
    return st;
}

emu2_status emu2_quant_bind_linear(const emu2_checkpoint *ck, const char *base, size_t N, size_t K,
                                   emu2_quant_spec spec, int threads, emu2_op_weight *out, void **owned,
                                   emu2_error *err)
{
    *owned = NULL;
    if (emu2_quant_has_stored(ck, base))
        return bind_stored(ck, base, N, K, out, err);
    spec = emu2_quant_spec_for(spec, base);
    if (spec.format == EMU2_WEIGHT_FLOAT)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s: no quantized tensors and no format asked for", base);
    const emu2_ckpt_tensor *t = find_part(ck, base, "weight");
    if (!t)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "the checkpoint has no tensor %s.weight", base);
    const emu2_tensor_view *v = &t->view;
    if (v->ndim != 2 || v->shape[0] != (int64_t)N || v->shape[1] != (int64_t)K)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "tensor %s.weight must be [%zu, %zu] (as the config implies)", base,
                         N, K);
    size_t rb = emu2_quant_q_row_bytes(spec, K), sc = emu2_quant_scale_row_count(spec, K);
    size_t ses = spec.format == EMU2_WEIGHT_Q8 ? 4 : 2, qbytes, sbytes, es = emu2_dtype_size(v->dtype), need;
    if (!emu2_mul_size(N, rb, &qbytes) || !emu2_mul_size(N, sc * ses, &sbytes) || !emu2_mul_size(N * K, es, &need) ||
        qbytes > SIZE_MAX - 128 - sbytes)
        return emu2_fail(err, EMU2_ERR_LIMIT, "%s: too large to quantize", base);
    if (!v->data || v->nbytes < need)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "tensor %s.weight holds fewer bytes than its shape", base);
    size_t s_off = (qbytes + 63) / 64 * 64;
    uint8_t *buf = malloc(s_off + sbytes + 1);
    if (!buf)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory quantizing %s", base);
    emu2_status st = emu2_quantize_rows_threads(spec, v->data, v->dtype, N, K, buf, buf + s_off, threads, err);
    if (st != EMU2_OK) {
        free(buf);
        return emu2_fail_prefix(err, "%s.weight: ", base);
    }
    memset(out, 0, sizeof *out);
    out->format = spec.format;
    out->group = spec.group;
    out->w = (emu2_tensor_view){.dtype = spec.format == EMU2_WEIGHT_Q8 ? EMU2_DT_I8 : EMU2_DT_U8, .ndim = 2,
                                .shape = {(int64_t)N, (int64_t)rb}, .data = buf, .nbytes = qbytes};
    out->scales = (emu2_tensor_view){.dtype = spec.format == EMU2_WEIGHT_Q8 ? EMU2_DT_F32 : EMU2_DT_F16,
                                     .ndim = spec.format == EMU2_WEIGHT_Q8 ? 1 : 2,
                                     .shape = {(int64_t)N, spec.format == EMU2_WEIGHT_Q8 ? 0 : (int64_t)sc},
                                     .data = buf + s_off, .nbytes = sbytes};
    *owned = buf;
    return EMU2_OK;
}

int emu2_quant_match_stored(const emu2_checkpoint *ck, const char *weight_name, int64_t N, int64_t K, char *matched)
{
    char base[512];
    size_t n = strlen(weight_name), m = strlen(".weight");
    if (n <= m || n - m >= sizeof base || strcmp(weight_name + n - m, ".weight") || N < 0 || K < 0)
        return 0;
    memcpy(base, weight_name, n - m);
    base[n - m] = '\0';
    const emu2_ckpt_tensor *q = find_part(ck, base, EMU2_QWEIGHT_SUFFIX), *s = find_part(ck, base, EMU2_QSCALES_SUFFIX);
    if (!q)
        return 0;
    matched[q - ck->tensors] = 1;
    if (s)
        matched[s - ck->tensors] = 1;
    emu2_op_weight w;
    return bind_stored(ck, base, (size_t)N, (size_t)K, &w, NULL) == EMU2_OK ? 1 : -1;
}
