//! Lua scripting (`EVAL`, `SCRIPT`): the registry of known scripts, and a
//! Redis-compatible Lua 5.1 interpreter per worker thread that runs them.
//!
//! ```text
//! registry: SHA1 -> body, flags (shared; EVAL scripts evicted LRU)
//! engine:   per worker: Lua state set up by sandbox.lua, compiled scripts
//!           run ─ redis.call ─▶ Host (the commands layer: one unit of work)
//! convert:  reply bytes -> Lua values, Lua result -> reply, args -> request
//! ```

pub mod busy;
pub mod convert;
mod current;
mod engine;
pub mod functions;
mod libs;
mod rand48;
mod raw;
pub mod registry;

use std::sync::OnceLock;

pub use busy::{BusyScript, BusyScripts, KillRefusal};
pub use engine::{with_engine, Call, Engine, Host};
pub use functions::{FunctionInfo, Functions, Library};
pub use registry::{parse_sha, parse_shebang, sha1_hex, Script, ScriptFlags, Scripts, Sha};

/// Says whether a command name exists (`redis.acl_check_cmd`); set by the
/// commands layer, which owns the table.
static COMMAND_EXISTS: OnceLock<fn(&[u8]) -> bool> = OnceLock::new();

/// Tells scripting how to look up command names.
pub fn set_command_lookup(exists: fn(&[u8]) -> bool) {
    let _ = COMMAND_EXISTS.set(exists);
}

fn command_exists(name: &[u8]) -> bool {
    COMMAND_EXISTS.get().is_some_and(|exists| exists(name))
}
