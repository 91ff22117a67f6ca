-- test_generate.lua: answers that must be right with the shipped tiny model: the seed's few-shot
-- prompt (beam search, the defaults) and the seed images' captions.
local T = dofile((os.getenv("EMU2_ROOT") or ".") .. "/tests/lua/harness.lua")
local emu2 = require("emu2")
local ex = T.model_dir .. "/examples/"
local m <close> = assert(emu2.load(T.model_dir))

local fewshot = "[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom right][]"
local function examples()
    local out = {}
    for i, name in ipairs({"red_white_3_bottom_left", "yellow_white_2_top_right", "green_black_4_bottom_right",
                           "blue_black_1_top_left"}) do
        out[i] = assert(T.read(ex .. name .. ".jpg"))
    end
    return out
end

T.test("generate: the seed's few-shot prompt gives [blue, black, 1, top left]", function()
    T.eq(m:generate(fewshot, examples()), "[blue, black, 1, top left]")
end)

T.test("generate: the same with the [<IMG_PLH>] placeholder and streaming", function()
    local pieces = {}
    local text = m:generate(fewshot:gsub("%[%]", "[<IMG_PLH>]"), examples(),
        {on_token = function(p) pieces[#pieces + 1] = p end})
    T.eq(text, "[blue, black, 1, top left]")
    T.eq(table.concat(pieces), text)
end)

local seed = T.shared .. "/fixtures/seed-images"
if not T.exists(seed .. "/blue_black_1_top_left.jpg") then
    T.skip("describe: the seed's four digit images", "no fixtures at " .. seed .. " (set EMU2_SHARED)")
else
    T.test("describe: the seed's four digit images", function()
        local want = {
            blue_black_1_top_left = "[blue, black, 1, top left]",
            green_black_4_bottom_right = "[green, black, 4, bottom right]",
            red_white_3_bottom_left = "[red, white, 3, bottom left]",
            yellow_white_2_top_right = "[yellow, white, 2, top right]",
        }
        for name, caption in pairs(want) do
            T.eq(m:describe(assert(T.read(seed .. "/" .. name .. ".jpg")), {prompt = ""}), caption, name)
        end
        T.eq(m:describe(assert(T.read(seed .. "/red_white_3_bottom_left.jpg"))),
            "A red circle with a white 3 in the bottom left corner.")
    end)
end

os.exit(T.finish())
