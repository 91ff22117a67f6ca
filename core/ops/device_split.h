/* device_split.h: the multi-GPU layer split ("cuda:0,1"), host side: the device list and the plan
 * that gives each GPU a contiguous range of decoder layers, balanced by bytes (docs/CUDA.md).
 * Pure functions, no CUDA: unit-tested in CI (tests/unit/test_device_split.c). */
#ifndef EMU2_OPS_DEVICE_SPLIT_H
#define EMU2_OPS_DEVICE_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define EMU2_SPLIT_MAX_DEVICES 16
#define EMU2_SPLIT_MAX_INDEX 1024

typedef struct emu2_device_list {
    int n;                              /* >= 1 */
    int index[EMU2_SPLIT_MAX_DEVICES]; /* GPU numbers in stage order; one may repeat ("cuda:0,0" runs
                                           the split path on one GPU, for testing) */
} emu2_device_list;

/* "cuda:N" or "cuda:N,M,...": the GPUs in order. Anything else ("cuda", "cuda:", "cuda:0,",
 * "cuda:0,,1", "cuda:x", more than EMU2_SPLIT_MAX_DEVICES, an index above EMU2_SPLIT_MAX_INDEX)
 * is EMU2_ERR_INVALID_ARGUMENT naming the device and what is wrong. */
emu2_status emu2_device_list_parse(const char *device, emu2_device_list *out, emu2_error *err);

typedef struct emu2_split_stage {
    int device;               /* GPU number */
    size_t first_layer, n_layers;
    uint64_t bytes;           /* its layers, plus first_bytes on stage 0 and last_bytes on the last */
} emu2_split_stage;

typedef struct emu2_split_plan {
    int n_stages; /* = the device list's n */
    emu2_split_stage stage[EMU2_SPLIT_MAX_DEVICES];
} emu2_split_plan;

/* Splits decoder layers [0, n_layers) (layer i weighs layer_bytes[i]) into one contiguous, non-empty
 * range per listed device, in list order. Stage 0 also holds first_bytes (the vision tower, the
 * token embeddings: what runs before layer 0), the last stage last_bytes (final norm, lm_head).
 * The plan minimises the bytes of the fullest stage; among equally good plans the choice is
 * deterministic (each later stage starts as late as it can). capacity (NULL: no limit) gives each
 * stage's usable bytes: a plan that does not fit is EMU2_ERR_LIMIT naming the stage and GPU.
 * Fewer layers than devices, or a zero device count, is EMU2_ERR_INVALID_ARGUMENT. */
emu2_status emu2_split_plan_make(const uint64_t *layer_bytes, size_t n_layers, uint64_t first_bytes,
                                 uint64_t last_bytes, const emu2_device_list *devices, const uint64_t *capacity,
                                 emu2_split_plan *out, emu2_error *err);

/* One backend over n child backends of the same kind (core/ops/split_backend.c): decoder layers
 * are placed on the children by the plan above (every layer weighing what layer 0 weighs), ops
 * run where their weights are, the children hand over with wait_for. On success it owns the
 * children (emu2_backend_close closes them); on failure the caller still does. */
typedef struct emu2_backend emu2_backend;
emu2_status emu2_split_backend_create(emu2_backend **children, int n, emu2_backend **out, emu2_error *err);

#endif
