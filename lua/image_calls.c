/* image_calls.c: model:generate_image (Emu2-Gen): a PNG file as a Lua string. */
#include <string.h>

#include "emu2_lua.h"

static const char *const image_options[] = {"width", "height", "steps", "guidance", "seed", "vae_tiling",
                                            "on_progress", NULL};

/* model:generate_image(prompt [, {image, ...} [, opts]]) -> png | nil, message */
int emu2_lua_generate_image(lua_State *L)
{
    emu2_lua_model *m = emu2_lua_check_model_with_weights(L, 1);
    size_t len;
    const char *prompt = emu2_lua_check_text(L, 2, "prompt", &len);
    emu2_lua_check_option_names(L, 4, image_options);
    size_t n_images;
    const emu2_image_bytes *images = emu2_lua_read_images(L, 3, &n_images);
    if (len == 0 && n_images == 0)
        luaL_argerror(L, 2, "the prompt is empty and there are no images");

    emu2_image_options o;
    emu2_image_options_init(&o);
    emu2_lua_opt_int(L, 4, "width", &o.width);
    emu2_lua_opt_int(L, 4, "height", &o.height);
    emu2_lua_opt_int(L, 4, "steps", &o.steps);
    emu2_lua_opt_float(L, 4, "guidance", &o.guidance);
    emu2_lua_opt_u64(L, 4, "seed", &o.seed);
    emu2_lua_opt_bool(L, 4, "vae_tiling", &o.vae_tiling);
    emu2_lua_guard guard = {L, 0};
    emu2_lua_progress progress = {&guard, emu2_lua_opt_function(L, 4, "on_progress")};
    if (progress.fn) {
        o.progress = emu2_lua_progress_relay;
        o.progress_user = &progress;
    }

    void *png = NULL;
    size_t png_size = 0;
    m->busy = 1; /* from here to busy = 0 nothing may raise */
    emu2_status st = emu2_generate_image(m->model, prompt, images, n_images, &o, &png, &png_size);
    m->busy = 0;
    if (guard.failed) {
        emu2_free(png);
        emu2_lua_reraise(&guard);
    }
    if (st != EMU2_OK)
        return emu2_lua_push_failure(L, st, emu2_model_last_error(m->model), 4);
    emu2_lua_push_bytes_and_free(L, png, png_size);
    return 1;
}
