/* main.c: the emu2 command; dispatches to one function per subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "emu2.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"describe", emu2_cmd_describe, "describe images (one caption per image)"},
    {"generate", emu2_cmd_generate, "answer a prompt with one placeholder per image"},
    {"inspect", emu2_cmd_inspect, "check a model folder: tensors, dtypes, parameter counts, mismatches"},
    {"tokenize", emu2_cmd_tokenize, "print the token ids of a prompt"},
    {"preprocess", emu2_cmd_preprocess, "write an image's normalized CHW float32 tensor"},
    {"convert", emu2_cmd_convert, "rewrite a model's weights: sharded safetensors, --dtype, --quant int8/int4"},
    {"gen-image", emu2_cmd_gen_image, "draw an image with an Emu2-Gen model (prompt and/or images -> PNG)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: emu2 COMMAND [ARGS...]   (emu2 COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("emu2 %s\n", emu2_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "emu2: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
