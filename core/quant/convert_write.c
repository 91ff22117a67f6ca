/* convert_write.c: writing a convert plan as sharded safetensors + index, copying the folder's
 * small files, and verifying the result through the loader (see convert.h). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "quant/convert.h"

#define COPY_MAX_BYTES (64u << 20)

static void shard_name(char *buf, size_t size, size_t i, size_t n)
{
    snprintf(buf, size, "model-%05zu-of-%05zu.safetensors", i + 1, n);
}

static int ends(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

static const char *quant_label(const emu2_convert_options *o)
{
    emu2_quant_spec spec;
    return emu2_quant_parse(o->quant, &spec, NULL) == EMU2_OK ? emu2_quant_name(spec) : "none";
}

static char *shard_header(const emu2_convert_plan *p, size_t shard, const emu2_convert_options *o, size_t *len)
{
    json_t *root = json_object(), *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(meta, "emu2_quant", json_string(quant_label(o)));
    json_object_set_new(meta, "emu2_writer", json_string("emu2 convert"));
    json_object_set_new(root, "__metadata__", meta);
    uint64_t off = 0;
    for (size_t i = 0; i < p->n; i++) {
        const emu2_convert_entry *e = &p->e[i];
        if (e->shard != shard)
            continue;
        json_t *t = json_object(), *shape = json_array(), *offs = json_array();
        for (int d = 0; d < e->ndim; d++)
            json_array_append_new(shape, json_integer(e->shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + e->nbytes)));
        json_object_set_new(t, "dtype", json_string(emu2_dtype_name(e->dtype)));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "data_offsets", offs);
        json_object_set_new(root, e->name, t);
        off += e->nbytes;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return NULL;
    size_t n = strlen(text), padded = (n + 7) / 8 * 8;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + n, ' ', padded - n); /* safetensors pads the header with spaces */
    out[padded] = '\0';
    *len = padded;
    return out;
}

/* Writes one shard; entries' hashes are filled in. */
static emu2_status write_shard(const char *dir, emu2_convert_plan *p, size_t shard, const emu2_convert_options *o,
                               uint64_t *done, emu2_error *err)
{
    char name[64], path[4200];
    shard_name(name, sizeof name, shard, p->n_shards);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t hlen;
    char *header = shard_header(p, shard, o, &hlen);
    if (!header)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory building the header of %s", name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(header);
        return emu2_fail(err, EMU2_ERR_IO, "%s: %s", path, strerror(errno));
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int ok = fwrite(lenb, 1, 8, f) == 8 && fwrite(header, 1, hlen, f) == hlen;
    free(header);
    emu2_status st = ok ? EMU2_OK : emu2_fail(err, EMU2_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    for (size_t i = 0; st == EMU2_OK && i < p->n; i++) {
        emu2_convert_entry *e = &p->e[i];
        if (e->shard != shard)
            continue;
        void *buf = malloc(e->nbytes ? (size_t)e->nbytes : 1);
        if (!buf) {
            st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory converting %s (%llu bytes)", e->name,
                           (unsigned long long)e->nbytes);
            break;
        }
        st = emu2_convert_entry_bytes(e, buf, err);
        if (st == EMU2_OK) {
            e->hash = emu2_convert_hash(buf, e->nbytes);
            if (fwrite(buf, 1, (size_t)e->nbytes, f) != e->nbytes)
                st = emu2_fail(err, EMU2_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        }
        free(buf);
        *done += e->nbytes;
        if (st == EMU2_OK && o->progress && o->progress(o->progress_user, "write", *done, p->total_bytes))
            st = emu2_fail(err, EMU2_ERR_CANCELLED, "conversion cancelled");
    }
    if (fclose(f) != 0 && st == EMU2_OK)
        st = emu2_fail(err, EMU2_ERR_IO, "%s: %s", path, strerror(errno));
    return st;
}

static emu2_status write_index(const char *dir, const emu2_convert_plan *p, const emu2_convert_options *o,
                               emu2_error *err)
{
    json_t *root = json_object(), *meta = json_object(), *map = json_object();
    json_object_set_new(meta, "total_size", json_integer((json_int_t)p->total_bytes));
    json_object_set_new(meta, "emu2_quant", json_string(quant_label(o)));
    json_object_set_new(root, "metadata", meta);
    for (size_t i = 0; i < p->n; i++) {
        char name[64];
        shard_name(name, sizeof name, p->e[i].shard, p->n_shards);
        json_object_set_new(map, p->e[i].name, json_string(name));
    }
    json_object_set_new(root, "weight_map", map);
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int rc = json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return rc ? emu2_fail(err, EMU2_ERR_IO, "%s: cannot write", path) : EMU2_OK;
}

static int is_weight_file(const char *name)
{
    return ends(name, ".safetensors") || ends(name, ".bin") || ends(name, ".index.json") || ends(name, ".pt") ||
           ends(name, ".pth") || ends(name, ".ckpt");
}

/* config.json, tokenizer files and the like: every small regular file that is not a weight file. */
static emu2_status copy_small_files(const char *src, const char *dst, emu2_error *err)
{
    DIR *d = opendir(src);
    if (!d)
        return emu2_fail(err, EMU2_ERR_IO, "%s: %s", src, strerror(errno));
    emu2_status st = EMU2_OK;
    struct dirent *e;
    while (st == EMU2_OK && (e = readdir(d)) != NULL) {
        char from[4200], to[4200];
        struct stat sb;
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        if (e->d_name[0] == '.' || is_weight_file(e->d_name) || stat(from, &sb) != 0 || !S_ISREG(sb.st_mode) ||
            sb.st_size > COPY_MAX_BYTES)
            continue;
        snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
        FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
        if (!in || !out) {
            st = emu2_fail(err, EMU2_ERR_IO, "copying %s: %s", e->d_name, strerror(errno));
        } else {
            char buf[65536];
            size_t n;
            while ((n = fread(buf, 1, sizeof buf, in)) > 0)
                if (fwrite(buf, 1, n, out) != n) {
                    st = emu2_fail(err, EMU2_ERR_IO, "copying %s: %s", e->d_name, strerror(errno));
                    break;
                }
            if (ferror(in))
                st = emu2_fail(err, EMU2_ERR_IO, "reading %s", from);
        }
        if (out && fclose(out) != 0 && st == EMU2_OK)
            st = emu2_fail(err, EMU2_ERR_IO, "copying %s: %s", e->d_name, strerror(errno));
        if (in)
            fclose(in);
    }
    closedir(d);
    return st;
}

static emu2_status verify(const char *dir, const emu2_convert_plan *p, const emu2_convert_options *o,
                          emu2_error *err)
{
    emu2_checkpoint *ck;
    emu2_status st = emu2_checkpoint_open(dir, &ck, err);
    if (st != EMU2_OK)
        return emu2_fail_prefix(err, "verifying %s: ", dir);
    uint64_t done = 0;
    if (ck->n_tensors != p->n)
        st = emu2_fail(err, EMU2_ERR_INTERNAL, "verifying %s: %zu tensors read back, %zu written", dir, ck->n_tensors,
                       p->n);
    for (size_t i = 0; st == EMU2_OK && i < p->n; i++) {
        const emu2_convert_entry *e = &p->e[i];
        const emu2_ckpt_tensor *t = emu2_checkpoint_find(ck, e->name);
        int same = t && t->view.dtype == e->dtype && t->view.ndim == e->ndim && t->view.nbytes == e->nbytes;
        for (int d = 0; same && d < e->ndim; d++)
            same = t->view.shape[d] == e->shape[d];
        if (!same)
            st = emu2_fail(err, EMU2_ERR_INTERNAL, "verifying %s: %s reads back %s", dir, e->name,
                           t ? "with another dtype or shape" : "missing");
        else if (emu2_convert_hash(t->view.data, t->view.nbytes) != e->hash)
            st = emu2_fail(err, EMU2_ERR_IO, "verifying %s: the bytes of %s differ from what was written", dir,
                           e->name);
        done += e->nbytes;
        if (st == EMU2_OK && o->progress && o->progress(o->progress_user, "verify", done, p->total_bytes))
            st = emu2_fail(err, EMU2_ERR_CANCELLED, "verification cancelled");
    }
    emu2_checkpoint_close(ck);
    return st;
}

emu2_status emu2_convert_write(const char *src_dir, const char *dst_dir, emu2_convert_plan *plan,
                               const emu2_convert_options *opts, emu2_error *err)
{
    if (!src_dir || !dst_dir || !plan || !opts)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_convert_write: NULL argument");
    if (strlen(dst_dir) > 4000)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "output folder path too long");
    if (mkdir(dst_dir, 0755) != 0 && errno != EEXIST)
        return emu2_fail(err, EMU2_ERR_IO, "%s: %s", dst_dir, strerror(errno));
    char src_real[4096], dst_real[4096];
    if (realpath(src_dir, src_real) && realpath(dst_dir, dst_real) && !strcmp(src_real, dst_real))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "the output folder is the source folder");
    DIR *d = opendir(dst_dir);
    if (!d)
        return emu2_fail(err, EMU2_ERR_IO, "%s: %s", dst_dir, strerror(errno));
    struct dirent *e;
    int has_weights = 0;
    while ((e = readdir(d)) != NULL)
        has_weights |= is_weight_file(e->d_name);
    closedir(d);
    if (has_weights)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "%s already holds weight files: use an empty folder",
                         dst_dir);
    uint64_t done = 0;
    emu2_status st = EMU2_OK;
    for (size_t s = 0; st == EMU2_OK && s < plan->n_shards; s++)
        st = write_shard(dst_dir, plan, s, opts, &done, err);
    if (st == EMU2_OK)
        st = write_index(dst_dir, plan, opts, err);
    if (st == EMU2_OK)
        st = copy_small_files(src_dir, dst_dir, err);
    if (st == EMU2_OK)
        st = verify(dst_dir, plan, opts, err);
    return st;
}
