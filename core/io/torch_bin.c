/* torch_bin.c: see torch_bin.h. */
#include "io/torch_bin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"
#include "io/pickle.h"
#include "io/zip.h"

/* The archive folder: torch.save names every entry <archive>/..., with data.pkl directly inside. */
static emu2_status find_pickle(const emu2_zip *z, const emu2_zip_entry **pkl, size_t *prefix_len, emu2_error *err)
{
    *pkl = NULL;
    for (size_t i = 0; i < z->n_entries; i++) {
        const char *nm = z->entries[i].name, *slash = strchr(nm, '/');
        if (slash && slash != nm && !strcmp(slash, "/data.pkl")) {
            if (*pkl)
                return emu2_fail(err, EMU2_ERR_FORMAT, "torch .bin: more than one data.pkl in the archive");
            *pkl = &z->entries[i];
            *prefix_len = (size_t)(slash - nm) + 1;
        }
    }
    if (!*pkl)
        return emu2_fail(err, EMU2_ERR_FORMAT, "torch .bin: no <archive>/data.pkl entry (not a torch.save zip file)");
    return EMU2_OK;
}

static emu2_status resolve(const uint8_t *file, const emu2_zip *z, const char *prefix, size_t prefix_len,
                           const emu2_pickle_tensor *pt, emu2_named_tensor *out, emu2_error *err)
{
    char entry[256];
    if ((size_t)snprintf(entry, sizeof entry, "%.*sdata/%s", (int)prefix_len, prefix, pt->storage_key) >= sizeof entry)
        return emu2_fail(err, EMU2_ERR_FORMAT, "torch .bin: storage name too long");
    const emu2_zip_entry *e = emu2_zip_find(z, entry);
    if (!e)
        return emu2_fail(err, EMU2_ERR_FORMAT, "torch .bin: tensor '%s': storage entry '%s' is missing", pt->name,
                         entry);
    emu2_status st = emu2_zip_stored_bytes(e, err);
    if (st != EMU2_OK)
        return st;
    uint64_t es = emu2_dtype_size(pt->dtype), storage_bytes, off_bytes, nbytes, numel = 1;
    for (int d = 0; d < pt->ndim; d++)
        numel *= (uint64_t)pt->shape[d]; /* bounded by storage_numel, checked by the pickle reader */
    if (!emu2_mul_u64(pt->storage_numel, es, &storage_bytes) || storage_bytes > e->size)
        return emu2_fail(err, EMU2_ERR_FORMAT,
                         "torch .bin: tensor '%s': storage '%s' declares %llu elements of %llu bytes but holds %llu bytes",
                         pt->name, entry, (unsigned long long)pt->storage_numel, (unsigned long long)es,
                         (unsigned long long)e->size);
    off_bytes = pt->storage_offset * es; /* offset + numel <= storage_numel, so no overflow */
    nbytes = numel * es;
    out->view.dtype = pt->dtype;
    out->view.ndim = pt->ndim;
    memcpy(out->view.shape, pt->shape, sizeof out->view.shape);
    out->view.data = file + e->data_offset + off_bytes;
    out->view.nbytes = nbytes;
    return EMU2_OK;
}

emu2_status emu2_torch_bin_tensors(const uint8_t *file, uint64_t size, emu2_named_tensor **out, size_t *n,
                                   emu2_error *err)
{
    *out = NULL;
    *n = 0;
    emu2_zip z;
    emu2_status st = emu2_zip_parse(file, size, &z, err);
    if (st != EMU2_OK)
        return st;
    const emu2_zip_entry *pkl;
    size_t plen = 0;
    emu2_pickle_state_dict sd = {0};
    emu2_named_tensor *ts = NULL;
    size_t nt = 0;
    if ((st = find_pickle(&z, &pkl, &plen, err)) != EMU2_OK || (st = emu2_zip_stored_bytes(pkl, err)) != EMU2_OK)
        goto done;
    char bo[300];
    snprintf(bo, sizeof bo, "%.*sbyteorder", (int)(plen < 200 ? plen : 200), pkl->name);
    const emu2_zip_entry *boe = emu2_zip_find(&z, bo);
    if (boe && !(boe->method == 0 && boe->size == 6 && !memcmp(file + boe->data_offset, "little", 6))) {
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "torch .bin: only little-endian checkpoints are supported");
        goto done;
    }
    if (pkl->size > SIZE_MAX) {
        st = emu2_fail(err, EMU2_ERR_LIMIT, "torch .bin: data.pkl too large");
        goto done;
    }
    if ((st = emu2_pickle_load_state_dict(file + pkl->data_offset, (size_t)pkl->size, &sd, err)) != EMU2_OK)
        goto done;
    ts = calloc(sd.n_tensors ? sd.n_tensors : 1, sizeof *ts);
    if (!ts) {
        st = emu2_fail(err, EMU2_ERR_NOMEM, "torch .bin: out of memory");
        goto done;
    }
    for (size_t i = 0; i < sd.n_tensors; i++) {
        if ((st = resolve(file, &z, pkl->name, plen, &sd.tensors[i], &ts[i], err)) != EMU2_OK)
            goto done;
        ts[i].name = sd.tensors[i].name; /* take ownership */
        sd.tensors[i].name = NULL;
        nt = i + 1;
    }
done:
    emu2_pickle_state_dict_free(&sd);
    emu2_zip_free(&z);
    if (st != EMU2_OK) {
        emu2_named_tensors_free(ts, nt);
        return st;
    }
    *out = ts;
    *n = nt;
    return EMU2_OK;
}
