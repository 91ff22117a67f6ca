/* emu2_lua.h: internals shared by the files of the Lua module (emu2.so).
 *
 * Error rule (docs/lua.md): misuse raises a Lua error naming the argument (wrong types, unknown
 * option names, option values the engine refuses, a closed or busy model); runtime failures
 * (files, image bytes, placeholder counts, limits) return nil, message. */
#ifndef EMU2_LUA_H
#define EMU2_LUA_H

#include <lauxlib.h>
#include <lua.h>

#include "emu2.h"

#define EMU2_LUA_MODEL_TYPE "emu2.model"

/* The userdata behind a Lua model object. model is NULL once closed. */
typedef struct emu2_lua_model {
    emu2_model *model;
    int busy;       /* 1 while an engine call runs: callbacks may not use or close this model */
    int no_weights; /* loaded with no_weights = true: text calls only */
} emu2_lua_model; /* user value 1: the folder it was loaded from (a string) */

/* Pushes values for a callback or a result; returns how many. */
typedef int (*emu2_lua_push_args)(lua_State *L, const void *args);

/* ---------------------------------------------------------------- model objects (model_object.c) */

void emu2_lua_register_model_type(lua_State *L);
/* Pushes a new, still empty model object; the caller loads into ->model (created first, so a
 * raised error can never leak a loaded model: __gc frees it). */
emu2_lua_model *emu2_lua_new_model(lua_State *L, const char *dir);
/* The open, idle model at arg; raises otherwise. */
emu2_lua_model *emu2_lua_check_model(lua_State *L, int arg);
/* The model at arg with weights (describe/generate need them); raises otherwise. */
emu2_lua_model *emu2_lua_check_model_with_weights(lua_State *L, int arg);

/* Pushes what push makes of an engine buffer (under lua_pcall), then frees the buffer with emu2_free;
 * a memory error is raised only after that, so nothing leaks. (Chosen over a userdata made before
 * the engine call to own the buffer: a small Lua object allocated per call between the engine's
 * large buffers pins heap pages, and RSS crept by megabytes in tests/lua/test_memory.lua.) */
void emu2_lua_push_and_free(lua_State *L, void *buffer, emu2_lua_push_args push, const void *args);
void emu2_lua_push_text_and_free(lua_State *L, char *text);
void emu2_lua_push_bytes_and_free(lua_State *L, void *data, size_t len);

/* After an engine call failed: raises for EMU2_ERR_INVALID_ARGUMENT (blaming argument opts_arg), else
 * pushes nil, message and returns 2. */
int emu2_lua_push_failure(lua_State *L, emu2_status st, const char *message, int opts_arg);

/* ---------------------------------------------------------------- option tables (options.c) */

/* luaL_checklstring that also refuses a zero byte inside ("the WHAT contains a zero byte"). */
const char *emu2_lua_check_text(lua_State *L, int arg, const char *what, size_t *len);
/* Raises unless every key of the table at arg (nil is fine) is a string in names (NULL-terminated). */
void emu2_lua_check_option_names(lua_State *L, int arg, const char *const *names);
/* Each reader leaves *out untouched when the option is absent (or the table is nil), raises on a
 * value of the wrong type or range. */
void emu2_lua_opt_int(lua_State *L, int arg, const char *name, int *out);
void emu2_lua_opt_u64(lua_State *L, int arg, const char *name, uint64_t *out);
void emu2_lua_opt_float(lua_State *L, int arg, const char *name, float *out);
void emu2_lua_opt_bool(lua_State *L, int arg, const char *name, int *out);
/* The string stays valid while the options table lives (the caller keeps it on the stack). */
void emu2_lua_opt_string(lua_State *L, int arg, const char *name, const char **out);
/* Pushes the function option (or nil) and returns its stack index, 0 when absent. */
int emu2_lua_opt_function(lua_State *L, int arg, const char *name);

/* The generation options every text call accepts: their names (for an option-name list) and reader. */
#define EMU2_LUA_GEN_OPTION_NAMES                                                                         \
    "max_new_tokens", "num_beams", "length_penalty", "min_length", "do_sample", "temperature", "top_p", \
        "top_k", "repetition_penalty", "seed"
void emu2_lua_read_gen_options(lua_State *L, int arg, emu2_gen_options *o);

/* Reads the array of image strings at arg (nil = no images). Pushes one anchor table that keeps
 * every string and the returned array alive (a callback cannot free them; nothing to release):
 * leave it on the stack for the duration of the engine call. */
emu2_image_bytes *emu2_lua_read_images(lua_State *L, int arg, size_t *n);

/* ---------------------------------------------------------------- callbacks (callbacks.c) */

/* Lua callbacks run from inside the engine through lua_pcall, never by a longjmp across C frames:
 * the first error stops the work, its value is left on top of the stack, and the binding raises it
 * once the engine has returned (emu2_lua_reraise). */
enum { EMU2_LUA_FAILED_RAISED = 1, EMU2_LUA_FAILED_NO_STACK = 2 };
typedef struct emu2_lua_guard {
    lua_State *L;
    int failed; /* 0, or RAISED: a callback raised and its error value is on top of the stack, or
                   NO_STACK: the callback could not even be called */
} emu2_lua_guard;

/* Calls the function at stack index fn with the arguments push_args pushes. Returns 1 when the work
 * should stop: the function returned false, or it raised (then guard->failed is set). */
int emu2_lua_invoke(emu2_lua_guard *guard, int fn, emu2_lua_push_args push_args, const void *args);
/* Raises the stored callback error (call after releasing C resources). Does nothing if none. */
void emu2_lua_reraise(emu2_lua_guard *guard);

/* A load/progress callback in the engine's emu2_progress_fn shape: user points to this. */
typedef struct emu2_lua_progress {
    emu2_lua_guard *guard;
    int fn; /* stack index of the Lua function */
} emu2_lua_progress;
int emu2_lua_progress_relay(void *user, const char *stage, uint64_t done, uint64_t total);

/* ---------------------------------------------------------------- methods */

int emu2_lua_describe(lua_State *L);
int emu2_lua_generate(lua_State *L);
int emu2_lua_describe_batch(lua_State *L);
int emu2_lua_generate_image(lua_State *L);

#endif
