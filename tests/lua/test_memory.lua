-- test_memory.lua: 1000 describe calls in a loop keep memory stable. RSS is read from
-- /proc/self/statm after a warm-up and after the loop (Lua garbage collected both times); the growth
-- must stay under a bound far below what leaking any per-call buffer would cost (a leaked
-- preprocessed image alone is 108 KiB per call: 105 MiB over the loop).
local T = dofile((os.getenv("EMU2_ROOT") or ".") .. "/tests/lua/harness.lua")
local emu2 = require("emu2")
local N = tonumber(os.getenv("EMU2_LUA_MEMORY_CALLS") or "1000")
local BOUND = 2 * 1024 * 1024
local blue = assert(T.read(T.model_dir .. "/examples/blue_black_1_top_left.jpg"))
local opts = {num_beams = 1, max_new_tokens = 32, prompt = ""}

T.test(string.format("%d describe calls: RSS grows < %d KiB", N, BOUND // 1024), function()
    local m <close> = assert(emu2.load(T.model_dir, {threads = 1}))
    for _ = 1, 50 do m:describe(blue, opts) end -- warm-up: allocator arenas, caches
    collectgarbage()
    collectgarbage()
    local before = T.rss()
    local t0 = os.clock()
    local bad = 0
    for _ = 1, N do
        if m:describe(blue, opts) ~= "[blue, black, 1, top left]" then bad = bad + 1 end
    end
    local secs = os.clock() - t0
    collectgarbage()
    collectgarbage()
    local after = T.rss()
    T.note("RSS before %.1f MiB, after %.1f MiB (%+d KiB) over %d calls; %.0f calls/s (CPU time)",
        before / 1048576, after / 1048576, (after - before) // 1024, N, N / secs)
    T.eq(bad, 0, "every answer right")
    T.ok(after - before < BOUND, string.format("RSS grew %d KiB", (after - before) // 1024))
end)

-- Runs phase (after one warm-up run) and checks the RSS growth.
local function stable(name, phase)
    phase()
    collectgarbage()
    collectgarbage()
    local before = T.rss()
    phase()
    collectgarbage()
    collectgarbage()
    local after = T.rss()
    T.note("%s: RSS before %.1f MiB, after %.1f MiB (%+d KiB)", name, before / 1048576, after / 1048576,
        (after - before) // 1024)
    T.ok(after - before < BOUND, string.format("%s: RSS grew %d KiB", name, (after - before) // 1024))
end

T.test(string.format("describe_batch of %d images, load/close and load/__gc cycles: RSS stable", N), function()
    local images = {}
    for i = 1, 100 do images[i] = blue end
    local m <close> = assert(emu2.load(T.model_dir, {threads = 1}))
    stable("describe_batch", function()
        for _ = 1, N // 100 do T.eq(m:describe_batch(images, opts)[100], "[blue, black, 1, top left]") end
    end)
    stable("200 load + close", function()
        for _ = 1, 200 do assert(emu2.load(T.model_dir, {threads = 1})):close() end
    end)
    stable("200 load + __gc", function()
        for i = 1, 200 do
            local _ = assert(emu2.load(T.model_dir, {threads = 1}))
            if i % 10 == 0 then collectgarbage() end -- Lua cannot see a model's size: collect often
        end
    end)
end)

os.exit(T.finish())
