/* checkpoint_names.c: stored tensor name -> canonical name (see checkpoint.h). */
#include <stdio.h>
#include <string.h>

#include "io/checkpoint.h"

static int starts(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int ends(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

int emu2_canonical_name(const char *stored, char *buf, size_t size)
{
    if (ends(stored, "rotary_emb.inv_freq"))
        return 0;
    const char *s = stored;
    if (starts(s, "multimodal_encoder.")) /* Emu2-Gen's native single file */
        s += strlen("multimodal_encoder.");
    if (starts(s, "model.visual.") || starts(s, "model.decoder."))
        s += strlen("model.");
    int kind = 1;
    size_t len = strlen(s);
    if (ends(s, ".attn.qkv.bias")) {
        len -= strlen("qkv.bias");
        kind = 2;
    }
    if (len >= size)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return kind;
}
