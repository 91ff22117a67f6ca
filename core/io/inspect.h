/* inspect.h: a model folder's checkpoint compared with what its config.json requires (`emu2 inspect`,
 * emu2_inspect). Reads only headers: no tensor data is touched. */
#ifndef EMU2_IO_INSPECT_H
#define EMU2_IO_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#include "common/tensor.h"
#include "emu2.h"
#include "io/config.h"
#include "io/layout.h"

typedef enum emu2_problem_kind {
    EMU2_PROBLEM_MISSING,
    EMU2_PROBLEM_UNEXPECTED,
    EMU2_PROBLEM_SHAPE,
    EMU2_PROBLEM_DTYPE /* not a floating-point tensor */
} emu2_problem_kind;

typedef struct emu2_inspect_problem {
    emu2_problem_kind kind;
    char name[160];
    int expected_ndim, found_ndim;
    int64_t expected_shape[EMU2_MAX_DIMS], found_shape[EMU2_MAX_DIMS];
    emu2_dtype dtype;
} emu2_inspect_problem;

typedef struct emu2_inspect_tensor {
    char name[160];        /* canonical */
    char stored_name[160]; /* as in the file */
    size_t file;           /* index into files */
    emu2_dtype dtype;
    int ndim;
    int64_t shape[EMU2_MAX_DIMS];
} emu2_inspect_tensor;

typedef struct emu2_inspect_result {
    emu2_config config;
    char format[16];       /* safetensors | pytorch */
    char naming[16];       /* native | hf | mixed | unknown */
    char weights_dir[4096];
    char index_file[64];   /* "" when not sharded */
    size_t n_files, n_tensors, n_ignored;
    int fused_qkv_bias;
    uint64_t params[EMU2_COMP_COUNT];
    uint64_t n_params;     /* all components */
    uint64_t bytes;        /* tensor bytes */
    size_t dtype_count[16];/* tensors per emu2_dtype */
    emu2_inspect_problem *problems;
    size_t n_problems;
    emu2_inspect_tensor *tensors; /* every canonical tensor, sorted by name (n_tensors) */
    char (*files)[256];           /* weight file names (n_files) */
} emu2_inspect_result;

/* Fills r (free with emu2_inspect_result_free) and returns EMU2_OK when the folder could be read,
 * whether or not it matches; EMU2_ERR_* when config or checkpoint cannot be read at all. */
emu2_status emu2_inspect_run(const char *dir, emu2_inspect_result *r, emu2_error *err);
void emu2_inspect_result_free(emu2_inspect_result *r);
/* malloc'd reports (NULL when out of memory); with_tensors adds one line / entry per tensor. */
char *emu2_inspect_format_text(const emu2_inspect_result *r, int with_tensors);
char *emu2_inspect_format_json(const emu2_inspect_result *r, int with_tensors);

#endif
