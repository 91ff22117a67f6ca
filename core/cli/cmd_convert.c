/* cmd_convert.c: `emu2 convert SRC DST`: rewrites a model folder's weights as sharded safetensors,
 * optionally cast (--dtype) and with the LLM linears quantized (--quant), copying config and
 * tokenizer files, then verifies what it wrote (core/quant/convert.h, docs/QUANT.md).
 * Exit 0 on success, 1 when the work fails, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "io/checkpoint.h"
#include "quant/convert.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: emu2 convert SRC_DIR DST_DIR [options]\n"
               "  Rewrites SRC_DIR's weights (safetensors or torch .bin, single or sharded) into DST_DIR as\n"
               "  sharded safetensors (native names) + model.safetensors.index.json, copies config.json and\n"
               "  the tokenizer files, and verifies what it wrote by reading it back.\n"
               "options:\n"
               "  --dtype bf16|f16|f32      cast the float tensors (default: keep each tensor's dtype)\n"
               "  --quant Q                 quantize the LLM linears (q/k/v/o, gate/up/down): none (default),\n"
               "                            int8, int4 (int4 g32, down_proj int8), int4-g32, int4-g64, int4-g128\n"
               "  --keep vision             copy the vision tower exactly as stored (no --dtype cast)\n"
               "  --shard-size N[K|M|G]     largest shard (default 4G)\n"
               "  --dry-run                 print what would be written, write nothing (DST_DIR optional)\n"
               "  --list                    also list every output tensor: name, dtype, shape, bytes, shard\n");
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1ull << 30, end++;
    if (end == s || *end || v == 0 || v > (1ull << 50) / mul)
        return -1;
    *out = (uint64_t)v * mul;
    return 0;
}

static void print_plan(const emu2_convert_plan *p, int list)
{
    if (list)
        for (size_t i = 0; i < p->n; i++) {
            const emu2_convert_entry *e = &p->e[i];
            printf("%s %s [", e->name, emu2_dtype_name(e->dtype));
            for (int d = 0; d < e->ndim; d++)
                printf("%s%lld", d ? ", " : "", (long long)e->shape[d]);
            printf("] %llu shard %zu\n", (unsigned long long)e->nbytes, e->shard + 1);
        }
    printf("tensors: %zu\nshards: %zu\nbytes: %llu\nparams: %llu\n", p->n, p->n_shards,
           (unsigned long long)p->total_bytes, (unsigned long long)p->params);
    printf("llm_params: %llu\nllm_bytes: %llu\nllm_bytes_per_param: %.4f\n", (unsigned long long)p->llm_params,
           (unsigned long long)p->llm_bytes, p->llm_params ? (double)p->llm_bytes / (double)p->llm_params : 0.0);
    printf("quantized_params: %llu\nquantized_bytes: %llu\nquantized_bytes_per_param: %.4f\n",
           (unsigned long long)p->linear_params, (unsigned long long)p->linear_bytes,
           p->linear_params ? (double)p->linear_bytes / (double)p->linear_params : 0.0);
}

int emu2_cmd_convert(int argc, char **argv)
{
    const char *dirs[2] = {NULL, NULL};
    int n_dirs = 0, dry = 0, list = 0;
    emu2_convert_options o;
    memset(&o, 0, sizeof o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int needs = !strcmp(a, "--dtype") || !strcmp(a, "--quant") || !strcmp(a, "--keep") || !strcmp(a, "--shard-size");
        if (needs && !v) {
            fprintf(stderr, "emu2 convert: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--dtype")) {
            i++;
            o.dtype = !strcmp(v, "bf16") ? EMU2_DT_BF16 : !strcmp(v, "f16") ? EMU2_DT_F16 : !strcmp(v, "f32") ? EMU2_DT_F32
                                                                                                           : EMU2_DT_INVALID;
            if (o.dtype == EMU2_DT_INVALID) {
                fprintf(stderr, "emu2 convert: --dtype must be bf16, f16 or f32, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--quant")) {
            i++;
            emu2_quant_spec spec;
            emu2_error err;
            if (emu2_quant_parse(v, &spec, &err) != EMU2_OK) {
                fprintf(stderr, "emu2 convert: %s\n", err.message);
                return 2;
            }
            o.quant = v;
        } else if (!strcmp(a, "--keep")) {
            i++;
            if (strcmp(v, "vision")) {
                fprintf(stderr, "emu2 convert: --keep takes 'vision', got '%s'\n", v);
                return 2;
            }
            o.keep_vision = 1;
        } else if (!strcmp(a, "--shard-size")) {
            i++;
            if (parse_size(v, &o.shard_bytes)) {
                fprintf(stderr, "emu2 convert: --shard-size needs a size like 4G or 500M, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--dry-run")) {
            dry = 1;
        } else if (!strcmp(a, "--list")) {
            list = 1;
        } else if (a[0] == '-' || n_dirs == 2) {
            fprintf(stderr, "emu2 convert: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            dirs[n_dirs++] = a;
        }
    }
    if (n_dirs < (dry ? 1 : 2)) {
        usage(stderr);
        return 2;
    }
    emu2_error err = {0};
    emu2_checkpoint *ck;
    if (emu2_checkpoint_open(dirs[0], &ck, &err) != EMU2_OK) {
        fprintf(stderr, "emu2 convert: %s\n", err.message);
        return 1;
    }
    emu2_convert_plan plan;
    int rc = 0;
    if (emu2_convert_plan_make(ck, &o, &plan, &err) != EMU2_OK) {
        fprintf(stderr, "emu2 convert: %s\n", err.message);
        emu2_checkpoint_close(ck);
        return 1;
    }
    if (!dry) {
        o.progress = emu2_cli_progress;
        o.progress_user = "converting";
        if (emu2_convert_write(dirs[0], dirs[1], &plan, &o, &err) != EMU2_OK) {
            fprintf(stderr, "\nemu2 convert: %s\n", err.message);
            rc = 1;
        }
    }
    if (rc == 0) {
        print_plan(&plan, list);
        if (!dry)
            printf("written: %s (verified)\n", dirs[1]);
    }
    emu2_convert_plan_free(&plan);
    emu2_checkpoint_close(ck);
    return rc;
}
