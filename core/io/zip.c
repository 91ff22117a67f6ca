/* zip.c: see zip.h. Every field is untrusted: offsets and sizes are checked before each read. */
#include "io/zip.h"

#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOCATOR64 0x07064b50u
#define MAX_ENTRIES 10000000u
#define MAX_NAME 4096u

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}
/* true when [off, off+len) lies inside a buffer of `size` bytes */
static int in_range(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

typedef struct cd_location {
    uint64_t offset, size, count;
} cd_location;

static emu2_status find_central_directory(const uint8_t *buf, uint64_t size, cd_location *cd, emu2_error *err)
{
    if (size < 22)
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: %llu bytes is too short for an archive", (unsigned long long)size);
    uint64_t lowest = size - 22 > 65535 ? size - 22 - 65535 : 0;
    uint64_t eocd = UINT64_MAX;
    for (uint64_t p = size - 22;; p--) {
        if (rd32(buf + p) == SIG_EOCD && p + 22 + rd16(buf + p + 20) <= size) {
            eocd = p;
            break;
        }
        if (p == lowest)
            break;
    }
    if (eocd == UINT64_MAX)
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: no end-of-central-directory record (not a zip file, or truncated)");
    const uint8_t *e = buf + eocd;
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "zip: multi-disk archives are not supported");
    cd->count = rd16(e + 10);
    cd->size = rd32(e + 12);
    cd->offset = rd32(e + 16);
    int wants64 = cd->count == 0xffff || cd->size == 0xffffffffu || cd->offset == 0xffffffffu;
    if (eocd >= 20 && rd32(buf + eocd - 20) == SIG_LOCATOR64) {
        uint64_t off64 = rd64(buf + eocd - 20 + 8);
        if (!in_range(off64, 56, size) || rd32(buf + off64) != SIG_EOCD64)
            return emu2_fail(err, EMU2_ERR_FORMAT, "zip: ZIP64 locator points to no ZIP64 end record");
        const uint8_t *z = buf + off64;
        cd->count = rd64(z + 32);
        cd->size = rd64(z + 40);
        cd->offset = rd64(z + 48);
    } else if (wants64) {
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: end record asks for ZIP64 but there is no ZIP64 locator");
    }
    if (!in_range(cd->offset, cd->size, size))
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: central directory (offset %llu, %llu bytes) is outside the file",
                         (unsigned long long)cd->offset, (unsigned long long)cd->size);
    if (cd->count > MAX_ENTRIES || cd->count > cd->size / 46)
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: %llu entries cannot fit a %llu-byte central directory",
                         (unsigned long long)cd->count, (unsigned long long)cd->size);
    return EMU2_OK;
}

/* Applies the ZIP64 extra field (id 1) to the fields that hold 0xffffffff. */
static emu2_status apply_zip64_extra(const uint8_t *x, uint32_t xlen, emu2_zip_entry *e, uint64_t *local,
                                     int need_size, int need_comp, int need_off, emu2_error *err)
{
    uint32_t p = 0;
    while (p + 4 <= xlen) {
        uint16_t id = rd16(x + p), len = rd16(x + p + 2);
        if (p + 4 + len > xlen)
            return emu2_fail(err, EMU2_ERR_FORMAT, "zip: entry '%s': extra field overruns", e->name);
        if (id == 1) {
            const uint8_t *d = x + p + 4;
            uint32_t q = 0;
            if (need_size) {
                if (q + 8 > len) goto short_field;
                e->size = rd64(d + q), q += 8;
            }
            if (need_comp) {
                if (q + 8 > len) goto short_field;
                e->comp_size = rd64(d + q), q += 8;
            }
            if (need_off) {
                if (q + 8 > len) goto short_field;
                *local = rd64(d + q);
            }
            return EMU2_OK;
        }
        p += 4u + len;
    }
    if (need_size || need_comp || need_off)
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: entry '%s' needs a ZIP64 extra field and has none", e->name);
    return EMU2_OK;
short_field:
    return emu2_fail(err, EMU2_ERR_FORMAT, "zip: entry '%s': ZIP64 extra field too short", e->name);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const emu2_zip_entry *)a)->name, ((const emu2_zip_entry *)b)->name);
}

static emu2_status parse_entry(const uint8_t *buf, uint64_t size, const cd_location *cd, uint64_t *pos,
                               emu2_zip_entry *e, emu2_error *err)
{
    uint64_t cd_end = cd->offset + cd->size;
    if (!in_range(*pos, 46, cd_end) || rd32(buf + *pos) != SIG_CENTRAL)
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: bad central directory header at offset %llu",
                         (unsigned long long)*pos);
    const uint8_t *h = buf + *pos;
    uint16_t nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
    uint64_t total = 46ull + nlen + xlen + clen;
    if (!in_range(*pos, total, cd_end))
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: central directory entry at %llu overruns the directory",
                         (unsigned long long)*pos);
    if (nlen == 0 || nlen > MAX_NAME || memchr(h + 46, 0, nlen))
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: entry at %llu has an invalid name", (unsigned long long)*pos);
    if (!(e->name = malloc(nlen + 1u)))
        return emu2_fail(err, EMU2_ERR_NOMEM, "zip: out of memory");
    memcpy(e->name, h + 46, nlen);
    e->name[nlen] = '\0';
    e->flags = rd16(h + 8);
    e->method = rd16(h + 10);
    e->comp_size = rd32(h + 20);
    e->size = rd32(h + 24);
    uint64_t local = rd32(h + 42);
    emu2_status st = apply_zip64_extra(h + 46 + nlen, xlen, e, &local, e->size == 0xffffffffu,
                                       e->comp_size == 0xffffffffu, local == 0xffffffffu, err);
    if (st != EMU2_OK)
        return st;
    *pos += total;

    if (!in_range(local, 30, size) || rd32(buf + local) != SIG_LOCAL)
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: entry '%s': no local header at offset %llu", e->name,
                         (unsigned long long)local);
    const uint8_t *l = buf + local;
    uint16_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
    if (lnlen != nlen || !in_range(local + 30, lnlen, size) || memcmp(l + 30, e->name, nlen) != 0)
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: entry '%s': local header name differs from the directory",
                         e->name);
    e->data_offset = local + 30 + lnlen + lxlen;
    if (!in_range(e->data_offset, e->comp_size, size))
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: entry '%s' (%llu bytes at offset %llu) runs past the end of the file",
                         e->name, (unsigned long long)e->comp_size, (unsigned long long)e->data_offset);
    if (e->method == 0 && e->comp_size != e->size)
        return emu2_fail(err, EMU2_ERR_FORMAT, "zip: stored entry '%s' has different compressed and plain sizes",
                         e->name);
    return EMU2_OK;
}

emu2_status emu2_zip_parse(const uint8_t *buf, uint64_t size, emu2_zip *out, emu2_error *err)
{
    memset(out, 0, sizeof *out);
    cd_location cd = {0, 0, 0};
    emu2_status st = find_central_directory(buf, size, &cd, err);
    if (st != EMU2_OK)
        return st;
    out->entries = calloc(cd.count ? cd.count : 1, sizeof *out->entries);
    if (!out->entries)
        return emu2_fail(err, EMU2_ERR_NOMEM, "zip: out of memory for %llu entries", (unsigned long long)cd.count);
    uint64_t pos = cd.offset;
    for (uint64_t i = 0; i < cd.count; i++) {
        st = parse_entry(buf, size, &cd, &pos, &out->entries[i], err);
        out->n_entries = (size_t)i + (out->entries[i].name != NULL);
        if (st != EMU2_OK) {
            emu2_zip_free(out);
            return st;
        }
    }
    qsort(out->entries, out->n_entries, sizeof *out->entries, by_name);
    for (size_t i = 1; i < out->n_entries; i++)
        if (!strcmp(out->entries[i - 1].name, out->entries[i].name)) {
            st = emu2_fail(err, EMU2_ERR_FORMAT, "zip: entry '%s' appears twice", out->entries[i].name);
            emu2_zip_free(out);
            return st;
        }
    return EMU2_OK;
}

const emu2_zip_entry *emu2_zip_find(const emu2_zip *z, const char *name)
{
    size_t lo = 0, hi = z->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->entries[mid].name, name);
        if (c == 0)
            return &z->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

emu2_status emu2_zip_stored_bytes(const emu2_zip_entry *e, emu2_error *err)
{
    if (e->flags & 1u)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED, "zip: entry '%s' is encrypted", e->name);
    if (e->method != 0)
        return emu2_fail(err, EMU2_ERR_UNSUPPORTED,
                         "zip: entry '%s' is compressed (method %u); only stored entries (as torch.save writes) are supported",
                         e->name, e->method);
    return EMU2_OK;
}

void emu2_zip_free(emu2_zip *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->n_entries; i++)
        free(z->entries[i].name);
    free(z->entries);
    z->entries = NULL;
    z->n_entries = 0;
}
