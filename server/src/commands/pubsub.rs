//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH,
//! the sharded SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, and PUBSUB
//! CHANNELS/NUMSUB/NUMPAT/SHARDCHANNELS/SHARDNUMSUB.

use super::client::write_help;
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::protocol::{Args, Reply};
use crate::pubsub::{Kind, Mailbox};

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

/// Flags of the commands a subscribed RESP2 client may run.
const CONTEXT: u32 = PUBSUB | PUBSUB_CONTEXT | NOSCRIPT | LOADING | STALE;
/// Flags of the `PUBSUB` introspection subcommands.
const INTROSPECTION: u32 = PUBSUB | LOADING | STALE;

/// The pub/sub family. Shard channels are given as key specs (Redis's
/// `not_key` ones), so in a cluster they are routed like keys: one slot per
/// command, served by this node, or `-CROSSSLOT` / `-MOVED`.
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
        "ssubscribe",
        -2,
        CONTEXT,
        "7.0.0",
        "Listens for messages published to shard channels.",
        handler!(Subscribe<'_>),
    )
    .keys(KeySpec::channels(1, -1, 1)),
    spec(
        "sunsubscribe",
        -1,
        CONTEXT,
        "7.0.0",
        "Stops listening to messages posted to shard channels.",
        handler!(Subscribe<'_>),
    )
    .keys(KeySpec::channels(1, -1, 1)),
    spec(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        "2.0.0",
        "Posts a message to a channel.",
        handler!(Publish<'_>),
    ),
    spec(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        "7.0.0",
        "Post a message to a shard channel",
        handler!(SPublish<'_>),
    )
    .keys(KeySpec::channels(1, 1, 1)),
    CommandSpec::container(
        "pubsub",
        "pubsub",
        "2.8.0",
        "A container for Pub/Sub commands.",
        &[
            spec(
                "channels",
                -2,
                INTROSPECTION,
                "2.8.0",
                "Returns the active channels.",
                handler!(Channels<'_>),
            ),
            spec(
                "numsub",
                -2,
                INTROSPECTION,
                "2.8.0",
                "Returns a count of subscribers to channels.",
                handler!(NumSub<'_>),
            ),
            spec(
                "numpat",
                2,
                INTROSPECTION,
                "2.8.0",
                "Returns a count of unique pattern subscriptions.",
                handler!(NumPat),
            ),
            spec(
                "shardchannels",
                -2,
                INTROSPECTION,
                "7.0.0",
                "Returns the active shard channels.",
                handler!(Channels<'_>),
            ),
            spec(
                "shardnumsub",
                -2,
                INTROSPECTION,
                "7.0.0",
                "Returns the count of subscribers of shard channels.",
                handler!(NumSub<'_>),
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

/// What a (un)subscribe command called `name` subscribes to, and whether it
/// unsubscribes.
fn action(name: &str) -> (Kind, bool) {
    let kind = match name {
        "psubscribe" | "punsubscribe" => Kind::Pattern,
        "ssubscribe" | "sunsubscribe" => Kind::Shard,
        _ => Kind::Channel,
    };
    (kind, name.ends_with("unsubscribe"))
}

/// `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE channel|pattern [...]` and
/// `UNSUBSCRIBE`, `PUNSUBSCRIBE`, `SUNSUBSCRIBE [channel|pattern ...]`.
struct Subscribe<'a> {
    names: Args<'a>,
}

impl<'a> Command<'a> for Subscribe<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Subscribe { names: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let name = ctx.name();
        let (kind, unsubscribe) = action(name);
        // Redis refuses SSUBSCRIBE where a reply per command is expected (EXEC).
        if kind == Kind::Shard && !unsubscribe && !ctx.may_block {
            return Err(CommandError::err(
                "SSUBSCRIBE isn't allowed for a DENY BLOCKING client",
            ));
        }
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
        if unsubscribe {
            let names: Vec<Vec<u8>> = if self.names.is_empty() {
                subs.names(kind).to_vec()
            } else {
                self.names.iter().map(<[u8]>::to_vec).collect()
            };
            if names.is_empty() {
                confirm(ctx.out, name.as_bytes(), None, subs.confirmed_count(kind));
            }
            for channel in names {
                pubsub.unsubscribe(kind, &channel, &mailbox);
                subs.remove(kind, &channel);
                confirm(
                    ctx.out,
                    name.as_bytes(),
                    Some(&channel),
                    subs.confirmed_count(kind),
                );
            }
        } else {
            for channel in self.names.iter() {
                if pubsub.subscribe(kind, channel, &mailbox) {
                    subs.add(kind, channel);
                }
                confirm(
                    ctx.out,
                    name.as_bytes(),
                    Some(channel),
                    subs.confirmed_count(kind),
                );
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
        let receivers = ctx.shared.data.publish(self.channel, self.message);
        // In cluster mode every other node delivers it too (over the bus); the
        // reply counts this node's receivers, as Redis's does.
        ctx.shared
            .cluster
            .step(|c, now| c.publish(self.channel, self.message, now));
        ctx.out.int(receivers as i64);
        Ok(())
    }
}

/// `SPUBLISH shardchannel message`.
struct SPublish<'a> {
    channel: &'a [u8],
    message: &'a [u8],
}

impl<'a> Command<'a> for SPublish<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SPublish {
            channel: p.arg()?,
            message: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let receivers = ctx.shared.data.publish_shard(self.channel, self.message);
        // In cluster mode the other nodes of this shard deliver it too (over
        // the bus); the reply counts this node's receivers, as Redis's does.
        ctx.shared
            .cluster
            .step(|c, now| c.publish_shard(self.channel, self.message, now));
        ctx.out.int(receivers as i64);
        Ok(())
    }
}

/// `PUBSUB CHANNELS|SHARDCHANNELS [pattern]`.
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
        let pubsub = &ctx.shared.data.pubsub;
        let channels = if ctx.name() == "shardchannels" {
            pubsub.shard_channels(self.pattern)
        } else {
            pubsub.channels(self.pattern)
        };
        ctx.out.array(channels.len());
        for c in channels {
            ctx.out.bulk(&c);
        }
        Ok(())
    }
}

/// `PUBSUB NUMSUB|SHARDNUMSUB [channel ...]`.
struct NumSub<'a> {
    channels: Args<'a>,
}

impl<'a> Command<'a> for NumSub<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(NumSub { channels: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let pubsub = &ctx.shared.data.pubsub;
        let shard = ctx.name() == "shardnumsub";
        ctx.out.array(2 * self.channels.len());
        for c in self.channels.iter() {
            let n = if shard {
                pubsub.shard_numsub(c)
            } else {
                pubsub.numsub(c)
            };
            ctx.out.bulk(c);
            ctx.out.int(n as i64);
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
                "SHARDCHANNELS [<pattern>]",
                "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                "SHARDNUMSUB [<shardchannel> ...]",
                "    Return the number of subscribers for the specified shard level channel(s)",
            ],
        );
        Ok(())
    }
}
