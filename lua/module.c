/* module.c: luaopen_emu2 and emu2.load. The module keeps no state of its own: every model is a
 * separate object, so any number can live in one Lua state. */
#include <string.h>

#include "emu2_lua.h"

#if defined(__GNUC__)
#define EMU2_LUA_EXPORT __attribute__((visibility("default")))
#else
#define EMU2_LUA_EXPORT
#endif

static const char *const load_options[] = {"device", "threads", "quant", "no_weights", "on_progress", "n_query",
                                           "precision", NULL};

/* emu2.load(dir [, opts]) -> model | nil, message */
static int emu2_lua_load(lua_State *L)
{
    size_t len;
    const char *dir = emu2_lua_check_text(L, 1, "folder name", &len);
    if (len == 0)
        luaL_argerror(L, 1, "the folder name is empty");
    emu2_lua_check_option_names(L, 2, load_options);
    if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "n_query") != LUA_TNIL)
        luaL_argerror(L, 2, "option 'n_query' cannot be overridden: the model's config.json fixes it");

    emu2_load_options lo;
    emu2_load_options_init(&lo);
    int no_weights = 0;
    emu2_lua_opt_string(L, 2, "device", &lo.device);
    emu2_lua_opt_int(L, 2, "threads", &lo.threads);
    emu2_lua_opt_string(L, 2, "quant", &lo.quant);
    emu2_lua_opt_string(L, 2, "precision", &lo.precision);
    emu2_lua_opt_bool(L, 2, "no_weights", &no_weights);
    lo.flags = no_weights ? EMU2_LOAD_NO_WEIGHTS : EMU2_LOAD_DEFAULT;
    emu2_lua_guard guard = {L, 0};
    emu2_lua_progress progress = {&guard, emu2_lua_opt_function(L, 2, "on_progress")};
    if (progress.fn) {
        lo.progress = emu2_lua_progress_relay;
        lo.progress_user = &progress;
    }

    emu2_lua_model *m = emu2_lua_new_model(L, dir);
    int object = lua_gettop(L);
    m->no_weights = no_weights;
    emu2_error err;
    emu2_status st = emu2_model_load(dir, &lo, &m->model, &err);
    emu2_lua_reraise(&guard); /* the object's __gc frees a model that loaded anyway */
    if (st != EMU2_OK)
        return emu2_lua_push_failure(L, st, err.message, 2);
    lua_pushvalue(L, object);
    return 1;
}

static const luaL_Reg module_functions[] = {{"load", emu2_lua_load}, {NULL, NULL}};

EMU2_LUA_EXPORT int luaopen_emu2(lua_State *L);

int luaopen_emu2(lua_State *L)
{
    emu2_lua_register_model_type(L);
    luaL_newlib(L, module_functions);
    lua_pushstring(L, emu2_version());
    lua_setfield(L, -2, "version");
    return 1;
}
