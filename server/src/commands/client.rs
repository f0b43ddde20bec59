//! `CLIENT` subcommands: ID, SETNAME, GETNAME, SETINFO, LIST, INFO, KILL, HELP.

use std::net::SocketAddr;

use super::connection::valid_client_name;
use super::table::{flag::*, CommandSpec, Handler};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::clock::Millis;
use crate::protocol::number::parse_i64;
use crate::session::ClientHandle;

const fn sub(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "connection", summary, handler).since("2.4.0")
}

const NOSTATE: u32 = NOSCRIPT | LOADING | STALE;

/// The client family.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec::container(
    "client",
    "connection",
    "2.4.0",
    "A container for client connection commands.",
    &[
        sub(
            "id",
            2,
            NOSTATE,
            "Returns the unique client ID of the connection.",
            handler!(Id),
        ),
        sub(
            "setname",
            3,
            NOSTATE,
            "Sets the connection name.",
            handler!(SetName<'_>),
        ),
        sub(
            "getname",
            2,
            NOSTATE,
            "Returns the name of the connection.",
            handler!(GetName),
        ),
        sub(
            "setinfo",
            4,
            NOSTATE,
            "Sets information specific to the client or connection.",
            handler!(SetInfo<'_>),
        ),
        sub(
            "list",
            -2,
            ADMIN | NOSTATE,
            "Lists open connections.",
            handler!(List),
        ),
        sub(
            "info",
            2,
            NOSTATE,
            "Returns information about the connection.",
            handler!(Info),
        ),
        sub(
            "kill",
            -3,
            ADMIN | NOSTATE,
            "Terminates open connections.",
            handler!(Kill),
        ),
        sub(
            "help",
            2,
            LOADING | STALE,
            "Returns helpful text about the different subcommands.",
            handler!(Help),
        ),
    ],
)];

/// `CLIENT ID`.
struct Id;

impl<'a> Command<'a> for Id {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Id)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.int(ctx.session.handle.id as i64);
        Ok(())
    }
}

/// `CLIENT SETNAME name` (empty clears it).
struct SetName<'a> {
    name: &'a [u8],
}

impl<'a> Command<'a> for SetName<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let name = p.arg()?;
        if !valid_client_name(name) {
            return Err(CommandError::err(
                "Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        Ok(SetName { name })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.session.handle.set_name(self.name);
        ctx.out.ok();
        Ok(())
    }
}

/// `CLIENT GETNAME`.
struct GetName;

impl<'a> Command<'a> for GetName {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(GetName)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        match ctx.session.handle.name() {
            name if name.is_empty() => ctx.out.null(),
            name => ctx.out.bulk(&name),
        }
        Ok(())
    }
}

/// `CLIENT SETINFO LIB-NAME|LIB-VER value`.
struct SetInfo<'a> {
    lib_name: bool,
    value: &'a [u8],
}

impl<'a> Command<'a> for SetInfo<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let attr = p.arg()?;
        let value = p.arg()?;
        let lib_name = match attr.to_ascii_lowercase().as_slice() {
            b"lib-name" => true,
            b"lib-ver" => false,
            _ => {
                return Err(CommandError::err(format!(
                    "Unrecognized option '{}'",
                    String::from_utf8_lossy(attr)
                )))
            }
        };
        if !valid_client_name(value) {
            return Err(CommandError::err(format!(
                "{} cannot contain spaces, newlines or special characters.",
                if lib_name { "lib-name" } else { "lib-ver" }
            )));
        }
        Ok(SetInfo { lib_name, value })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let handle = &ctx.session.handle;
        if self.lib_name {
            handle.set_lib(Some(self.value), None);
        } else {
            handle.set_lib(None, Some(self.value));
        }
        ctx.out.ok();
        Ok(())
    }
}

/// The client kinds `CLIENT LIST TYPE` filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    PubSub,
    /// Replicas' streams (this node's master link is not a client).
    Replication,
}

/// `CLIENT LIST [TYPE type] [ID id ...]`.
struct List {
    kind: Option<Kind>,
    ids: Vec<u64>,
}

impl<'a> Command<'a> for List {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut list = List {
            kind: None,
            ids: Vec::new(),
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "TYPE" => {
                    let kind = p.arg()?.to_ascii_lowercase();
                    list.kind = Some(match kind.as_slice() {
                        b"normal" => Kind::Normal,
                        b"pubsub" => Kind::PubSub,
                        b"master" | b"replica" | b"slave" => Kind::Replication,
                        _ => {
                            return Err(CommandError::err(format!(
                                "Unknown client type '{}'",
                                String::from_utf8_lossy(&kind)
                            )))
                        }
                    });
                }
                "ID" => {
                    while let Some(id) = p.try_arg() {
                        match parse_i64(id) {
                            Some(id) if id > 0 => list.ids.push(id as u64),
                            _ => return Err(CommandError::err("Invalid client ID")),
                        }
                    }
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(list)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let mut text = String::new();
        // Our own line is current, not as of our last batch.
        ctx.session.handle.set_activity(ctx.session.activity(false));
        for client in ctx.shared.clients.list() {
            let kind = match client.activity() {
                a if a.replica => Kind::Replication,
                a if a.subscribed() => Kind::PubSub,
                _ => Kind::Normal,
            };
            if self.kind.is_none_or(|k| k == kind)
                && (self.ids.is_empty() || self.ids.contains(&client.id))
            {
                text.push_str(&describe(&client, ctx.now));
                text.push('\n');
            }
        }
        ctx.out.verbatim(text.as_bytes());
        Ok(())
    }
}

/// `CLIENT INFO`.
struct Info;

impl<'a> Command<'a> for Info {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Info)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.session.handle.set_activity(ctx.session.activity(false));
        let line = describe(&ctx.session.handle, ctx.now) + "\n";
        ctx.out.verbatim(line.as_bytes());
        Ok(())
    }
}

/// Which clients `CLIENT KILL` targets.
#[derive(Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<SocketAddr>,
    laddr: Option<SocketAddr>,
    user: Option<Vec<u8>>,
    skip_me: bool,
    /// `TYPE`: only replicas (`Some(true)`), only other clients (`Some(false)`).
    replicas: Option<bool>,
    /// False when TYPE names a kind ringkv has no clients of.
    any_type: bool,
    max_age: Option<u64>,
}

/// `CLIENT KILL addr` (old form) or `CLIENT KILL <filter> <value> ...`.
struct Kill {
    filter: KillFilter,
    old_form: bool,
}

fn parse_addr(arg: &[u8]) -> Result<SocketAddr, CommandError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CommandError::err("No such client"))
}

impl<'a> Command<'a> for Kill {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut filter = KillFilter {
            skip_me: true,
            any_type: true,
            ..KillFilter::default()
        };
        if p.remaining() == 1 {
            filter.addr = Some(parse_addr(p.arg()?)?);
            filter.skip_me = false;
            return Ok(Kill {
                filter,
                old_form: true,
            });
        }
        while let Some(option) = p.next_keyword() {
            let value = p.arg()?;
            match option.as_str() {
                "ID" => match parse_i64(value) {
                    Some(id) if id > 0 => filter.id = Some(id as u64),
                    _ => return Err(CommandError::err("client-id should be greater than 0")),
                },
                "ADDR" => filter.addr = Some(parse_addr(value)?),
                "LADDR" => filter.laddr = Some(parse_addr(value)?),
                "USER" => filter.user = Some(value.to_vec()),
                "SKIPME" => {
                    filter.skip_me = match value.to_ascii_lowercase().as_slice() {
                        b"yes" => true,
                        b"no" => false,
                        _ => return Err(CommandError::Syntax),
                    }
                }
                "TYPE" => {
                    filter.any_type = match value.to_ascii_lowercase().as_slice() {
                        b"normal" => {
                            filter.replicas = Some(false);
                            true
                        }
                        b"replica" | b"slave" => {
                            filter.replicas = Some(true);
                            true
                        }
                        b"master" | b"pubsub" => false,
                        _ => {
                            return Err(CommandError::err(format!(
                                "Unknown client type '{}'",
                                String::from_utf8_lossy(value)
                            )))
                        }
                    };
                }
                "MAXAGE" => {
                    filter.max_age = Some(
                        parse_i64(value)
                            .filter(|&n| n >= 0)
                            .ok_or(CommandError::NotInteger)? as u64,
                    )
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(Kill {
            filter,
            old_form: false,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let f = &self.filter;
        let me = ctx.session.handle.id;
        let mut killed = 0;
        let replicas: Vec<u64> = match f.replicas {
            Some(_) => ctx
                .shared
                .replication
                .replicas
                .list()
                .iter()
                .map(|r| r.id)
                .collect(),
            None => Vec::new(),
        };
        for client in ctx.shared.clients.list() {
            let matches = f.any_type
                && f.replicas
                    .is_none_or(|want| replicas.contains(&client.id) == want)
                && f.id.is_none_or(|id| id == client.id)
                && f.addr.is_none_or(|a| a == client.addr)
                && f.laddr.is_none_or(|a| a == client.laddr)
                && f.user.as_deref().is_none_or(|u| u == b"default")
                && f.max_age.is_none_or(|age| client.age_secs() >= age)
                && !(f.skip_me && client.id == me);
            if !matches {
                continue;
            }
            killed += 1;
            if client.id == me {
                // Our own connection closes after this reply is written.
                ctx.session.close_after_reply = true;
            } else {
                client.kill.cancel();
            }
        }
        if self.old_form {
            if killed == 0 {
                return Err(CommandError::err("No such client"));
            }
            ctx.out.ok();
        } else {
            ctx.out.int(killed);
        }
        Ok(())
    }
}

/// Writes a `<COMMAND> HELP` reply: a title line and the given lines.
pub fn write_help(ctx: &mut Ctx<'_, '_>, command: &str, lines: &[&str]) {
    ctx.out.array(lines.len() + 3);
    ctx.out.simple(&format!(
        "{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    ));
    for line in lines {
        ctx.out.simple(line);
    }
    ctx.out.simple("HELP");
    ctx.out.simple("    Prints this help.");
}

/// `CLIENT HELP`.
struct Help;

impl<'a> Command<'a> for Help {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Help)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "CLIENT",
            &[
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL <ip:port>",
                "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are: ID, ADDR, LADDR, USER, SKIPME, TYPE, MAXAGE.",
                "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <id> [<id> ...]]",
                "    Return information about client connections.",
                "SETINFO <option> <value>",
                "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
            ],
        );
        Ok(())
    }
}

/// `client`'s `CLIENT LIST` line at `now`, its last command named.
fn describe(client: &ClientHandle, now: Millis) -> String {
    let command = client.last_command().map_or("NULL", |id| {
        super::table::registry().get(id).full_name.as_str()
    });
    client.describe(now, command)
}
