-- Sets up a script interpreter as Redis's: the `redis` API, the libraries
-- scripts may use, and a sandbox. Runs once per interpreter, before any
-- script; `api` holds what Rust implements. Returns the scripts' environment
-- (globals that error on unknown names and refuse writes), the `redis`
-- table behind its read-only view, whose `call` and `pcall` (and, while a
-- library loads, `register_function`) the engine sets, and the metatable
-- that makes unknown names errors.
local api = ...
local G = _G
local error, type, rawget, rawset, tostring, pcall =
    error, type, rawget, rawset, tostring, pcall
local setmetatable, getmetatable, setfenv, loadstring =
    setmetatable, getmetatable, setfenv, loadstring

-- The API is Rust's (C functions, so `return redis.call(...)` keeps the
-- script's frame for error messages); `call` and `pcall` are set for each run.
local redis = {
    sha1hex = api.sha1hex,
    error_reply = api.error_reply,
    status_reply = api.status_reply,
    log = api.log,
    LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
    setresp = api.setresp,
    set_repl = api.set_repl,
    REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
    -- Effects are always what replicates: kept for old scripts.
    replicate_commands = function() return true end,
    -- The debugger is off.
    breakpoint = function() return false end,
    debug = function() end,
    acl_check_cmd = api.acl_check_cmd,
    REDIS_VERSION = api.version,
    REDIS_VERSION_NUM = api.version_num,
}
G.redis = redis
math.random = api.random
math.randomseed = api.randomseed

-- No files, processes, modules or printing.
G.os, G.io, G.package, G.require, G.module = nil, nil, nil, nil, nil
G.dofile, G.loadfile, G.print, G.debug = nil, nil, nil, nil

-- Read-only views: scripts see proxies of the shared tables, which refuse
-- writes, so no script can change what the next one runs with.
local protected = setmetatable({}, { __mode = 'k' })
-- The table behind each proxy, for reading (see `pairs` below).
local underlying = setmetatable({}, { __mode = 'k' })
local function refuse() error('Attempt to modify a readonly table', 2) end
-- `getmetatable` of a library gives nil, as Redis's (which has none); the
-- globals' and strings' metatables are shown read-only, as Redis's are.
local function readonly(t, shown)
    local proxy = {}
    local meta = { __index = t, __newindex = refuse, __metatable = false }
    if shown then
        meta.__metatable = setmetatable({}, { __index = shown, __newindex = refuse })
        protected[meta.__metatable] = true
        underlying[meta.__metatable] = shown
    end
    setmetatable(proxy, meta)
    protected[proxy] = true
    underlying[proxy] = t
    return proxy
end
for _, name in ipairs({ 'redis', 'string', 'math', 'table', 'coroutine',
                        'cjson', 'cmsgpack', 'bit', 'struct' }) do
    if rawget(G, name) ~= nil then rawset(G, name, readonly(G[name])) end
end
local string_meta = getmetatable('')
string_meta.__metatable = readonly(string_meta, string_meta)

-- The scripts' globals: reads of unknown names fail, writes are refused.
local globals_meta = { __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
end }
setmetatable(G, globals_meta)
local env = readonly(G, globals_meta)
rawset(G, '_G', env)

G.rawset = function(t, k, v)
    if protected[t] or t == G then refuse() end
    return rawset(t, k, v)
end
G.setmetatable = function(t, meta)
    if protected[t] or t == G then refuse() end
    return setmetatable(t, meta)
end
-- Redis 7's read-only tables can still be walked and read raw; a proxy is
-- empty, so `pairs`, `next` and `rawget` read the table behind it.
-- (The originals keep their names: argument errors name them as Redis's do.)
do
    local next, pairs = next, pairs
    G.next = function(t, k) return next(underlying[t] or t, k) end
    G.pairs = function(t)
        local behind = underlying[t]
        if behind then return next, behind, nil end
        return pairs(t)
    end
    G.rawget = function(t, k) return rawget(underlying[t] or t, k) end
end
-- As Redis 7, which leaves them out of the scripts' globals: `setfenv(1, t)`
-- would change a compiled script's environment for every later run.
G.getfenv, G.setfenv, G.newproxy = nil, nil, nil
-- Source only (bytecode could crash the interpreter), run in the sandbox.
G.loadstring = function(source, name)
    if type(source) == 'string' and source:byte(1) == 27 then
        return nil, 'binary chunks are not allowed'
    end
    local f, err = loadstring(source, name)
    if f then setfenv(f, env) end
    return f, err
end
G.load = function(reader, name)
    if type(reader) ~= 'function' then error("bad argument #1 to 'load' (function expected)", 2) end
    local parts = {}
    while true do
        local piece = reader()
        if piece == nil or piece == '' then break end
        parts[#parts + 1] = piece
    end
    return G.loadstring(table.concat(parts), name)
end
-- `pcall` gives the message of a Redis error, as Redis's does.
local error_text = api.error_text
local function settle(ok, ...)
    if ok then return true, ... end
    local err = ...
    if type(err) == 'table' and type(rawget(err, 'err')) == 'string' then
        return false, err.err
    end
    if type(err) == 'userdata' then return false, error_text(err) end
    return false, err
end
G.pcall = function(f, ...) return settle(pcall(f, ...)) end

return env, redis, globals_meta
