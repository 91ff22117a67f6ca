/* batch_calls.c: model:describe_batch, on the engine's batching (emu2_generate_batch), in chunks of
 * batch_size images with a progress callback between chunks. */
#include <string.h>

#include "emu2_lua.h"

#define DEFAULT_BATCH_SIZE 8
#define MAX_BATCH_SIZE 1024
#define RESULTS_TYPE "emu2.batch_results"

static const char *const batch_options[] = {EMU2_LUA_GEN_OPTION_NAMES, "on_token", "on_progress", "prompt",
                                            "batch_size", NULL};

/* One chunk's results, owned by a userdata so a raised error cannot leak their texts. */
typedef struct result_set {
    size_t n;
    emu2_result r[];
} result_set;

static int result_set_gc(lua_State *L)
{
    result_set *s = luaL_checkudata(L, 1, RESULTS_TYPE);
    emu2_results_clear(s->r, s->n);
    return 0;
}

static result_set *new_result_set(lua_State *L, size_t n)
{
    result_set *s = lua_newuserdatauv(L, sizeof *s + n * sizeof s->r[0], 0);
    memset(s, 0, sizeof *s + n * sizeof s->r[0]);
    s->n = n;
    if (luaL_newmetatable(L, RESULTS_TYPE)) {
        lua_pushcfunction(L, result_set_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return s;
}

typedef struct batch_relay {
    emu2_lua_guard *guard;
    int on_token;  /* stack index or 0 */
    size_t offset; /* index of the chunk's first image in the whole call */
} batch_relay;

typedef struct piece_args {
    const char *piece;
    lua_Integer index;
} piece_args;

static int push_piece_and_index(lua_State *L, const void *p)
{
    const piece_args *a = p;
    lua_pushstring(L, a->piece);
    lua_pushinteger(L, a->index);
    return 2;
}

static int relay_token(void *user, size_t item, int32_t id, const char *piece)
{
    (void)id;
    batch_relay *r = user;
    if (!piece || !*piece)
        return 0;
    piece_args a = {piece, (lua_Integer)(r->offset + item + 1)};
    return emu2_lua_invoke(r->guard, r->on_token, push_piece_and_index, &a);
}

static int relay_cancelled(void *user, size_t item)
{
    (void)item;
    const batch_relay *r = user;
    return r->guard->failed; /* a callback raised: drop the rest of the chunk at once */
}

typedef struct progress_args {
    lua_Integer done, total;
} progress_args;

static int push_progress(lua_State *L, const void *p)
{
    const progress_args *a = p;
    lua_pushinteger(L, a->done);
    lua_pushinteger(L, a->total);
    return 2;
}

/* Copies a chunk's outcome into results[] (text or false) and errors[] (message). */
static void store_chunk(lua_State *L, int results, int errors, const result_set *s, size_t offset)
{
    for (size_t i = 0; i < s->n; i++) {
        lua_Integer index = (lua_Integer)(offset + i + 1);
        if (s->r[i].status == EMU2_OK) {
            lua_pushstring(L, s->r[i].text ? s->r[i].text : "");
        } else {
            lua_pushboolean(L, 0);
            lua_pushstring(L, s->r[i].message[0] ? s->r[i].message : emu2_status_name(s->r[i].status));
            lua_rawseti(L, errors, index);
        }
        lua_rawseti(L, results, index);
    }
}

/* model:describe_batch({image, ...} [, opts]) -> {text | false, ...}, {[i] = message, ...} */
int emu2_lua_describe_batch(lua_State *L)
{
    emu2_lua_model *m = emu2_lua_check_model_with_weights(L, 1);
    emu2_lua_check_option_names(L, 3, batch_options);
    size_t n;
    const emu2_image_bytes *images = emu2_lua_read_images(L, 2, &n);
    emu2_gen_options o;
    emu2_lua_read_gen_options(L, 3, &o);
    int batch_size = DEFAULT_BATCH_SIZE;
    emu2_lua_opt_int(L, 3, "batch_size", &batch_size);
    if (batch_size < 1 || batch_size > MAX_BATCH_SIZE)
        luaL_argerror(L, 3, lua_pushfstring(L, "option 'batch_size' must be in 1..%d", MAX_BATCH_SIZE));
    const char *question = NULL, *prompt = NULL;
    emu2_lua_opt_string(L, 3, "prompt", &question);
    if (question) /* a request's prompt carries its placeholder; the string stays on the stack */
        prompt = lua_pushfstring(L, "[<IMG_PLH>]%s", question);
    emu2_lua_guard guard = {L, 0};
    batch_relay relay = {&guard, emu2_lua_opt_function(L, 3, "on_token"), 0};
    int on_progress = emu2_lua_opt_function(L, 3, "on_progress");
    emu2_batch_hooks hooks;
    emu2_batch_hooks_init(&hooks);
    hooks.on_token = relay.on_token ? relay_token : NULL;
    hooks.cancelled = relay_cancelled;
    hooks.user = &relay;

    lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 0);
    int results = lua_gettop(L);
    lua_newtable(L);
    int errors = lua_gettop(L);
    size_t chunk = (size_t)batch_size < n ? (size_t)batch_size : n;
    emu2_request *requests = chunk ? lua_newuserdatauv(L, chunk * sizeof *requests, 0) : NULL;
    result_set *set = chunk ? new_result_set(L, chunk) : NULL;

    size_t done = 0;
    while (done < n) {
        size_t k = n - done < chunk ? n - done : chunk;
        for (size_t i = 0; i < k; i++)
            requests[i] = (emu2_request){prompt, &images[done + i], 1};
        set->n = k;
        relay.offset = done;
        m->busy = 1; /* from here to busy = 0 nothing may raise */
        emu2_status st = emu2_generate_batch(m->model, requests, k, &o, &hooks, set->r);
        m->busy = 0;
        if (guard.failed) {
            emu2_results_clear(set->r, k);
            emu2_lua_reraise(&guard);
        }
        if (st == EMU2_ERR_INVALID_ARGUMENT) {
            lua_pushstring(L, set->r[0].message[0] ? set->r[0].message : emu2_model_last_error(m->model));
            emu2_results_clear(set->r, k);
            luaL_argerror(L, 3, lua_tostring(L, -1));
        }
        store_chunk(L, results, errors, set, done); /* a whole-call failure: every result carries it */
        emu2_results_clear(set->r, k);
        done += k;
        if (on_progress) {
            progress_args a = {(lua_Integer)done, (lua_Integer)n};
            int stop = emu2_lua_invoke(&guard, on_progress, push_progress, &a);
            emu2_lua_reraise(&guard);
            if (stop)
                break;
        }
    }
    for (size_t i = done; i < n; i++) { /* left out by on_progress returning false */
        lua_pushboolean(L, 0);
        lua_rawseti(L, results, (lua_Integer)i + 1);
        lua_pushliteral(L, "cancelled");
        lua_rawseti(L, errors, (lua_Integer)i + 1);
    }
    lua_pushvalue(L, results);
    lua_pushvalue(L, errors);
    return 2;
}
