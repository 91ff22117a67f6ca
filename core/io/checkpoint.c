/* checkpoint.c: finding, mapping and indexing the weight files of a model folder (see checkpoint.h). */
#include "io/checkpoint.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"
#include "io/safetensors.h"
#include "io/torch_bin.h"

#define INDEX_MAX_BYTES (64u << 20)
#define MAX_SHARDS 4096

static int is_file(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, name) >= sizeof p)
        return 0;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* A shard name from an index must be a plain file name inside the folder. */
static int plain_file_name(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 256 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static emu2_status add_file(emu2_checkpoint *ck, const char *name, emu2_error *err)
{
    for (size_t i = 0; i < ck->n_files; i++)
        if (!strcmp(ck->files[i].name, name))
            return EMU2_OK;
    if (ck->n_files >= MAX_SHARDS)
        return emu2_fail(err, EMU2_ERR_LIMIT, "more than %d weight files", MAX_SHARDS);
    emu2_ckpt_file *f = realloc(ck->files, (ck->n_files + 1) * sizeof *f);
    if (!f)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    ck->files = f;
    memset(&f[ck->n_files], 0, sizeof *f);
    if (!(f[ck->n_files].name = strdup(name)))
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    ck->n_files++;
    return EMU2_OK;
}

/* Reads an index's weight_map; adds its shards in order of first mention. The map itself is kept
 * (as JSON) so that each listed tensor can be checked against its shard. */
static emu2_status read_index(emu2_checkpoint *ck, const char *name, json_t **weight_map, emu2_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", ck->weights_dir, name);
    char *text;
    size_t len;
    emu2_status st = emu2_read_small_file(path, INDEX_MAX_BYTES, &text, &len, err);
    if (st != EMU2_OK)
        return st;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!root)
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: invalid JSON at line %d: %s", name, jerr.line, jerr.text);
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        json_decref(root);
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: no 'weight_map' object", name);
    }
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        if (!json_is_string(v) || !plain_file_name(json_string_value(v))) {
            st = emu2_fail(err, EMU2_ERR_FORMAT, "%s: weight_map['%.100s'] is not a plain file name", name, key);
            json_decref(root); /* after the message: key lives in root */
            return st;
        }
        if ((st = add_file(ck, json_string_value(v), err)) != EMU2_OK) {
            json_decref(root);
            return st;
        }
    }
    *weight_map = json_incref(wm);
    json_decref(root);
    return EMU2_OK;
}

typedef struct known_file {
    const char *name, *format;
    int is_index;
} known_file;

static int later_index_exists(const char *dir, const known_file *known, size_t from)
{
    for (size_t i = from; known[i].name; i++)
        if (known[i].is_index && !strcmp(known[i].format, known[from - 1].format) && is_file(dir, known[i].name))
            return 1;
    return 0;
}

static int shards_present(const emu2_checkpoint *ck)
{
    for (size_t i = 0; i < ck->n_files; i++)
        if (!is_file(ck->weights_dir, ck->files[i].name))
            return 0;
    return 1;
}

static void drop_files(emu2_checkpoint *ck)
{
    for (size_t i = 0; i < ck->n_files; i++)
        free(ck->files[i].name);
    free(ck->files);
    ck->files = NULL;
    ck->n_files = 0;
}

/* Picks the weight files of ck->weights_dir; 0 when there are none. */
static emu2_status discover(emu2_checkpoint *ck, json_t **weight_map, int *found, emu2_error *err)
{
    static const known_file known[] = {
        {"model.safetensors.index.json", "safetensors", 1},
        {"model.safetensors.index.bf16.json", "safetensors", 1},
        {"model.safetensors", "safetensors", 0},
        {"pytorch_model.bin.index.json", "pytorch", 1},
        {"pytorch_model.bin", "pytorch", 0},
        {NULL, NULL, 0},
    };
    *found = 0;
    for (size_t i = 0; known[i].name; i++) {
        if (!is_file(ck->weights_dir, known[i].name))
            continue;
        *found = 1;
        ck->format = known[i].format;
        if (!known[i].is_index)
            return add_file(ck, known[i].name, err);
        ck->index_file = known[i].name;
        emu2_status st = read_index(ck, known[i].name, weight_map, err);
        if (st != EMU2_OK || shards_present(ck) || !later_index_exists(ck->weights_dir, known, i + 1))
            return st;
        /* Emu2-Gen ships model.safetensors.index.json for fp32 shards it does not include, beside
         * model.safetensors.index.bf16.json for the bf16 shards it does: use the next index. */
        json_decref(*weight_map);
        *weight_map = NULL;
        drop_files(ck);
    }
    /* one single file of another name (the native releases: Emu2_pytorch_model.bf16.bin, ...) */
    DIR *d = opendir(ck->weights_dir);
    if (!d)
        return EMU2_OK;
    char only[256] = "";
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if ((ends(e->d_name, ".safetensors") || ends(e->d_name, ".bin")) && strlen(e->d_name) < sizeof only &&
            is_file(ck->weights_dir, e->d_name)) {
            count++;
            snprintf(only, sizeof only, "%s", e->d_name);
        }
    }
    closedir(d);
    if (count > 1)
        return emu2_fail(err, EMU2_ERR_FORMAT,
                         "%s: several .safetensors/.bin files but no model.safetensors.index.json or pytorch_model.bin.index.json",
                         ck->weights_dir);
    if (count == 1) {
        *found = 1;
        ck->format = ends(only, ".bin") ? "pytorch" : "safetensors";
        return add_file(ck, only, err);
    }
    return EMU2_OK;
}

static emu2_status load_file(emu2_checkpoint *ck, emu2_ckpt_file *f, emu2_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", ck->weights_dir, f->name);
    emu2_status st = emu2_mapped_file_open(path, &f->map, err);
    if (st != EMU2_OK)
        return st;
    if (ends(f->name, ".bin"))
        st = emu2_torch_bin_tensors(f->map.data, f->map.size, &f->stored, &f->n_stored, err);
    else
        st = emu2_safetensors_tensors(f->map.data, f->map.size, &f->stored, &f->n_stored, err);
    if (st != EMU2_OK)
        emu2_fail_prefix(err, "%s: ", f->name);
    return st;
}

static emu2_status check_index(const emu2_checkpoint *ck, json_t *wm, emu2_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(wm, key, v)
    {
        const char *fname = json_string_value(v);
        int present = 0;
        for (size_t i = 0; i < ck->n_files && !present; i++) {
            if (strcmp(ck->files[i].name, fname))
                continue;
            for (size_t j = 0; j < ck->files[i].n_stored && !present; j++)
                present = !strcmp(ck->files[i].stored[j].name, key);
        }
        if (!present)
            return emu2_fail(err, EMU2_ERR_FORMAT, "%s lists '%.200s' in %s, which does not hold it",
                             ck->index_file, key, fname);
    }
    return EMU2_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const emu2_ckpt_tensor *)a)->name, ((const emu2_ckpt_tensor *)b)->name);
}

static emu2_status add_tensor(emu2_checkpoint *ck, size_t *cap, const char *name, const char *suffix,
                              const emu2_named_tensor *src, size_t file, emu2_error *err)
{
    if (ck->n_tensors == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        emu2_ckpt_tensor *t = realloc(ck->tensors, c * sizeof *t);
        if (!t)
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
        ck->tensors = t;
        *cap = c;
    }
    emu2_ckpt_tensor *t = &ck->tensors[ck->n_tensors];
    size_t n = strlen(name) + strlen(suffix) + 1;
    if (!(t->name = malloc(n)))
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    snprintf(t->name, n, "%s%s", name, suffix);
    t->stored_name = src->name;
    t->file = file;
    t->view = src->view;
    ck->n_tensors++;
    return EMU2_OK;
}

/* Splits a fused [3w] qkv.bias into three views of w elements each. */
static emu2_status add_fused_bias(emu2_checkpoint *ck, size_t *cap, const char *prefix, const emu2_named_tensor *src,
                                  size_t file, emu2_error *err)
{
    const emu2_tensor_view *v = &src->view;
    if (v->ndim != 1 || v->shape[0] % 3)
        return emu2_fail(err, EMU2_ERR_MISMATCH, "%s: a fused qkv bias must have shape [3*width]", src->name);
    static const char *parts[3] = {"q_bias", "k_bias", "v_bias"};
    int64_t w = v->shape[0] / 3;
    size_t part_bytes = (size_t)(v->nbytes / 3);
    for (int i = 0; i < 3; i++) {
        emu2_status st = add_tensor(ck, cap, prefix, parts[i], src, file, err);
        if (st != EMU2_OK)
            return st;
        emu2_tensor_view *pv = &ck->tensors[ck->n_tensors - 1].view;
        pv->shape[0] = w;
        pv->nbytes = part_bytes;
        pv->data = (const uint8_t *)v->data + (size_t)i * part_bytes;
    }
    ck->fused_qkv_bias = 1;
    return EMU2_OK;
}

static emu2_status build_canonical(emu2_checkpoint *ck, emu2_error *err)
{
    size_t cap = 0;
    for (size_t f = 0; f < ck->n_files; f++) {
        for (size_t j = 0; j < ck->files[f].n_stored; j++) {
            const emu2_named_tensor *src = &ck->files[f].stored[j];
            char canon[512];
            int kind = emu2_canonical_name(src->name, canon, sizeof canon);
            if (kind < 0)
                return emu2_fail(err, EMU2_ERR_FORMAT, "%s: tensor name too long", ck->files[f].name);
            if (kind == 0) {
                ck->n_ignored++;
                continue;
            }
            if (strcmp(canon, src->name) && strncmp(src->name, "multimodal_encoder.", 19))
                ck->has_hf_names = 1;
            else if (!strncmp(canon, "visual.", 7) || !strncmp(canon, "decoder.", 8))
                ck->has_native_names = 1;
            emu2_status st = kind == 2 ? add_fused_bias(ck, &cap, canon, src, f, err)
                                       : add_tensor(ck, &cap, canon, "", src, f, err);
            if (st != EMU2_OK)
                return st;
        }
    }
    qsort(ck->tensors, ck->n_tensors, sizeof *ck->tensors, by_name);
    for (size_t i = 1; i < ck->n_tensors; i++) {
        const emu2_ckpt_tensor *a = &ck->tensors[i - 1], *b = &ck->tensors[i];
        if (!strcmp(a->name, b->name))
            return emu2_fail(err, EMU2_ERR_FORMAT, "tensor '%s' appears twice ('%s' in %s and '%s' in %s)", a->name,
                             a->stored_name, ck->files[a->file].name, b->stored_name, ck->files[b->file].name);
    }
    return EMU2_OK;
}

static emu2_status open_in(emu2_checkpoint *ck, int *found, emu2_error *err)
{
    json_t *wm = NULL;
    emu2_status st = discover(ck, &wm, found, err);
    for (size_t i = 0; st == EMU2_OK && i < ck->n_files; i++)
        st = load_file(ck, &ck->files[i], err);
    if (st == EMU2_OK && wm)
        st = check_index(ck, wm, err);
    json_decref(wm);
    if (st == EMU2_OK && *found)
        st = build_canonical(ck, err);
    return st;
}

emu2_status emu2_checkpoint_open(const char *dir, emu2_checkpoint **out, emu2_error *err)
{
    *out = NULL;
    if (!dir)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "emu2_checkpoint_open: NULL folder");
    if (strlen(dir) > 3500)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "model folder path too long");
    emu2_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck || !(ck->weights_dir = strdup(dir))) {
        free(ck);
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    }
    int found = 0;
    emu2_status st = open_in(ck, &found, err);
    if (st == EMU2_OK && !found) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/multimodal_encoder", dir);
        struct stat sst;
        if (stat(sub, &sst) == 0 && S_ISDIR(sst.st_mode)) {
            free(ck->weights_dir);
            if (!(ck->weights_dir = strdup(sub)))
                st = emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
            else
                st = open_in(ck, &found, err);
        }
    }
    if (st == EMU2_OK && !found)
        st = emu2_fail(err, EMU2_ERR_IO,
                       "%s: no weights found (looked for model.safetensors[.index.json], "
                       "model.safetensors.index.bf16.json, pytorch_model.bin[.index.json], a single *.safetensors/*.bin, "
                       "and multimodal_encoder/)",
                       dir);
    if (st != EMU2_OK) {
        emu2_checkpoint_close(ck);
        return st;
    }
    *out = ck;
    return EMU2_OK;
}

void emu2_checkpoint_close(emu2_checkpoint *ck)
{
    if (!ck)
        return;
    for (size_t i = 0; i < ck->n_tensors; i++)
        free(ck->tensors[i].name);
    free(ck->tensors);
    for (size_t i = 0; i < ck->n_files; i++) {
        emu2_named_tensors_free(ck->files[i].stored, ck->files[i].n_stored);
        emu2_mapped_file_close(&ck->files[i].map);
        free(ck->files[i].name);
    }
    free(ck->files);
    free(ck->weights_dir);
    free(ck);
}

const emu2_ckpt_tensor *emu2_checkpoint_find(const emu2_checkpoint *ck, const char *name)
{
    size_t lo = 0, hi = ck->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ck->tensors[mid].name, name);
        if (c == 0)
            return &ck->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
