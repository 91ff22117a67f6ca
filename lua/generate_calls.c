/* generate_calls.c: model:describe and model:generate, with on_token streaming. */
#include <string.h>

#include "emu2_lua.h"

static const char *const describe_options[] = {EMU2_LUA_GEN_OPTION_NAMES, "on_token", "prompt", NULL};
static const char *const generate_options[] = {EMU2_LUA_GEN_OPTION_NAMES, "on_token", NULL};

typedef struct token_relay {
    emu2_lua_guard *guard;
    int fn; /* stack index of on_token */
} token_relay;

static int push_piece(lua_State *L, const void *piece)
{
    lua_pushstring(L, piece);
    return 1;
}

static int relay_token(void *user, int32_t id, const char *piece)
{
    (void)id;
    token_relay *r = user;
    if (!piece || !*piece) /* the stream is waiting for the rest of a UTF-8 sequence */
        return 0;
    return emu2_lua_invoke(r->guard, r->fn, push_piece, piece);
}

/* Runs one text call with the options at opts_arg; image(s) already read. Returns Lua results. */
typedef struct text_call {
    const char *prompt; /* describe: NULL = the default question */
    const emu2_image_bytes *images;
    size_t n_images;
    int describe;
} text_call;

static int run_text_call(lua_State *L, emu2_lua_model *m, const text_call *c, int opts_arg)
{
    emu2_gen_options o;
    emu2_lua_read_gen_options(L, opts_arg, &o);
    emu2_lua_guard guard = {L, 0};
    token_relay relay = {&guard, emu2_lua_opt_function(L, opts_arg, "on_token")};
    if (relay.fn) {
        o.on_token = relay_token;
        o.on_token_user = &relay;
    }
    char *text = NULL;
    m->busy = 1; /* from here to busy = 0 nothing may raise */
    emu2_status st = c->describe ? emu2_describe(m->model, c->images[0].data, c->images[0].size, c->prompt, &o, &text)
                                 : emu2_generate(m->model, c->prompt, c->images, c->n_images, &o, &text);
    m->busy = 0;
    if (guard.failed) {
        emu2_free(text);
        emu2_lua_reraise(&guard);
    }
    if (st != EMU2_OK)
        return emu2_lua_push_failure(L, st, emu2_model_last_error(m->model), opts_arg);
    emu2_lua_push_text_and_free(L, text);
    return 1;
}

/* model:describe(image [, opts]) -> text | nil, message */
int emu2_lua_describe(lua_State *L)
{
    emu2_lua_model *m = emu2_lua_check_model_with_weights(L, 1);
    emu2_image_bytes image;
    image.data = luaL_checklstring(L, 2, &image.size);
    emu2_lua_check_option_names(L, 3, describe_options);
    text_call c = {NULL, &image, 1, 1};
    emu2_lua_opt_string(L, 3, "prompt", &c.prompt);
    return run_text_call(L, m, &c, 3);
}

/* model:generate(prompt [, {image, ...} [, opts]]) -> text | nil, message */
int emu2_lua_generate(lua_State *L)
{
    emu2_lua_model *m = emu2_lua_check_model_with_weights(L, 1);
    size_t len;
    text_call c = {emu2_lua_check_text(L, 2, "prompt", &len), NULL, 0, 0};
    emu2_lua_check_option_names(L, 4, generate_options);
    c.images = emu2_lua_read_images(L, 3, &c.n_images);
    if (len == 0 && c.n_images == 0)
        luaL_argerror(L, 2, "the prompt is empty and there are no images");
    return run_text_call(L, m, &c, 4);
}
