/* gen_model.c: loading the decoder side of an Emu2-Gen folder (gen_model.h). */
#include "diffusion/gen_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/error.h"

static int is_file(const char *path)
{
    struct stat s;
    return stat(path, &s) == 0 && S_ISREG(s.st_mode);
}

int emu2_gen_folder_paths(const char *dir, char *enc_dir, char *tok_dir, size_t size)
{
    char path[1200];
    if (!dir || (size_t)snprintf(path, sizeof path, "%s/model_index.json", dir) >= sizeof path || !is_file(path))
        return 0;
    if ((size_t)snprintf(enc_dir, size, "%s/multimodal_encoder", dir) >= size)
        return 0;
    snprintf(path, sizeof path, "%s/tokenizer/tokenizer.model", dir);
    if ((size_t)snprintf(tok_dir, size, is_file(path) ? "%s/tokenizer" : "%s/multimodal_encoder", dir) >= size)
        return 0;
    return 1;
}

/* The backend for the UNet / VAE (see gen_model.h). */
static emu2_status pick_backend(emu2_gen_model *g, emu2_backend *be, const char *device, int threads, emu2_error *err)
{
    emu2_status st = dif_check_ops(be, err);
    if (st == EMU2_OK || (device && strcmp(device, "auto"))) {
        g->be = be;
        return st;
    }
    emu2_backend_options o;
    emu2_backend_options_init(&o);
    o.threads = threads;
    emu2_error_clear(err);
    st = emu2_cpu_backend_open(&o, &g->own_be, err);
    g->be = g->own_be;
    return st;
}

emu2_status emu2_gen_model_load(const char *dir, emu2_backend *be, const char *device, int threads,
                                const emu2_config *cfg, emu2_gen_model **out, emu2_error *err)
{
    *out = NULL;
    emu2_gen_model *g = calloc(1, sizeof *g);
    if (!g)
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    char sub[1200];
    snprintf(sub, sizeof sub, "%s/unet", dir);
    emu2_status st = pick_backend(g, be, device, threads, err);
    if (st == EMU2_OK)
        st = dif_unet_load(sub, g->be, &g->unet, err);
    if (st == EMU2_OK) {
        snprintf(sub, sizeof sub, "%s/vae", dir);
        st = dif_vae_load(sub, g->be, &g->vae, err);
    }
    if (st == EMU2_OK) {
        snprintf(sub, sizeof sub, "%s/scheduler", dir);
        st = dif_scheduler_config_load(sub, &g->sched, err);
    }
    if (st == EMU2_OK && g->unet->cross_dim != (size_t)cfg->vision.width)
        st = emu2_fail(err, EMU2_ERR_MISMATCH,
                       "%s/unet: cross_attention_dim %zu differs from the encoder's visual width %d", dir,
                       g->unet->cross_dim, cfg->vision.width);
    if (st == EMU2_OK && g->unet->in_ch != g->vae->latent_ch)
        st = emu2_fail(err, EMU2_ERR_MISMATCH, "%s: the UNet has %zu channels, the VAE %zu latent channels", dir,
                       g->unet->in_ch, g->vae->latent_ch);
    if (st != EMU2_OK) {
        emu2_gen_model_free(g);
        return st;
    }
    g->default_size = g->unet->sample_size * g->vae->scale;
    *out = g;
    return EMU2_OK;
}

void emu2_gen_model_free(emu2_gen_model *g)
{
    if (!g)
        return;
    dif_unet_free(g->unet, g->be);
    dif_vae_free(g->vae, g->be);
    if (g->own_be)
        emu2_backend_close(g->own_be);
    free(g->neg_text);
    free(g->neg_autoenc);
    free(g);
}
