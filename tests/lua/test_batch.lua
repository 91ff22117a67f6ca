-- test_batch.lua: model:describe_batch on the engine's batching: answers equal the PyTorch
-- reference on held-out images, per-image failures, progress and cancellation, streaming, errors
-- inside callbacks, misuse.
local T = dofile((os.getenv("EMU2_ROOT") or ".") .. "/tests/lua/harness.lua")
local emu2 = require("emu2")
local ex = T.model_dir .. "/examples/"
local m <close> = assert(emu2.load(T.model_dir))
local blue = assert(T.read(ex .. "blue_black_1_top_left.jpg"))
local red = assert(T.read(ex .. "red_white_3_bottom_left.jpg"))
local green = assert(T.read(ex .. "green_black_4_bottom_right.jpg"))
local greedy = {num_beams = 1, max_new_tokens = 32, prompt = ""}

local heldout, N, labels, torch = T.heldout()
if not labels then
    T.skip("held-out images: answers equal PyTorch's", "no " .. heldout .. "/labels.txt")
else
    T.test(string.format("held-out images (%d): answers equal PyTorch's", N), function()
        local images = {}
        for i = 1, N do images[i] = assert(T.read(string.format("%s/%03d.jpg", heldout, i - 1))) end
        local t0 = os.clock()
        local texts, errors = m:describe_batch(images, {prompt = "", max_new_tokens = 32, batch_size = 8})
        local secs = os.clock() - t0
        T.eq(next(errors), nil, "no errors")
        local same, right = 0, 0
        for i = 1, N do
            if texts[i] == torch[i] then same = same + 1 end
            if texts[i] == labels[i] then right = right + 1 end
        end
        T.note("%d images, beams 5: %.2f s CPU; same as PyTorch %d/%d, right %d/%d", N, secs, same, N, right, N)
        T.eq(same, N, "answers equal PyTorch's")
    end)
end

T.test("batch results equal single describe calls", function()
    local texts, errors = m:describe_batch({blue, red, green}, greedy)
    T.eq(next(errors), nil)
    T.eq(texts[1], m:describe(blue, greedy))
    T.eq(texts[2], m:describe(red, greedy))
    T.eq(texts[3], "[green, black, 4, bottom right]")
    local long = m:describe_batch({red}, {num_beams = 1, max_new_tokens = 32})
    T.eq(long[1], "A red circle with a white 3 in the bottom left corner.", "default question")
    local texts2 = m:describe_batch({}, greedy)
    T.eq(#texts2, 0, "empty batch")
end)

T.test("a corrupt image fails alone: false and a message", function()
    local texts, errors = m:describe_batch({blue, "junk", red, blue:sub(1, 200)}, greedy)
    T.eq(texts[1], "[blue, black, 1, top left]")
    T.eq(texts[2], false)
    T.eq(texts[3], "[red, white, 3, bottom left]")
    T.eq(texts[4], false)
    T.ok(type(errors[2]) == "string" and errors[2]:find("image"), tostring(errors[2]))
    T.ok(type(errors[4]) == "string", "message for 4")
    T.eq(errors[1], nil)
    T.eq(errors[3], nil)
end)

T.test("on_progress: (done, total) after each chunk; false cancels the rest", function()
    local seen = {}
    local imgs = {blue, red, green, blue, red, green, blue}
    m:describe_batch(imgs, {num_beams = 1, max_new_tokens = 32, prompt = "", batch_size = 3,
        on_progress = function(done, total) seen[#seen + 1] = done .. "/" .. total end})
    T.eq(table.concat(seen, " "), "3/7 6/7 7/7")
    local texts, errors = m:describe_batch(imgs, {num_beams = 1, max_new_tokens = 32, prompt = "",
        batch_size = 2, on_progress = function(done) if done >= 4 then return false end end})
    T.eq(texts[4], "[blue, black, 1, top left]")
    T.eq(texts[5], false)
    T.eq(texts[7], false)
    T.eq(errors[5], "cancelled")
    T.eq(#texts, 7)
end)

T.test("on_token: (piece, index) streams every image", function()
    local parts = {}
    local texts = m:describe_batch({blue, red}, {num_beams = 1, max_new_tokens = 32, prompt = "",
        on_token = function(piece, i) parts[i] = (parts[i] or "") .. piece end})
    T.eq(parts[1], texts[1])
    T.eq(parts[2], texts[2])
    local cut = m:describe_batch({blue, red}, {num_beams = 1, max_new_tokens = 32, prompt = "",
        on_token = function(_, i) if i == 1 then return false end end})
    T.ok(#cut[1] < #texts[1], "image 1 stopped early: " .. tostring(cut[1]))
    T.eq(cut[2], texts[2], "image 2 went on")
end)

T.test("errors inside callbacks are raised after the batch; the model still works", function()
    T.raises("token boom", m.describe_batch, m, {blue, red}, {num_beams = 1, prompt = "",
        on_token = function() error("token boom") end})
    T.raises("progress boom", m.describe_batch, m, {blue, red}, {num_beams = 1, prompt = "", batch_size = 1,
        on_progress = function() error("progress boom") end})
    T.raises("the model is busy", m.describe_batch, m, {blue}, {num_beams = 1, prompt = "",
        on_token = function() m:describe(blue) end})
    T.eq(m:describe_batch({green}, greedy)[1], "[green, black, 4, bottom right]")
end)

T.test("misuse raises with the position", function()
    T.raises("bad argument #1 to 'describe_batch'", function() return m:describe_batch(blue) end)
    T.raises("image 2 must be a string", function() return m:describe_batch({blue, 7 == 7}) end)
    T.raises("bad argument #2 to 'describe_batch'", function() return m:describe_batch({blue}, {batch_size = 0}) end)
    T.raises("option 'batch_size' must be an integer", m.describe_batch, m, {blue}, {batch_size = "8"})
    T.raises("unknown option 'batchsize'", m.describe_batch, m, {blue}, {batchsize = 8})
    T.raises("num_beams must be in", m.describe_batch, m, {blue}, {num_beams = 0})
    T.raises("option 'on_progress' must be a function", m.describe_batch, m, {blue}, {on_progress = {}})
end)

os.exit(T.finish())
