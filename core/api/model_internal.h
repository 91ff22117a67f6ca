/* model_internal.h: what an emu2_model holds. Only core/ sees this. */
#ifndef EMU2_API_MODEL_INTERNAL_H
#define EMU2_API_MODEL_INTERNAL_H

#include <stdio.h>

#include "emu2.h"
#include "io/checkpoint.h"
#include "io/config.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "text/tokenizer.h"

struct emu2_model {
    emu2_load_options opts;
    emu2_config cfg;
    emu2_tokenizer *tok;
    emu2_checkpoint *ckpt; /* NULL with EMU2_LOAD_NO_WEIGHTS */
    emu2_backend *be;      /* the device that runs the networks (NULL with EMU2_LOAD_NO_WEIGHTS) */
    emu2_model_weights *w; /* the checkpoint's tensors bound to the networks, shapes checked */
    struct emu2_gen_model *gen; /* Emu2-Gen folders: UNet, VAE, scheduler (core/diffusion); else NULL */
    uint64_t n_params;
    int32_t image_token_id;
    char last_error[EMU2_ERROR_MESSAGE_MAX];
};

/* Stores e's message as the model's last error and returns e's status. */
emu2_status emu2_model_fail(emu2_model *m, const emu2_error *e);

#endif
