/* test_image_support.h: helpers shared by the image tests: whole-file reading, SHA-256 (the
 * goldens store hashes of expected pixels), and the goldens.tsv reader. Test-only code. */
#ifndef EMU2_TEST_IMAGE_SUPPORT_H
#define EMU2_TEST_IMAGE_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline unsigned char *read_whole_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        unsigned char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    *n = len;
    return buf;
}

/* ---------------------------------------------------------------- SHA-256 (FIPS 180-4) */

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;
    unsigned char block[64];
    size_t used;
} sha256_ctx;

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t sha256_rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static inline void sha256_block(sha256_ctx *c, const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = sha256_rotr(w[i - 15], 7) ^ sha256_rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = sha256_rotr(w[i - 2], 17) ^ sha256_rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3];
    uint32_t e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (sha256_rotr(e, 6) ^ sha256_rotr(e, 11) ^ sha256_rotr(e, 25)) +
                      ((e & f) ^ (~e & g)) + sha256_k[i] + w[i];
        uint32_t t2 = (sha256_rotr(a, 2) ^ sha256_rotr(a, 13) ^ sha256_rotr(a, 22)) +
                      ((a & b) ^ (a & cc) ^ (b & cc));
        h = g; g = f; f = e; e = d + t1;
        d = cc; cc = b; b = a; a = t1 + t2;
    }
    c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d;
    c->h[4] += e; c->h[5] += f; c->h[6] += g; c->h[7] += h;
}

/* hex must hold 65 chars */
static inline void sha256_hex(const void *data, size_t n, char *hex)
{
    sha256_ctx c = {{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
                     0x1f83d9ab, 0x5be0cd19},
                    0, {0}, 0};
    const unsigned char *p = data;
    c.len = (uint64_t)n * 8;
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        sha256_block(&c, p + i);
    unsigned char tail[128] = {0};
    size_t rest = n - i;
    if (rest)
        memcpy(tail, p + i, rest);
    tail[rest] = 0x80;
    size_t tail_len = rest + 9 <= 64 ? 64 : 128;
    for (int b = 0; b < 8; b++)
        tail[tail_len - 1 - b] = (unsigned char)(c.len >> (8 * b));
    for (size_t off = 0; off < tail_len; off += 64)
        sha256_block(&c, tail + off);
    for (int k = 0; k < 8; k++)
        snprintf(hex + 8 * k, 9, "%08x", c.h[k]);
}

/* ---------------------------------------------------------------- goldens.tsv */

typedef struct golden_case {
    char kind[16];   /* decode | resize | error */
    char input[256]; /* inputs/NAME or seed:NAME */
    int w, h;
    char sha[65];
    char expected[256]; /* expected/NAME.png or "-" */
} golden_case;

/* Reads the next case; returns 0 at end of file. Comment lines are skipped. */
static inline int golden_next(FILE *f, golden_case *c)
{
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        memset(c, 0, sizeof *c);
        if (!strncmp(line, "truncate\t", 9)) {
            /* truncate INPUT LEN ok SHA | error: w = LEN, expected = "ok" / "error" */
            strcpy(c->kind, "truncate");
            if (sscanf(line + 9, "%255s\t%d\t%255s\t%64s", c->input, &c->w, c->expected,
                       c->sha) >= 3)
                return 1;
            strcpy(c->kind, "bad");
            return 1;
        }
        if (!strncmp(line, "error\t", 6)) {
            strcpy(c->kind, "error");
            sscanf(line + 6, "%255[^\t\n]", c->input);
            return 1;
        }
        if (sscanf(line, "%15s\t%255s\t%d\t%d\t%64s\t%255s", c->kind, c->input, &c->w, &c->h,
                   c->sha, c->expected) == 6)
            return 1;
        fprintf(stdout, "    goldens.tsv: cannot parse line: %s", line);
        strcpy(c->kind, "bad");
        return 1;
    }
    return 0;
}

#endif
