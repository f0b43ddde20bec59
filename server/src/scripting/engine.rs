//! One Lua interpreter per worker thread, set up as Redis's (`sandbox.lua`),
//! with the compiled scripts it ran, by SHA1. A script runs on the thread
//! of the connection that asked for it, with the caller's slots locked; its
//! `redis.call`s go to a [`Host`], which runs them inside the caller's unit
//! of work.

use ahash::HashMap;
use std::cell::{Cell, RefCell};
use std::time::{Duration, Instant};

use mlua::prelude::{LuaGcIncParams, LuaGcMode};
use mlua::{Function, HookTriggers, Lua, MultiValue, Table, Value, Variadic, VmState};

use super::convert::{self, error_table, single_field};
use super::functions::{valid_name, FunctionInfo};
use super::rand48::Rand48;
use super::raw::{self, GlobalInputs, Inputs};
use super::registry::ScriptFlags;
use super::registry::{sha1_hex, Sha};
use crate::protocol::{Args, Protocol, Reply};

/// Compiled scripts kept per interpreter before the cache is emptied (the
/// registry bounds what is worth keeping; this bounds a worker's share).
const COMPILED_MAX: usize = 1000;

/// The chunk name of scripts: errors read `user_script:1: ...`.
const SCRIPT_CHUNK: &str = "@user_script";
/// The chunk name of function libraries: `user_function:1: ...`.
const LIBRARY_CHUNK: &str = "@user_function";
/// The chunk name of the set-up code, whose frames errors skip.
const SETUP_CHUNK: &str = "=ringkv";
/// How often a running script is checked ([`Host::interrupt`]): every this
/// many Lua instructions, as Redis does.
const CHECK_EVERY: HookTriggers = HookTriggers::new().every_nth_instruction(100_000);

/// Lua's `setpause`: a collection cycle starts when the heap is this many
/// percent of the live data after the last one (Lua's default is 200).
const GC_PAUSE: i32 = 400;

/// What scripts' `redis.call` reaches: runs one command inside the running
/// script's unit of work, writing its reply to `out` in the protocol
/// `out` speaks, or says why the command may not run (Redis's text, which
/// becomes an `ERR` error).
pub trait Host {
    /// Runs the request `args` (the command name first).
    fn call(&mut self, args: Args<'_>, out: &mut Reply) -> Result<(), String>;

    /// Called every [`CHECK_EVERY`] instructions of the script: may give
    /// the thread back for a while (a script past `busy-reply-threshold`),
    /// or stop the script with an error (`SCRIPT KILL`).
    fn interrupt(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// A script to run.
pub struct Call<'r> {
    /// Its name in error messages: the SHA1 of an `EVAL` script.
    pub name: &'r str,
    /// `KEYS`.
    pub keys: Args<'r>,
    /// `ARGV`.
    pub args: Args<'r>,
}

/// A worker's interpreter.
pub struct Engine {
    lua: Lua,
    env: Table,
    /// The real `redis` table (scripts see a read-only view of it).
    redis: Table,
    handler: Function,
    inputs: GlobalInputs,
    /// Makes reads of unknown names errors (the globals'; `redis`'s while
    /// a library loads, which may not call commands, as in Redis).
    strict: Table,
    compiled: HashMap<Sha, Compiled>,
    /// Functions of the libraries loaded here: name -> library id, callback.
    functions: HashMap<String, (u64, Function)>,
    /// The registry generation `compiled` belongs to.
    generation: u64,
}

/// A script compiled here.
struct Compiled {
    function: Function,
    /// The script's flags, once it is known to be kept for good (`SCRIPT
    /// LOAD`): it then runs without asking the registry, since only `SCRIPT
    /// FLUSH` (a new generation) removes it.
    pinned: Option<ScriptFlags>,
}

/// Per-run state of this thread's interpreter, which the API functions and
/// the hook reach on every call (a thread-local: cheaper than app data).
struct RunState {
    /// The protocol commands answer in (`redis.setresp`).
    resp: Cell<Protocol>,
    /// A library being loaded fails past this instant.
    load_deadline: Cell<Option<Instant>>,
    /// The hook runs on every line: a run was stopped (see [`interrupt`]).
    every_line: Cell<bool>,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    static RUN: RunState = const {
        RunState {
            resp: Cell::new(Protocol::Resp2),
            load_deadline: Cell::new(None),
            every_line: Cell::new(false),
        }
    };
}

/// The protocol the running script's commands answer in (`redis.setresp`).
pub(super) fn protocol() -> Protocol {
    RUN.with(|run| run.resp.get())
}

/// Runs `f` with this thread's interpreter, made on first use.
pub fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let engine = slot.get_or_insert_with(|| Engine::new().expect("Lua interpreter set-up"));
        f(engine)
    })
}

impl Engine {
    /// A fresh interpreter, set up as Redis's.
    pub fn new() -> mlua::Result<Engine> {
        let lua = Lua::new();
        // A GC cycle when the heap reaches 4x the live data, not Lua's 2x:
        // each cycle marks all of the interpreter's live data (its
        // libraries, the compiled scripts), while a script call leaves a
        // few hundred bytes of garbage. A quarter of the collections for a
        // heap of a few hundred KiB more.
        lua.gc_set_mode(LuaGcMode::Incremental(
            LuaGcIncParams::default().pause(GC_PAUSE),
        ));
        lua.set_hook(CHECK_EVERY, interrupt)?;
        lua.set_app_data(Rand48::default());
        super::libs::register_all(&lua)?;
        let api = api(&lua)?;
        let (env, redis, strict): (Table, Table, Table) = lua
            .load(include_str!("sandbox.lua"))
            .set_name(SETUP_CHUNK)
            .call(api)?;
        let (call, pcall) = raw::call_functions(&lua)?;
        redis.raw_set("call", call)?;
        redis.raw_set("pcall", pcall)?;
        let handler = lua.create_function(error_handler)?;
        let inputs = GlobalInputs::new(&lua);
        Ok(Engine {
            lua,
            env,
            redis,
            handler,
            inputs,
            strict,
            compiled: HashMap::default(),
            functions: HashMap::default(),
            generation: 0,
        })
    }

    /// Drops compiled scripts when the registry was flushed since (function
    /// libraries carry their own version ids).
    pub fn sync_generation(&mut self, generation: u64) {
        if generation != self.generation {
            self.compiled.clear();
            self.generation = generation;
            // Whatever the flushed scripts left is garbage now.
            let _ = self.lua.gc_collect();
        }
    }

    /// True if `sha` is compiled here.
    pub fn is_compiled(&self, sha: &Sha) -> bool {
        self.compiled.contains_key(sha)
    }

    /// The flags of `sha` if it is compiled here and kept for good
    /// ([`Engine::pin`]).
    pub fn pinned(&self, sha: &Sha) -> Option<ScriptFlags> {
        self.compiled.get(sha).and_then(|compiled| compiled.pinned)
    }

    /// Notes that the compiled `sha`, with `flags`, is kept for good by the
    /// registry (loaded by `SCRIPT LOAD`).
    pub fn pin(&mut self, sha: &Sha, flags: ScriptFlags) {
        if let Some(compiled) = self.compiled.get_mut(sha) {
            compiled.pinned = Some(flags);
        }
    }

    /// Compiles `code` (a script's body after its shebang line, which stays
    /// as an empty line) as the script `sha`. Errors are Redis's text.
    pub fn compile(&mut self, sha: Sha, code: &[u8]) -> Result<(), String> {
        if self.compiled.contains_key(&sha) {
            return Ok(());
        }
        let function = self
            .lua
            .load(code)
            .set_name(SCRIPT_CHUNK)
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|err| {
                format!(
                    "Error compiling script (new function): {}",
                    lua_message(&err)
                )
            })?;
        if self.compiled.len() >= COMPILED_MAX {
            self.compiled.clear();
        }
        self.compiled.insert(
            sha,
            Compiled {
                function,
                pinned: None,
            },
        );
        Ok(())
    }

    /// Runs the compiled script `sha` and writes its result (or error) to
    /// `out`. `resp` is the protocol its commands answer in until it calls
    /// `redis.setresp`.
    pub fn run(&mut self, sha: &Sha, call: &Call<'_>, host: &mut dyn Host, out: &mut Reply) {
        let Some(function) = self.compiled.get(sha).map(|c| c.function.clone()) else {
            out.error("NOSCRIPT No matching script. Please use EVAL.");
            return;
        };
        if let Err(err) = self.invoke(&function, false, call, host, out) {
            out.error(&format!(
                "ERR Error running script {}, {}",
                call.name,
                lua_message(&err)
            ));
        }
    }

    /// True if the function `name` of library version `id` is loaded here.
    pub fn has_function(&self, name: &str, id: u64) -> bool {
        self.functions
            .get(name)
            .is_some_and(|(loaded, _)| *loaded == id)
    }

    /// Runs the loaded function `call.name` (`FCALL`), its keys and
    /// arguments passed as its two parameters.
    pub fn run_function(&mut self, call: &Call<'_>, host: &mut dyn Host, out: &mut Reply) {
        let Some((_, function)) = self.functions.get(call.name).cloned() else {
            out.error("ERR Function not found");
            return;
        };
        if let Err(err) = self.invoke(&function, true, call, host, out) {
            out.error(&format!(
                "ERR Error running script {}, {}",
                call.name,
                lua_message(&err)
            ));
        }
    }

    /// Loads a library's code (after its header line) as version `id`:
    /// runs it with `redis.register_function` collecting its functions,
    /// which are kept here; its code fails if it runs longer than `timeout`.
    /// Errors are Redis's texts.
    pub fn load_library(
        &mut self,
        code: &[u8],
        id: u64,
        timeout: Option<Duration>,
    ) -> Result<Vec<FunctionInfo>, String> {
        self.reset_hook();
        let lua = &self.lua;
        RUN.with(|run| run.load_deadline.set(timeout.map(|t| Instant::now() + t)));
        let chunk = lua
            .load(code)
            .set_name(LIBRARY_CHUNK)
            .set_mode(mlua::chunk::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|err| format!("Error compiling function: {}", lua_message(&err)))?;
        let registered = RefCell::new(Vec::new());
        let result: mlua::Result<(bool, Value)> = lua.scope(|scope| {
            let register = scope.create_function(|lua, args: Variadic<Value>| {
                let function = registration(lua, &args)?;
                registered.borrow_mut().push(function);
                Ok(())
            })?;
            // A library may not call commands while it loads, as in Redis.
            let call: Value = self.redis.raw_get("call")?;
            let pcall: Value = self.redis.raw_get("pcall")?;
            self.redis.raw_set("call", Value::Nil)?;
            self.redis.raw_set("pcall", Value::Nil)?;
            self.redis.raw_set("register_function", register)?;
            self.redis.set_metatable(Some(self.strict.clone()))?;
            let result = raw::run(lua, &self.handler, &chunk, Inputs::None);
            self.redis.set_metatable(None)?;
            self.redis.raw_set("register_function", Value::Nil)?;
            self.redis.raw_set("call", call)?;
            self.redis.raw_set("pcall", pcall)?;
            result
        });
        RUN.with(|run| run.load_deadline.set(None));
        match result {
            Ok((true, _)) => {}
            Ok((false, error)) => {
                let text = error_message(&error);
                return Err(format!("Error registering functions: {text}"));
            }
            Err(err) => {
                return Err(format!(
                    "Error registering functions: {}",
                    lua_message(&err)
                ))
            }
        }
        let registered = registered.into_inner();
        if registered.is_empty() {
            return Err("No functions registered".into());
        }
        let mut infos: Vec<FunctionInfo> = Vec::with_capacity(registered.len());
        for (info, _) in &registered {
            if infos.iter().any(|seen| seen.name == info.name) {
                return Err("Function already exists in the library".into());
            }
            infos.push(info.clone());
        }
        if self.functions.len() >= COMPILED_MAX {
            self.functions.clear();
        }
        for (info, callback) in registered {
            self.functions.insert(info.name, (id, callback));
        }
        Ok(infos)
    }

    fn invoke(
        &mut self,
        function: &Function,
        with_arguments: bool,
        call: &Call<'_>,
        host: &mut dyn Host,
        out: &mut Reply,
    ) -> mlua::Result<()> {
        self.reset_hook();
        RUN.with(|run| run.resp.set(Protocol::Resp2));
        let inputs = match with_arguments {
            true => Inputs::Params(call.keys, call.args),
            false => Inputs::Globals(call.keys, call.args, &self.inputs),
        };
        let (ok, result) = super::current::with_host(host, || {
            raw::run(&self.lua, &self.handler, function, inputs)
        })?;
        let resp = protocol();
        if ok {
            convert::lua_to_reply(&result, resp, out);
        } else {
            write_error(&result, call.name, out);
        }
        Ok(())
    }
}

impl Engine {
    /// Puts the hook back to [`CHECK_EVERY`] after a stopped run left it on
    /// every line.
    fn reset_hook(&mut self) {
        if RUN.with(|run| run.every_line.replace(false)) {
            let _ = self.lua.set_hook(CHECK_EVERY, interrupt);
        }
    }
}

/// The interpreter's hook: asks the running script's host whether to go on
/// ([`Host::interrupt`]), or, while a library loads, checks its deadline.
/// A run it stops raises the error again on every line from then on, so
/// `pcall` cannot keep the script going (as Redis does).
fn interrupt(lua: &Lua, _: &mlua::debug::Debug) -> mlua::Result<VmState> {
    let stop = match super::current::call_host(|host| host.interrupt()) {
        Some(result) => result.err(),
        None => RUN
            .with(|run| run.load_deadline.get())
            .filter(|deadline| Instant::now() >= *deadline)
            .map(|_| "FUNCTION LOAD timeout".to_owned()),
    };
    let Some(text) = stop else {
        return Ok(VmState::Continue);
    };
    if !RUN.with(|run| run.every_line.replace(true)) {
        lua.set_hook(HookTriggers::EVERY_LINE, interrupt)?;
    }
    Err(raise(text.as_bytes()))
}

/// A Redis error raised in a script (by `redis.call` or the API), carried
/// through Lua as it unwinds to the script's error handler.
#[derive(Debug, Clone)]
struct ScriptError(String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptError {}

/// Raises `text` (`-CODE message`, or a message that gets `ERR`) as a Redis
/// error.
fn raise(text: &[u8]) -> mlua::Error {
    let text = convert::error_text(text);
    mlua::Error::external(ScriptError(String::from_utf8_lossy(&text).into_owned()))
}

/// The Redis error a Lua error carries, if it is one.
fn script_error(error: &mlua::Error) -> Option<&ScriptError> {
    match error {
        mlua::Error::CallbackError { cause, .. } => script_error(cause),
        mlua::Error::ExternalError(inner) => inner.downcast_ref::<ScriptError>(),
        _ => None,
    }
}

/// Writes a failed script's error: `-CODE message`, then where it was raised
/// (`script: <name>, on @user_script:<line>.`) when known, as Redis does.
fn write_error(error: &Value, name: &str, out: &mut Reply) {
    let Value::Table(table) = error else {
        let text = match error {
            Value::String(s) => s.to_string_lossy(),
            _ => "execution failure".to_owned(),
        };
        out.error(&format!("ERR Error running script {name}, {text}"));
        return;
    };
    let field = |name: &str| match table.raw_get::<Value>(name) {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        Ok(Value::Integer(n)) => Some(n.to_string()),
        Ok(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let message = field("err").unwrap_or_else(|| "ERR unknown error".to_owned());
    let mut text = message.strip_prefix('-').unwrap_or(&message).to_owned();
    if let (Some(source), Some(line)) = (field("source"), field("line")) {
        text.push_str(&format!(" script: {name}, on {source}:{line}."));
    }
    out.error(&text);
}

/// The text of a failed run's error value (an error table's `err`).
fn error_message(error: &Value) -> String {
    match error {
        Value::Table(table) => match table.raw_get::<Value>("err") {
            Ok(Value::String(s)) => s.to_string_lossy(),
            _ => "unknown error".to_owned(),
        },
        Value::String(s) => s.to_string_lossy(),
        other => other.to_string().unwrap_or_default(),
    }
}

/// Reads `redis.register_function`'s arguments, `(name, callback)` or a
/// table of named ones, with Redis's errors.
fn registration(lua: &Lua, args: &[Value]) -> mlua::Result<(FunctionInfo, Function)> {
    let fail = |text: &str| raise(text.as_bytes());
    let string = |value: &Value| match value {
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Integer(_) | Value::Number(_) => value.to_string().ok(),
        _ => None,
    };
    let (name, callback, description, flags) = match args {
        [Value::Table(named)] => {
            let (mut name, mut callback, mut description, mut flags) = (None, None, None, ScriptFlags::default());
            for pair in named.pairs::<Value, Value>() {
                let (key, value) = pair?;
                let Some(key) = string(&key) else {
                    return Err(fail("named argument key given to redis.register_function is not a string"));
                };
                match key.to_ascii_lowercase().as_str() {
                    "function_name" => {
                        name = Some(string(&value).ok_or_else(|| {
                            fail("function_name argument given to redis.register_function must be a string")
                        })?)
                    }
                    "description" => {
                        description = Some(string(&value).ok_or_else(|| {
                            fail("description argument given to redis.register_function must be a string")
                        })?)
                    }
                    "callback" => match value {
                        Value::Function(f) => callback = Some(f),
                        _ => return Err(fail("callback argument given to redis.register_function must be a function")),
                    },
                    "flags" => {
                        let Value::Table(list) = value else {
                            return Err(fail("flags argument to redis.register_function must be a table representing function flags"));
                        };
                        let mut names = Vec::new();
                        for flag in list.sequence_values::<Value>() {
                            match string(&flag?) {
                                Some(flag) => names.push(flag.to_ascii_lowercase()),
                                None => return Err(fail("unknown flag given")),
                            }
                        }
                        flags = ScriptFlags::from_names(names.iter().map(String::as_str))
                            .map_err(|_| fail("unknown flag given"))?;
                    }
                    _ => return Err(fail("unknown argument given to redis.register_function")),
                }
            }
            let name = name.ok_or_else(|| fail("redis.register_function must get a function name argument"))?;
            let callback = callback.ok_or_else(|| fail("redis.register_function must get a callback argument"))?;
            (name, callback, description, flags)
        }
        [_] => {
            return Err(fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments)."))
        }
        [name, callback] => {
            let name = string(name).ok_or_else(|| fail("first argument to redis.register_function must be a string"))?;
            let Value::Function(callback) = callback else {
                return Err(fail("second argument to redis.register_function must be a function"));
            };
            (name, callback.clone(), None, ScriptFlags::default())
        }
        _ => return Err(fail("wrong number of arguments to redis.register_function")),
    };
    let _ = lua;
    if !valid_name(&name) {
        // Redis's text, which says library where it means function.
        return Err(fail("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"));
    }
    let info = FunctionInfo {
        name,
        description,
        flags,
    };
    Ok((info, callback))
}

/// The message handler of a script's `xpcall`: makes the error an error
/// table (a string gets `ERR`) and adds the source and line of the script
/// frame that raised it, skipping the set-up code's and C frames.
fn error_handler(lua: &Lua, error: Value) -> mlua::Result<Table> {
    let table = match error {
        Value::Table(table) if matches!(table.raw_get::<Value>("err"), Ok(Value::String(_))) => {
            table
        }
        Value::String(s) => {
            let text = [b"ERR ".as_slice(), &s.as_bytes()].concat();
            single_field(lua, "err", lua.create_string(text)?)?
        }
        Value::Error(err) => {
            let text = match script_error(&err) {
                Some(redis) => redis.0.clone(),
                None => format!("ERR {}", lua_message(&err)),
            };
            single_field(lua, "err", text)?
        }
        other => {
            let text = format!("ERR {}", other.to_string().unwrap_or_default());
            single_field(lua, "err", text)?
        }
    };
    for level in 1..64 {
        let Some(frame) = lua.inspect_stack(level, |debug| {
            let source = debug.source();
            let user = source.what != "C" && source.source.as_deref() != Some(SETUP_CHUNK);
            user.then(|| (source.source.map(|s| s.into_owned()), debug.current_line()))
        }) else {
            break;
        };
        if let Some((source, line)) = frame {
            table.raw_set("source", source)?;
            table.raw_set("line", line)?;
            break;
        }
    }
    Ok(table)
}

/// The text of a Lua error without mlua's traceback.
fn lua_message(error: &mlua::Error) -> String {
    if let Some(redis) = script_error(error) {
        return redis.0.clone();
    }
    match error {
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        mlua::Error::RuntimeError(text) | mlua::Error::SyntaxError { message: text, .. } => {
            text.clone()
        }
        other => other.to_string(),
    }
}

/// `7.2.4` as `0x070204` (`redis.REDIS_VERSION_NUM`).
fn version_num(version: &str) -> u32 {
    version
        .split('.')
        .take(3)
        .fold(0, |num, part| num << 8 | part.parse::<u32>().unwrap_or(0))
}

/// What Rust implements of the `redis` API and `math`, for `sandbox.lua`.
fn api(lua: &Lua) -> mlua::Result<Table> {
    let api = lua.create_table()?;
    let fail = |_: &Lua, text: &str| -> mlua::Result<MultiValue> { Err(raise(text.as_bytes())) };
    api.raw_set(
        "error_text",
        lua.create_function(|_, error: Value| {
            Ok(match error {
                Value::Error(err) => lua_message(&err),
                other => other.to_string().unwrap_or_default(),
            })
        })?,
    )?;
    api.raw_set(
        "sha1hex",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let [value] = args.as_slice() else {
                return fail(lua, "wrong number of arguments");
            };
            let text = match value {
                Value::String(s) => s.as_bytes().to_vec(),
                Value::Integer(_) | Value::Number(_) => value.to_string()?.into_bytes(),
                _ => Vec::new(),
            };
            let sha = lua.create_string(sha1_hex(&text))?;
            Ok(MultiValue::from_vec(vec![Value::String(sha)]))
        })?,
    )?;
    api.raw_set(
        "error_reply",
        lua.create_function(|lua, args: Variadic<Value>| {
            let [Value::String(s)] = args.as_slice() else {
                return error_table(lua, b"wrong number or type of arguments");
            };
            let text = s.as_bytes();
            match text.first() {
                Some(b'-') => error_table(lua, &text),
                _ => error_table(lua, &[b"-".as_slice(), &text].concat()),
            }
        })?,
    )?;
    api.raw_set(
        "status_reply",
        lua.create_function(|lua, args: Variadic<Value>| {
            let [Value::String(s)] = args.as_slice() else {
                return error_table(lua, b"wrong number or type of arguments");
            };
            single_field(lua, "ok", s.clone())
        })?,
    )?;
    api.raw_set(
        "log",
        lua.create_function(move |lua, args: Variadic<Value>| {
            if args.len() < 2 {
                return fail(lua, "redis.log() requires two arguments or more.");
            }
            let level = match &args[0] {
                Value::Integer(n) => *n as f64,
                Value::Number(n) => *n,
                Value::String(s) => match s.to_str().ok().and_then(|s| s.trim().parse().ok()) {
                    Some(n) => n,
                    None => return fail(lua, "First argument must be a number (log level)."),
                },
                _ => return fail(lua, "First argument must be a number (log level)."),
            };
            let level = level as i64;
            if !(0..=3).contains(&level) {
                return fail(lua, "Invalid log level.");
            }
            let text: Vec<String> = args[1..]
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.to_string_lossy()),
                    Value::Integer(_) | Value::Number(_) => v.to_string().ok(),
                    _ => None,
                })
                .collect();
            let text = text.join(" ");
            match level {
                0 => tracing::debug!(target: "script", "{text}"),
                1 => tracing::debug!(target: "script", "{text}"),
                2 => tracing::info!(target: "script", "{text}"),
                _ => tracing::warn!(target: "script", "{text}"),
            }
            Ok(MultiValue::new())
        })?,
    )?;
    api.raw_set(
        "setresp",
        lua.create_function(move |lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return fail(lua, "redis.setresp() requires one argument.");
            }
            let resp = match lua.coerce_number(args[0].clone())?.map(|n| n as i64) {
                Some(2) => Protocol::Resp2,
                Some(3) => Protocol::Resp3,
                _ => return fail(lua, "RESP version must be 2 or 3."),
            };
            RUN.with(|run| run.resp.set(resp));
            Ok(MultiValue::new())
        })?,
    )?;
    api.raw_set(
        "set_repl",
        lua.create_function(move |lua, args: Variadic<Value>| {
            if args.len() != 1 {
                return fail(lua, "redis.set_repl() requires one argument.");
            }
            match lua.coerce_number(args[0].clone())? {
                Some(n) if (0.0..=3.0).contains(&n) && n.fract() == 0.0 => Ok(MultiValue::new()),
                _ => fail(
                    lua,
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ),
            }
        })?,
    )?;
    api.raw_set(
        "acl_check_cmd",
        lua.create_function(move |lua, args: Variadic<Value>| {
            let (mut src, mut spans) = (Vec::new(), Vec::new());
            if let Err(err) = convert::request_args(&args, &mut src, &mut spans) {
                return fail(lua, err.message());
            }
            let (start, end) = spans[0];
            if !super::command_exists(&src[start..end]) {
                return fail(lua, "Invalid command passed to redis.acl_check_cmd()");
            }
            // No ACLs: the default user may run every command.
            Ok(MultiValue::from_vec(vec![Value::Boolean(true)]))
        })?,
    )?;
    api.raw_set("version", crate::REDIS_VERSION)?;
    api.raw_set("version_num", version_num(crate::REDIS_VERSION))?;
    api.raw_set(
        "random",
        lua.create_function(|lua, args: Variadic<Value>| {
            let r = lua
                .app_data_mut::<Rand48>()
                .map_or(0.0, |mut rng| rng.unit());
            let int = |v: &Value, at: usize| -> mlua::Result<i64> {
                match lua.coerce_number(v.clone())? {
                    Some(n) => Ok(n as i64),
                    None => Err(mlua::Error::runtime(format!(
                        "bad argument #{at} to 'random' (number expected, got {})",
                        v.type_name()
                    ))),
                }
            };
            match args.as_slice() {
                [] => Ok(r),
                [u] => {
                    let u = int(u, 1)?;
                    if u < 1 {
                        return Err(mlua::Error::runtime(
                            "bad argument #1 to 'random' (interval is empty)",
                        ));
                    }
                    Ok((r * u as f64).floor() + 1.0)
                }
                [l, u] => {
                    let (l, u) = (int(l, 1)?, int(u, 2)?);
                    if l > u {
                        return Err(mlua::Error::runtime(
                            "bad argument #2 to 'random' (interval is empty)",
                        ));
                    }
                    Ok((r * (u - l + 1) as f64).floor() + l as f64)
                }
                _ => Err(mlua::Error::runtime("wrong number of arguments")),
            }
        })?,
    )?;
    api.raw_set(
        "randomseed",
        lua.create_function(|lua, seed: Value| {
            let seed = match lua.coerce_number(seed.clone())? {
                Some(n) => n as i64 as i32,
                None => {
                    return Err(mlua::Error::runtime(format!(
                        "bad argument #1 to 'randomseed' (number expected, got {})",
                        seed.type_name()
                    )))
                }
            };
            if let Some(mut rng) = lua.app_data_mut::<Rand48>() {
                rng.seed(seed);
            }
            Ok(())
        })?,
    )?;
    Ok(api)
}
