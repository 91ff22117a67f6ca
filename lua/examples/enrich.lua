#!/usr/bin/env lua5.4
-- enrich.lua: a batch enrichment job. Walks a folder of images (JPEG/PNG, recursively), captions
-- each with an emu2 model, and appends one JSON object per image to a JSON-lines file:
--   {"file":"sub/dir/img.jpg","caption":"..."}
-- Resumable: images already in the output are skipped, and the output is flushed after every batch,
-- so an interrupted run loses at most one batch. Images that fail (corrupt files) are reported on
-- stderr and not written, so a rerun tries them again. Progress goes to stderr.
--
-- usage: lua5.4 enrich.lua [options] IMAGE_DIR OUTPUT.jsonl
--   --model DIR          model folder (default: $EMU2_MODEL, else models/emu2-tiny-digits)
--   --prompt TEXT        question (default: the engine's "Describe the image in details:";
--                        "" gives the tiny model's short caption form)
--   --batch-size N       images per engine batch (default 8)
--   --num-beams N        beam search width (default 5; 1 = greedy)
--   --max-new-tokens N   (default 64)
--   --threads N          CPU threads (default: all cores)
--   --device NAME        auto, cpu, cuda, cuda:N (default auto)
--   --quant NAME         none, int8, int4
-- Exit status: 0 when every image has a caption in the output, 1 when some failed, 2 on usage errors.
local emu2 = require("emu2")

local function usage(msg)
    io.stderr:write("enrich: ", msg, "\nusage: lua5.4 enrich.lua [--model DIR] [--prompt TEXT] [--batch-size N]",
        " [--num-beams N] [--max-new-tokens N] [--threads N] [--device NAME] [--quant NAME] IMAGE_DIR OUTPUT.jsonl\n")
    os.exit(2)
end

-- ---------------------------------------------------------------- command line

local function parse_args(argv)
    local o = {model = os.getenv("EMU2_MODEL") or "models/emu2-tiny-digits", batch_size = 8, num_beams = 5,
               max_new_tokens = 64}
    local numeric = {["--batch-size"] = "batch_size", ["--num-beams"] = "num_beams",
                     ["--max-new-tokens"] = "max_new_tokens", ["--threads"] = "threads"}
    local text = {["--model"] = "model", ["--prompt"] = "prompt", ["--device"] = "device", ["--quant"] = "quant"}
    local pos, i = {}, 1
    while i <= #argv do
        local a = argv[i]
        if numeric[a] or text[a] then
            local v = argv[i + 1] or usage(a .. " needs a value")
            if numeric[a] then
                v = tonumber(v) and math.tointeger(tonumber(v)) or usage(a .. " needs an integer, got '" .. v .. "'")
            end
            o[numeric[a] or text[a]] = v
            i = i + 2
        elseif a == "-h" or a == "--help" then
            usage("captions every image of a folder into a JSON-lines file")
        elseif a:sub(1, 2) == "--" then
            usage("unknown option " .. a)
        else
            pos[#pos + 1] = a
            i = i + 1
        end
    end
    if #pos ~= 2 then usage("want IMAGE_DIR and OUTPUT.jsonl") end
    o.dir, o.output = pos[1]:gsub("/+$", ""), pos[2]
    if o.dir == "" then o.dir = "/" end
    return o
end

-- ---------------------------------------------------------------- JSON strings

local escapes = {['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
                 ["\b"] = "\\b", ["\f"] = "\\f"}

local function json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return escapes[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
end

-- Decodes the JSON string starting at s[i] == '"'; returns the text and the index after it, or nil.
local unescapes = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}

local function json_decode_string(s, i)
    if s:sub(i, i) ~= '"' then return nil end
    local out, j = {}, i + 1
    while j <= #s do
        local c = s:sub(j, j)
        if c == '"' then return table.concat(out), j + 1 end
        if c == "\\" then
            local e = s:sub(j + 1, j + 1)
            if e == "u" then
                local code = tonumber(s:sub(j + 2, j + 5), 16)
                if not code then return nil end
                out[#out + 1] = utf8.char(code)
                j = j + 6
            elseif unescapes[e] then
                out[#out + 1] = unescapes[e]
                j = j + 2
            else
                return nil
            end
        else
            out[#out + 1] = c
            j = j + 1
        end
    end
    return nil
end

-- The "file" member of one output line (nil if the line is not one of ours).
local function file_of_line(line)
    local start = line:find('"file"%s*:%s*"')
    if not start then return nil end
    local quote = line:find('"', line:find(":", start, true), true)
    return (json_decode_string(line, quote))
end

-- ---------------------------------------------------------------- files

local function shell_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local image_ext = {jpg = true, jpeg = true, png = true}

-- Image files under dir, as paths relative to dir, sorted.
local function list_images(dir)
    local p = io.popen("find " .. shell_quote(dir) .. " -type f 2>/dev/null")
    local out = {}
    for path in p:lines() do
        local ext = path:match("%.([^./]+)$")
        if ext and image_ext[ext:lower()] then
            out[#out + 1] = path:sub(#dir + 2)
        end
    end
    p:close()
    table.sort(out)
    return out
end

local function read_file(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local s = f:read("a")
    f:close()
    return s
end

-- Files already captioned in the output (resume).
local function already_done(output)
    local done, n = {}, 0
    local f = io.open(output, "r")
    if not f then return done, 0 end
    for line in f:lines() do
        local file = file_of_line(line)
        if file and not done[file] then
            done[file] = true
            n = n + 1
        end
    end
    f:close()
    return done, n
end

-- ---------------------------------------------------------------- the job

local function main(argv)
    local o = parse_args(argv)
    local all = list_images(o.dir)
    local done, n_done = already_done(o.output)
    local todo = {}
    for _, file in ipairs(all) do
        if not done[file] then
            if utf8.len(file) then
                todo[#todo + 1] = file
            else
                io.stderr:write("enrich: skipping a file name that is not UTF-8: ", file, "\n")
            end
        end
    end
    local skipped = #all - #todo
    io.stderr:write(string.format("enrich: %d images in %s, %d already in %s (%d lines), %d to caption\n",
        #all, o.dir, skipped, o.output, n_done, #todo))
    if #todo == 0 then return 0 end

    local model, err = emu2.load(o.model, {threads = o.threads, device = o.device, quant = o.quant})
    if not model then
        io.stderr:write("enrich: ", err, "\n")
        return 1
    end
    local out = assert(io.open(o.output, "a+"))
    if out:seek("end") > 0 then -- an interrupted run may have cut the last line short: end it
        out:seek("end", -1)
        if out:read(1) ~= "\n" then out:write("\n") end
    end
    local gen = {prompt = o.prompt, num_beams = o.num_beams, max_new_tokens = o.max_new_tokens,
                 batch_size = o.batch_size}
    local captioned, failed, t0 = 0, 0, os.time()
    for first = 1, #todo, o.batch_size do
        local files, images = {}, {}
        for k = first, math.min(first + o.batch_size - 1, #todo) do
            local bytes, rerr = read_file(o.dir .. "/" .. todo[k])
            if bytes then
                files[#files + 1], images[#images + 1] = todo[k], bytes
            else
                failed = failed + 1
                io.stderr:write("enrich: ", todo[k], ": ", rerr, "\n")
            end
        end
        local texts, errors = model:describe_batch(images, gen)
        for k, file in ipairs(files) do
            if texts[k] then
                out:write('{"file":', json_string(file), ',"caption":', json_string(texts[k]), "}\n")
                captioned = captioned + 1
            else
                failed = failed + 1
                io.stderr:write("enrich: ", file, ": ", errors[k] or "failed", "\n")
            end
        end
        out:flush()
        local secs = os.time() - t0
        io.stderr:write(string.format("enrich: %d/%d captioned, %d failed%s\n", captioned, #todo, failed,
            secs > 0 and string.format(", %.1f images/s", captioned / secs) or ""))
    end
    out:close()
    model:close()
    io.stderr:write(string.format("enrich: done: %d captioned, %d skipped, %d failed\n", captioned, skipped, failed))
    return failed == 0 and 0 or 1
end

os.exit(main(arg))
