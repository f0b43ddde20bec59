//! `DEBUG`: hooks for tests, refused unless `enable-debug-command` allows the
//! caller (as in Redis 7).

use super::client::write_help;
use super::table::{flag::*, CommandSpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::config::DebugAccess;

/// The debug family.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "debug",
    -2,
    ADMIN | NOSCRIPT | LOADING | STALE,
    "server",
    "A container for debugging commands.",
    handler!(Debug),
)
.since("1.0.0")];

/// Redis's refusal while `enable-debug-command` does not allow the caller.
const NOT_ALLOWED: &str = "DEBUG command not allowed. If the enable-debug-command option is set \
to \"local\", you can run it from a local connection, otherwise you need to set this option in \
the configuration file, and then restart the server.";

/// `DEBUG <subcommand>`.
enum Debug {
    /// `DEBUG PANIC`: panics inside the command, to show that a failing
    /// request ends only its own connection.
    Panic,
    /// `DEBUG HELP`.
    Help,
}

impl<'a> Command<'a> for Debug {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let sub = p.arg()?;
        let debug = if sub.eq_ignore_ascii_case(b"panic") {
            Debug::Panic
        } else if sub.eq_ignore_ascii_case(b"help") {
            Debug::Help
        } else {
            return Err(CommandError::UnknownSubcommand {
                cmd: "DEBUG".to_string(),
                sub: String::from_utf8_lossy(&sub[..sub.len().min(128)]).into_owned(),
            });
        };
        Ok(debug)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let allowed = match ctx.shared.config.debug_access() {
            DebugAccess::No => false,
            DebugAccess::Yes => true,
            DebugAccess::Local => crate::util::is_loopback(ctx.session.handle.addr.ip()),
        };
        if !allowed {
            return Err(CommandError::err(NOT_ALLOWED));
        }
        match self {
            Debug::Panic => panic!("DEBUG PANIC"),
            Debug::Help => write_help(
                ctx,
                "DEBUG",
                &[
                    "PANIC",
                    "    Panic inside the command: its connection ends, the server goes on.",
                ],
            ),
        }
        Ok(())
    }
}
