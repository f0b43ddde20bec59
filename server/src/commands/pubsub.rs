//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH,
//! PUBSUB CHANNELS/NUMSUB/NUMPAT.

use super::client::write_help;
use super::table::{flag::*, CommandSpec, Handler};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::protocol::{Args, Reply};
use crate::pubsub::Mailbox;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "pubsub", summary, handler).since(since)
}

const CONTEXT: u32 = PUBSUB_CONTEXT | NOSCRIPT | LOADING | STALE;

/// The pub/sub family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "subscribe",
        -2,
        CONTEXT,
        "2.0.0",
        "Listens for messages published to channels.",
        handler!(Subscribe<'_>),
    ),
    spec(
        "unsubscribe",
        -1,
        CONTEXT,
        "2.0.0",
        "Stops listening to messages posted to channels.",
        handler!(Subscribe<'_>),
    ),
    spec(
        "psubscribe",
        -2,
        CONTEXT,
        "2.0.0",
        "Listens for messages published to channels that match one or more patterns.",
        handler!(Subscribe<'_>),
    ),
    spec(
        "punsubscribe",
        -1,
        CONTEXT,
        "2.0.0",
        "Stops listening to messages published to channels that match one or more patterns.",
        handler!(Subscribe<'_>),
    ),
    spec(
        "publish",
        3,
        LOADING | STALE | FAST,
        "2.0.0",
        "Posts a message to a channel.",
        handler!(Publish<'_>),
    ),
    CommandSpec::container(
        "pubsub",
        "pubsub",
        "2.8.0",
        "A container for Pub/Sub commands.",
        &[
            spec(
                "channels",
                -2,
                LOADING | STALE,
                "2.8.0",
                "Returns the active channels.",
                handler!(Channels<'_>),
            ),
            spec(
                "numsub",
                -2,
                LOADING | STALE,
                "2.8.0",
                "Returns a count of subscribers to channels.",
                handler!(NumSub<'_>),
            ),
            spec(
                "numpat",
                2,
                LOADING | STALE,
                "2.8.0",
                "Returns a count of unique pattern subscriptions.",
                handler!(NumPat),
            ),
            spec(
                "help",
                2,
                LOADING | STALE,
                "6.2.0",
                "Returns helpful text about the different subcommands.",
                handler!(Help),
            ),
        ],
    ),
];

fn confirm(out: &mut Reply, kind: &[u8], name: Option<&[u8]>, count: usize) {
    out.push(3);
    out.bulk(kind);
    match name {
        Some(name) => out.bulk(name),
        None => out.null(),
    }
    out.int(count as i64);
}

/// `SUBSCRIBE`, `PSUBSCRIBE channel|pattern [...]` and `UNSUBSCRIBE`,
/// `PUNSUBSCRIBE [channel|pattern ...]`.
struct Subscribe<'a> {
    names: Args<'a>,
}

impl<'a> Command<'a> for Subscribe<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Subscribe { names: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let kind = ctx.name();
        let patterns = kind.starts_with('p');
        let pubsub = &ctx.shared.data.pubsub;
        let session = &mut *ctx.session;
        let mailbox = session
            .subscriptions
            .mailbox
            .get_or_insert_with(|| {
                Mailbox::new(
                    session.handle.id,
                    ctx.out.protocol(),
                    session.handle.kill.clone(),
                )
            })
            .clone();
        let subs = &mut session.subscriptions;
        if kind.ends_with("unsubscribe") {
            let names: Vec<Vec<u8>> = if self.names.is_empty() {
                subs.names(patterns).to_vec()
            } else {
                self.names.iter().map(<[u8]>::to_vec).collect()
            };
            if names.is_empty() {
                confirm(ctx.out, kind.as_bytes(), None, subs.count());
            }
            for name in names {
                if patterns {
                    pubsub.punsubscribe(&name, &mailbox);
                } else {
                    pubsub.unsubscribe(&name, &mailbox);
                }
                subs.remove(patterns, &name);
                confirm(ctx.out, kind.as_bytes(), Some(&name), subs.count());
            }
        } else {
            for name in self.names.iter() {
                let added = if patterns {
                    pubsub.psubscribe(name, &mailbox)
                } else {
                    pubsub.subscribe(name, &mailbox)
                };
                if added {
                    subs.add(patterns, name);
                }
                confirm(ctx.out, kind.as_bytes(), Some(name), subs.count());
            }
        }
        Ok(())
    }
}

/// `PUBLISH channel message`.
struct Publish<'a> {
    channel: &'a [u8],
    message: &'a [u8],
}

impl<'a> Command<'a> for Publish<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Publish {
            channel: p.arg()?,
            message: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let receivers = ctx.shared.data.pubsub.publish(
            self.channel,
            self.message,
            ctx.shared.data.pubsub_output_limit(),
        );
        // In cluster mode every other node delivers it too (over the bus); the
        // reply counts this node's receivers, as Redis's does.
        ctx.shared
            .cluster
            .step(|c, now| c.publish(self.channel, self.message, now));
        ctx.out.int(receivers as i64);
        Ok(())
    }
}

/// `PUBSUB CHANNELS [pattern]`.
struct Channels<'a> {
    pattern: Option<&'a [u8]>,
}

impl<'a> Command<'a> for Channels<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let pattern = p.try_arg();
        if p.remaining() > 0 {
            return Err(p.subcommand_error());
        }
        Ok(Channels { pattern })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let channels = ctx.shared.data.pubsub.channels(self.pattern);
        ctx.out.array(channels.len());
        for c in channels {
            ctx.out.bulk(&c);
        }
        Ok(())
    }
}

/// `PUBSUB NUMSUB [channel ...]`.
struct NumSub<'a> {
    channels: Args<'a>,
}

impl<'a> Command<'a> for NumSub<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(NumSub { channels: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.array(2 * self.channels.len());
        for c in self.channels.iter() {
            ctx.out.bulk(c);
            ctx.out.int(ctx.shared.data.pubsub.numsub(c) as i64);
        }
        Ok(())
    }
}

/// `PUBSUB NUMPAT`.
struct NumPat;

impl<'a> Command<'a> for NumPat {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(NumPat)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.int(ctx.shared.data.pubsub.numpat() as i64);
        Ok(())
    }
}

/// `PUBSUB HELP`.
struct Help;

impl<'a> Command<'a> for Help {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Help)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "PUBSUB",
            &[
                "CHANNELS [<pattern>]",
                "    Return the currently active channels matching a <pattern> (default: '*').",
                "NUMPAT",
                "    Return number of subscriptions to patterns.",
                "NUMSUB [<channel> ...]",
                "    Return the number of subscribers for the specified channels, excluding",
                "    pattern subscriptions(default: no channels).",
            ],
        );
        Ok(())
    }
}
