/* device_split.c: the multi-GPU layer split's device list and plan (device_split.h). */
#include "ops/device_split.h"

#include <stdlib.h>
#include <string.h>

emu2_status emu2_device_list_parse(const char *device, emu2_device_list *out, emu2_error *err)
{
    memset(out, 0, sizeof *out);
    if (!device || strncmp(device, "cuda:", 5) != 0)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "device \"%.100s\": want cuda:N or cuda:N,M,...",
                         device ? device : "(null)");
    const char *p = device + 5;
    for (;;) {
        if (*p < '0' || *p > '9')
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "device \"%.100s\": expected a GPU number at \"%.20s\"",
                             device, p);
        long v = 0;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p++ - '0');
            if (v > EMU2_SPLIT_MAX_INDEX)
                return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "device \"%.100s\": GPU number above %d", device,
                                 EMU2_SPLIT_MAX_INDEX);
        }
        if (out->n == EMU2_SPLIT_MAX_DEVICES)
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "device \"%.100s\": more than %d GPUs", device,
                             EMU2_SPLIT_MAX_DEVICES);
        out->index[out->n++] = (int)v;
        if (*p == '\0')
            return EMU2_OK;
        if (*p != ',')
            return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "device \"%.100s\": unexpected \"%.20s\"", device, p);
        p++;
    }
}

/* Bytes of stage s of k covering layers [a, b) given the prefix sums. */
static uint64_t stage_bytes(const uint64_t *prefix, size_t a, size_t b, int s, int k, uint64_t first, uint64_t last)
{
    uint64_t v = prefix[b] - prefix[a];
    if (s == 0)
        v += first;
    if (s == k - 1)
        v += last;
    return v;
}

emu2_status emu2_split_plan_make(const uint64_t *layer_bytes, size_t n_layers, uint64_t first_bytes,
                                 uint64_t last_bytes, const emu2_device_list *devices, const uint64_t *capacity,
                                 emu2_split_plan *out, emu2_error *err)
{
    memset(out, 0, sizeof *out);
    int k = devices ? devices->n : 0;
    if (k < 1 || k > EMU2_SPLIT_MAX_DEVICES)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "layer split: %d devices (want 1 to %d)", k,
                         EMU2_SPLIT_MAX_DEVICES);
    if (n_layers < (size_t)k || (n_layers && !layer_bytes))
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "layer split: %zu decoder layers cannot fill %d devices",
                         n_layers, k);
    /* prefix sums (a total above 2^64 bytes is no real model) */
    uint64_t *prefix = malloc((n_layers + 1) * sizeof *prefix);
    /* best[s * (n+1) + i]: the least possible fullest-stage bytes with stages 0..s covering layers [0, i);
     * cut[...]: where stage s starts in that plan */
    size_t cols = n_layers + 1;
    uint64_t *best = malloc((size_t)k * cols * sizeof *best);
    size_t *cut = malloc((size_t)k * cols * sizeof *cut);
    if (!prefix || !best || !cut) {
        free(prefix), free(best), free(cut);
        return emu2_fail(err, EMU2_ERR_NOMEM, "layer split: out of memory");
    }
    prefix[0] = 0;
    for (size_t i = 0; i < n_layers; i++) {
        if (layer_bytes[i] > UINT64_MAX / 4 - prefix[i]) {
            free(prefix), free(best), free(cut);
            return emu2_fail(err, EMU2_ERR_LIMIT, "layer split: layer sizes overflow");
        }
        prefix[i + 1] = prefix[i] + layer_bytes[i];
    }
    if (first_bytes > UINT64_MAX / 4 || last_bytes > UINT64_MAX / 4) {
        free(prefix), free(best), free(cut);
        return emu2_fail(err, EMU2_ERR_LIMIT, "layer split: sizes overflow");
    }
    for (int s = 0; s < k; s++)
        for (size_t i = 0; i < cols; i++) {
            best[s * cols + i] = UINT64_MAX;
            cut[s * cols + i] = 0;
            if (i < (size_t)s + 1) /* every stage needs a layer */
                continue;
            if (s == 0) {
                best[i] = stage_bytes(prefix, 0, i, 0, k, first_bytes, last_bytes);
                continue;
            }
            /* the latest start that is as good: earlier stages keep as many layers as they can */
            for (size_t a = (size_t)s; a < i; a++) {
                uint64_t prev = best[(s - 1) * cols + a];
                if (prev == UINT64_MAX)
                    continue;
                uint64_t here = stage_bytes(prefix, a, i, s, k, first_bytes, last_bytes);
                uint64_t v = prev > here ? prev : here;
                if (v <= best[s * cols + i]) {
                    best[s * cols + i] = v;
                    cut[s * cols + i] = a;
                }
            }
        }
    size_t end = n_layers;
    for (int s = k - 1; s >= 0; s--) {
        size_t start = s == 0 ? 0 : cut[s * cols + end];
        emu2_split_stage *st = &out->stage[s];
        st->device = devices->index[s];
        st->first_layer = start;
        st->n_layers = end - start;
        st->bytes = stage_bytes(prefix, start, end, s, k, first_bytes, last_bytes);
        end = start;
    }
    out->n_stages = k;
    free(prefix), free(best), free(cut);
    for (int s = 0; capacity && s < k; s++)
        if (out->stage[s].bytes > capacity[s])
            return emu2_fail(err, EMU2_ERR_LIMIT,
                             "layer split: stage %d (GPU %d, layers %zu-%zu) needs %.2f GB, %.2f GB available", s,
                             out->stage[s].device, out->stage[s].first_layer,
                             out->stage[s].first_layer + out->stage[s].n_layers - 1,
                             (double)out->stage[s].bytes / 1e9, (double)capacity[s] / 1e9);
    return EMU2_OK;
}
