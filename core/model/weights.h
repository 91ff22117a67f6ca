/* weights.h: the tensors of the networks, bound by canonical name (io/checkpoint.h) into structs the
 * forward code reads, each shape checked against the config, each view made usable by the backend
 * (prepare_weight: no copy on the CPU, one upload on CUDA).
 *
 * EVA's fused qkv.weight [3W, W] is bound as three zero-copy row slices (q, k, v), so each keeps its
 * own bias (q_bias, optional k_bias, v_bias) and no fused bias has to be built. The patch
 * convolution weight [W, 3, p, p] is bound as the matrix [W, 3*p*p] (patchify + linear). */
#ifndef EMU2_MODEL_WEIGHTS_H
#define EMU2_MODEL_WEIGHTS_H

#include <stddef.h>

#include "emu2.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "ops/ops.h"

/* A bias or norm vector that may be absent: present == 0 means "none" (e.g. EVA's k bias). */
typedef struct emu2_opt_vector {
    int present;
    emu2_tensor_view v;
} emu2_opt_vector;

typedef struct emu2_vision_block_weights {
    emu2_tensor_view norm1_w, norm1_b, norm2_w, norm2_b;
    emu2_op_weight q, k, v;          /* row slices of attn.qkv.weight, each [W, W] */
    emu2_tensor_view q_bias, v_bias; /* [W] */
    emu2_opt_vector k_bias;          /* only when the file has a fused qkv.bias */
    emu2_op_weight proj;
    emu2_tensor_view proj_b;
    emu2_op_weight fc1, fc2;
    emu2_tensor_view fc1_b, fc2_b;
} emu2_vision_block_weights;

typedef struct emu2_vision_weights {
    emu2_op_weight patch;       /* [W, 3*p*p] */
    emu2_tensor_view patch_b;   /* [W] */
    emu2_tensor_view cls;       /* [1, W] */
    emu2_tensor_view pos;       /* [n_tokens, W] */
    emu2_vision_block_weights *blocks;
    size_t n_blocks;
    emu2_op_weight project_up;  /* [hidden, W] */
} emu2_vision_weights;

typedef struct emu2_decoder_layer_weights {
    emu2_tensor_view input_norm, post_norm; /* [D] */
    emu2_op_weight q, k, v, o;              /* [D, D] */
    emu2_op_weight gate, up;                /* [I, D] */
    emu2_op_weight down;                    /* [D, I] */
} emu2_decoder_layer_weights;

typedef struct emu2_decoder_weights {
    emu2_tensor_view embed;     /* [V, D] */
    emu2_decoder_layer_weights *layers;
    size_t n_layers;
    emu2_tensor_view final_norm; /* [D] */
    emu2_op_weight lm_head;      /* [V, D] */
    int has_project_down;
    emu2_op_weight project_down; /* [W, D] (Emu2-Gen regression) when present */
} emu2_decoder_weights;

/* Everything a model's networks need, bound once per (checkpoint, backend). */
typedef struct emu2_model_weights {
    emu2_backend *be;
    emu2_vision_weights vision;
    emu2_decoder_weights decoder;
    /* every view handed to prepare_weight, for release */
    emu2_tensor_view **prepared;
    size_t n_prepared, cap_prepared;
    /* buffers the weights own: LLM linears quantized at load (core/quant/quant_bind.h) */
    void **owned;
    size_t n_owned, cap_owned;
} emu2_model_weights;

/* Binds and checks every tensor the config calls for; a missing tensor, a wrong shape or a
 * non-float dtype is an EMU2_ERR_MISMATCH / EMU2_ERR_FORMAT naming the tensor. The checkpoint must
 * outlive the result (views point into its mapped files). */
emu2_status emu2_model_weights_bind(emu2_backend *be, const emu2_checkpoint *ck, const emu2_config *cfg,
                                    emu2_model_weights **out, emu2_error *err);
/* The same, with the LLM linears (q/k/v/o, gate/up/down, lm_head) quantized at load to `quant`
 * ("int8", "int4", "int4-g64", ...; NULL or "none": as stored). Linears the checkpoint already
 * holds quantized (`<name>.qweight` + `<name>.scales`, from `emu2 convert`) are bound as stored
 * whatever `quant` says. Embeddings, norms and the vision tower stay float (docs/QUANT.md). */
emu2_status emu2_model_weights_bind_quant(emu2_backend *be, const emu2_checkpoint *ck, const emu2_config *cfg,
                                          const char *quant, emu2_model_weights **out, emu2_error *err);
void emu2_model_weights_free(emu2_model_weights *w);

#endif
