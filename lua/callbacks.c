/* callbacks.c: running Lua functions from inside the engine without ever unwinding C frames.
 *
 * The engine is C: a Lua error raised straight through it would longjmp over its frames and leak
 * (or corrupt) its state. So every callback runs under lua_pcall. Only non-allocating API calls
 * happen outside that protection (pushing a light C function and a light userdata), so a memory
 * error cannot escape either. The first error is left on the stack and re-raised by the binding
 * after the engine returned. */
#include "emu2_lua.h"

typedef struct invocation {
    emu2_lua_push_args push_args;
    const void *args;
} invocation;

/* Runs protected, with (function, invocation): pushes the arguments, calls, keeps one result. */
static int call_protected(lua_State *L)
{
    const invocation *inv = lua_touserdata(L, 2);
    lua_settop(L, 1);
    int n = inv->push_args ? inv->push_args(L, inv->args) : 0;
    lua_call(L, n, 1);
    return 1;
}

int emu2_lua_invoke(emu2_lua_guard *guard, int fn, emu2_lua_push_args push_args, const void *args)
{
    if (guard->failed)
        return 1; /* an earlier callback failed: nothing more runs */
    lua_State *L = guard->L;
    if (!lua_checkstack(L, 8)) { /* (lua_checkstack does not raise) */
        guard->failed = EMU2_LUA_FAILED_NO_STACK; /* nothing pushed: emu2_lua_reraise says why */
        return 1;
    }
    invocation inv = {push_args, args};
    lua_pushcfunction(L, call_protected);
    lua_pushvalue(L, fn);
    lua_pushlightuserdata(L, &inv);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        guard->failed = EMU2_LUA_FAILED_RAISED; /* the error value stays on top of the stack */
        return 1;
    }
    int stop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

void emu2_lua_reraise(emu2_lua_guard *guard)
{
    if (guard->failed == EMU2_LUA_FAILED_NO_STACK)
        luaL_error(guard->L, "emu2: no Lua stack space left to run a callback");
    if (guard->failed)
        lua_error(guard->L);
}

typedef struct progress_args {
    const char *stage;
    uint64_t done, total;
} progress_args;

static int push_progress_args(lua_State *L, const void *p)
{
    const progress_args *a = p;
    lua_pushstring(L, a->stage ? a->stage : "");
    lua_pushinteger(L, (lua_Integer)a->done);
    lua_pushinteger(L, (lua_Integer)a->total);
    return 3;
}

int emu2_lua_progress_relay(void *user, const char *stage, uint64_t done, uint64_t total)
{
    emu2_lua_progress *p = user;
    progress_args a = {stage, done, total};
    return emu2_lua_invoke(p->guard, p->fn, push_progress_args, &a);
}
