-- test_api.lua: every function of the module and every error path: loading, info, tokenize,
-- detokenize, describe, generate, on_token (stop, errors, re-entry), close / __close / __gc,
-- several models, no_weights, generate_image's refusal on a model without a generator.
local T = dofile((os.getenv("EMU2_ROOT") or ".") .. "/tests/lua/harness.lua")
local emu2 = require("emu2")
local M = T.model_dir
local ex = M .. "/examples/"
local blue = assert(T.read(ex .. "blue_black_1_top_left.jpg"))
local red = assert(T.read(ex .. "red_white_3_bottom_left.jpg"))
local greedy = {num_beams = 1, max_new_tokens = 32}
local short = {num_beams = 1, max_new_tokens = 32, prompt = ""}

local m = assert(emu2.load(M, {threads = 1}))

T.test("module: load function and version string", function()
    T.eq(type(emu2.load), "function")
    T.ok(type(emu2.version) == "string" and emu2.version:match("^%d+%.%d+%.%d+"), "version")
end)

T.test("load: argument misuse raises with the position", function()
    T.raises("bad argument #1", emu2.load)
    T.raises("bad argument #1", emu2.load, {})
    T.raises("folder name is empty", emu2.load, "")
    T.raises("bad argument #2", emu2.load, M, "threads=1")
    T.raises("unknown option 'thread'", emu2.load, M, {thread = 1})
    T.raises("option names must be strings", emu2.load, M, {1})
    T.raises("option 'threads' must be an integer", emu2.load, M, {threads = "2"})
    T.raises("option 'threads' must be an integer", emu2.load, M, {threads = 1.5})
    T.raises("option 'device' must be a string", emu2.load, M, {device = 0})
    T.raises("option 'quant' must be a string", emu2.load, M, {quant = 8})
    T.raises("option 'no_weights' must be a boolean", emu2.load, M, {no_weights = 1})
    T.raises("option 'on_progress' must be a function", emu2.load, M, {on_progress = true})
    T.raises("'n_query' cannot be overridden", emu2.load, M, {n_query = 8})
    T.raises("threads must be >= 0", emu2.load, M, {threads = -1})
    T.raises("unknown device", emu2.load, M, {device = "tpu"})
end)

T.test("load: runtime failures return nil, message", function()
    T.fails("config.json", emu2.load("/nonexistent-emu2-model"))
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p '" .. dir .. "' && printf '{not json' > '" .. dir .. "/config.json'")
    T.fails("config.json", emu2.load(dir))
    os.execute("rm -rf '" .. dir .. "'")
end)

T.test("load: on_progress sees each stage; false cancels; an error is raised", function()
    local stages = {}
    local m2 = assert(emu2.load(M, {on_progress = function(stage, done, total)
        stages[#stages + 1] = stage .. ":" .. done .. "/" .. total
    end}))
    T.ok(#stages >= 3, "stages: " .. table.concat(stages, " "))
    T.eq(stages[1], "config:0/3")
    m2:close()
    T.fails("cancelled", emu2.load(M, {on_progress = function() return false end}))
    local err = T.raises("progress boom", emu2.load, M, {on_progress = function() error("progress boom") end})
    T.ok(err:find("progress boom", 1, true))
    local obj = {}
    local ok, e = pcall(emu2.load, M, {on_progress = function() error(obj) end})
    T.ok(not ok and e == obj, "the callback's error value is raised unchanged")
end)

T.test("load: quant is passed through (int8)", function()
    local q, err = emu2.load(M, {quant = "int8", threads = 1})
    if q then
        local text = q:describe(blue, short)
        T.eq(type(text), "string")
        T.note("quant=int8: %s", text)
        q:close()
    else
        T.note("quant=int8 refused: %s", err)
        T.eq(type(err), "string")
    end
end)

T.test("info: config, device and memory", function()
    local i = m:info()
    T.eq(i.model_version, "base")
    T.ok(type(i.device) == "string" and (i.device:find("^cpu") or i.device:find("^cuda")), i.device)
    T.eq(i.image_size, 96)
    T.eq(i.n_query, 16)
    T.eq(i.vocab_size, 656)
    T.eq(i.bos_id, 1)
    T.eq(i.eos_id, 2)
    T.eq(i.image_token_id, 387)
    T.ok(i.n_params > 1000000, "n_params " .. tostring(i.n_params))
    T.ok(i.rss_bytes > 0, "rss_bytes")
    T.eq(i.path, M)
    T.eq(i.no_weights, false)
    T.eq(i.engine_version, emu2.version)
end)

T.test("tostring: folder and device, or closed", function()
    local s = tostring(m)
    T.ok(s:find("emu2.model", 1, true) and s:find(M, 1, true) and s:find(m:info().device, 1, true), s)
end)

T.test("tokenize / detokenize", function()
    local ids = m:tokenize("[]Describe the image in details:")
    T.eq(ids[1], 1, "BOS first")
    local n_img = 0
    for _, id in ipairs(ids) do if id == 387 then n_img = n_img + 1 end end
    T.eq(n_img, 16, "placeholder expands to n_query <image> tokens")
    local nobos = m:tokenize("[]Describe the image in details:", {bos = false})
    T.eq(#nobos, #ids - 1)
    T.eq(nobos[1], ids[2])
    local plain = m:tokenize("[]", {placeholders = false, bos = false})
    for _, id in ipairs(plain) do T.ok(id ~= 387, "no <image> when placeholders = false") end
    local text = "a red circle with a white 3"
    T.eq(m:detokenize(m:tokenize(text)), text)
    T.eq(m:detokenize({}), "")
    local with_special = m:detokenize({1, table.unpack(m:tokenize(text, {bos = false}))}, {skip_special = false})
    T.ok(with_special:find("<s>", 1, true), with_special)
    T.eq(#m:tokenize(""), 1, "empty text is just BOS")
end)

T.test("tokenize / detokenize: misuse raises", function()
    T.raises("bad argument #1 to 'tokenize'", function() return m:tokenize({}) end)
    T.raises("zero byte", m.tokenize, m, "a\0b")
    T.raises("unknown option 'bos_token'", m.tokenize, m, "a", {bos_token = false})
    T.raises("option 'bos' must be a boolean", m.tokenize, m, "a", {bos = 0})
    T.raises("bad argument #1 to 'detokenize'", function() return m:detokenize("1 2 3") end)
    T.raises("id 2 must be a 32-bit integer", m.detokenize, m, {1, "x"})
    T.raises("id 1 must be a 32-bit integer", m.detokenize, m, {1.5})
    T.raises("id 1 must be a 32-bit integer", m.detokenize, m, {2 ^ 40})
    T.raises("unknown option", m.detokenize, m, {1}, {skip = true})
    T.raises("outside the vocabulary", function() return m:detokenize({100000}) end)
end)

T.test("describe: default question and short caption", function()
    T.eq(m:describe(blue, greedy), "A blue circle with a black 1 in the top left corner.")
    T.eq(m:describe(blue, short), "[blue, black, 1, top left]")
    T.eq(m:describe(red, {prompt = "", max_new_tokens = 32}), "[red, white, 3, bottom left]", "beam search")
end)

T.test("describe: runtime failures return nil, message", function()
    T.fails("image", m:describe("not an image at all", greedy))
    T.fails("image", m:describe("", greedy))
    T.fails("image", m:describe(blue:sub(1, 300), greedy))
    T.fails("context", m:describe(blue, {prompt = string.rep("word ", 2000), num_beams = 1}))
end)

T.test("describe: misuse raises with the position", function()
    T.raises("bad argument #1 to 'describe'", function() return m:describe({}) end)
    T.raises("bad argument #2 to 'describe'", function() return m:describe(blue, {num_beam = 1}) end)
    T.raises("unknown option 'num_beam'", m.describe, m, blue, {num_beam = 1})
    T.raises("option 'num_beams' must be an integer", m.describe, m, blue, {num_beams = "1"})
    T.raises("option 'temperature' must be a number", m.describe, m, blue, {temperature = "hot"})
    T.raises("option 'do_sample' must be a boolean", m.describe, m, blue, {do_sample = 1})
    T.raises("option 'seed' is out of range", m.describe, m, blue, {seed = -1})
    T.raises("option 'prompt' must be a string", m.describe, m, blue, {prompt = 1})
    T.raises("option 'on_token' must be a function", m.describe, m, blue, {on_token = "print"})
    T.raises("num_beams must be in", m.describe, m, blue, {num_beams = 0})
    T.raises("top_p must be in", m.describe, m, blue, {top_p = 2})
    T.raises("emu2.model expected, got string", m.describe, "model", blue)
end)

T.test("describe: every generation option is accepted", function()
    local text = m:describe(blue, {prompt = "", max_new_tokens = 16, num_beams = 1, length_penalty = 1.0,
        min_length = 1, do_sample = true, temperature = 0.7, top_p = 0.9, top_k = 10,
        repetition_penalty = 1.1, seed = 42})
    T.eq(type(text), "string")
    T.eq(text, m:describe(blue, {prompt = "", max_new_tokens = 16, num_beams = 1, do_sample = true,
        temperature = 0.7, top_p = 0.9, top_k = 10, repetition_penalty = 1.1, seed = 42}), "same seed, same text")
end)

T.test("generate: text only, placeholder mismatch, misuse", function()
    T.eq(type(m:generate("hello", nil, greedy)), "string")
    T.eq(type(m:generate("hello", {}, greedy)), "string")
    T.fails("placeholder", m:generate("[][]", {blue}, greedy))
    T.fails("placeholder", m:generate("no placeholder", {blue}, greedy))
    T.fails("image 2", m:generate("[][]", {blue, "junk"}, greedy))
    T.eq(m:generate("[]", {blue}, greedy), "[blue, black, 1, top left]")
    T.raises("bad argument #1 to 'generate'", function() return m:generate(nil, {blue}) end)
    T.raises("bad argument #2 to 'generate'", function() return m:generate("[]", blue) end)
    T.raises("bad argument #3 to 'generate'", function() return m:generate("[]", {blue}, {num_beams = 0}) end)
    T.raises("image 1 must be a string", m.generate, m, "[]", {42 == 42})
    T.raises("the prompt is empty and there are no images", m.generate, m, "", {})
    T.raises("unknown option 'prompt'", m.generate, m, "[]", {blue}, {prompt = "x"})
    T.raises("the prompt contains a zero byte", m.generate, m, "[]\0", {blue})
    T.raises("option 'prompt' contains a zero byte", m.describe, m, blue, {prompt = "a\0b"})
    T.raises("the folder name contains a zero byte", emu2.load, M .. "\0x")
    T.raises("the prompt contains a zero byte", m.generate_image, m, "a\0b")
end)

T.test("on_token: pieces make the text; false stops early", function()
    local pieces = {}
    local text = m:describe(blue, {num_beams = 1, max_new_tokens = 32,
        on_token = function(p) pieces[#pieces + 1] = p end})
    T.ok(#pieces > 3, "several pieces")
    T.eq(table.concat(pieces), text)
    local n = 0
    local cut = m:describe(blue, {num_beams = 1, max_new_tokens = 32,
        on_token = function() n = n + 1; if n == 3 then return false end end})
    T.eq(n, 3, "no call after false")
    T.ok(#cut < #text and text:sub(1, #cut) == cut, "stopped text is a prefix: " .. cut)
    local beam = {}
    local bt = m:describe(blue, {prompt = "", on_token = function(p) beam[#beam + 1] = p end})
    T.eq(table.concat(beam), bt, "beam search streams the winner")
end)

T.test("on_token: a Lua error stops generation and is raised after it", function()
    local calls = 0
    local err = T.raises("token boom", m.describe, m, blue, {num_beams = 1,
        on_token = function() calls = calls + 1; if calls == 2 then error("token boom") end end})
    T.eq(calls, 2, "no call after the error")
    local obj = setmetatable({}, {__tostring = function() return "custom error" end})
    local ok, e = pcall(m.describe, m, blue, {num_beams = 1, on_token = function() error(obj) end})
    T.ok(not ok and e == obj, "error objects are raised unchanged")
    T.eq(m:describe(blue, short), "[blue, black, 1, top left]", "the model still works")
    T.ok(err:find("token boom"))
end)

T.test("on_token: the model cannot be used or closed from its own callback", function()
    T.raises("the model is busy", m.describe, m, blue, {num_beams = 1,
        on_token = function() m:describe(blue) end})
    T.raises("the model is busy", m.describe, m, blue, {num_beams = 1,
        on_token = function() m:close() end})
    T.raises("the model is busy", m.generate, m, "[]", {blue}, {num_beams = 1,
        on_token = function() m:info() end})
    T.eq(m:describe(blue, short), "[blue, black, 1, top left]", "the model still works")
end)

T.test("on_token: yielding across the engine is refused cleanly", function()
    local co = coroutine.wrap(function()
        return pcall(m.describe, m, blue, {num_beams = 1, on_token = function() coroutine.yield(1) end})
    end)
    local ok, err = co()
    T.ok(ok == false and tostring(err):find("yield"), tostring(err))
    T.eq(m:describe(blue, short), "[blue, black, 1, top left]")
end)

T.test("close: use after close raises, double close is a no-op", function()
    local c = assert(emu2.load(M, {threads = 1}))
    c:close()
    c:close()
    T.ok(tostring(c):find("closed", 1, true), tostring(c))
    for _, call in ipairs({
        function() return c:info() end, function() return c:tokenize("a") end,
        function() return c:detokenize({1}) end, function() return c:describe(blue) end,
        function() return c:generate("[]", {blue}) end, function() return c:describe_batch({blue}) end,
        function() return c:generate_image("a dog") end}) do
        T.raises("the model is closed", call)
    end
end)

T.test("__close: a <close> variable frees the model at scope end", function()
    local kept
    do
        local c <close> = assert(emu2.load(M, {threads = 1}))
        kept = c
        T.eq(c:describe(blue, short), "[blue, black, 1, top left]")
    end
    T.raises("the model is closed", kept.info, kept)
    do
        local c <close> = assert(emu2.load(M, {threads = 1}))
        c:close() -- closing explicitly first is fine
    end
end)

T.test("__gc: an unclosed model is collected", function()
    local weak = setmetatable({}, {__mode = "v"})
    do
        local c = assert(emu2.load(M, {threads = 1}))
        weak[1] = c
        T.eq(c:describe(blue, short), "[blue, black, 1, top left]")
    end
    collectgarbage()
    collectgarbage()
    T.eq(weak[1], nil, "collected")
end)

T.test("several models in one state", function()
    local a = assert(emu2.load(M, {threads = 1}))
    local b = assert(emu2.load(M, {threads = 1}))
    T.eq(a:describe(blue, short), "[blue, black, 1, top left]")
    T.eq(b:describe(red, short), "[red, white, 3, bottom left]")
    a:close()
    T.eq(b:describe(blue, short), "[blue, black, 1, top left]")
    -- a callback may use another model
    local inner
    b:describe(blue, {num_beams = 1, on_token = function() inner = inner or m:describe(red, short) end})
    T.eq(inner, "[red, white, 3, bottom left]")
    b:close()
end)

T.test("no_weights: text calls only", function()
    local t = assert(emu2.load(M, {no_weights = true}))
    T.eq(t:info().no_weights, true)
    T.eq(#t:tokenize("hello"), #m:tokenize("hello"))
    T.raises("no_weights", t.describe, t, blue)
    T.raises("no_weights", t.generate, t, "[]", {blue})
    T.raises("no_weights", t.describe_batch, t, {blue})
    t:close()
end)

T.test("generate_image: nil, message on a model without a generator; misuse raises", function()
    local png, err = m:generate_image("a red circle", nil, {steps = 1, width = 64, height = 64})
    T.eq(png, nil)
    T.ok(type(err) == "string" and #err > 0, "message")
    T.note("generate_image on the tiny model: %s", err)
    T.raises("unknown option 'step'", m.generate_image, m, "x", nil, {step = 1})
    T.raises("option 'guidance' must be a number", m.generate_image, m, "x", nil, {guidance = "3"})
    T.raises("option 'vae_tiling' must be a boolean", m.generate_image, m, "x", nil, {vae_tiling = 1})
    T.raises("option 'on_progress' must be a function", m.generate_image, m, "x", nil, {on_progress = 1})
    T.raises("the prompt is empty and there are no images", m.generate_image, m, "", nil)
    T.raises("image 1 must be a string", m.generate_image, m, "[]", {{}})
end)

local gen_dir = T.root .. "/tests/models/gen-tiny"
local gen, gen_err = nil, "no " .. gen_dir .. "/model_index.json"
if T.exists(gen_dir .. "/model_index.json") then gen, gen_err = emu2.load(gen_dir, {threads = 1}) end
if not gen then
    T.skip("generate_image: a PNG from the tiny Emu2-Gen test model", gen_err)
else
    T.test("generate_image: a PNG from the tiny Emu2-Gen test model", function()
        local stages = {}
        local opts = {steps = 2, width = 64, height = 64, seed = 7, guidance = 3.0,
            on_progress = function(stage, done, total) stages[#stages + 1] = stage .. " " .. done .. "/" .. total end}
        local png = assert(gen:generate_image("a red circle", nil, opts))
        T.eq(png:sub(1, 8), "\137PNG\r\n\26\n", "PNG signature")
        T.ok(#stages >= 2 and stages[1]:find("^denoise"), table.concat(stages, ", "))
        opts.on_progress = nil
        T.eq(gen:generate_image("a red circle", nil, opts), png, "same seed, same image")
        T.fails("cancel", gen:generate_image("a red circle", nil, {steps = 2, width = 64, height = 64,
            on_progress = function() return false end}))
        T.raises("gen boom", gen.generate_image, gen, "a red circle", nil, {steps = 2, width = 64, height = 64,
            on_progress = function() error("gen boom") end})
        T.raises("the model is busy", gen.generate_image, gen, "a red circle", nil, {steps = 2, width = 64,
            height = 64, on_progress = function() gen:close() end})
        T.eq(gen:generate_image("a red circle", nil, opts), png, "still works")
        -- the requested size, read from the PNG's IHDR (big-endian width, height at bytes 17..24)
        local wide = assert(gen:generate_image("a red circle", nil, {steps = 2, width = 64, height = 48, seed = 1}))
        T.eq(string.unpack(">I4", wide, 17), 64, "PNG width")
        T.eq(string.unpack(">I4", wide, 21), 48, "PNG height")
        -- bad options are the engine's INVALID_ARGUMENT: misuse, raised
        T.raises("multiples of 8", gen.generate_image, gen, "x", nil, {steps = 2, width = 60, height = 64})
        T.raises("steps", gen.generate_image, gen, "x", nil, {steps = 0, width = 64, height = 64})
        T.raises("guidance", gen.generate_image, gen, "x", nil, {steps = 2, width = 64, height = 64, guidance = -1})
        gen:close()
    end)
end

m:close()
os.exit(T.finish())
