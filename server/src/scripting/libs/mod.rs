//! The libraries Redis gives Lua scripts beyond Lua's own, written in Rust
//! with Redis's behaviour: `cjson`, `cmsgpack`, `bit` (LuaBitOp) and
//! `struct` (lstruct).

use mlua::{Error, Lua, Value};

mod bit;
mod cjson;
mod cmsgpack;
mod lstruct;

/// Lua 5.1's name for the type of an argument, "no value" when it is absent.
fn type_name(value: Option<&Value>) -> &'static str {
    match value {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        // Light and full userdata, including mlua's wrapped errors.
        Some(_) => "userdata",
    }
}

/// The error `luaL_typerror` raises for argument `n`, which should be of
/// type `expected`.
fn type_error(lua: &Lua, n: usize, expected: &str, value: Option<&Value>) -> Error {
    let got = type_name(value);
    arg_error(lua, n, &format!("{expected} expected, got {got}"))
}

/// The error `luaL_argerror` raises for argument `narg` of the running function.
fn arg_error(lua: &Lua, narg: usize, msg: &str) -> Error {
    // Like Lua, name the function as the caller referred to it ("?" if it cannot tell),
    // and leave the implicit `self` of a method call out of the count.
    let called_as = lua.inspect_stack(0, |frame| {
        let names = frame.names();
        let name = names.name.as_deref().unwrap_or("?").to_owned();
        (name, names.name_what == Some("method"))
    });
    let text = match called_as {
        None => format!("bad argument #{narg} ({msg})"),
        Some((name, true)) if narg == 1 => format!("calling '{name}' on bad self ({msg})"),
        Some((name, is_method)) => {
            let narg = narg.saturating_sub(usize::from(is_method));
            format!("bad argument #{narg} to '{name}' ({msg})")
        }
    };
    runtime_error(lua, text)
}

/// The error `luaL_error` raises: `msg` after the calling chunk's `name:line: `, if known.
fn runtime_error(lua: &Lua, msg: impl std::fmt::Display) -> Error {
    let place = lua.inspect_stack(1, |frame| {
        let line = frame.current_line().filter(|&line| line > 0)?;
        let chunk = frame.source().short_src.unwrap_or_default();
        Some(format!("{chunk}:{line}: "))
    });
    Error::RuntimeError(format!("{}{msg}", place.flatten().unwrap_or_default()))
}

/// Registers every library as a global of `lua` (the sandbox then makes
/// them read-only).
pub fn register_all(lua: &Lua) -> mlua::Result<()> {
    cjson::register(lua)?;
    cmsgpack::register(lua)?;
    bit::register(lua)?;
    lstruct::register(lua)?;
    Ok(())
}
