//! `DEBUG`: hooks for tests, refused unless `enable-debug-command` allows the
//! caller (as in Redis 7).

use super::client::write_help;
use super::table::{flag::*, CommandSpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::cluster::id::Id;
use crate::cluster::BusDrop;
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
    /// `DEBUG CLUSTER-BUS-DROP <node-id|*> <in|out|both|none>`: drops bus
    /// traffic from or to a node (`*`: every node), for partition tests.
    BusDrop(Option<Id>, Option<BusDrop>),
    /// `DEBUG HELP`.
    Help,
}

impl<'a> Command<'a> for Debug {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let sub = p.arg()?;
        let debug = if sub.eq_ignore_ascii_case(b"panic") {
            Debug::Panic
        } else if sub.eq_ignore_ascii_case(b"cluster-bus-drop") {
            let node = match p.arg()? {
                b"*" => None,
                id => Some(
                    std::str::from_utf8(id)
                        .ok()
                        .and_then(|t| Id::parse(&t.to_ascii_lowercase()))
                        .ok_or_else(|| CommandError::err("Invalid node id"))?,
                ),
            };
            let drop = match p.next_keyword() {
                Some(k) if k.as_str() == "IN" => Some(BusDrop::In),
                Some(k) if k.as_str() == "OUT" => Some(BusDrop::Out),
                Some(k) if k.as_str() == "BOTH" => Some(BusDrop::Both),
                Some(k) if k.as_str() == "NONE" => None,
                _ => return Err(CommandError::Syntax),
            };
            p.finish()?;
            Debug::BusDrop(node, drop)
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
            Debug::BusDrop(node, drop) => {
                if !ctx.shared.cluster.enabled() {
                    return Err(CommandError::err(
                        "This instance has cluster support disabled",
                    ));
                }
                ctx.shared.cluster.set_drop(node, drop);
                ctx.out.ok();
            }
            Debug::Help => write_help(
                ctx,
                "DEBUG",
                &[
                    "PANIC",
                    "    Panic inside the command: its connection ends, the server goes on.",
                    "CLUSTER-BUS-DROP <node-id|*> <IN|OUT|BOTH|NONE>",
                    "    Drop cluster bus messages from or to a node (*: all nodes), or stop.",
                ],
            ),
        }
        Ok(())
    }
}
