/* layout.h: the tensors (canonical names, see checkpoint.h) and shapes an Emu2 checkpoint must hold
 * for a given config (EMU2-SPEC.md §7.2). */
#ifndef EMU2_IO_LAYOUT_H
#define EMU2_IO_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"
#include "io/config.h"

typedef enum emu2_component {
    EMU2_COMP_VISUAL = 0,   /* visual.*: the EVA-CLIP vision tower */
    EMU2_COMP_DECODER,      /* decoder.*: the LLaMA language model */
    EMU2_COMP_PROJECTION,   /* project_up / project_down */
    EMU2_COMP_OTHER,        /* anything else (unexpected) */
    EMU2_COMP_COUNT
} emu2_component;

typedef struct emu2_expected_tensor {
    char name[96];
    int ndim;
    int64_t shape[4];
    emu2_component component;
    int optional; /* k_bias: present only when the file had a fused qkv.bias */
} emu2_expected_tensor;

/* *out (malloc'd, sorted by name) receives every tensor of the layout. */
emu2_status emu2_expected_layout(const emu2_config *cfg, emu2_expected_tensor **out, size_t *n, emu2_error *err);
emu2_component emu2_component_of(const char *canonical_name);
const char *emu2_component_name(emu2_component c);

#endif
