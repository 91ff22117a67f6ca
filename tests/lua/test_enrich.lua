-- test_enrich.lua: lua/examples/enrich.lua over the seed images and a synthetic set (held-out
-- images, in nested folders): right captions, one JSON line each, a rerun skips them all, a partial
-- output is completed without duplicates, corrupt files fail alone, odd file names survive JSON.
local T = dofile((os.getenv("EMU2_ROOT") or ".") .. "/tests/lua/harness.lua")
local script = T.root .. "/lua/examples/enrich.lua"

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function tmpdir()
    local d = os.tmpname()
    os.remove(d)
    assert(os.execute("mkdir -p " .. q(d)))
    return d
end

-- Runs enrich.lua; returns exit code and its stderr+stdout.
local function enrich(args)
    local cmd = "cd " .. q(T.root) .. " && LUA_CPATH_5_4=" .. q(T.build .. "/lua/?.so;;") .. " lua5.4 " ..
        q(script) .. " " .. args .. " 2>&1"
    local p = io.popen(cmd)
    local out = p:read("a")
    local _, _, code = p:close()
    return code, out
end

-- The output file as {file = caption}, its count of caption lines, and of other (cut) lines.
local function read_output(path)
    local map, n, other = {}, 0, 0
    for _, line in ipairs(T.lines(path) or {}) do
        local file, caption = line:match('^{"file":"(.-)","caption":"(.-)"}$')
        if file then
            T.eq(map[file], nil, "no duplicate line for " .. file)
            map[file] = caption
            n = n + 1
        else
            other = other + 1
        end
    end
    return map, n, other
end

local function copy(from, to)
    assert(os.execute("mkdir -p " .. q(to:match("^(.*)/"))))
    assert(os.execute("cp " .. q(from) .. " " .. q(to)))
end

local seed = T.shared .. "/fixtures/seed-images"
if not T.exists(seed .. "/blue_black_1_top_left.jpg") then
    T.skip("enrich over the seed images", "no fixtures at " .. seed .. " (set EMU2_SHARED)")
else
    T.test("enrich over the seed images; a rerun skips all", function()
        local dir = tmpdir()
        local out = dir .. "/seed.jsonl"
        local code, log = enrich("--prompt '' " .. q(seed) .. " " .. q(out))
        T.eq(code, 0, log)
        local map, n, other = read_output(out)
        T.eq(other, 0, "only caption lines")
        local p = io.popen("find " .. q(seed) .. " -type f | grep -ciE '\\.(jpe?g|png)$'")
        local want_n = tonumber(p:read("a"))
        p:close()
        T.eq(n, want_n, "one line per image")
        T.eq(map["blue_black_1_top_left.jpg"], "[blue, black, 1, top left]")
        T.eq(map["green_black_4_bottom_right.jpg"], "[green, black, 4, bottom right]")
        T.eq(map["red_white_3_bottom_left.jpg"], "[red, white, 3, bottom left]")
        T.eq(map["yellow_white_2_top_right.jpg"], "[yellow, white, 2, top right]")
        for file, caption in pairs(map) do T.ok(#caption > 0, "caption for " .. file) end
        T.ok(log:find("enrich: done", 1, true), "progress on stderr")
        code, log = enrich("--prompt '' " .. q(seed) .. " " .. q(out))
        T.eq(code, 0, log)
        T.ok(log:find(want_n .. " already in", 1, true) and log:find("0 to caption", 1, true), log)
        local _, n2 = read_output(out)
        T.eq(n2, n, "nothing appended")
        os.execute("rm -rf " .. q(dir))
    end)
end

local heldout, N, labels, torch = T.heldout()
if not labels then
    T.skip("enrich over a synthetic set", "no " .. heldout .. "/labels.txt")
else
    T.test(string.format("enrich over a synthetic set (%d held-out images, nested folders); resume", N), function()
        local dir = tmpdir()
        local want = {}
        for i = 1, N do
            local rel = string.format("part%d/%03d.jpg", i % 3, i - 1)
            copy(string.format("%s/%03d.jpg", heldout, i - 1), dir .. "/images/" .. rel)
            want[rel] = {torch = torch[i], label = labels[i]}
        end
        local out = dir .. "/captions.jsonl"
        local args = "--prompt '' --max-new-tokens 32 --batch-size 16 " .. q(dir .. "/images") .. " " .. q(out)
        local code, log = enrich(args)
        T.eq(code, 0, log)
        local map, n = read_output(out)
        T.eq(n, N, "one line per image")
        local same, right = 0, 0
        for rel, w in pairs(want) do
            if map[rel] == w.torch then same = same + 1 end
            if map[rel] == w.label then right = right + 1 end
        end
        T.note("captions equal to PyTorch's %d/%d, equal to the true labels %d/%d", same, N, right, N)
        T.eq(same, N, "captions equal PyTorch's")
        -- rerun: all skipped
        code, log = enrich(args)
        T.eq(code, 0, log)
        T.ok(log:find("0 to caption", 1, true), log)
        -- an interrupted run: keep the first 10 lines (the last one cut short), rerun completes it
        local lines = T.lines(out)
        local f = assert(io.open(out, "w"))
        for i = 1, 9 do f:write(lines[i], "\n") end
        f:write(lines[10]:sub(1, 5))
        f:close()
        code, log = enrich(args)
        T.eq(code, 0, log)
        T.ok(log:find(string.format("%d to caption", N - 9), 1, true), log)
        local map2, n2, cut = read_output(out)
        T.eq(n2, N, "complete after resume")
        T.eq(cut, 1, "the cut line stays alone on its line")
        for rel, w in pairs(want) do T.eq(map2[rel], w.torch, rel) end
        os.execute("rm -rf " .. q(dir))
    end)
end

T.test("enrich: a corrupt image fails alone; odd file names survive JSON; usage errors", function()
    local dir = tmpdir()
    copy(T.model_dir .. "/examples/blue_black_1_top_left.jpg", dir .. "/in/a \"quoted\" name\t.jpg")
    copy(T.model_dir .. "/examples/red_white_3_bottom_left.jpg", dir .. "/in/plain.JPG")
    local f = assert(io.open(dir .. "/in/broken.png", "wb"))
    f:write("not a png")
    f:close()
    local f2 = assert(io.open(dir .. "/in/notes.txt", "wb"))
    f2:write("not an image")
    f2:close()
    local out = dir .. "/out.jsonl"
    local args = "--prompt '' --num-beams 1 --max-new-tokens 32 " .. q(dir .. "/in") .. " " .. q(out)
    local code, log = enrich(args)
    T.eq(code, 1, "exit 1 when an image failed")
    T.ok(log:find("broken.png", 1, true), log)
    local lines = T.lines(out)
    T.eq(#lines, 2)
    T.ok(T.read(out):find('"file":"a \\"quoted\\" name\\t.jpg","caption":"[blue, black, 1, top left]"', 1, true),
        T.read(out))
    code, log = enrich(args)
    T.eq(code, 1, "the broken image is tried again")
    T.ok(log:find("1 to caption", 1, true), log)
    T.eq(#T.lines(out), 2)
    code, log = enrich("--bogus x y")
    T.eq(code, 2, log)
    code, log = enrich("--batch-size many " .. q(dir .. "/in") .. " " .. q(out))
    T.eq(code, 2, log)
    code, log = enrich("--model /nonexistent " .. q(dir .. "/in") .. " " .. q(dir .. "/other.jsonl"))
    T.eq(code, 1, log)
    T.ok(log:find("config.json", 1, true), log)
    os.execute("rm -rf " .. q(dir))
end)

os.exit(T.finish())
