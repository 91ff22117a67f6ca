/* cmd_inspect.c: `emu2 inspect [--json] DIR`: the checkpoint of a model folder against its config.
 * Exit 0 when it matches, 1 when it does not (or cannot be read), 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "emu2.h"
#include "io/inspect.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: emu2 inspect [--json] [--tensors] MODEL_DIR\n"
               "  Checks MODEL_DIR's weights (safetensors or torch .bin, single or sharded, HF or native names)\n"
               "  against its config.json: tensors, dtypes, parameters per component, and every missing,\n"
               "  unexpected or mis-shaped tensor. Reads headers only. Exit 0 when everything matches.\n"
               "  --json     print the report as JSON\n"
               "  --tensors  also list every tensor: canonical name, dtype, shape, file (and stored name)\n");
}

int emu2_cmd_inspect(int argc, char **argv)
{
    int json = 0, tensors = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--tensors")) {
            tensors = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "emu2 inspect: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            dir = argv[i];
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    emu2_error err = {0};
    emu2_inspect_result r;
    if (emu2_inspect_run(dir, &r, &err) != EMU2_OK) {
        fprintf(stderr, "emu2 inspect: %s\n", err.message);
        return 1;
    }
    char *report = json ? emu2_inspect_format_json(&r, tensors) : emu2_inspect_format_text(&r, tensors);
    int rc = r.n_problems ? 1 : 0;
    if (!report) {
        fprintf(stderr, "emu2 inspect: out of memory\n");
        rc = 1;
    } else {
        fputs(report, stdout);
        if (json)
            fputc('\n', stdout);
    }
    if (r.n_problems)
        fprintf(stderr, "emu2 inspect: %s does not match its config.json (%zu problem(s))\n", dir, r.n_problems);
    free(report);
    emu2_inspect_result_free(&r);
    return rc;
}
