/* gen_model.h: the image-generation side of an Emu2-Gen folder (published layout):
 *   model_index.json, multimodal_encoder/ (config + LLM/EVA weights: loaded by core/api as for any
 *   Emu2 model), tokenizer/, unet/, vae/, scheduler/ (loaded here).
 * It also caches the negative conditions (the empty prompt's regression, the autoencoding negative),
 * computed on first use: the model handle is used by one thread at a time. */
#ifndef EMU2_DIFFUSION_GEN_MODEL_H
#define EMU2_DIFFUSION_GEN_MODEL_H

#include <stddef.h>

#include "diffusion/scheduler.h"
#include "diffusion/unet.h"
#include "diffusion/vae.h"
#include "io/config.h"

typedef struct emu2_gen_model {
    emu2_backend *be;     /* runs the UNet and VAE: the model's backend, or an own CPU backend */
    emu2_backend *own_be; /* that CPU backend when the model's lacks the diffusion ops (else NULL) */
    dif_unet *unet;
    dif_vae *vae;
    dif_scheduler_config sched;
    size_t default_size; /* pixels: unet sample_size x vae scale (1024 for Emu2-Gen) */
    float *neg_text;     /* host [n_query, width] once computed, else NULL */
    float *neg_autoenc;
} emu2_gen_model;

/* 1 when DIR holds model_index.json (the Emu2-Gen layout); then enc_dir / tok_dir receive
 * DIR/multimodal_encoder and DIR/tokenizer (or the encoder folder when tokenizer/ has no
 * tokenizer.model). */
int emu2_gen_folder_paths(const char *dir, char *enc_dir, char *tok_dir, size_t size);

/* Loads unet/, vae/, scheduler/ of DIR, checked against the encoder config cfg (the UNet's
 * cross_attention_dim must be the vision width the regression produces). The networks run on be
 * when it has the diffusion ops; otherwise, when device is "auto" (or NULL), on an own CPU backend
 * of `threads` threads (the conditions cross over as host arrays), else EMU2_ERR_UNSUPPORTED. */
emu2_status emu2_gen_model_load(const char *dir, emu2_backend *be, const char *device, int threads,
                                const emu2_config *cfg, emu2_gen_model **out, emu2_error *err);
void emu2_gen_model_free(emu2_gen_model *g);

#endif
