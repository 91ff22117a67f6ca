/* cli_util.h: small helpers the emu2 subcommands share: reading input files, parsing numbers,
 * a load progress bar on terminals, loading a model. */
#ifndef EMU2_CLI_UTIL_H
#define EMU2_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "emu2.h"

/* Reads a whole file; reads at most max_bytes + 1 bytes so an oversized file is caught by the
 * caller's limit without reading it all. NULL (message "emu2 CMD: PATH: why" printed) on failure. */
unsigned char *emu2_cli_read_file(const char *cmd, const char *path, size_t max_bytes, size_t *n);

/* Strict number parsing of an option value; print "emu2 CMD: OPTION: ..." and return -1 on error. */
int emu2_cli_parse_int(const char *cmd, const char *opt, const char *s, long min, long max, long *out);
int emu2_cli_parse_float(const char *cmd, const char *opt, const char *s, double min, double max, double *out);
/* The same, storing into an int / a float option field. */
int emu2_cli_int_option(const char *cmd, const char *opt, const char *s, long min, long max, int *out);
int emu2_cli_float_option(const char *cmd, const char *opt, const char *s, double min, double max, float *out);

/* Reads the n image files (each at most EMU2_IMAGE_DEFAULT_MAX_BYTES); *failed = 1 when one could not be
 * read (message printed) or memory ran out (then NULL). Free with emu2_cli_free_images. */
emu2_image_bytes *emu2_cli_read_images(const char *cmd, const char **paths, int n, int *failed);
void emu2_cli_free_images(emu2_image_bytes *imgs, int n);

/* The usage lines of --threads and --device, which every model-running command takes, with the
 * descriptions starting at column width + 2 (as the command's other lines). */
void emu2_cli_usage_threads_device(FILE *f, int width);
/* Default load options with the --threads and --device values (device NULL: the default). */
void emu2_cli_load_options(emu2_load_options *lo, int threads, const char *device);
/* Loads a model with the load progress bar; NULL (message "emu2 CMD: why" printed) on failure. */
emu2_model *emu2_cli_load_model(const char *cmd, const char *dir, emu2_load_options *lo);

/* emu2_progress_fn that draws a bar on stderr when stderr is a terminal (user: const char *label). */
int emu2_cli_progress(void *user, const char *stage, uint64_t done, uint64_t total);

#endif
