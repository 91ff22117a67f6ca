/* blocks.h: the building blocks the UNet and the VAE decoder share (diffusers 0.24 semantics), on
 * token-major feature maps [H*W, C] in backend memory:
 *   ResnetBlock2D: GN -> SiLU -> conv3x3 (+ Linear(SiLU(emb)) per channel) -> GN -> SiLU -> conv3x3,
 *                  + the input (through a 1x1 conv when the channel count changes);
 *   attention:     q/k/v projections (optional biases), multi-head softmax attention, out projection;
 *   Transformer2DModel (linear projections): GN(eps 1e-6) -> proj_in -> BasicTransformerBlocks
 *                  (LN -> self-attn, LN -> cross-attn, LN -> GEGLU FF, each residual) -> proj_out + input;
 *   the VAE's mid attention: GN -> single-head attention with biases -> + input.
 * Every function allocates its output (*y, backend memory; the caller frees it with ops->free). */
#ifndef EMU2_DIFFUSION_BLOCKS_H
#define EMU2_DIFFUSION_BLOCKS_H

#include <stddef.h>

#include "diffusion/component.h"
#include "ops/ops.h"

typedef struct dif_resnet_w {
    size_t cin, cout;
    emu2_tensor_view norm1_w, norm1_b, norm2_w, norm2_b, conv1_b, conv2_b;
    emu2_op_weight conv1, conv2;
    int has_temb;
    emu2_op_weight temb;
    emu2_tensor_view temb_b;
    int has_shortcut;
    emu2_op_weight shortcut;
    emu2_tensor_view shortcut_b;
} dif_resnet_w;

typedef struct dif_attn_w {
    size_t dim, kv_dim, heads;
    emu2_op_weight q, k, v, out;
    int has_qkv_bias;
    emu2_tensor_view q_b, k_b, v_b, out_b;
} dif_attn_w;

typedef struct dif_tblock_w {
    emu2_tensor_view n1_w, n1_b, n2_w, n2_b, n3_w, n3_b;
    dif_attn_w self_attn, cross_attn;
    size_t inner;                    /* GEGLU width (4C) */
    emu2_op_weight ff_val, ff_gate;  /* row halves of ff.net.0.proj.weight */
    emu2_tensor_view ff_val_b, ff_gate_b;
    emu2_op_weight ff_out;
    emu2_tensor_view ff_out_b;
} dif_tblock_w;

typedef struct dif_transformer_w {
    size_t C, n_blocks;
    emu2_tensor_view norm_w, norm_b, proj_in_b, proj_out_b;
    emu2_op_weight proj_in, proj_out;
    dif_tblock_w *blocks;
} dif_transformer_w;

typedef struct dif_vae_attn_w {
    emu2_tensor_view norm_w, norm_b;
    dif_attn_w attn;
} dif_vae_attn_w;

/* Binding by prefix ("down_blocks.1.resnets.0"). temb_dim 0: no time embedding (VAE). */
int dif_bind_resnet(dif_binder *b, dif_resnet_w *r, size_t temb_dim, const char *prefix);
/* n_blocks from the tensors present (transformer_blocks.N); heads from the config. */
int dif_bind_transformer(dif_binder *b, dif_transformer_w *t, size_t heads, size_t cross_dim, const char *prefix);
void dif_transformer_free(dif_transformer_w *t);
int dif_bind_vae_attn(dif_binder *b, dif_vae_attn_w *a, size_t C, const char *prefix);

/* The diffusion ops this code needs; EMU2_ERR_UNSUPPORTED naming the first one the backend lacks. */
emu2_status dif_check_ops(emu2_backend *be, emu2_error *err);
/* ops->alloc with the error set on failure. */
float *dif_alloc(emu2_backend *be, size_t n, emu2_error *err);
void dif_free(emu2_backend *be, float *p);
/* Ends a forward that computed out: *y = out when st is EMU2_OK, else out is freed. Returns st. */
emu2_status dif_hand_over(emu2_backend *be, emu2_status st, float *out, float **y);

/* x [H*W, cin] -> *y [H*W, cout]. semb: backend [temb dim] = SiLU(emb), or NULL (VAE). */
emu2_status dif_resnet_forward(emu2_backend *be, const dif_resnet_w *r, size_t groups, float eps, size_t H, size_t W,
                               const float *x, const float *semb, float **y, emu2_error *err);
/* x [HW, C] -> *y [HW, C]. cond: backend [n_cond, cross_dim]. */
emu2_status dif_transformer_forward(emu2_backend *be, const dif_transformer_w *t, size_t groups, size_t HW,
                                    const float *x, const float *cond, size_t n_cond, float **y, emu2_error *err);
emu2_status dif_vae_attn_forward(emu2_backend *be, const dif_vae_attn_w *a, size_t groups, float eps, size_t HW,
                                 const float *x, float **y, emu2_error *err);

#endif
