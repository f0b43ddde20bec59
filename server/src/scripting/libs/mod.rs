//! The libraries Redis gives Lua scripts beyond Lua's own, written in Rust
//! with Redis's behaviour: `cjson`, `cmsgpack`, `bit` (LuaBitOp) and
//! `struct` (lstruct).

mod bit;
mod cjson;
mod cmsgpack;
mod lstruct;

/// Registers every library as a global of `lua` (the sandbox then makes
/// them read-only).
pub fn register_all(lua: &mlua::Lua) -> mlua::Result<()> {
    cjson::register(lua)?;
    cmsgpack::register(lua)?;
    bit::register(lua)?;
    lstruct::register(lua)?;
    Ok(())
}
