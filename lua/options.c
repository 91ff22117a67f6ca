/* options.c: reading option tables. Every mistake raises, naming the argument and the option:
 * an unknown name (likely a typo) must not be ignored silently. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "emu2_lua.h"

static int is_known(const char *name, const char *const *names)
{
    for (size_t i = 0; names[i]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

void emu2_lua_check_option_names(lua_State *L, int arg, const char *const *names)
{
    if (lua_isnoneornil(L, arg))
        return;
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, arg)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "option names must be strings (got a %s key)",
                                                  luaL_typename(L, -1)));
        const char *name = lua_tostring(L, -1);
        if (!is_known(name, names))
            luaL_argerror(L, arg, lua_pushfstring(L, "unknown option '%s'", name));
    }
}

const char *emu2_lua_check_text(lua_State *L, int arg, const char *what, size_t *len)
{
    const char *s = luaL_checklstring(L, arg, len);
    if (strlen(s) != *len)
        luaL_argerror(L, arg, lua_pushfstring(L, "the %s contains a zero byte", what));
    return s;
}

/* Pushes opts[name]; returns its type (LUA_TNIL when opts is nil or lacks it). */
static int get_option(lua_State *L, int arg, const char *name)
{
    if (lua_isnoneornil(L, arg)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, arg, name);
}

static void bad_option(lua_State *L, int arg, const char *name, const char *want)
{
    luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' must be %s (got %s)", name, want, luaL_typename(L, -1)));
}

/* Pushes opts[name]; 1 when it is there (raising unless it has type TYPE, "WANT"), 0 when absent. */
static int typed_option(lua_State *L, int arg, const char *name, int type, const char *want)
{
    int t = get_option(L, arg, name);
    if (t != LUA_TNIL && t != type)
        bad_option(L, arg, name, want);
    return t != LUA_TNIL;
}

static lua_Integer option_integer(lua_State *L, int arg, const char *name, lua_Integer lo, lua_Integer hi)
{
    int exact = 0;
    lua_Integer v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &exact) : 0;
    if (!exact)
        bad_option(L, arg, name, "an integer");
    if (v < lo || v > hi)
        luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' is out of range (%I)", name, v));
    return v;
}

void emu2_lua_opt_int(lua_State *L, int arg, const char *name, int *out)
{
    if (get_option(L, arg, name) != LUA_TNIL)
        *out = (int)option_integer(L, arg, name, INT_MIN, INT_MAX);
    lua_pop(L, 1);
}

void emu2_lua_opt_u64(lua_State *L, int arg, const char *name, uint64_t *out)
{
    if (get_option(L, arg, name) != LUA_TNIL)
        *out = (uint64_t)option_integer(L, arg, name, 0, LUA_MAXINTEGER);
    lua_pop(L, 1);
}

void emu2_lua_opt_float(lua_State *L, int arg, const char *name, float *out)
{
    if (typed_option(L, arg, name, LUA_TNUMBER, "a number"))
        *out = (float)lua_tonumber(L, -1);
    lua_pop(L, 1);
}

void emu2_lua_opt_bool(lua_State *L, int arg, const char *name, int *out)
{
    if (typed_option(L, arg, name, LUA_TBOOLEAN, "a boolean"))
        *out = lua_toboolean(L, -1);
    lua_pop(L, 1);
}

void emu2_lua_opt_string(lua_State *L, int arg, const char *name, const char **out)
{
    if (typed_option(L, arg, name, LUA_TSTRING, "a string")) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len)
            luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' contains a zero byte", name));
        *out = s; /* stays valid: the options table holds the string */
    }
    lua_pop(L, 1);
}

int emu2_lua_opt_function(lua_State *L, int arg, const char *name)
{
    return typed_option(L, arg, name, LUA_TFUNCTION, "a function") ? lua_gettop(L) : 0;
}

void emu2_lua_read_gen_options(lua_State *L, int arg, emu2_gen_options *o)
{
    emu2_gen_options_init(o);
    emu2_lua_opt_int(L, arg, "max_new_tokens", &o->max_new_tokens);
    emu2_lua_opt_int(L, arg, "num_beams", &o->num_beams);
    emu2_lua_opt_float(L, arg, "length_penalty", &o->length_penalty);
    emu2_lua_opt_int(L, arg, "min_length", &o->min_length);
    emu2_lua_opt_bool(L, arg, "do_sample", &o->do_sample);
    emu2_lua_opt_float(L, arg, "temperature", &o->temperature);
    emu2_lua_opt_float(L, arg, "top_p", &o->top_p);
    emu2_lua_opt_int(L, arg, "top_k", &o->top_k);
    emu2_lua_opt_float(L, arg, "repetition_penalty", &o->repetition_penalty);
    emu2_lua_opt_u64(L, arg, "seed", &o->seed);
}

emu2_image_bytes *emu2_lua_read_images(lua_State *L, int arg, size_t *n)
{
    *n = 0;
    if (lua_isnoneornil(L, arg)) {
        lua_newtable(L);
        return NULL;
    }
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer count = luaL_len(L, arg);
    if (count < 0 || (lua_Unsigned)count > SIZE_MAX / sizeof(emu2_image_bytes) || count > INT_MAX)
        luaL_argerror(L, arg, "too many images");
    lua_createtable(L, (int)count, 0); /* the anchor: keeps every string alive */
    int anchor = lua_gettop(L);
    for (lua_Integer i = 1; i <= count; i++) {
        if (lua_geti(L, arg, i) != LUA_TSTRING)
            luaL_argerror(L, arg, lua_pushfstring(L, "image %I must be a string of JPEG/PNG bytes (got %s)", i,
                                                  luaL_typename(L, -1)));
        lua_rawseti(L, anchor, i);
    }
    /* allocated as a userdata so a raised error cannot leak it; anchored too */
    emu2_image_bytes *images = count ? lua_newuserdatauv(L, (size_t)count * sizeof *images, 0) : NULL;
    if (images)
        lua_rawseti(L, anchor, count + 1);
    for (lua_Integer i = 1; i <= count; i++) {
        size_t len;
        lua_rawgeti(L, anchor, i);
        images[i - 1].data = lua_tolstring(L, -1, &len);
        images[i - 1].size = len;
        lua_pop(L, 1);
    }
    *n = (size_t)count;
    return images;
}
