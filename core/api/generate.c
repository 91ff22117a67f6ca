/* generate.c: describe / generate entry points. The networks (vision tower, decoder, generation)
 * arrive with the CPU inference work; until then these validate their inputs and report clearly
 * that text generation is not available in this build. */
#include <string.h>

#include "api/model_internal.h"
#include "common/error.h"

void emu2_gen_options_init(emu2_gen_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->max_new_tokens = 64;
    o->num_beams = 5;
    o->length_penalty = -1.0f;
    o->min_length = 1;
    o->temperature = 1.0f;
    o->top_p = 1.0f;
    o->repetition_penalty = 1.0f;
}

static emu2_status not_yet(emu2_model *m)
{
    return emu2_model_fail(m, &(emu2_error){EMU2_ERR_UNSUPPORTED,
                                            "text generation is not implemented in this build yet "
                                            "(the CPU inference engine is in progress)"});
}

emu2_status emu2_generate(emu2_model *m, const char *prompt, const emu2_image_bytes *images, size_t n_images,
                          const emu2_gen_options *opts, char **text)
{
    (void)opts;
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    if (!prompt || !text || (n_images && !images))
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT, "emu2_generate: NULL argument"});
    size_t n_ph = 0;
    emu2_status st = emu2_count_placeholders(prompt, &n_ph);
    if (st != EMU2_OK)
        return emu2_model_fail(m, &(emu2_error){st, "emu2_generate: could not scan the prompt"});
    if (n_ph != n_images) {
        emu2_error e;
        emu2_fail(&e, EMU2_ERR_MISMATCH, "the prompt has %zu image placeholder%s but %zu image%s given", n_ph,
                  n_ph == 1 ? "" : "s", n_images, n_images == 1 ? " was" : "s were");
        return emu2_model_fail(m, &e);
    }
    if (!m->ckpt)
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_INVALID_ARGUMENT,
                                                "the model was loaded without weights (EMU2_LOAD_NO_WEIGHTS)"});
    return not_yet(m);
}

emu2_status emu2_describe(emu2_model *m, const void *image, size_t image_size, const char *prompt,
                          const emu2_gen_options *opts, char **text)
{
    if (!m)
        return EMU2_ERR_INVALID_ARGUMENT;
    char full[4096];
    const char *p = prompt ? prompt : "Describe the image in details:";
    if (snprintf(full, sizeof full, "[<IMG_PLH>]%s", p) >= (int)sizeof full)
        return emu2_model_fail(m, &(emu2_error){EMU2_ERR_LIMIT, "emu2_describe: prompt too long"});
    emu2_image_bytes img = {image, image_size};
    return emu2_generate(m, full, &img, 1, opts, text);
}
