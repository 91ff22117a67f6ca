/* cli_util.h: small helpers the emu2 subcommands share: reading input files, parsing numbers,
 * a load progress bar on terminals. */
#ifndef EMU2_CLI_UTIL_H
#define EMU2_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Reads a whole file; reads at most max_bytes + 1 bytes so an oversized file is caught by the
 * caller's limit without reading it all. NULL (message "emu2 CMD: PATH: why" printed) on failure. */
unsigned char *emu2_cli_read_file(const char *cmd, const char *path, size_t max_bytes, size_t *n);

/* Strict number parsing of an option value; print "emu2 CMD: OPTION: ..." and return -1 on error. */
int emu2_cli_parse_int(const char *cmd, const char *opt, const char *s, long min, long max, long *out);
int emu2_cli_parse_float(const char *cmd, const char *opt, const char *s, double min, double max, double *out);

/* emu2_progress_fn that draws a bar on stderr when stderr is a terminal (user: const char *label). */
int emu2_cli_progress(void *user, const char *stage, uint64_t done, uint64_t total);

#endif
