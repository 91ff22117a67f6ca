/* checkpoint.h: the weights of a model folder, whatever the files (safetensors or torch .bin, single
 * or sharded) and whatever the naming (HF `model.visual.*` with fused qkv.bias, or native `visual.*`
 * with q_bias/v_bias), seen under ONE canonical naming:
 *   visual.*, decoder.lm.*, project_up.weight, project_down.weight, and per EVA block
 *   visual.blocks.N.attn.{q_bias,v_bias} (+ k_bias when the file has a fused qkv.bias).
 * A fused [3w] qkv.bias becomes three zero-copy views: q_bias [0:w], k_bias [w:2w], v_bias [2w:3w]
 * (k_bias is kept so a non-zero k bias is visible, not silently dropped).
 * `rotary_emb.inv_freq` buffers are ignored. Every view points into the mapped files. */
#ifndef EMU2_IO_CHECKPOINT_H
#define EMU2_IO_CHECKPOINT_H

#include <stddef.h>

#include "common/tensor.h"
#include "emu2.h"
#include "io/mapped_file.h"
#include "io/named_tensor.h"

typedef struct emu2_ckpt_tensor {
    char *name;              /* canonical */
    const char *stored_name; /* as written in the file */
    size_t file;             /* index into emu2_checkpoint.files */
    emu2_tensor_view view;
} emu2_ckpt_tensor;

typedef struct emu2_ckpt_file {
    char *name; /* file name inside the weights folder */
    emu2_mapped_file map;
    emu2_named_tensor *stored;
    size_t n_stored;
} emu2_ckpt_file;

typedef struct emu2_checkpoint {
    char *weights_dir;        /* DIR, or DIR/multimodal_encoder for Emu2-Gen */
    const char *format;       /* "safetensors" or "pytorch" */
    const char *index_file;   /* NULL when not sharded */
    int has_hf_names;         /* some tensor used model.visual.* / model.decoder.* */
    int has_native_names;     /* some tensor used visual.* / decoder.* */
    int fused_qkv_bias;       /* some EVA block had attn.qkv.bias */
    size_t n_ignored;         /* rotary_emb.inv_freq buffers skipped */
    emu2_ckpt_file *files;
    size_t n_files;
    emu2_ckpt_tensor *tensors; /* sorted by canonical name */
    size_t n_tensors;
} emu2_checkpoint;

/* Finds and maps the weights of DIR: model.safetensors.index.json, model.safetensors.index.bf16.json,
 * model.safetensors, pytorch_model.bin.index.json, pytorch_model.bin (first found wins), or a single
 * *.safetensors / *.bin file; falls back to DIR/multimodal_encoder (Emu2-Gen's layout). */
emu2_status emu2_checkpoint_open(const char *dir, emu2_checkpoint **out, emu2_error *err);
void emu2_checkpoint_close(emu2_checkpoint *ck);
/* Lookup by canonical name; NULL when absent. */
const emu2_ckpt_tensor *emu2_checkpoint_find(const emu2_checkpoint *ck, const char *name);

/* The canonical name of one stored name (exposed for tests): writes into buf, returns 0 for names
 * to ignore (rotary_emb.inv_freq), 2 for a fused qkv.bias (buf = the block's "…attn." prefix), else 1. */
int emu2_canonical_name(const char *stored, char *buf, size_t size);

/* Model parameters held by one stored tensor: its elements, except that a quantized linear's
 * NAME.qweight counts its logical weights (two per byte for int4) and NAME.scales counts none. */
uint64_t emu2_param_count(const char *name, const emu2_tensor_view *v);

#endif
