/* commands.h: the emu2 subcommands, one file each (cmd_<name>.c). Each returns the process exit code:
 * 0 success, 1 failure of the work (message on stderr), 2 usage error. */
#ifndef EMU2_CLI_COMMANDS_H
#define EMU2_CLI_COMMANDS_H

int emu2_cmd_inspect(int argc, char **argv);
int emu2_cmd_tokenize(int argc, char **argv);
int emu2_cmd_preprocess(int argc, char **argv);
int emu2_cmd_describe(int argc, char **argv);
int emu2_cmd_generate(int argc, char **argv);
int emu2_cmd_convert(int argc, char **argv);
int emu2_cmd_gen_image(int argc, char **argv);

#endif
