-- The Lua module of emu2, built from a checkout of the emu2 repository:
--   luarocks --lua-version=5.4 make lua/emu2-0.1.0-1.rockspec      (run in the repository root)
-- It runs the repository's Makefile (`make lua`, then `make install-lua` into the rocks tree): no
-- download, no network. The Makefile's BUILD (default build/) may be set in the environment to
-- reuse an existing build folder.
rockspec_format = "3.0"
package = "emu2"
version = "0.1.0-1"
source = {
    url = "git+file://.", -- not fetched by `luarocks make`, which builds the current checkout
}
description = {
    summary = "Lua 5.4 binding of emu2, a native engine for BAAI's Emu2 multimodal models",
    detailed = [[
require "emu2": load an Emu2 model folder, caption images (JPEG/PNG bytes), few-shot prompts with
several images, batches on the engine's batching, streaming, tokenizing. See docs/lua.md.]],
    license = "Apache-2.0",
}
dependencies = {
    "lua >= 5.4, < 5.5",
}
build = {
    type = "make",
    makefile = "Makefile",
    build_target = "lua",
    -- CFLAGS is deliberately not passed (luarocks warns): on make's command line it would replace
    -- the Makefile's flags (-std=c11 -fPIC -Wall ...) instead of adding to them.
    build_variables = {
        LUA_INCDIR = "$(LUA_INCDIR)",
    },
    install_target = "install-lua",
    install_variables = {
        LUA_CMOD_DIR = "$(LIBDIR)",
    },
}
