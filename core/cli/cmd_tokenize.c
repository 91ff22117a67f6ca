/* cmd_tokenize.c: placeholder until the owning work lands. */
#include <stdio.h>

#include "cli/commands.h"

int emu2_cmd_tokenize(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "emu2 tokenize: not built yet\n");
    return 1;
}
