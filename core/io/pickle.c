/* pickle.c: see pickle.h. A small stack machine over an arena of values; every count, length and
 * index from the bytes is bounded before use, and no opcode outside the state-dict subset runs. */
#include "io/pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/checked.h"
#include "common/error.h"

#define MAX_VALUES (1u << 22)
#define MAX_STACK (1u << 20)
#define MAX_MEMO (1u << 22)
#define MAX_MARKS 64 /* nesting depth of MARK ... TUPLE/SETITEMS groups */
#define MAX_NAME 4096
#define NO_VALUE UINT32_MAX

enum kind { K_NONE, K_BOOL, K_INT, K_FLOAT, K_STR, K_TUPLE, K_LIST, K_DICT, K_GLOBAL, K_STORAGE, K_TENSOR };
enum global { G_ODICT, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE };

typedef struct pval {
    uint8_t kind;
    uint8_t global;    /* K_GLOBAL */
    emu2_dtype dtype;  /* K_GLOBAL of a storage class */
    int64_t i;         /* K_INT, K_BOOL; index of the record for K_STORAGE and K_TENSOR */
    const uint8_t *s;  /* K_STR: bytes inside the pickle (not NUL-terminated) */
    uint32_t slen;
    uint32_t *items;   /* K_TUPLE, K_LIST, K_DICT (key, value, key, value, ...) */
    uint32_t n, cap;
} pval;

typedef struct storage_rec {
    uint32_t key;      /* K_STR value */
    emu2_dtype dtype;
    uint64_t numel;
} storage_rec;

typedef struct tensor_rec {
    uint32_t storage;
    uint64_t offset;
    int ndim;
    int64_t shape[EMU2_MAX_DIMS];
} tensor_rec;

typedef struct vm {
    const uint8_t *start, *p, *end;
    pval *vals;
    uint32_t nvals, capvals;
    uint32_t *stack;
    uint32_t sp, capstack;
    uint32_t marks[MAX_MARKS];
    uint32_t nmarks;
    uint32_t *memo;
    uint32_t capmemo, nmemo;
    storage_rec *storages;
    uint32_t nstorages, capstorages;
    tensor_rec *tensors;
    uint32_t ntensors, captensors;
    emu2_error *err;
} vm;

static emu2_status fail(vm *m, emu2_status st, const char *what)
{
    return emu2_fail(m->err, st, "pickle: %s (at byte %zu)", what, (size_t)(m->p - m->start));
}

/* Grows *buf (elements of `size` bytes) to hold at least `need` elements, at most `limit`. */
static int grow(void **buf, uint32_t *cap, uint32_t need, size_t size, uint32_t limit)
{
    if (need <= *cap)
        return 1;
    if (need > limit)
        return 0;
    uint32_t c = *cap ? *cap : 16;
    while (c < need)
        c = c > limit / 2 ? limit : c * 2;
    void *nb = realloc(*buf, (size_t)c * size);
    if (!nb)
        return 0;
    *buf = nb;
    *cap = c;
    return 1;
}

static emu2_status new_value(vm *m, uint8_t kind, uint32_t *out)
{
    if (!grow((void **)&m->vals, &m->capvals, m->nvals + 1, sizeof *m->vals, MAX_VALUES))
        return fail(m, EMU2_ERR_LIMIT, "too many values");
    pval *v = &m->vals[m->nvals];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    *out = m->nvals++;
    return EMU2_OK;
}

static emu2_status push(vm *m, uint32_t v)
{
    if (!grow((void **)&m->stack, &m->capstack, m->sp + 1, sizeof *m->stack, MAX_STACK))
        return fail(m, EMU2_ERR_LIMIT, "stack too deep");
    m->stack[m->sp++] = v;
    return EMU2_OK;
}

static emu2_status push_new(vm *m, uint8_t kind, int64_t i)
{
    uint32_t v;
    emu2_status st = new_value(m, kind, &v);
    if (st != EMU2_OK)
        return st;
    m->vals[v].i = i;
    return push(m, v);
}

/* Floor of the current MARK group (the stack position the innermost MARK recorded). */
static uint32_t stack_floor(const vm *m)
{
    return m->nmarks ? m->marks[m->nmarks - 1] : 0;
}

static emu2_status pop(vm *m, uint32_t *v)
{
    if (m->sp <= stack_floor(m))
        return fail(m, EMU2_ERR_FORMAT, "stack underflow");
    *v = m->stack[--m->sp];
    return EMU2_OK;
}

static emu2_status append_item(vm *m, uint32_t container, uint32_t item)
{
    pval *c = &m->vals[container];
    if (!grow((void **)&c->items, &c->cap, c->n + 1, sizeof *c->items, MAX_VALUES))
        return fail(m, EMU2_ERR_LIMIT, "container too large");
    c->items[c->n++] = item;
    return EMU2_OK;
}

static int need(vm *m, size_t n)
{
    return (size_t)(m->end - m->p) >= n;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t x = 0;
    for (int i = n - 1; i >= 0; i--)
        x = x << 8 | p[i];
    return x;
}

/* Pops items above the innermost MARK into a new tuple. */
static emu2_status build_tuple_from_mark(vm *m)
{
    if (!m->nmarks)
        return fail(m, EMU2_ERR_FORMAT, "TUPLE without MARK");
    uint32_t floor = m->marks[--m->nmarks];
    uint32_t t;
    emu2_status st = new_value(m, K_TUPLE, &t);
    for (uint32_t i = floor; st == EMU2_OK && i < m->sp; i++)
        st = append_item(m, t, m->stack[i]);
    if (st != EMU2_OK)
        return st;
    m->sp = floor;
    return push(m, t);
}

static emu2_status build_tuple_n(vm *m, uint32_t n)
{
    if (m->sp < stack_floor(m) + n)
        return fail(m, EMU2_ERR_FORMAT, "stack underflow building a tuple");
    uint32_t t;
    emu2_status st = new_value(m, K_TUPLE, &t);
    for (uint32_t i = m->sp - n; st == EMU2_OK && i < m->sp; i++)
        st = append_item(m, t, m->stack[i]);
    if (st != EMU2_OK)
        return st;
    m->sp -= n;
    return push(m, t);
}

static emu2_status op_string(vm *m, size_t len_bytes)
{
    if (!need(m, len_bytes))
        return fail(m, EMU2_ERR_FORMAT, "truncated string length");
    uint64_t len = le(m->p, (int)len_bytes);
    m->p += len_bytes;
    if (!need(m, len))
        return fail(m, EMU2_ERR_FORMAT, "string runs past the end");
    uint32_t v;
    emu2_status st = new_value(m, K_STR, &v);
    if (st != EMU2_OK)
        return st;
    m->vals[v].s = m->p;
    m->vals[v].slen = (uint32_t)len; /* len <= remaining bytes, and the pickle is < 4 GiB */
    m->p += len;
    return push(m, v);
}

static int str_is(const pval *v, const char *lit)
{
    return v->kind == K_STR && v->slen == strlen(lit) && !memcmp(v->s, lit, v->slen);
}

static emu2_status op_global(vm *m)
{
    const uint8_t *nl1 = need(m, 1) ? memchr(m->p, '\n', (size_t)(m->end - m->p) < 256 ? (size_t)(m->end - m->p) : 256) : NULL;
    if (!nl1)
        return fail(m, EMU2_ERR_FORMAT, "GLOBAL module name not terminated");
    const uint8_t *name = nl1 + 1;
    size_t rest = (size_t)(m->end - name);
    const uint8_t *nl2 = memchr(name, '\n', rest < 256 ? rest : 256);
    if (!nl2)
        return fail(m, EMU2_ERR_FORMAT, "GLOBAL name not terminated");
    char mod[256], nm[256];
    size_t ml = (size_t)(nl1 - m->p), nl = (size_t)(nl2 - name);
    memcpy(mod, m->p, ml);
    mod[ml] = '\0';
    memcpy(nm, name, nl);
    nm[nl] = '\0';
    m->p = nl2 + 1;

    static const struct {
        const char *name;
        emu2_dtype dt;
    } storages[] = {{"FloatStorage", EMU2_DT_F32},  {"HalfStorage", EMU2_DT_F16}, {"BFloat16Storage", EMU2_DT_BF16},
                    {"DoubleStorage", EMU2_DT_F64}, {"LongStorage", EMU2_DT_I64}, {"IntStorage", EMU2_DT_I32},
                    {"CharStorage", EMU2_DT_I8},    {"ByteStorage", EMU2_DT_U8},  {"BoolStorage", EMU2_DT_BOOL}};
    int g = -1;
    emu2_dtype dt = EMU2_DT_INVALID;
    if (!strcmp(mod, "collections") && !strcmp(nm, "OrderedDict"))
        g = G_ODICT;
    else if (!strcmp(mod, "torch._utils") && !strcmp(nm, "_rebuild_tensor_v2"))
        g = G_REBUILD_TENSOR;
    else if (!strcmp(mod, "torch._utils") && !strcmp(nm, "_rebuild_parameter"))
        g = G_REBUILD_PARAMETER;
    else if (!strcmp(mod, "torch"))
        for (size_t i = 0; i < sizeof storages / sizeof storages[0]; i++)
            if (!strcmp(nm, storages[i].name)) {
                g = G_STORAGE;
                dt = storages[i].dt;
            }
    if (g < 0) {
        for (char *c = mod; *c; c++) /* keep the message printable */
            if ((unsigned char)*c < 32 || (unsigned char)*c > 126)
                *c = '?';
        for (char *c = nm; *c; c++)
            if ((unsigned char)*c < 32 || (unsigned char)*c > 126)
                *c = '?';
        return emu2_fail(m->err, EMU2_ERR_UNSUPPORTED,
                         "pickle: refusing global '%.60s.%.60s' (only torch state-dict globals are allowed; nothing is executed)",
                         mod, nm);
    }
    uint32_t v;
    emu2_status st = new_value(m, K_GLOBAL, &v);
    if (st != EMU2_OK)
        return st;
    m->vals[v].global = (uint8_t)g;
    m->vals[v].dtype = dt;
    return push(m, v);
}

/* ('storage', torch.XStorage, key, location, numel) -> a storage record. */
static emu2_status op_persistent_id(vm *m)
{
    uint32_t pid = 0;
    emu2_status st = pop(m, &pid);
    if (st != EMU2_OK)
        return st;
    const pval *t = &m->vals[pid];
    if (t->kind != K_TUPLE || t->n != 5 || !str_is(&m->vals[t->items[0]], "storage"))
        return fail(m, EMU2_ERR_UNSUPPORTED, "persistent id is not ('storage', type, key, location, numel)");
    const pval *type = &m->vals[t->items[1]], *key = &m->vals[t->items[2]], *numel = &m->vals[t->items[4]];
    if (type->kind != K_GLOBAL || type->global != G_STORAGE)
        return fail(m, EMU2_ERR_UNSUPPORTED, "persistent id names no known torch storage type");
    if (key->kind != K_STR || key->slen == 0 || key->slen > 64 || memchr(key->s, '/', key->slen) ||
        memchr(key->s, 0, key->slen))
        return fail(m, EMU2_ERR_FORMAT, "storage key must be a short name without '/'");
    if (m->vals[t->items[3]].kind != K_STR)
        return fail(m, EMU2_ERR_FORMAT, "storage location is not a string");
    if (numel->kind != K_INT || numel->i < 0)
        return fail(m, EMU2_ERR_FORMAT, "storage size is not a non-negative integer");
    if (!grow((void **)&m->storages, &m->capstorages, m->nstorages + 1, sizeof *m->storages, MAX_VALUES))
        return fail(m, EMU2_ERR_LIMIT, "too many storages");
    storage_rec *s = &m->storages[m->nstorages];
    s->key = t->items[2];
    s->dtype = type->dtype;
    s->numel = (uint64_t)numel->i;
    return push_new(m, K_STORAGE, m->nstorages++);
}

static emu2_status rebuild_tensor(vm *m, const pval *args, uint32_t *out)
{
    if (args->n != 6 && args->n != 7)
        return fail(m, EMU2_ERR_UNSUPPORTED, "_rebuild_tensor_v2 expects 6 or 7 arguments");
    const pval *stor = &m->vals[args->items[0]], *off = &m->vals[args->items[1]];
    const pval *size = &m->vals[args->items[2]], *stride = &m->vals[args->items[3]];
    if (stor->kind != K_STORAGE)
        return fail(m, EMU2_ERR_FORMAT, "tensor storage is not a persistent storage");
    if (off->kind != K_INT || off->i < 0)
        return fail(m, EMU2_ERR_FORMAT, "tensor storage offset is not a non-negative integer");
    if (size->kind != K_TUPLE || stride->kind != K_TUPLE || size->n != stride->n)
        return fail(m, EMU2_ERR_FORMAT, "tensor size/stride are not tuples of equal length");
    if (size->n > EMU2_MAX_DIMS)
        return fail(m, EMU2_ERR_UNSUPPORTED, "tensor has more than 8 dimensions");
    tensor_rec rec = {.storage = (uint32_t)stor->i, .offset = (uint64_t)off->i, .ndim = (int)size->n};
    uint64_t numel = 1, expect = 1;
    for (int d = (int)size->n - 1; d >= 0; d--) {
        const pval *sz = &m->vals[size->items[d]], *sd = &m->vals[stride->items[d]];
        if (sz->kind != K_INT || sz->i < 0 || sd->kind != K_INT)
            return fail(m, EMU2_ERR_FORMAT, "tensor size/stride entries must be integers, sizes >= 0");
        rec.shape[d] = sz->i;
        if (!emu2_mul_u64(numel, (uint64_t)sz->i, &numel))
            return fail(m, EMU2_ERR_FORMAT, "tensor size overflows");
    }
    /* contiguous row-major: stride[d] == prod(size[d+1:]) for every dim of size > 1 */
    for (int d = (int)size->n - 1; d >= 0 && numel > 0; d--) {
        int64_t sz = rec.shape[d], sd = m->vals[stride->items[d]].i;
        if (sz > 1 && (sd < 0 || (uint64_t)sd != expect))
            return emu2_fail(m->err, EMU2_ERR_UNSUPPORTED,
                             "pickle: tensor is not contiguous row-major (dim %d: stride %lld, expected %llu); save it with .contiguous()",
                             d, (long long)sd, (unsigned long long)expect);
        expect *= (uint64_t)sz; /* <= numel, cannot overflow */
    }
    const storage_rec *s = &m->storages[rec.storage];
    uint64_t end;
    if (!emu2_add_u64(rec.offset, numel, &end) || end > s->numel)
        return fail(m, EMU2_ERR_FORMAT, "tensor extends past the end of its storage");
    if (!grow((void **)&m->tensors, &m->captensors, m->ntensors + 1, sizeof *m->tensors, MAX_VALUES))
        return fail(m, EMU2_ERR_LIMIT, "too many tensors");
    m->tensors[m->ntensors] = rec;
    uint32_t v;
    emu2_status st = new_value(m, K_TENSOR, &v);
    if (st != EMU2_OK)
        return st;
    m->vals[v].i = m->ntensors++;
    *out = v;
    return EMU2_OK;
}

static emu2_status op_reduce(vm *m)
{
    uint32_t args = 0, fn = 0;
    emu2_status st;
    if ((st = pop(m, &args)) != EMU2_OK || (st = pop(m, &fn)) != EMU2_OK)
        return st;
    const pval *f = &m->vals[fn], *a = &m->vals[args];
    if (f->kind != K_GLOBAL || a->kind != K_TUPLE)
        return fail(m, EMU2_ERR_UNSUPPORTED, "REDUCE of something that is not a whitelisted global");
    uint32_t out;
    switch (f->global) {
    case G_ODICT:
        if (a->n != 0)
            return fail(m, EMU2_ERR_UNSUPPORTED, "OrderedDict() with arguments");
        if ((st = new_value(m, K_DICT, &out)) != EMU2_OK)
            return st;
        break;
    case G_REBUILD_TENSOR:
        if ((st = rebuild_tensor(m, a, &out)) != EMU2_OK)
            return st;
        break;
    case G_REBUILD_PARAMETER:
        if (a->n < 1 || m->vals[a->items[0]].kind != K_TENSOR)
            return fail(m, EMU2_ERR_FORMAT, "_rebuild_parameter without a tensor");
        out = a->items[0];
        break;
    default:
        return fail(m, EMU2_ERR_UNSUPPORTED, "REDUCE of a storage class");
    }
    return push(m, out);
}

static emu2_status op_setitems(vm *m, int from_mark)
{
    uint32_t floor;
    if (from_mark) {
        if (!m->nmarks)
            return fail(m, EMU2_ERR_FORMAT, "SETITEMS without MARK");
        floor = m->marks[--m->nmarks];
    } else {
        if (m->sp < stack_floor(m) + 2)
            return fail(m, EMU2_ERR_FORMAT, "stack underflow in SETITEM");
        floor = m->sp - 2;
    }
    if ((m->sp - floor) % 2 || floor == 0 || floor - 1 < stack_floor(m))
        return fail(m, EMU2_ERR_FORMAT, "SETITEM(S) needs a dict and key/value pairs");
    uint32_t d = m->stack[floor - 1];
    if (m->vals[d].kind != K_DICT)
        return fail(m, EMU2_ERR_FORMAT, "SETITEM(S) on something that is not a dict");
    for (uint32_t i = floor; i < m->sp; i++) {
        emu2_status st = append_item(m, d, m->stack[i]);
        if (st != EMU2_OK)
            return st;
    }
    m->sp = floor;
    return EMU2_OK;
}

static emu2_status op_appends(vm *m, int from_mark)
{
    uint32_t floor;
    if (from_mark) {
        if (!m->nmarks)
            return fail(m, EMU2_ERR_FORMAT, "APPENDS without MARK");
        floor = m->marks[--m->nmarks];
    } else {
        if (m->sp < stack_floor(m) + 1)
            return fail(m, EMU2_ERR_FORMAT, "stack underflow in APPEND");
        floor = m->sp - 1;
    }
    if (floor == 0 || floor - 1 < stack_floor(m) || m->vals[m->stack[floor - 1]].kind != K_LIST)
        return fail(m, EMU2_ERR_FORMAT, "APPEND(S) on something that is not a list");
    uint32_t l = m->stack[floor - 1];
    for (uint32_t i = floor; i < m->sp; i++) {
        emu2_status st = append_item(m, l, m->stack[i]);
        if (st != EMU2_OK)
            return st;
    }
    m->sp = floor;
    return EMU2_OK;
}

static emu2_status op_build(vm *m)
{
    uint32_t state = 0, obj = 0;
    emu2_status st;
    if ((st = pop(m, &state)) != EMU2_OK || (st = pop(m, &obj)) != EMU2_OK)
        return st;
    uint8_t sk = m->vals[state].kind;
    /* OrderedDict state (the state dict's _metadata attribute) is harmless and unused. */
    if (m->vals[obj].kind != K_DICT || (sk != K_DICT && sk != K_NONE && sk != K_TUPLE))
        return fail(m, EMU2_ERR_UNSUPPORTED, "BUILD is only accepted on an OrderedDict");
    return push(m, obj);
}

static emu2_status memo_put(vm *m, uint64_t idx)
{
    if (m->sp <= stack_floor(m))
        return fail(m, EMU2_ERR_FORMAT, "memo put with an empty stack");
    if (idx >= MAX_MEMO)
        return fail(m, EMU2_ERR_LIMIT, "memo index too large");
    uint32_t old = m->capmemo;
    if (!grow((void **)&m->memo, &m->capmemo, (uint32_t)idx + 1, sizeof *m->memo, MAX_MEMO))
        return fail(m, EMU2_ERR_NOMEM, "out of memory for the memo");
    for (uint32_t i = old; i < m->capmemo; i++)
        m->memo[i] = NO_VALUE;
    m->memo[idx] = m->stack[m->sp - 1];
    if (idx >= m->nmemo)
        m->nmemo = (uint32_t)idx + 1;
    return EMU2_OK;
}

static emu2_status memo_get(vm *m, uint64_t idx)
{
    if (idx >= m->capmemo || m->memo[idx] == NO_VALUE)
        return fail(m, EMU2_ERR_FORMAT, "memo get of an unset index");
    return push(m, m->memo[idx]);
}

static emu2_status run(vm *m, uint32_t *result)
{
    while (m->p < m->end) {
        uint8_t op = *m->p++;
        emu2_status st = EMU2_OK;
        switch (op) {
        case 0x80: /* PROTO */
            if (!need(m, 1) || *m->p < 2 || *m->p > 5)
                return fail(m, EMU2_ERR_UNSUPPORTED, "pickle protocol must be 2..5");
            m->p++;
            break;
        case 0x95: /* FRAME (protocol 4): only a length hint */
            if (!need(m, 8))
                return fail(m, EMU2_ERR_FORMAT, "truncated FRAME");
            m->p += 8;
            break;
        case '}': st = push_new(m, K_DICT, 0); break;
        case ']': st = push_new(m, K_LIST, 0); break;
        case ')': st = push_new(m, K_TUPLE, 0); break;
        case 'N': st = push_new(m, K_NONE, 0); break;
        case 0x88: st = push_new(m, K_BOOL, 1); break;
        case 0x89: st = push_new(m, K_BOOL, 0); break;
        case '(':
            if (m->nmarks >= MAX_MARKS)
                return fail(m, EMU2_ERR_LIMIT, "nesting too deep");
            m->marks[m->nmarks++] = m->sp;
            break;
        case 'K': case 'M': case 'J': { /* BININT1, BININT2, BININT */
            int n = op == 'K' ? 1 : op == 'M' ? 2 : 4;
            if (!need(m, (size_t)n))
                return fail(m, EMU2_ERR_FORMAT, "truncated integer");
            int64_t x = (int64_t)le(m->p, n);
            if (op == 'J')
                x = (int32_t)(uint32_t)x;
            m->p += n;
            st = push_new(m, K_INT, x);
            break;
        }
        case 0x8a: { /* LONG1: little-endian two's complement, up to 8 bytes here */
            if (!need(m, 1) || m->p[0] > 8 || !need(m, 1u + m->p[0]))
                return fail(m, EMU2_ERR_UNSUPPORTED, "LONG1 integer wider than 64 bits or truncated");
            int n = m->p[0];
            uint64_t x = n ? le(m->p + 1, n) : 0;
            if (n && n < 8 && (m->p[n] & 0x80))
                x |= ~0ull << (8 * n);
            m->p += 1 + n;
            st = push_new(m, K_INT, (int64_t)x);
            break;
        }
        case 'G': /* BINFLOAT: kept only as an opaque number */
            if (!need(m, 8))
                return fail(m, EMU2_ERR_FORMAT, "truncated float");
            m->p += 8;
            st = push_new(m, K_FLOAT, 0);
            break;
        case 'X': st = op_string(m, 4); break;     /* BINUNICODE */
        case 0x8c: st = op_string(m, 1); break;    /* SHORT_BINUNICODE */
        case 'U': st = op_string(m, 1); break;     /* SHORT_BINSTRING */
        case 'T': st = op_string(m, 4); break;     /* BINSTRING */
        case 't': st = build_tuple_from_mark(m); break;
        case 0x85: st = build_tuple_n(m, 1); break;
        case 0x86: st = build_tuple_n(m, 2); break;
        case 0x87: st = build_tuple_n(m, 3); break;
        case 'q': case 'r': { /* BINPUT, LONG_BINPUT */
            int n = op == 'q' ? 1 : 4;
            if (!need(m, (size_t)n))
                return fail(m, EMU2_ERR_FORMAT, "truncated memo index");
            uint64_t idx = le(m->p, n);
            m->p += n;
            st = memo_put(m, idx);
            break;
        }
        case 0x94: st = memo_put(m, m->nmemo); break; /* MEMOIZE */
        case 'h': case 'j': {
            int n = op == 'h' ? 1 : 4;
            if (!need(m, (size_t)n))
                return fail(m, EMU2_ERR_FORMAT, "truncated memo index");
            uint64_t idx = le(m->p, n);
            m->p += n;
            st = memo_get(m, idx);
            break;
        }
        case 'c': st = op_global(m); break;
        case 'Q': st = op_persistent_id(m); break;
        case 'R': st = op_reduce(m); break;
        case 's': st = op_setitems(m, 0); break;
        case 'u': st = op_setitems(m, 1); break;
        case 'a': st = op_appends(m, 0); break;
        case 'e': st = op_appends(m, 1); break;
        case 'b': st = op_build(m); break;
        case '.': /* STOP */
            if (m->nmarks)
                return fail(m, EMU2_ERR_FORMAT, "STOP inside an unclosed MARK");
            return pop(m, result);
        default: {
            char msg[64];
            snprintf(msg, sizeof msg, "unsupported opcode 0x%02x", op);
            m->p--;
            return fail(m, EMU2_ERR_UNSUPPORTED, msg);
        }
        }
        if (st != EMU2_OK)
            return st;
    }
    return fail(m, EMU2_ERR_FORMAT, "truncated: no STOP opcode");
}

static char *dup_bytes(const uint8_t *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static emu2_status collect(vm *m, uint32_t result, emu2_pickle_state_dict *out)
{
    const pval *d = &m->vals[result];
    if (d->kind != K_DICT)
        return emu2_fail(m->err, EMU2_ERR_UNSUPPORTED, "pickle: the top-level object is not a dict of tensors");
    uint32_t n = d->n / 2;
    out->tensors = calloc(n ? n : 1, sizeof *out->tensors);
    if (!out->tensors)
        return emu2_fail(m->err, EMU2_ERR_NOMEM, "pickle: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const pval *k = &m->vals[d->items[2 * i]], *v = &m->vals[d->items[2 * i + 1]];
        if (k->kind != K_STR || k->slen == 0 || k->slen > MAX_NAME || memchr(k->s, 0, k->slen))
            return emu2_fail(m->err, EMU2_ERR_FORMAT, "pickle: state dict key %u is not a valid name", i);
        if (v->kind != K_TENSOR)
            return emu2_fail(m->err, EMU2_ERR_UNSUPPORTED, "pickle: value of '%.*s' is not a tensor",
                             (int)(k->slen > 200 ? 200 : k->slen), (const char *)k->s);
        const tensor_rec *r = &m->tensors[v->i];
        const storage_rec *s = &m->storages[r->storage];
        const pval *key = &m->vals[s->key];
        emu2_pickle_tensor *t = &out->tensors[out->n_tensors];
        t->name = dup_bytes(k->s, k->slen);
        t->storage_key = dup_bytes(key->s, key->slen);
        out->n_tensors++;
        if (!t->name || !t->storage_key)
            return emu2_fail(m->err, EMU2_ERR_NOMEM, "pickle: out of memory");
        t->dtype = s->dtype;
        t->storage_numel = s->numel;
        t->storage_offset = r->offset;
        t->ndim = r->ndim;
        memcpy(t->shape, r->shape, sizeof t->shape);
    }
    return EMU2_OK;
}

emu2_status emu2_pickle_load_state_dict(const uint8_t *buf, size_t len, emu2_pickle_state_dict *out,
                                        emu2_error *err)
{
    memset(out, 0, sizeof *out);
    if (len > UINT32_MAX)
        return emu2_fail(err, EMU2_ERR_LIMIT, "pickle: data.pkl larger than 4 GiB");
    vm m = {.start = buf, .p = buf, .end = buf + len, .err = err};
    uint32_t result = 0;
    emu2_status st = run(&m, &result);
    if (st == EMU2_OK)
        st = collect(&m, result, out);
    for (uint32_t i = 0; i < m.nvals; i++)
        free(m.vals[i].items);
    free(m.vals);
    free(m.stack);
    free(m.memo);
    free(m.storages);
    free(m.tensors);
    if (st != EMU2_OK)
        emu2_pickle_state_dict_free(out);
    return st;
}

void emu2_pickle_state_dict_free(emu2_pickle_state_dict *sd)
{
    if (!sd)
        return;
    for (size_t i = 0; i < sd->n_tensors; i++) {
        free(sd->tensors[i].name);
        free(sd->tensors[i].storage_key);
    }
    free(sd->tensors);
    sd->tensors = NULL;
    sd->n_tensors = 0;
}
