/* model_object.c: the model object (full userdata, metatable "emu2.model"): its life cycle
 * (close, __close, __gc), __tostring, the calls that only need text (info, tokenize, detokenize),
 * and turning engine buffers into Lua values without leaking them. The networks' calls live in
 * generate_calls.c, batch_calls.c, image_calls.c. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "emu2_lua.h"

/* ---------------------------------------------------------------- engine buffers */

typedef struct owned_push {
    emu2_lua_push_args push;
    const void *args;
} owned_push;

static int push_protected(lua_State *L)
{
    const owned_push *o = lua_touserdata(L, 1);
    return o->push(L, o->args);
}

void emu2_lua_push_and_free(lua_State *L, void *buffer, emu2_lua_push_args push, const void *args)
{
    owned_push o = {push, args};
    if (!lua_checkstack(L, 4)) { /* (lua_checkstack does not raise) */
        emu2_free(buffer);
        luaL_error(L, "emu2: no Lua stack space left for a result");
    }
    lua_pushcfunction(L, push_protected); /* neither push allocates */
    lua_pushlightuserdata(L, &o);
    int rc = lua_pcall(L, 1, 1, 0);
    emu2_free(buffer);
    if (rc != LUA_OK)
        lua_error(L); /* the error value is on top */
}

typedef struct bytes {
    const char *data;
    size_t len;
} bytes;

static int push_bytes(lua_State *L, const void *p)
{
    const bytes *b = p;
    lua_pushlstring(L, b->data ? b->data : "", b->data ? b->len : 0);
    return 1;
}

void emu2_lua_push_text_and_free(lua_State *L, char *text)
{
    bytes b = {text, text ? strlen(text) : 0};
    emu2_lua_push_and_free(L, text, push_bytes, &b);
}

void emu2_lua_push_bytes_and_free(lua_State *L, void *data, size_t len)
{
    bytes b = {data, len};
    emu2_lua_push_and_free(L, data, push_bytes, &b);
}

/* ---------------------------------------------------------------- checks */

static emu2_lua_model *to_model(lua_State *L, int arg)
{
    return luaL_checkudata(L, arg, EMU2_LUA_MODEL_TYPE);
}

emu2_lua_model *emu2_lua_check_model(lua_State *L, int arg)
{
    emu2_lua_model *m = to_model(L, arg);
    if (!m->model)
        luaL_argerror(L, arg, "the model is closed");
    if (m->busy)
        luaL_argerror(L, arg, "the model is busy (a callback may not use the model that called it)");
    return m;
}

emu2_lua_model *emu2_lua_check_model_with_weights(lua_State *L, int arg)
{
    emu2_lua_model *m = emu2_lua_check_model(L, arg);
    if (m->no_weights)
        luaL_argerror(L, arg, "the model was loaded with no_weights = true (text calls only)");
    return m;
}

int emu2_lua_push_failure(lua_State *L, emu2_status st, const char *message, int opts_arg)
{
    if (st == EMU2_ERR_INVALID_ARGUMENT) {
        if (opts_arg > 0)
            luaL_argerror(L, opts_arg, message);
        luaL_error(L, "emu2: %s", message);
    }
    lua_pushnil(L);
    lua_pushstring(L, message && *message ? message : emu2_status_name(st));
    return 2;
}

/* ---------------------------------------------------------------- life cycle */

emu2_lua_model *emu2_lua_new_model(lua_State *L, const char *dir)
{
    emu2_lua_model *m = lua_newuserdatauv(L, sizeof *m, 1);
    memset(m, 0, sizeof *m);
    luaL_setmetatable(L, EMU2_LUA_MODEL_TYPE);
    lua_pushstring(L, dir);
    lua_setiuservalue(L, -2, 1);
    return m;
}

static void release(emu2_lua_model *m)
{
    emu2_model_free(m->model);
    m->model = NULL;
}

/* model:close(): frees the engine's model now. Closing twice is a no-op. */
static int model_close(lua_State *L)
{
    emu2_lua_model *m = to_model(L, 1);
    if (m->busy)
        luaL_argerror(L, 1, "the model is busy (a callback may not close the model that called it)");
    release(m);
    return 0;
}

static int model_gc(lua_State *L)
{
    emu2_lua_model *m = to_model(L, 1);
    if (!m->busy) /* cannot be busy here: a running call keeps it on the stack */
        release(m);
    return 0;
}

static int model_tostring(lua_State *L)
{
    emu2_lua_model *m = to_model(L, 1);
    lua_getiuservalue(L, 1, 1);
    const char *dir = lua_tostring(L, -1);
    emu2_model_info info;
    if (!m->model)
        lua_pushfstring(L, "emu2.model (%s, closed)", dir ? dir : "?");
    else if (emu2_model_get_info(m->model, &info) == EMU2_OK)
        lua_pushfstring(L, "emu2.model (%s, %s)", dir ? dir : "?", info.device ? info.device : "?");
    else
        lua_pushfstring(L, "emu2.model (%s)", dir ? dir : "?");
    return 1;
}

/* ---------------------------------------------------------------- info */

/* Resident memory of this process (Linux /proc/self/statm), -1 if unknown. */
static lua_Integer process_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long size = 0, resident = -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return resident < 0 || page <= 0 ? -1 : (lua_Integer)resident * page;
}

#define SET_INT(name, value) (lua_pushinteger(L, (lua_Integer)(value)), lua_setfield(L, -2, name))
#define SET_STR(name, value) (lua_pushstring(L, (value) ? (value) : ""), lua_setfield(L, -2, name))

static int model_info(lua_State *L)
{
    emu2_lua_model *m = emu2_lua_check_model(L, 1);
    emu2_model_info info;
    emu2_status st = emu2_model_get_info(m->model, &info);
    if (st != EMU2_OK)
        return emu2_lua_push_failure(L, st, emu2_model_last_error(m->model), 0);
    lua_createtable(L, 0, 24);
    lua_getiuservalue(L, 1, 1);
    lua_setfield(L, -2, "path");
    SET_STR("model_version", info.model_version);
    SET_STR("device", info.device);
    SET_INT("image_size", info.image_size);
    SET_INT("patch_size", info.patch_size);
    SET_INT("vision_width", info.vision_width);
    SET_INT("vision_layers", info.vision_layers);
    SET_INT("n_query", info.n_query);
    SET_INT("hidden_size", info.hidden_size);
    SET_INT("num_layers", info.num_layers);
    SET_INT("num_heads", info.num_heads);
    SET_INT("vocab_size", info.vocab_size);
    SET_INT("bos_id", info.bos_id);
    SET_INT("eos_id", info.eos_id);
    SET_INT("pad_id", info.pad_id);
    SET_INT("image_token_id", info.image_token_id);
    SET_INT("n_params", info.n_params);
    lua_pushboolean(L, m->no_weights);
    lua_setfield(L, -2, "no_weights");
    SET_INT("rss_bytes", process_rss_bytes());
    SET_STR("engine_version", emu2_version());
    return 1;
}

/* ---------------------------------------------------------------- text */

static const char *const tokenize_options[] = {"bos", "placeholders", NULL};

typedef struct id_list {
    const int32_t *ids;
    size_t n;
} id_list;

static int push_id_list(lua_State *L, const void *p)
{
    const id_list *l = p;
    if (l->n > (size_t)INT32_MAX)
        luaL_error(L, "emu2: too many tokens");
    lua_createtable(L, (int)l->n, 0);
    for (size_t i = 0; i < l->n; i++) {
        lua_pushinteger(L, l->ids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* model:tokenize(text [, {bos = true, placeholders = true}]) -> {id, ...} */
static int model_tokenize(lua_State *L)
{
    emu2_lua_model *m = emu2_lua_check_model(L, 1);
    size_t len;
    const char *text = emu2_lua_check_text(L, 2, "text", &len);
    emu2_lua_check_option_names(L, 3, tokenize_options);
    int bos = 1, placeholders = 1;
    emu2_lua_opt_bool(L, 3, "bos", &bos);
    emu2_lua_opt_bool(L, 3, "placeholders", &placeholders);
    unsigned flags = (bos ? 0u : EMU2_TOK_NO_BOS) | (placeholders ? 0u : EMU2_TOK_NO_PLACEHOLDERS);
    int32_t *ids = NULL;
    id_list list = {NULL, 0};
    emu2_status st = emu2_tokenize(m->model, text, flags, &ids, &list.n);
    if (st != EMU2_OK)
        return emu2_lua_push_failure(L, st, emu2_model_last_error(m->model), 3);
    list.ids = ids;
    emu2_lua_push_and_free(L, ids, push_id_list, &list);
    return 1;
}

static const char *const detokenize_options[] = {"skip_special", NULL};

/* model:detokenize({id, ...} [, {skip_special = true}]) -> text */
static int model_detokenize(lua_State *L)
{
    emu2_lua_model *m = emu2_lua_check_model(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    emu2_lua_check_option_names(L, 3, detokenize_options);
    int skip_special = 1;
    emu2_lua_opt_bool(L, 3, "skip_special", &skip_special);
    lua_Integer n = luaL_len(L, 2);
    if (n < 0 || n > INT32_MAX / 4)
        luaL_argerror(L, 2, "too many ids");
    int32_t *ids = n ? lua_newuserdatauv(L, (size_t)n * sizeof *ids, 0) : NULL;
    for (lua_Integer i = 1; i <= n; i++) {
        int exact = 0;
        lua_geti(L, 2, i);
        lua_Integer v = lua_tointegerx(L, -1, &exact);
        if (!exact || lua_type(L, -1) != LUA_TNUMBER || v < INT32_MIN || v > INT32_MAX)
            luaL_argerror(L, 2, lua_pushfstring(L, "id %I must be a 32-bit integer", i));
        ids[i - 1] = (int32_t)v;
        lua_pop(L, 1);
    }
    char *text = NULL;
    emu2_status st = emu2_detokenize(m->model, ids, (size_t)n, skip_special, &text);
    if (st != EMU2_OK)
        return emu2_lua_push_failure(L, st, emu2_model_last_error(m->model), 2);
    emu2_lua_push_text_and_free(L, text);
    return 1;
}

/* ---------------------------------------------------------------- the type */

static const luaL_Reg model_methods[] = {
    {"close", model_close},
    {"info", model_info},
    {"tokenize", model_tokenize},
    {"detokenize", model_detokenize},
    {"describe", emu2_lua_describe},
    {"generate", emu2_lua_generate},
    {"describe_batch", emu2_lua_describe_batch},
    {"generate_image", emu2_lua_generate_image},
    {NULL, NULL}};

static const luaL_Reg model_meta[] = {
    {"__gc", model_gc},
    {"__close", model_close},
    {"__tostring", model_tostring},
    {NULL, NULL}};

void emu2_lua_register_model_type(lua_State *L)
{
    luaL_newmetatable(L, EMU2_LUA_MODEL_TYPE);
    luaL_setfuncs(L, model_meta, 0);
    luaL_newlib(L, model_methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
}
