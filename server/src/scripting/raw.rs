//! The per-run work that mlua's safe API makes several times dearer than
//! Redis's (a string handle per `KEYS`/`ARGV` element): written against
//! Lua's C API inside mlua's protected `exec_raw`, which restores the stack
//! and turns any Lua error (out of memory) into an `Err`.
#![allow(unsafe_code)]

use mlua::{ffi, Lua, Table};

/// Pushes a new array of `items` onto `state`'s stack.
///
/// # Safety
/// `state` is the state `exec_raw` passes, with room for two more slots.
unsafe fn push_array(state: *mut ffi::lua_State, items: &[&[u8]]) {
    unsafe {
        ffi::lua_createtable(state, items.len().min(i32::MAX as usize) as i32, 0);
        for (i, item) in items.iter().enumerate() {
            ffi::lua_pushlstring(state, item.as_ptr().cast(), item.len());
            ffi::lua_rawseti(state, -2, (i + 1) as i64);
        }
    }
}

/// Sets the globals `KEYS` and `ARGV` (an `EVAL` script's).
pub fn set_key_arrays(lua: &Lua, keys: &[&[u8]], args: &[&[u8]]) -> mlua::Result<()> {
    // SAFETY: `exec_raw` runs the closure protected, on a stack it checked
    // for three slots (two are used at a time) and restores afterwards.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            push_array(state, keys);
            ffi::lua_setfield(state, ffi::LUA_GLOBALSINDEX, c"KEYS".as_ptr());
            push_array(state, args);
            ffi::lua_setfield(state, ffi::LUA_GLOBALSINDEX, c"ARGV".as_ptr());
        })
    }
}

/// The arrays of a function's keys and arguments (`FCALL`'s parameters).
pub fn key_arrays(lua: &Lua, keys: &[&[u8]], args: &[&[u8]]) -> mlua::Result<(Table, Table)> {
    // SAFETY: as in `set_key_arrays`; the two arrays are the results.
    unsafe {
        lua.exec_raw::<(Table, Table)>((), |state| {
            push_array(state, keys);
            if ffi::lua_checkstack(state, 2) != 0 {
                push_array(state, args);
            }
        })
    }
}
