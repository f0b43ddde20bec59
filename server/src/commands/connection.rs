//! Connection commands: PING, ECHO, AUTH, HELLO, SELECT, QUIT, RESET.

use super::table::{flag::*, CommandSpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::protocol::Protocol;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Option<super::table::Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "connection", summary, handler)
}

/// The connection family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "ping",
        -1,
        FAST | STALE | PUBSUB_CONTEXT,
        "Returns the server's liveliness response.",
        handler!(Ping<'_>),
    ),
    spec(
        "echo",
        2,
        FAST | STALE,
        "Returns the given string.",
        handler!(Echo<'_>),
    ),
    spec(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "Authenticates the connection.",
        handler!(Auth<'_>),
    ),
    spec(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY,
        "Handshakes with the Redis server.",
        handler!(Hello<'_>),
    ),
    spec(
        "select",
        2,
        LOADING | STALE | FAST,
        "Changes the selected database.",
        handler!(Select),
    ),
    spec(
        "quit",
        -1,
        ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | NO_QUEUE | PUBSUB_CONTEXT,
        "Closes the connection.",
        handler!(Quit),
    ),
    spec(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY | NO_QUEUE | PUBSUB_CONTEXT,
        "Resets the connection.",
        handler!(Reset),
    ),
];

/// `PING [message]`.
struct Ping<'a> {
    message: Option<&'a [u8]>,
}

impl<'a> Command<'a> for Ping<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let message = p.try_arg();
        if p.remaining() > 0 {
            return Err(p.arity_error());
        }
        Ok(Ping { message })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        // A subscribed RESP2 client gets its pong in the shape of a message.
        if ctx.session.subscriptions.count() > 0 && ctx.out.protocol() == Protocol::Resp2 {
            ctx.out.array(2);
            ctx.out.bulk(b"pong");
            ctx.out.bulk(self.message.unwrap_or_default());
            return Ok(());
        }
        match self.message {
            Some(m) => ctx.out.bulk(m),
            None => ctx.out.simple("PONG"),
        }
        Ok(())
    }
}

/// `ECHO message`.
struct Echo<'a> {
    message: &'a [u8],
}

impl<'a> Command<'a> for Echo<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Echo { message: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.bulk(self.message);
        Ok(())
    }
}

/// Checks credentials for the default user and marks the session authenticated.
fn authenticate(ctx: &mut Ctx<'_, '_>, user: &[u8], password: &[u8]) -> CommandResult {
    if user != b"default" {
        return Err(CommandError::WrongPass);
    }
    let config = &ctx.shared.config;
    // Without a password the default user accepts any, as Redis's `nopass` does.
    if config.has_password() && !config.check_password(password) {
        return Err(CommandError::WrongPass);
    }
    ctx.session.authenticated = true;
    Ok(())
}

/// `AUTH [username] password`.
struct Auth<'a> {
    user: Option<&'a [u8]>,
    password: &'a [u8],
}

impl<'a> Command<'a> for Auth<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let first = p.arg()?;
        let auth = match p.try_arg() {
            Some(password) => Auth {
                user: Some(first),
                password,
            },
            None => Auth {
                user: None,
                password: first,
            },
        };
        Ok(auth)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if self.user.is_none() && !ctx.shared.config.has_password() {
            return Err(CommandError::err(
                "AUTH <password> called without any password configured for the default user. \
                 Are you sure your client is configured correctly?",
            ));
        }
        authenticate(ctx, self.user.unwrap_or(b"default"), self.password)?;
        ctx.out.ok();
        Ok(())
    }
}

/// Client names may hold only printable characters other than space.
pub fn valid_client_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// `HELLO [protover [AUTH username password] [SETNAME name]]`.
struct Hello<'a> {
    proto: Option<Protocol>,
    auth: Option<(&'a [u8], &'a [u8])>,
    name: Option<&'a [u8]>,
}

impl<'a> Command<'a> for Hello<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut hello = Hello {
            proto: None,
            auth: None,
            name: None,
        };
        let Some(version) = p.try_arg() else {
            return Ok(hello);
        };
        let version = crate::protocol::number::parse_i64(version).ok_or_else(|| {
            CommandError::err("Protocol version is not an integer or out of range")
        })?;
        hello.proto = Some(match version {
            2 => Protocol::Resp2,
            3 => Protocol::Resp3,
            _ => return Err(CommandError::NoProto),
        });
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "AUTH" if p.remaining() >= 2 => hello.auth = Some((p.arg()?, p.arg()?)),
                "SETNAME" if p.remaining() >= 1 => hello.name = Some(p.arg()?),
                _ => {
                    return Err(CommandError::err(format!(
                        "Syntax error in HELLO option '{}'",
                        option.as_str().to_ascii_lowercase()
                    )))
                }
            }
        }
        Ok(hello)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if let Some((user, password)) = self.auth {
            authenticate(ctx, user, password)?;
        }
        if !ctx.session.authenticated && ctx.shared.config.has_password() {
            return Err(CommandError::HelloNoAuth);
        }
        if let Some(name) = self.name {
            if !valid_client_name(name) {
                return Err(CommandError::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            ctx.session.handle.set_name(name);
        }
        if let Some(proto) = self.proto {
            ctx.out.set_protocol(proto);
            ctx.session.handle.set_protocol(proto);
            if let Some(mailbox) = &ctx.session.subscriptions.mailbox {
                mailbox.set_protocol(proto);
            }
        }
        let out = &mut *ctx.out;
        out.map(7);
        out.bulk(b"server");
        out.bulk(b"ringkv");
        out.bulk(b"version");
        out.bulk(crate::REDIS_VERSION.as_bytes());
        out.bulk(b"proto");
        out.int(out.protocol().version());
        out.bulk(b"id");
        out.int(ctx.session.handle.id as i64);
        out.bulk(b"mode");
        out.bulk(b"standalone");
        out.bulk(b"role");
        out.bulk(b"master");
        out.bulk(b"modules");
        out.array(0);
        Ok(())
    }
}

/// `SELECT index`: only database 0 exists.
struct Select {
    index: i64,
}

impl<'a> Command<'a> for Select {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Select {
            index: p.next_i64()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if i32::try_from(self.index).is_err() {
            return Err(CommandError::err(
                "value is out of range, value must between -2147483648 and 2147483647",
            ));
        }
        if self.index != 0 {
            return Err(CommandError::DbOutOfRange);
        }
        ctx.out.ok();
        Ok(())
    }
}

/// `QUIT`: reply, then close.
struct Quit;

impl<'a> Command<'a> for Quit {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        // Redis ignores QUIT's arguments.
        p.rest();
        Ok(Quit)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.ok();
        ctx.session.close_after_reply = true;
        Ok(())
    }
}

/// `RESET`: back to the state of a new connection.
struct Reset;

impl<'a> Command<'a> for Reset {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Reset)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.set_protocol(Protocol::Resp2);
        ctx.session.handle.set_protocol(Protocol::Resp2);
        ctx.session.handle.set_name(b"");
        ctx.session.authenticated = !ctx.shared.config.has_password();
        ctx.session.multi = None;
        ctx.session.readonly = false;
        ctx.session.unwatch_all(&ctx.shared.data.watches);
        ctx.session.unsubscribe_all(&ctx.shared.data.pubsub);
        ctx.out.simple("RESET");
        Ok(())
    }
}
