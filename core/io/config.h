/* config.h: the model configuration (Emu2's config.json, EMU2-SPEC.md §3.1, §4.1). */
#ifndef EMU2_IO_CONFIG_H
#define EMU2_IO_CONFIG_H

#include <stddef.h>

#include "emu2.h"

typedef struct emu2_vision_config {
    int image_size;        /* 448 */
    int patch_size;        /* 14 */
    int width;             /* 1792 */
    int layers;            /* 64 */
    int head_width;        /* 112 */
    int heads;             /* derived: width / head_width */
    int intermediate_size; /* 15360 (from intermediate_size, else int(width * mlp_ratio)) */
    int n_query;           /* 64 or 256 */
    int v_query;           /* 64 */
    int grid;              /* derived: image_size / patch_size */
    int pool_kernel;       /* derived: grid / sqrt(n_query) */
    int n_tokens;          /* derived: grid*grid + 1 (CLS) */
    double layer_norm_eps; /* 1e-6 */
    int postnorm;          /* must be 1 */
    int qkv_bias;          /* 1 */
} emu2_vision_config;

typedef struct emu2_config {
    char model_version[16]; /* "base" or "chat" */
    int hidden_size;
    int intermediate_size;
    int num_hidden_layers;
    int num_attention_heads;
    int num_key_value_heads;
    int head_dim;           /* derived: hidden_size / num_attention_heads */
    int vocab_size;
    int max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    int bos_token_id, eos_token_id, pad_token_id;
    int tie_word_embeddings;
    int d_model;            /* vision width as seen by project_up (== vision.width) */
    emu2_vision_config vision;
} emu2_config;

/* Parses config.json text (untrusted). Unknown keys are ignored; missing or inconsistent values are
 * clear errors naming the key. */
emu2_status emu2_config_parse(const char *json, size_t len, emu2_config *cfg, emu2_error *err);
/* Reads DIR/config.json. */
emu2_status emu2_config_load(const char *dir, emu2_config *cfg, emu2_error *err);

#endif
