//! The per-call work that mlua's safe API makes several times dearer than
//! Redis's, written against Lua's C API: a run (the handler and the script
//! pushed from mlua's references, `KEYS`/`ARGV` built in place, one
//! `lua_pcall`) and `redis.call`/`redis.pcall` as C functions that read their
//! arguments off the stack and push the reply as Lua values.
//!
//! Lua raises errors with `longjmp`, which skips Rust destructors. So Rust
//! values that own something are dropped before any call that may raise: a
//! raise is only ever deliberate (`lua_error`, from a frame that owns
//! nothing), or an allocation failing in a push (the process is out of
//! memory).
#![allow(unsafe_code)]

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use mlua::{ffi, Function, Lua, Value};

use super::convert::{error_text, format_number, ArgsError};
use crate::protocol::{Args, Reply};

/// Deepest reply nesting pushed as Lua values (a command's replies nest a
/// few levels; this bounds the C stack and Lua's).
const MAX_DEPTH: usize = 64;

/// How a run passes its keys and arguments.
pub enum Inputs<'a> {
    /// As the globals `KEYS` and `ARGV` (an `EVAL` script).
    Globals(Args<'a>, Args<'a>, &'a GlobalInputs),
    /// As the function's two parameters (`FCALL`).
    Params(Args<'a>, Args<'a>),
    /// None (a library's code as it loads).
    None,
}

/// Runs `function` with `inputs` under the message handler `handler`, in
/// protected mode. Returns whether it ran without error, and its first
/// result (the handler's value on error).
pub fn run(
    lua: &Lua,
    handler: &Function,
    function: &Function,
    inputs: Inputs<'_>,
) -> mlua::Result<(bool, Value)> {
    lua.exec_raw_lua(|raw| {
        // SAFETY: `raw` is the interpreter's handle, locked for this call
        // and not inside a Lua call, so `state` is its main thread with
        // nothing of ours on the stack. Six slots are checked first; the
        // stack is put back to `base` before returning.
        unsafe {
            let state = raw.state();
            let base = ffi::lua_gettop(state);
            if ffi::lua_checkstack(state, 8) == 0 {
                return Err(mlua::Error::runtime("Lua stack overflow"));
            }
            raw.push(handler)?;
            raw.push(function)?;
            let nargs = match inputs {
                Inputs::Globals(keys, args, globals) => {
                    globals.keys.set(state, keys);
                    globals.argv.set(state, args);
                    0
                }
                Inputs::Params(keys, args) => {
                    push_array(state, keys);
                    push_array(state, args);
                    2
                }
                Inputs::None => 0,
            };
            let status = ffi::lua_pcall(state, nargs, 1, base + 1);
            let value = raw.pop_value();
            ffi::lua_settop(state, base);
            if let Inputs::Globals(_, _, globals) = inputs {
                globals.keys.check(state);
                globals.argv.check(state);
            }
            Ok((status == 0, value))
        }
    })
}

/// The globals `KEYS` and `ARGV` of `EVAL` scripts.
///
/// Each run refills the same two tables rather than making new ones: a
/// script call then leaves no garbage but its new strings, so Lua allocates,
/// frees and collects a fraction of what it would. A script cannot keep a
/// reference to them past its run (globals and libraries are read-only), but
/// it may change them; after each run a table that is no longer a plain
/// array of the entries set is dropped for a new one.
pub struct GlobalInputs {
    keys: InputTable,
    argv: InputTable,
}

impl GlobalInputs {
    /// The globals' names and tables, in `lua`.
    pub fn new(lua: &Lua) -> GlobalInputs {
        GlobalInputs {
            keys: InputTable::new(lua, "KEYS"),
            argv: InputTable::new(lua, "ARGV"),
        }
    }
}

/// One of [`GlobalInputs`]: the global's name and its table, kept in Lua's
/// registry (pushing them is then one indexed read each).
struct InputTable {
    name: c_int,
    table: Cell<c_int>,
    /// Entries set by the last run.
    len: Cell<usize>,
    /// A script changed the table: make a new one for the next run.
    spoiled: Cell<bool>,
}

impl InputTable {
    fn new(lua: &Lua, name: &str) -> InputTable {
        lua.exec_raw_lua(|raw| {
            // SAFETY: `raw` is locked and not inside a Lua call: `state` is
            // its main thread; two slots are used and taken back.
            unsafe {
                let state = raw.state();
                ffi::lua_pushlstring(state, name.as_ptr().cast(), name.len());
                let name = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                ffi::lua_createtable(state, 0, 0);
                let table = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                InputTable {
                    name,
                    table: Cell::new(table),
                    len: Cell::new(0),
                    spoiled: Cell::new(false),
                }
            }
        })
    }

    /// Sets the global to the table holding `items`.
    ///
    /// # Safety
    /// `state` is the main thread of the interpreter this was made in,
    /// locked, with room for four more slots.
    unsafe fn set(&self, state: *mut ffi::lua_State, items: Args<'_>) {
        unsafe {
            ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, self.name.into());
            if self.spoiled.replace(false) {
                ffi::luaL_unref(state, ffi::LUA_REGISTRYINDEX, self.table.get());
                push_array(state, items);
                ffi::lua_pushvalue(state, -1);
                self.table.set(ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX));
            } else {
                ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, self.table.get().into());
                for (i, item) in items.iter().enumerate() {
                    push_bytes(state, item);
                    ffi::lua_rawseti(state, -2, i as i64 + 1);
                }
                for i in items.len()..self.len.get() {
                    ffi::lua_pushnil(state);
                    ffi::lua_rawseti(state, -2, i as i64 + 1);
                }
            }
            self.len.set(items.len());
            ffi::lua_rawset(state, ffi::LUA_GLOBALSINDEX);
        }
    }

    /// After a run: marks the table spoiled unless it is still exactly the
    /// array the run was given, without a metatable.
    ///
    /// # Safety
    /// As [`InputTable::set`].
    unsafe fn check(&self, state: *mut ffi::lua_State) {
        unsafe {
            ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, self.table.get().into());
            let len = self.len.get();
            let mut plain = ffi::lua_getmetatable(state, -1) == 0;
            if !plain {
                ffi::lua_pop(state, 1);
            }
            let mut seen = 0;
            ffi::lua_pushnil(state);
            while plain && ffi::lua_next(state, -2) != 0 {
                // Keys 1..=len only (a number key is never converted here).
                let index = ffi::lua_tonumber(state, -2);
                plain = ffi::lua_type(state, -2) == ffi::LUA_TNUMBER
                    && (1.0..=len as f64).contains(&index)
                    && index.fract() == 0.0;
                seen += 1;
                ffi::lua_pop(state, 1);
            }
            if !plain {
                // The walk stopped early: its key is still pushed.
                ffi::lua_pop(state, 1);
            }
            ffi::lua_pop(state, 1);
            self.spoiled.set(!plain || seen != len);
        }
    }
}

/// Pushes a new array of `items`.
///
/// # Safety
/// `state` has room for two more slots.
unsafe fn push_array(state: *mut ffi::lua_State, items: Args<'_>) {
    unsafe {
        ffi::lua_createtable(state, items.len().min(i32::MAX as usize) as i32, 0);
        for (i, item) in items.iter().enumerate() {
            push_bytes(state, item);
            ffi::lua_rawseti(state, -2, (i + 1) as i64);
        }
    }
}

/// What one `redis.call` left to push, in [`CallBuffers`].
enum Outcome {
    /// The reply, in `reply` (or `flat` when it did not fit one buffer).
    Reply { flat: bool },
    /// An error, whose text (`CODE message`) is in `error`.
    Error,
}

/// Buffers `redis.call` reuses: the request, the reply, an error's text.
#[derive(Default)]
struct CallBuffers {
    src: Vec<u8>,
    spans: Vec<(usize, usize)>,
    reply: Reply,
    flat: Vec<u8>,
    error: Vec<u8>,
}

impl CallBuffers {
    /// The reply as one slice (`flat`: it did not fit one buffer).
    fn reply_bytes(&self, flat: bool) -> &[u8] {
        match flat {
            true => &self.flat,
            false => self.reply.contiguous().unwrap_or_default(),
        }
    }
}

thread_local! {
    static BUFFERS: RefCell<CallBuffers> = RefCell::new(CallBuffers::default());
}

/// `redis.call` and `redis.pcall`, as Lua functions.
pub fn call_functions(lua: &Lua) -> mlua::Result<(Function, Function)> {
    // SAFETY: both are C functions written for Lua, below.
    unsafe {
        Ok((
            lua.create_c_function(redis_call)?,
            lua.create_c_function(redis_pcall)?,
        ))
    }
}

/// `redis.call`: the command's reply, or its error raised as an error table.
///
/// # Safety
/// Called by Lua only, as a C function.
unsafe extern "C-unwind" fn redis_call(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: `state` is the calling thread; `command` leaves one value.
    unsafe {
        if !command(state) {
            // This frame owns nothing that `longjmp` could skip.
            ffi::lua_error(state);
        }
    }
    1
}

/// `redis.pcall`: the command's reply, or its error table as the result.
///
/// # Safety
/// Called by Lua only, as a C function.
unsafe extern "C-unwind" fn redis_pcall(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: as in `redis_call`.
    unsafe {
        command(state);
    }
    1
}

/// Runs the command whose words are the arguments on `state`'s stack, and
/// pushes its reply (true) or its error table (false).
///
/// # Safety
/// `state` is a Lua thread inside a C function call.
unsafe fn command(state: *mut ffi::lua_State) -> bool {
    // Never borrowed twice: a command run from here runs no script. The
    // buffers are reached through a pointer, not a guard, so that a push
    // that raises (out of memory) skips no destructor.
    let buffers = BUFFERS.with(RefCell::as_ptr);
    // SAFETY: the pointer is this thread's, alive as long as the thread,
    // and no other reference to it exists while this runs (see above).
    let buffers = unsafe { &mut *buffers };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `state` as this function's caller promises.
        unsafe { run_command(state, buffers) }
    }))
    .unwrap_or_else(|_| {
        buffers.error.clear();
        buffers
            .error
            .extend_from_slice(b"ERR internal error while running the command");
        Outcome::Error
    });
    // SAFETY: one value is pushed, with room checked for the reply's depth.
    unsafe {
        match outcome {
            Outcome::Reply { flat } => {
                if push_reply(state, buffers.reply_bytes(flat)).is_ok() {
                    return true;
                }
                buffers.error.clear();
                buffers
                    .error
                    .extend_from_slice(b"ERR reply too deep for Lua");
                push_error(state, &buffers.error);
                false
            }
            Outcome::Error => {
                push_error(state, &buffers.error);
                false
            }
        }
    }
}

/// Reads the arguments and runs the command through the running script's
/// host, leaving its reply or error in `buffers`. Pushes nothing.
///
/// # Safety
/// `state` is a Lua thread inside a C function call.
unsafe fn run_command(state: *mut ffi::lua_State, buffers: &mut CallBuffers) -> Outcome {
    let CallBuffers {
        src,
        spans,
        reply,
        flat,
        error,
    } = &mut *buffers;
    src.clear();
    spans.clear();
    error.clear();
    // SAFETY: reads of the stack's own slots, which raise nothing (numbers
    // are formatted here, never converted in place by Lua).
    let read = unsafe { read_args(state, src, spans) };
    if let Err(err) = read {
        error.extend_from_slice(&error_text(err.message().as_bytes()));
        return Outcome::Error;
    }
    reply.clear();
    reply.set_protocol(super::engine::protocol());
    let ran = super::current::call_host(|host| host.call(Args::new(src, spans), reply));
    match ran {
        None => {
            error.extend_from_slice(b"ERR redis.call is only available while a script runs");
            return Outcome::Error;
        }
        Some(Err(refusal)) => {
            error.extend_from_slice(&error_text(refusal.as_bytes()));
            return Outcome::Error;
        }
        Some(Ok(())) => {}
    }
    let is_flat = reply.contiguous().is_none();
    if is_flat {
        *flat = std::mem::take(reply).into_vec();
    }
    let text = match buffers.reply_bytes(is_flat).strip_prefix(b"-") {
        Some(line) => {
            error_text(&[b"-".as_slice(), &line[..line.len().saturating_sub(2)]].concat())
        }
        None => return Outcome::Reply { flat: is_flat },
    };
    buffers.error.extend_from_slice(&text);
    Outcome::Error
}

/// Appends the words of a `redis.call` (the stack's values) to `src`.
///
/// # Safety
/// `state` is a Lua thread inside a C function call.
unsafe fn read_args(
    state: *mut ffi::lua_State,
    src: &mut Vec<u8>,
    spans: &mut Vec<(usize, usize)>,
) -> Result<(), ArgsError> {
    // SAFETY: indexes 1..=top are the call's arguments; `lua_tolstring` of
    // a string converts nothing.
    unsafe {
        let top = ffi::lua_gettop(state);
        if top == 0 {
            return Err(ArgsError::Empty);
        }
        for i in 1..=top {
            let start = src.len();
            match ffi::lua_type(state, i) {
                ffi::LUA_TSTRING => {
                    let mut len = 0;
                    let data = ffi::lua_tolstring(state, i, &mut len);
                    src.extend_from_slice(std::slice::from_raw_parts(data.cast(), len));
                }
                ffi::LUA_TNUMBER => format_number(ffi::lua_tonumber(state, i), src),
                _ => return Err(ArgsError::Type),
            }
            spans.push((start, src.len()));
        }
    }
    Ok(())
}

/// Pushes `{err = text}`.
///
/// # Safety
/// `state` has room for two more slots.
unsafe fn push_error(state: *mut ffi::lua_State, text: &[u8]) {
    unsafe { push_single(state, c"err", |state| push_bytes(state, text)) }
}

/// Pushes `{field = value}`, the value pushed by `value`.
///
/// # Safety
/// `state` has room for two more slots plus what `value` needs.
unsafe fn push_single(
    state: *mut ffi::lua_State,
    field: &std::ffi::CStr,
    value: impl FnOnce(*mut ffi::lua_State),
) {
    unsafe {
        ffi::lua_createtable(state, 0, 1);
        value(state);
        ffi::lua_setfield(state, -2, field.as_ptr());
    }
}

/// Pushes `bytes` as a Lua string.
///
/// # Safety
/// `state` has room for one more slot.
unsafe fn push_bytes(state: *mut ffi::lua_State, bytes: &[u8]) {
    unsafe {
        ffi::lua_pushlstring(state, bytes.as_ptr().cast::<c_void>().cast(), bytes.len());
    }
}

/// Pushes one reply (RESP2 or RESP3, as the command wrote it) as a Lua
/// value, by Redis's rules: integers to numbers, bulk strings to strings,
/// arrays to tables, a null bulk or array to `false` (RESP3 null to `nil`),
/// a status to `{ok = ...}`, an error to `{err = ...}`, and RESP3's map,
/// set, double, big number and verbatim string to `{map = ...}`, `{set =
/// ...}`, `{double = ...}`, `{big_number = ...}` and `{verbatim_string =
/// ...}`. On a malformed reply (never written by a command) or one nested
/// too deep, pushes nothing.
///
/// # Safety
/// `state` is a Lua thread with room for two more slots.
pub unsafe fn push_reply(state: *mut ffi::lua_State, reply: &[u8]) -> Result<(), ()> {
    let mut reader = Reader { buf: reply, at: 0 };
    let top = unsafe { ffi::lua_gettop(state) };
    // SAFETY: as this function's caller promises; deeper levels check.
    let pushed = unsafe { reader.push(state, 0) };
    if pushed.is_err() {
        // SAFETY: back to the stack as it was.
        unsafe { ffi::lua_settop(state, top) };
    }
    pushed
}

struct Reader<'r> {
    buf: &'r [u8],
    at: usize,
}

impl<'r> Reader<'r> {
    fn line(&mut self) -> Result<&'r [u8], ()> {
        let rest = self.buf.get(self.at..).ok_or(())?;
        let end = rest.windows(2).position(|w| w == b"\r\n").ok_or(())?;
        self.at += end + 2;
        Ok(&rest[..end])
    }

    fn number(&mut self) -> Result<i64, ()> {
        let line = self.line()?;
        crate::protocol::number::parse_i64(line).ok_or(())
    }

    fn bytes(&mut self, len: usize) -> Result<&'r [u8], ()> {
        let end = self.at.checked_add(len).ok_or(())?;
        let data = self.buf.get(self.at..end).ok_or(())?;
        self.at = end + 2;
        Ok(data)
    }

    /// Pushes the next value.
    ///
    /// # Safety
    /// `state` has room for two more slots.
    unsafe fn push(&mut self, state: *mut ffi::lua_State, depth: usize) -> Result<(), ()> {
        let kind = *self.buf.get(self.at).ok_or(())?;
        self.at += 1;
        // SAFETY: every arm pushes one value, using at most two slots at
        // this level; nested values check for room first.
        unsafe {
            match kind {
                b':' => ffi::lua_pushnumber(state, self.number()? as f64),
                b'$' => match self.number()? {
                    len if len < 0 => ffi::lua_pushboolean(state, 0),
                    len => push_bytes(state, self.bytes(len as usize)?),
                },
                b'+' => {
                    let line = self.line()?;
                    push_single(state, c"ok", |state| push_bytes(state, line));
                }
                b'-' => {
                    let text = error_text(&[b"-".as_slice(), self.line()?].concat());
                    push_error(state, &text);
                }
                b'*' => match self.number()? {
                    len if len < 0 => ffi::lua_pushboolean(state, 0),
                    len => {
                        self.nested(state, depth)?;
                        ffi::lua_createtable(state, len.min(1 << 20) as c_int, 0);
                        for i in 1..=len {
                            self.push(state, depth + 1)?;
                            ffi::lua_rawseti(state, -2, i);
                        }
                    }
                },
                b'%' => {
                    let len = self.number()?;
                    self.nested(state, depth)?;
                    ffi::lua_createtable(state, 0, 1);
                    ffi::lua_createtable(state, 0, len.min(1 << 20) as c_int);
                    for _ in 0..len {
                        self.push(state, depth + 1)?;
                        self.push(state, depth + 1)?;
                        self.set_pair(state);
                    }
                    ffi::lua_setfield(state, -2, c"map".as_ptr());
                }
                b'~' => {
                    let len = self.number()?;
                    self.nested(state, depth)?;
                    ffi::lua_createtable(state, 0, 1);
                    ffi::lua_createtable(state, 0, len.min(1 << 20) as c_int);
                    for _ in 0..len {
                        self.push(state, depth + 1)?;
                        ffi::lua_pushboolean(state, 1);
                        self.set_pair(state);
                    }
                    ffi::lua_setfield(state, -2, c"set".as_ptr());
                }
                b'_' => {
                    self.line()?;
                    ffi::lua_pushnil(state);
                }
                b'#' => {
                    let truth = self.line()? == b"t";
                    ffi::lua_pushboolean(state, c_int::from(truth));
                }
                b',' => {
                    let number = match self.line()? {
                        b"inf" => f64::INFINITY,
                        b"-inf" => f64::NEG_INFINITY,
                        other => std::str::from_utf8(other)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(f64::NAN),
                    };
                    push_single(state, c"double", |state| ffi::lua_pushnumber(state, number));
                }
                b'(' => {
                    let digits = self.line()?;
                    push_single(state, c"big_number", |state| push_bytes(state, digits));
                }
                b'=' => {
                    let len = self.number()?.max(4) as usize;
                    let data = self.bytes(len)?;
                    let (format, text) = data.split_at(4.min(data.len()));
                    self.nested(state, depth)?;
                    ffi::lua_createtable(state, 0, 1);
                    ffi::lua_createtable(state, 0, 2);
                    push_bytes(state, &format[..format.len().min(3)]);
                    ffi::lua_setfield(state, -2, c"format".as_ptr());
                    push_bytes(state, text);
                    ffi::lua_setfield(state, -2, c"string".as_ptr());
                    ffi::lua_setfield(state, -2, c"verbatim_string".as_ptr());
                }
                _ => return Err(()),
            }
        }
        Ok(())
    }

    /// Makes room for a nested level's slots, within [`MAX_DEPTH`].
    ///
    /// # Safety
    /// `state` is a Lua thread.
    unsafe fn nested(&self, state: *mut ffi::lua_State, depth: usize) -> Result<(), ()> {
        // SAFETY: growing the stack raises only when out of memory.
        match depth < MAX_DEPTH && unsafe { ffi::lua_checkstack(state, 4) } != 0 {
            true => Ok(()),
            false => Err(()),
        }
    }

    /// Sets key -2 to value -1 in the table at -3, popping both; a `nil`
    /// key (which Lua refuses) is dropped.
    ///
    /// # Safety
    /// The stack holds table, key, value on top.
    unsafe fn set_pair(&self, state: *mut ffi::lua_State) {
        // SAFETY: as the caller promises; `rawset` with a non-nil key (and
        // no NaN: doubles are wrapped in tables) raises nothing.
        unsafe {
            if ffi::lua_type(state, -2) == ffi::LUA_TNIL {
                ffi::lua_settop(state, -3);
            } else {
                ffi::lua_rawset(state, -3);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply as a Lua value, shown as text.
    fn lua_of(reply: &str) -> String {
        let lua = Lua::new();
        // SAFETY: `exec_raw` gives a state with three free slots.
        let value: Value = unsafe {
            lua.exec_raw((), |state| {
                push_reply(state, reply.as_bytes()).unwrap();
            })
        }
        .unwrap();
        lua.globals().set("v", value).unwrap();
        lua.load(
            r#"
            local function show(v)
                if type(v) ~= 'table' then return type(v) .. ':' .. tostring(v) end
                local keys = {}
                for k in pairs(v) do keys[#keys + 1] = k end
                table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
                local parts = {}
                for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. '=' .. show(v[k]) end
                return '{' .. table.concat(parts, ',') .. '}'
            end
            return show(v)
        "#,
        )
        .eval()
        .unwrap()
    }

    #[test]
    fn replies_become_lua_values_by_redis_rules() {
        assert_eq!(lua_of(":42\r\n"), "number:42");
        assert_eq!(lua_of("$3\r\nfoo\r\n"), "string:foo");
        assert_eq!(lua_of("$-1\r\n"), "boolean:false");
        assert_eq!(lua_of("*-1\r\n"), "boolean:false");
        assert_eq!(lua_of("+OK\r\n"), "{ok=string:OK}");
        assert_eq!(lua_of("-WRONGTYPE bad\r\n"), "{err=string:WRONGTYPE bad}");
        assert_eq!(lua_of("-oops\r\n"), "{err=string:ERR oops}");
        assert_eq!(
            lua_of("*3\r\n:1\r\n$1\r\na\r\n*1\r\n$-1\r\n"),
            "{1=number:1,2=string:a,3={1=boolean:false}}"
        );
        assert_eq!(lua_of("_\r\n"), "nil:nil");
        assert_eq!(lua_of("#t\r\n"), "boolean:true");
        assert_eq!(lua_of(",1.5\r\n"), "{double=number:1.5}");
        assert_eq!(
            lua_of("(123456789012345678901\r\n"),
            "{big_number=string:123456789012345678901}"
        );
        assert_eq!(lua_of("%1\r\n$1\r\nk\r\n:1\r\n"), "{map={k=number:1}}");
        assert_eq!(
            lua_of("~2\r\n$1\r\na\r\n$1\r\nb\r\n"),
            "{set={a=boolean:true,b=boolean:true}}"
        );
        assert_eq!(
            lua_of("=8\r\ntxt:text\r\n"),
            "{verbatim_string={format=string:txt,string=string:text}}"
        );
    }

    #[test]
    fn malformed_or_too_deep_replies_push_nothing() {
        let lua = Lua::new();
        let deep = "*1\r\n".repeat(MAX_DEPTH + 1) + ":1\r\n";
        for reply in ["$5\r\nab\r\n", "*2\r\n:1\r\n", "?\r\n", deep.as_str()] {
            // SAFETY: as above.
            let left: mlua::MultiValue = unsafe {
                lua.exec_raw((), |state| {
                    assert!(push_reply(state, reply.as_bytes()).is_err(), "{reply:?}");
                })
            }
            .unwrap();
            assert!(left.is_empty(), "{reply:?}");
        }
    }
}
