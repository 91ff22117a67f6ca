-- harness.lua: the plain test runner the Lua tests share (no busted needed).
--   local T = dofile(root .. "/tests/lua/harness.lua")
--   T.test("name", function() T.eq(a, b) ... end); T.skip("name", "why"); os.exit(T.finish())
-- Each test prints "ok", "FAIL" (with the failed check and where) or "skip: why"; T.finish prints
-- "RESULT passed=N failed=N skipped=N", which tests/extra/lua.sh adds up.
local T = {}
local passed, failed, skipped = 0, 0, 0

T.root = os.getenv("EMU2_ROOT") or "."
T.build = os.getenv("EMU2_BUILD") or (T.root .. "/build")
T.shared = os.getenv("EMU2_SHARED") or (T.root .. "/../shared")
T.model_dir = T.root .. "/models/emu2-tiny-digits"
package.cpath = T.build .. "/lua/?.so;" .. package.cpath

local failure = {} -- marker for check failures (vs. unexpected errors)

local function fail_check(msg, level)
    local info = debug.getinfo(level or 3, "Sl")
    error(setmetatable({msg = msg, where = info and (info.short_src .. ":" .. info.currentline) or "?"}, failure), 0)
end

function T.ok(cond, msg)
    if not cond then fail_check(msg or "expected a true value") end
    return cond
end

function T.eq(got, want, msg)
    if got ~= want then
        fail_check(string.format("%sgot %q, want %q", msg and (msg .. ": ") or "", tostring(got), tostring(want)))
    end
end

-- T.raises(pattern, f, ...): f(...) must raise an error whose message matches pattern (plain find).
function T.raises(pattern, f, ...)
    local ok, err = pcall(f, ...)
    if ok then fail_check("expected an error matching '" .. pattern .. "', got none") end
    err = tostring(err)
    if not err:find(pattern, 1, true) then
        fail_check("error '" .. err .. "' lacks '" .. pattern .. "'")
    end
    return err
end

-- T.fails(pattern, a, b): a call's results a, b must be nil plus a message containing pattern.
function T.fails(pattern, a, b)
    if a ~= nil then fail_check("expected nil, message; got " .. tostring(a)) end
    if type(b) ~= "string" or not b:find(pattern, 1, true) then
        fail_check("message '" .. tostring(b) .. "' lacks '" .. pattern .. "'")
    end
    return b
end

function T.test(name, f)
    local ok, err = xpcall(f, function(e)
        if getmetatable(e) == failure then return e end
        return {msg = "error: " .. tostring(e), where = debug.traceback("", 2)}
    end)
    if ok then
        passed = passed + 1
        print("  ok   " .. name)
    else
        failed = failed + 1
        print("  FAIL " .. name)
        print("    " .. err.msg .. "  (" .. err.where:gsub("\n", "\n    ") .. ")")
    end
end

function T.skip(name, why)
    skipped = skipped + 1
    print("  skip " .. name .. ": " .. why)
end

function T.note(fmt, ...) print("    " .. string.format(fmt, ...)) end

function T.read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
end

function T.exists(path)
    local f = io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
end

-- Lines of a text file (nil if absent).
function T.lines(path)
    if not T.exists(path) then return nil end
    local out = {}
    for line in io.lines(path) do out[#out + 1] = line end
    return out
end

-- The held-out set (tests/data/heldout, made by tests/reference/gen_heldout.py): its folder, how many
-- images to use (EMU2_LUA_HELDOUT, default 40), the true labels and PyTorch's answers (both nil when
-- either file is missing).
function T.heldout()
    local dir = T.root .. "/tests/data/heldout"
    local n = tonumber(os.getenv("EMU2_LUA_HELDOUT") or "40")
    local labels, torch = T.lines(dir .. "/labels.txt"), T.lines(dir .. "/torch_answers.txt")
    if not (labels and torch) then return dir, n, nil, nil end
    return dir, n, labels, torch
end

-- Resident memory of this process in bytes (Linux).
function T.rss()
    local s = T.read("/proc/self/statm")
    local pages = s and s:match("^%d+%s+(%d+)")
    return pages and tonumber(pages) * 4096 or nil
end

function T.finish()
    print(string.format("RESULT passed=%d failed=%d skipped=%d", passed, failed, skipped))
    return failed == 0
end

return T
