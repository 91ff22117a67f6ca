/* safetensors.c: see safetensors.h. Every number in the header is untrusted. */
#include "io/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"

static int by_offset(const void *a, const void *b)
{
    const emu2_st_tensor *x = a, *y = b;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static emu2_status parse_entry(const char *name, json_t *v, uint64_t data_len, emu2_st_tensor *t,
                               emu2_error *err)
{
    if (!json_is_object(v))
        return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s': entry is not an object", name);
    json_t *dt = json_object_get(v, "dtype");
    json_t *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs))
        return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s': needs string 'dtype', arrays 'shape' and 'data_offsets'",
                         name);
    t->dtype = emu2_dtype_from_name(json_string_value(dt));
    if (t->dtype == EMU2_DT_INVALID)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "tensor '%s': unsupported dtype '%.20s'", name,
                         json_string_value(dt));
    size_t nd = json_array_size(shape);
    if (nd > EMU2_MAX_DIMS)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "tensor '%s': %zu dimensions (at most %d)", name, nd,
                         EMU2_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t bytes = emu2_dtype_size(t->dtype);
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s': shape[%zu] is not a non-negative integer", name, i);
        t->shape[i] = json_integer_value(d);
        if (!emu2_mul_u64(bytes, (uint64_t)t->shape[i], &bytes))
            return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s': shape size overflows", name);
    }
    if (json_array_size(offs) != 2)
        return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s': data_offsets must be [begin, end]", name);
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 || json_integer_value(e) < 0)
        return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s': data_offsets are not non-negative integers", name);
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
    if (begin > end)
        return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s': data_offsets begin %llu > end %llu", name,
                         (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s': data_offsets end %llu is past the data (%llu bytes)",
                         name, (unsigned long long)end, (unsigned long long)data_len);
    if (end - begin != bytes)
        return emu2_fail(err, EMU2_ERR_FORMAT,
                         "tensor '%s': %llu bytes for dtype %s and its shape, but data_offsets span %llu", name,
                         (unsigned long long)bytes, emu2_dtype_name(t->dtype), (unsigned long long)(end - begin));
    t->offset = begin;
    t->nbytes = bytes;
    return EMU2_OK;
}

static emu2_status parse_json(json_t *root, uint64_t data_start, uint64_t file_size, emu2_st_header *out,
                              emu2_error *err)
{
    if (!json_is_object(root))
        return emu2_fail(err, EMU2_ERR_FORMAT, "safetensors header is not a JSON object");
    size_t n = json_object_size(root);
    out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
    if (!out->tensors)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for %zu tensors", n);
    uint64_t data_len = file_size - data_start;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val))
                return emu2_fail(err, EMU2_ERR_FORMAT, "safetensors __metadata__ is not an object");
            continue;
        }
        emu2_st_tensor *t = &out->tensors[out->n_tensors];
        emu2_status st = parse_entry(key, val, data_len, t, err);
        if (st != EMU2_OK)
            return st;
        if (!(t->name = strdup(key)))
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
        t->offset += data_start;
        out->n_tensors++;
    }
    qsort(out->tensors, out->n_tensors, sizeof *out->tensors, by_offset);
    for (size_t i = 1; i < out->n_tensors; i++) {
        const emu2_st_tensor *a = &out->tensors[i - 1], *b = &out->tensors[i];
        if (b->offset < a->offset + a->nbytes)
            return emu2_fail(err, EMU2_ERR_FORMAT, "tensors '%s' and '%s' overlap in the data", a->name, b->name);
    }
    return EMU2_OK;
}

emu2_status emu2_safetensors_parse(const uint8_t *file, uint64_t file_size, emu2_st_header *out,
                                   emu2_error *err)
{
    memset(out, 0, sizeof *out);
    if (file_size < 8)
        return emu2_fail(err, EMU2_ERR_FORMAT, "safetensors file too short (%llu bytes) for its header length",
                         (unsigned long long)file_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | file[i];
    if (hlen < 2 || hlen > EMU2_ST_MAX_HEADER_BYTES)
        return emu2_fail(err, EMU2_ERR_FORMAT, "safetensors header length %llu is not in [2, %u]",
                         (unsigned long long)hlen, EMU2_ST_MAX_HEADER_BYTES);
    if (hlen > file_size - 8)
        return emu2_fail(err, EMU2_ERR_FORMAT, "safetensors header length %llu runs past the end of the file (%llu bytes)",
                         (unsigned long long)hlen, (unsigned long long)file_size);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)file + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return emu2_fail(err, EMU2_ERR_FORMAT, "safetensors header is not valid JSON (byte %d): %s", jerr.position,
                         jerr.text);
    out->data_start = 8 + hlen;
    emu2_status st = parse_json(root, 8 + hlen, file_size, out, err);
    json_decref(root);
    if (st != EMU2_OK)
        emu2_st_header_free(out);
    return st;
}

void emu2_st_header_free(emu2_st_header *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_tensors; i++)
        free(h->tensors[i].name);
    free(h->tensors);
    h->tensors = NULL;
    h->n_tensors = 0;
}

emu2_status emu2_safetensors_tensors(const uint8_t *file, uint64_t file_size, emu2_named_tensor **out,
                                     size_t *n, emu2_error *err)
{
    *out = NULL;
    *n = 0;
    emu2_st_header h;
    emu2_status st = emu2_safetensors_parse(file, file_size, &h, err);
    if (st != EMU2_OK)
        return st;
    emu2_named_tensor *ts = calloc(h.n_tensors ? h.n_tensors : 1, sizeof *ts);
    if (!ts) {
        emu2_st_header_free(&h);
        return emu2_fail(err, EMU2_ERR_NOMEM, "safetensors: out of memory");
    }
    for (size_t i = 0; i < h.n_tensors; i++) {
        const emu2_st_tensor *t = &h.tensors[i];
        ts[i].name = t->name; /* take ownership */
        h.tensors[i].name = NULL;
        ts[i].view.dtype = t->dtype;
        ts[i].view.ndim = t->ndim;
        memcpy(ts[i].view.shape, t->shape, sizeof ts[i].view.shape);
        ts[i].view.data = file + t->offset;
        ts[i].view.nbytes = t->nbytes;
    }
    *n = h.n_tensors;
    *out = ts;
    emu2_st_header_free(&h);
    return EMU2_OK;
}
