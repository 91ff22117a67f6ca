/* token_matcher.c: see token_matcher.h. Nodes live in one array; children are a sibling list,
 * except the root, which has a 256-entry table because every text position starts there. */
#include "text/token_matcher.h"

#include <stdlib.h>

#include "common/error.h"

typedef struct node {
    int32_t first_child, next_sibling, value;
    unsigned char byte;
} node;

struct emu2_token_matcher {
    int32_t root[256];
    node *nodes;
    size_t n_nodes, cap;
};

emu2_status emu2_token_matcher_new(emu2_token_matcher **out, emu2_error *err)
{
    emu2_token_matcher *m = calloc(1, sizeof *m);
    if (!m)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the token matcher");
    for (int i = 0; i < 256; i++)
        m->root[i] = -1;
    *out = m;
    return EMU2_OK;
}

void emu2_token_matcher_free(emu2_token_matcher *m)
{
    if (m) {
        free(m->nodes);
        free(m);
    }
}

static emu2_status new_node(emu2_token_matcher *m, unsigned char byte, int32_t *index,
                            emu2_error *err)
{
    if (m->n_nodes == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        if (cap > INT32_MAX)
            return emu2_fail(err, EMU2_ERR_LIMIT, "too many added tokens");
        node *p = realloc(m->nodes, cap * sizeof *p);
        if (!p)
            return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory for the token matcher");
        m->nodes = p;
        m->cap = cap;
    }
    node *nd = &m->nodes[m->n_nodes];
    nd->first_child = nd->next_sibling = nd->value = -1;
    nd->byte = byte;
    *index = (int32_t)m->n_nodes++;
    return EMU2_OK;
}

static int32_t child(const emu2_token_matcher *m, int32_t parent, unsigned char byte)
{
    for (int32_t c = m->nodes[parent].first_child; c >= 0; c = m->nodes[c].next_sibling)
        if (m->nodes[c].byte == byte)
            return c;
    return -1;
}

emu2_status emu2_token_matcher_add(emu2_token_matcher *m, const char *s, size_t len, int32_t value,
                                   emu2_error *err)
{
    if (!len || value < 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "empty token or negative value");
    const unsigned char *u = (const unsigned char *)s;
    int32_t cur = m->root[u[0]];
    if (cur < 0) {
        emu2_status st = new_node(m, u[0], &cur, err);
        if (st != EMU2_OK)
            return st;
        m->root[u[0]] = cur;
    }
    for (size_t i = 1; i < len; i++) {
        int32_t next = child(m, cur, u[i]);
        if (next < 0) {
            emu2_status st = new_node(m, u[i], &next, err);
            if (st != EMU2_OK)
                return st;
            m->nodes[next].next_sibling = m->nodes[cur].first_child;
            m->nodes[cur].first_child = next;
        }
        cur = next;
    }
    if (m->nodes[cur].value < 0)
        m->nodes[cur].value = value;
    return EMU2_OK;
}

size_t emu2_token_matcher_longest(const emu2_token_matcher *m, const char *text, size_t n,
                                  size_t pos, int32_t *value)
{
    const unsigned char *u = (const unsigned char *)text;
    if (pos >= n)
        return 0;
    int32_t cur = m->root[u[pos]];
    size_t best = 0;
    for (size_t i = pos + 1; cur >= 0; i++) {
        if (m->nodes[cur].value >= 0) {
            best = i - pos;
            *value = m->nodes[cur].value;
        }
        if (i >= n)
            break;
        cur = child(m, cur, u[i]);
    }
    return best;
}

size_t emu2_token_matcher_find(const emu2_token_matcher *m, const char *text, size_t n, size_t pos,
                               size_t *len, int32_t *value)
{
    const unsigned char *u = (const unsigned char *)text;
    for (; pos < n; pos++) {
        if (m->root[u[pos]] < 0)
            continue;
        size_t l = emu2_token_matcher_longest(m, text, n, pos, value);
        if (l) {
            *len = l;
            return pos;
        }
    }
    *len = 0;
    return n;
}
