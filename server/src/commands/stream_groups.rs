//! Stream consumer groups: XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER,
//! DELCONSUMER), XACK, XPENDING, XCLAIM, XAUTOCLAIM, and XINFO (STREAM,
//! GROUPS, CONSUMERS), as Redis 7.2 answers them.
//!
//! Replication: a command whose effect depends on the time it ran or on the
//! stream's state records what it did instead of its request, as Redis
//! propagates it: each claimed entry as `XCLAIM key group consumer 0 id TIME
//! <ms> RETRYCOUNT <n> FORCE JUSTID LASTID <id>`, a group moved without a
//! claim as `XGROUP SETID key group id ENTRIESREAD <n>`, `$` as the id it
//! stood for. Unlike Redis, a pending entry whose entry was deleted leaves
//! the PEL as an `XACK` (Redis sends an XCLAIM that also marks the old owner
//! seen on the replica), and a consumer XCLAIM or XAUTOCLAIM created is
//! recorded with `XGROUP CREATECONSUMER` even when nothing was claimed.
//!
//! Events: Redis announces the XGROUP changes and consumers created
//! (`xgroup-createconsumer`); XACK, XCLAIM and XAUTOCLAIM count their changes
//! without an event. Every change here touches the key's watchers.

use super::access::{modify, read};
use super::client::write_help;
use super::streams::{write_entry, write_id};
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::keyspace::types::stream::{
    idle, parse_id, Claim, ClaimArgs, EntryRef, Group, IdArg, Pending, StreamId,
};
use crate::keyspace::types::Stream;
use crate::keyspace::{Expiry, Locked};
use crate::notify;
use crate::protocol::number::parse_i64;
use crate::protocol::{Args, Reply};
use crate::stats::LocalStats;

/// The key of an XGROUP or XINFO subcommand.
const KEY2: KeySpec = KeySpec::range(2, 2, 1);

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "stream", summary, handler)
        .keys(keys)
        .since(since)
}

/// The consumer-group family.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec::container(
        "xgroup",
        "stream",
        "5.0.0",
        "A container for consumer groups commands.",
        &[
            spec(
                "create",
                -5,
                WRITE | DENYOOM,
                KEY2,
                "5.0.0",
                "Creates a consumer group.",
                handler!(XGroupCreate<'_>),
            ),
            spec(
                "setid",
                -5,
                WRITE,
                KEY2,
                "5.0.0",
                "Sets the last-delivered ID of a consumer group.",
                handler!(XGroupSetId<'_>),
            ),
            spec(
                "destroy",
                4,
                WRITE,
                KEY2,
                "5.0.0",
                "Destroys a consumer group.",
                handler!(XGroupDestroy<'_>),
            ),
            spec(
                "createconsumer",
                5,
                WRITE | DENYOOM,
                KEY2,
                "6.2.0",
                "Creates a consumer in a consumer group.",
                handler!(XGroupConsumer<'_>),
            ),
            spec(
                "delconsumer",
                5,
                WRITE,
                KEY2,
                "5.0.0",
                "Deletes a consumer from a consumer group.",
                handler!(XGroupConsumer<'_>),
            ),
            spec(
                "help",
                2,
                LOADING | STALE,
                KeySpec::NONE,
                "5.0.0",
                "Returns helpful text about the different subcommands.",
                handler!(XGroupHelp),
            ),
        ],
    ),
    spec(
        "xack",
        -4,
        WRITE | FAST,
        KeySpec::ONE,
        "5.0.0",
        "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
        handler!(XAck<'_>),
    ),
    spec(
        "xpending",
        -3,
        READONLY,
        KeySpec::ONE,
        "5.0.0",
        "Returns the information and entries from a stream consumer group's pending entries list.",
        handler!(XPending<'_>),
    ),
    spec(
        "xclaim",
        -6,
        WRITE | FAST,
        KeySpec::ONE,
        "5.0.0",
        "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.",
        handler!(XClaim<'_>),
    ),
    spec(
        "xautoclaim",
        -6,
        WRITE | FAST,
        KeySpec::ONE,
        "6.2.0",
        "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.",
        handler!(XAutoClaim<'_>),
    ),
    CommandSpec::container(
        "xinfo",
        "stream",
        "5.0.0",
        "A container for stream introspection commands.",
        &[
            spec(
                "stream",
                -3,
                READONLY,
                KEY2,
                "5.0.0",
                "Returns information about a stream.",
                handler!(XInfoStream<'_>),
            ),
            spec(
                "groups",
                3,
                READONLY,
                KEY2,
                "5.0.0",
                "Returns a list of the consumer groups of a stream.",
                handler!(XInfoGroups<'_>),
            ),
            spec(
                "consumers",
                4,
                READONLY,
                KEY2,
                "5.0.0",
                "Returns a list of the consumers in a consumer group.",
                handler!(XInfoConsumers<'_>),
            ),
            spec(
                "help",
                2,
                LOADING | STALE,
                KeySpec::NONE,
                "5.0.0",
                "Returns helpful text about the different subcommands.",
                handler!(XInfoHelp),
            ),
        ],
    ),
];

/// Errors of stream commands with texts of their own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// An id that does not parse (or `-`/`+` where an entry's id is wanted).
    #[error("ERR Invalid stream ID specified as stream command argument")]
    InvalidId,
    /// XGROUP on a key that does not exist (without MKSTREAM).
    #[error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.")]
    NoKey,
    /// XGROUP CREATE of a group that exists.
    #[error("BUSYGROUP Consumer Group name already exists")]
    BusyGroup,
    /// A group missing from a stream that exists (XGROUP, XINFO).
    #[error("NOGROUP No such consumer group '{group}' for key name '{key}'")]
    NoGroup {
        /// The key, as given.
        key: String,
        /// The group, as given.
        group: String,
    },
    /// A key or group missing for XREADGROUP (also when a blocked reader's
    /// stream or group went).
    #[error(
        "NOGROUP No such key '{key}' or consumer group '{group}' in XREADGROUP with GROUP option"
    )]
    NoReadGroup {
        /// The key, as given.
        key: String,
        /// The group, as given.
        group: String,
    },
    /// A key or group missing (XPENDING, XCLAIM, XAUTOCLAIM).
    #[error("NOGROUP No such key '{key}' or consumer group '{group}'")]
    NoKeyOrGroup {
        /// The key, as given.
        key: String,
        /// The group, as given.
        group: String,
    },
}

impl StreamError {
    /// The error code: the first word of the reply text.
    pub fn code(&self) -> &'static str {
        match self {
            StreamError::InvalidId | StreamError::NoKey => "ERR",
            StreamError::BusyGroup => "BUSYGROUP",
            StreamError::NoGroup { .. }
            | StreamError::NoReadGroup { .. }
            | StreamError::NoKeyOrGroup { .. } => "NOGROUP",
        }
    }

    fn no_group(key: &[u8], group: &[u8]) -> CommandError {
        StreamError::NoGroup {
            key: text(key),
            group: text(group),
        }
        .into()
    }

    fn no_key_or_group(key: &[u8], group: &[u8]) -> CommandError {
        StreamError::NoKeyOrGroup {
            key: text(key),
            group: text(group),
        }
        .into()
    }
}

/// A name as Redis prints it in an error.
fn text(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// An entry's id (`-` and `+` refused), `<ms>` meaning `<ms>-0`.
fn strict_id(arg: &[u8]) -> Result<StreamId, CommandError> {
    super::streams::parse_id(arg, 0, true)
}

/// An integer argument with Redis's generic error, or `message`.
fn integer(arg: &[u8], message: Option<&str>) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or_else(|| match message {
        Some(message) => CommandError::err(message),
        None => CommandError::NotInteger,
    })
}

/// A group's read counter where known, else null.
fn write_counter(out: &mut Reply, counter: Option<u64>) {
    write_signed(out, counter.map(|n| n as i64));
}

/// A lag where known (negative after a read counter set too high), else null.
fn write_signed(out: &mut Reply, counter: Option<i64>) {
    match counter {
        Some(n) => out.int(n),
        None => out.null(),
    }
}

/// Records a change of a stream that Redis counts without a keyspace event
/// (acknowledgements, claims): `count` changes, the key's watchers touched.
fn changed_quietly(ctx: &mut Ctx<'_, '_>, count: u64, key: &[u8]) {
    if count > 0 {
        ctx.session.changes.touch(key);
        ctx.session.changes.count(count);
    }
}

/// A record for the write feed, built while the stream is borrowed and
/// written after.
type Record = Vec<Vec<u8>>;

fn propagate_all(ctx: &mut Ctx<'_, '_>, records: &[Record]) {
    for record in records {
        let args: Vec<&[u8]> = record.iter().map(Vec::as_slice).collect();
        ctx.propagate(&args);
    }
}

/// Redis's `streamPropagateXCLAIM`: the record that gives `id` to its
/// pending entry's consumer with its delivery time and count, and moves the
/// group up to its last id.
fn xclaim_record(
    key: &[u8],
    group_name: &[u8],
    group: &Group,
    id: StreamId,
    p: &Pending,
) -> Record {
    vec![
        b"XCLAIM".to_vec(),
        key.to_vec(),
        group_name.to_vec(),
        p.consumer.as_bytes().to_vec(),
        b"0".to_vec(),
        id.to_bytes(),
        b"TIME".to_vec(),
        p.delivery_time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        p.delivery_count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        group.last_id.to_bytes(),
    ]
}

/// Redis's `streamPropagateGroupID`: the group's position and read counter.
fn setid_record(key: &[u8], group_name: &[u8], group: &Group) -> Record {
    let entries_read = group.entries_read.map_or(-1, |n| n as i64);
    vec![
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        group_name.to_vec(),
        group.last_id.to_bytes(),
        b"ENTRIESREAD".to_vec(),
        entries_read.to_string().into_bytes(),
    ]
}

/// `XGROUP CREATECONSUMER key group consumer`.
fn create_consumer_record(key: &[u8], group: &[u8], consumer: &[u8]) -> Record {
    [
        b"XGROUP".as_slice(),
        b"CREATECONSUMER",
        key,
        group,
        consumer,
    ]
    .iter()
    .map(|a| a.to_vec())
    .collect()
}

/// `XACK key group id...`: pending entries whose entries are gone.
fn ack_record(key: &[u8], group: &[u8], ids: impl Iterator<Item = StreamId>) -> Record {
    let mut record = vec![b"XACK".to_vec(), key.to_vec(), group.to_vec()];
    record.extend(ids.map(StreamId::to_bytes));
    record
}

// ---------------------------------------------------------------------------
// XGROUP

/// The options of `XGROUP CREATE` and `SETID` after the id, read as Redis
/// reads them (before the key is looked up).
#[derive(Debug, Clone, Copy, Default)]
struct GroupOptions {
    mkstream: bool,
    entries_read: Option<u64>,
    /// More arguments than the subcommand takes, refused after the key and
    /// group checks (Redis counts them there).
    too_many: bool,
}

impl GroupOptions {
    fn parse(p: &mut Parser<'_>, create: bool) -> Result<Self, CommandError> {
        let argc = p.remaining() + 5;
        let mut options = GroupOptions {
            too_many: if create {
                argc > 8
            } else {
                argc != 5 && argc != 7
            },
            ..GroupOptions::default()
        };
        while let Some(option) = p.try_arg() {
            if create && option.eq_ignore_ascii_case(b"MKSTREAM") {
                options.mkstream = true;
            } else if option.eq_ignore_ascii_case(b"ENTRIESREAD") && p.remaining() > 0 {
                let n = p.next_i64()?;
                if n < -1 {
                    return Err(CommandError::err(
                        "value for ENTRIESREAD must be positive or -1",
                    ));
                }
                options.entries_read = u64::try_from(n).ok();
            } else {
                return Err(p.subcommand_error());
            }
        }
        Ok(options)
    }
}

/// The group's id argument: `$` (the stream's last id) or an id.
#[derive(Debug, Clone, Copy)]
enum GroupId {
    Last,
    Id(StreamId),
}

/// Parses the id of CREATE (strict) or SETID.
fn group_id(arg: &[u8], strict: bool) -> Result<GroupId, CommandError> {
    if arg == b"$" {
        return Ok(GroupId::Last);
    }
    match crate::keyspace::types::stream::parse(arg, 0, strict, false) {
        Some(IdArg::Id(id)) => Ok(GroupId::Id(id)),
        _ => Err(StreamError::InvalidId.into()),
    }
}

/// The arguments XGROUP CREATE and SETID share: `key group id|$` and options.
struct GroupArgs<'a> {
    key: &'a [u8],
    group: &'a [u8],
    id: &'a [u8],
    options: GroupOptions,
    subcommand_error: CommandError,
}

impl<'a> GroupArgs<'a> {
    /// Reads them; `create` allows MKSTREAM.
    fn parse(p: &mut Parser<'a>, create: bool) -> Result<Self, CommandError> {
        let (key, group, id) = (p.arg()?, p.arg()?, p.arg()?);
        let subcommand_error = p.subcommand_error();
        let options = GroupOptions::parse(p, create)?;
        Ok(GroupArgs {
            key,
            group,
            id,
            options,
            subcommand_error,
        })
    }
}

/// `XGROUP CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]`.
struct XGroupCreate<'a>(GroupArgs<'a>);

impl<'a> Command<'a> for XGroupCreate<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        GroupArgs::parse(p, true).map(XGroupCreate)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let args = self.0;
        let table = ctx.locks.table(args.key);
        let exists = modify::<Stream>(table, args.key, ctx.now)?.is_some();
        if !exists && !args.options.mkstream {
            return Err(StreamError::NoKey.into());
        }
        if args.options.too_many {
            return Err(args.subcommand_error);
        }
        let id = group_id(args.id, true)?;
        let table = ctx.locks.table(args.key);
        if !exists {
            let value = crate::keyspace::Value::Stream(Box::default());
            table.insert(args.key, value, Expiry::Persist, ctx.now);
        }
        let stream = modify::<Stream>(table, args.key, ctx.now)?.ok_or(StreamError::NoKey)?;
        let last_id = match id {
            GroupId::Last => stream.last_id(),
            GroupId::Id(id) => id,
        };
        if !stream.create_group(args.group, last_id, args.options.entries_read) {
            return Err(StreamError::BusyGroup.into());
        }
        ctx.changed(notify::STREAM, "xgroup-create", args.key);
        if matches!(id, GroupId::Last) {
            // `$` is the id it stood for here.
            let id = last_id.to_bytes();
            let mut record: Vec<&[u8]> = vec![b"XGROUP", b"CREATE", args.key, args.group, &id];
            if args.options.mkstream {
                record.push(b"MKSTREAM");
            }
            let entries_read = args.options.entries_read.map(|n| n.to_string());
            if let Some(n) = &entries_read {
                record.extend([b"ENTRIESREAD".as_slice(), n.as_bytes()]);
            }
            ctx.propagate(&record);
        }
        ctx.out.ok();
        Ok(())
    }
}

/// `XGROUP SETID key group id|$ [ENTRIESREAD n]`.
struct XGroupSetId<'a>(GroupArgs<'a>);

impl<'a> Command<'a> for XGroupSetId<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        GroupArgs::parse(p, false).map(XGroupSetId)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let args = self.0;
        let table = ctx.locks.table(args.key);
        let stream = modify::<Stream>(table, args.key, ctx.now)?.ok_or(StreamError::NoKey)?;
        let stream_last = stream.last_id();
        let group = stream
            .group_mut(args.group)
            .ok_or_else(|| StreamError::no_group(args.key, args.group))?;
        if args.options.too_many {
            return Err(args.subcommand_error);
        }
        let id = match group_id(args.id, false)? {
            GroupId::Last => stream_last,
            GroupId::Id(id) => id,
        };
        group.set_id(id, args.options.entries_read);
        let record = (args.id == b"$").then(|| setid_record(args.key, args.group, group));
        ctx.changed(notify::STREAM, "xgroup-setid", args.key);
        if let Some(record) = record {
            propagate_all(ctx, &[record]);
        }
        ctx.out.ok();
        Ok(())
    }
}

/// `XGROUP DESTROY key group`.
struct XGroupDestroy<'a> {
    key: &'a [u8],
    group: &'a [u8],
}

impl<'a> Command<'a> for XGroupDestroy<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XGroupDestroy {
            key: p.arg()?,
            group: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let stream = modify::<Stream>(table, self.key, ctx.now)?.ok_or(StreamError::NoKey)?;
        let destroyed = stream.destroy_group(self.group);
        if destroyed {
            // The commit also serves clients blocked in XREADGROUP on the
            // key, who then learn the group is gone.
            ctx.changed(notify::STREAM, "xgroup-destroy", self.key);
        }
        ctx.out.int(i64::from(destroyed));
        Ok(())
    }
}

/// `XGROUP CREATECONSUMER|DELCONSUMER key group consumer`.
struct XGroupConsumer<'a> {
    key: &'a [u8],
    group: &'a [u8],
    consumer: &'a [u8],
}

impl<'a> Command<'a> for XGroupConsumer<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XGroupConsumer {
            key: p.arg()?,
            group: p.arg()?,
            consumer: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let create = ctx.name() == "createconsumer";
        let table = ctx.locks.table(self.key);
        let stream = modify::<Stream>(table, self.key, ctx.now)?.ok_or(StreamError::NoKey)?;
        let group = stream
            .group_mut(self.group)
            .ok_or_else(|| StreamError::no_group(self.key, self.group))?;
        if create {
            let created = group.create_consumer(self.consumer, ctx.now);
            if created {
                ctx.changed(notify::STREAM, "xgroup-createconsumer", self.key);
            }
            ctx.out.int(i64::from(created));
        } else {
            let pending = group.delete_consumer(self.consumer);
            if pending.is_some() {
                ctx.changed(notify::STREAM, "xgroup-delconsumer", self.key);
            }
            ctx.out.int(pending.unwrap_or(0) as i64);
        }
        Ok(())
    }
}

/// `XGROUP HELP`.
struct XGroupHelp;

impl<'a> Command<'a> for XGroupHelp {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XGroupHelp)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "XGROUP",
            &[
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
            ],
        );
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// XACK

/// `XACK key group id [id ...]`.
struct XAck<'a> {
    key: &'a [u8],
    group: &'a [u8],
    ids: Args<'a>,
}

impl<'a> Command<'a> for XAck<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XAck {
            key: p.arg()?,
            group: p.arg()?,
            ids: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let stream = ctx
            .session
            .stats
            .lookup(modify::<Stream>(table, self.key, ctx.now)?);
        let Some(group) = stream.and_then(|s| s.group_mut(self.group)) else {
            ctx.out.int(0);
            return Ok(());
        };
        // All the ids parse before any is acknowledged: all or nothing.
        let ids = self
            .ids
            .iter()
            .map(strict_id)
            .collect::<Result<Vec<_>, _>>()?;
        let acked = ids.into_iter().filter(|&id| group.ack(id)).count();
        changed_quietly(ctx, acked as u64, self.key);
        ctx.out.int(acked as i64);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// XPENDING

/// The range form of XPENDING.
#[derive(Debug, Clone, Copy)]
struct PendingRange<'a> {
    min_idle: i64,
    start: StreamId,
    end: StreamId,
    count: usize,
    consumer: Option<&'a [u8]>,
}

/// `XPENDING key group [[IDLE min-idle] start end count [consumer]]`.
struct XPending<'a> {
    key: &'a [u8],
    group: &'a [u8],
    range: Option<PendingRange<'a>>,
}

impl<'a> Command<'a> for XPending<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (key, group) = (p.arg()?, p.arg()?);
        let argc = p.remaining() + 3;
        if argc != 3 && !(6..=9).contains(&argc) {
            return Err(CommandError::Syntax);
        }
        let range = match argc {
            3 => None,
            _ => Some(PendingRange::parse(p, argc)?),
        };
        Ok(XPending { key, group, range })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let stream = ctx
            .session
            .stats
            .lookup(read::<Stream>(table, self.key, ctx.now)?);
        let group = stream
            .and_then(|s| s.group(self.group))
            .ok_or_else(|| StreamError::no_key_or_group(self.key, self.group))?;
        match self.range {
            None => write_pending_summary(ctx.out, group),
            Some(range) => write_pending_range(ctx.out, group, &range, ctx.now),
        }
        Ok(())
    }
}

impl<'a> PendingRange<'a> {
    /// Reads `[IDLE min-idle] start end count [consumer]` as Redis does:
    /// whatever follows the consumer is ignored.
    fn parse(p: &mut Parser<'a>, argc: usize) -> Result<Self, CommandError> {
        let mut min_idle = 0;
        if p.eat("IDLE") {
            min_idle = p.next_i64()?;
            if argc < 8 {
                return Err(CommandError::Syntax);
            }
        }
        let (start, end) = (p.arg()?, p.arg()?);
        let count = p.next_i64()?.max(0);
        let start = super::streams::parse_bound(start, 0, true)?;
        let end = super::streams::parse_bound(end, u64::MAX, false)?;
        let consumer = p.try_arg();
        p.rest();
        Ok(PendingRange {
            min_idle,
            start,
            end,
            count: usize::try_from(count).unwrap_or(usize::MAX),
            consumer,
        })
    }
}

/// The PEL's size, first and last id, and each consumer with pending entries.
fn write_pending_summary(out: &mut Reply, group: &Group) {
    let pel = group.pending();
    out.array(4);
    out.int(pel.len() as i64);
    let (Some((&first, _)), Some((&last, _))) = (pel.first_key_value(), pel.last_key_value())
    else {
        out.null();
        out.null();
        out.null_array();
        return;
    };
    write_id(out, first);
    write_id(out, last);
    let owners: Vec<_> = group
        .consumers()
        .iter()
        .filter(|(_, c)| !c.pending().is_empty())
        .collect();
    out.array(owners.len());
    for (name, consumer) in owners {
        out.array(2);
        out.bulk(name.as_bytes());
        out.bulk_int(consumer.pending().len() as i64);
    }
}

/// The pending entries in the range: id, consumer, idle ms, deliveries.
fn write_pending_range(out: &mut Reply, group: &Group, range: &PendingRange<'_>, now: u64) {
    let ids: Box<dyn Iterator<Item = StreamId> + '_> = match range.consumer {
        None => Box::new(group.pending().keys().copied()),
        Some(name) => match group.consumer(name) {
            Some(consumer) => Box::new(consumer.pending().iter().copied()),
            // A consumer that does not exist has nothing pending.
            None => Box::new(std::iter::empty()),
        },
    };
    let rows: Vec<(StreamId, &Pending)> = ids
        .skip_while(|&id| id < range.start)
        .take_while(|&id| id <= range.end)
        .map(|id| (id, &group.pending()[&id]))
        .filter(|(_, p)| range.min_idle == 0 || idle(now, p.delivery_time) >= range.min_idle)
        .take(range.count)
        .collect();
    out.array(rows.len());
    for (id, pending) in rows {
        out.array(4);
        write_id(out, id);
        out.bulk(pending.consumer.as_bytes());
        out.int(idle(now, pending.delivery_time).max(0));
        out.int(pending.delivery_count as i64);
    }
}

// ---------------------------------------------------------------------------
// XCLAIM

/// XCLAIM's ids and options, parsed before the key is looked up but
/// reported after, as Redis reports them.
#[derive(Debug, Clone)]
struct ClaimRequest {
    min_idle: i64,
    ids: Vec<StreamId>,
    /// `IDLE` (ms before now) or `TIME` (Unix ms), the last one given.
    delivery: Option<Delivery>,
    retry_count: Option<u64>,
    force: bool,
    justid: bool,
    last_id: StreamId,
}

#[derive(Debug, Clone, Copy)]
enum Delivery {
    Idle(i64),
    Time(i64),
}

impl ClaimRequest {
    fn parse(min_idle: &[u8], rest: Args<'_>) -> Result<Self, CommandError> {
        let min_idle = integer(min_idle, Some("Invalid min-idle-time argument for XCLAIM"))?;
        let mut args = rest.iter().peekable();
        let mut ids = Vec::new();
        while let Some(id) = args.peek().and_then(|arg| parse_id(arg, 0, true)) {
            ids.push(id);
            args.next();
        }
        let mut request = ClaimRequest {
            min_idle: min_idle.max(0),
            ids,
            delivery: None,
            retry_count: None,
            force: false,
            justid: false,
            last_id: StreamId::MIN,
        };
        while let Some(option) = args.next() {
            let more = args.peek().is_some();
            let upper = option.to_ascii_uppercase();
            match upper.as_slice() {
                b"FORCE" => request.force = true,
                b"JUSTID" => request.justid = true,
                b"IDLE" if more => {
                    let ms = integer(
                        args.next().unwrap_or_default(),
                        Some("Invalid IDLE option argument for XCLAIM"),
                    )?;
                    request.delivery = Some(Delivery::Idle(ms));
                }
                b"TIME" if more => {
                    let ms = integer(
                        args.next().unwrap_or_default(),
                        Some("Invalid TIME option argument for XCLAIM"),
                    )?;
                    request.delivery = Some(Delivery::Time(ms));
                }
                b"RETRYCOUNT" if more => {
                    let n = integer(
                        args.next().unwrap_or_default(),
                        Some("Invalid RETRYCOUNT option argument for XCLAIM"),
                    )?;
                    // A negative count is as good as none.
                    request.retry_count = u64::try_from(n).ok();
                }
                b"LASTID" if more => request.last_id = strict_id(args.next().unwrap_or_default())?,
                _ => {
                    return Err(CommandError::err(format!(
                        "Unrecognized XCLAIM option '{}'",
                        text(option)
                    )))
                }
            }
        }
        Ok(request)
    }

    /// The claim of each id at `now`: a delivery time in the future or
    /// before 1970 is now, as Redis sets it.
    fn args(&self, now: u64) -> ClaimArgs {
        let now_signed = now as i64;
        let time = match self.delivery {
            None => now_signed,
            Some(Delivery::Idle(ms)) => now_signed.wrapping_sub(ms),
            Some(Delivery::Time(ms)) => ms,
        };
        let delivery_time = match time {
            t if t < 0 || t > now_signed => now,
            t => t as u64,
        };
        ClaimArgs {
            min_idle: self.min_idle,
            delivery_time,
            retry_count: self.retry_count,
            force: self.force,
            justid: self.justid,
        }
    }
}

/// `XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]`.
struct XClaim<'a> {
    key: &'a [u8],
    group: &'a [u8],
    consumer: &'a [u8],
    request: Result<ClaimRequest, CommandError>,
}

impl<'a> Command<'a> for XClaim<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (key, group, consumer, min_idle) = (p.arg()?, p.arg()?, p.arg()?, p.arg()?);
        Ok(XClaim {
            key,
            group,
            consumer,
            request: ClaimRequest::parse(min_idle, p.rest()),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let (key, group_name, consumer) = (self.key, self.group, self.consumer);
        let now = ctx.now;
        let table = ctx.locks.table(key);
        let stream = ctx.session.stats.lookup(modify::<Stream>(table, key, now)?);
        let stream = stream
            .filter(|s| s.group(group_name).is_some())
            .ok_or_else(|| StreamError::no_key_or_group(key, group_name))?;
        let request = self.request?;
        let mut records = Vec::new();
        let mut changes = 0;
        let group = stream.group_mut(group_name).ok_or(StreamError::InvalidId)?;
        let moved = request.last_id > group.last_id;
        if moved {
            group.last_id = request.last_id;
        }
        let created = group.seen(consumer, now);
        if created {
            records.push(create_consumer_record(key, group_name, consumer));
        }
        let claim = request.args(now);
        let mark = ctx.out.len();
        let mut claimed = 0;
        let mut gone = Vec::new();
        for &id in &request.ids {
            match stream.claim(group_name, consumer, id, &claim, now) {
                Claim::Claimed(pending) => {
                    let group = stream.group(group_name).ok_or(StreamError::InvalidId)?;
                    records.push(xclaim_record(key, group_name, group, id, &pending));
                    match (request.justid, stream.get(id)) {
                        (false, Some(entry)) => write_entry(ctx.out, &entry),
                        _ => write_id(ctx.out, id),
                    }
                    claimed += 1;
                }
                Claim::Gone(_) => gone.push(id),
                Claim::Skipped => {}
            }
        }
        ctx.out.array_at(mark, claimed);
        if !gone.is_empty() {
            records.push(ack_record(key, group_name, gone.iter().copied()));
        }
        changes += claimed as u64 + gone.len() as u64;
        // The XCLAIM records carry the group's last id; without one, it
        // goes on its own.
        if moved && claimed == 0 {
            let group = stream.group(group_name).ok_or(StreamError::InvalidId)?;
            records.push(setid_record(key, group_name, group));
            changes += 1;
        }
        if created {
            ctx.changed(notify::STREAM, "xgroup-createconsumer", key);
        }
        changed_quietly(ctx, changes, key);
        if created || changes > 0 {
            propagate_all(ctx, &records);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// XAUTOCLAIM

/// The most XAUTOCLAIM's COUNT may be (Redis's bound, so that ten times it,
/// or its ids' bytes, fit a `long`).
const AUTOCLAIM_MAX_COUNT: i64 = i64::MAX / 16;

/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT count]
/// [JUSTID]`.
struct XAutoClaim<'a> {
    key: &'a [u8],
    group: &'a [u8],
    consumer: &'a [u8],
    min_idle: i64,
    start: StreamId,
    count: usize,
    justid: bool,
}

impl<'a> Command<'a> for XAutoClaim<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (key, group, consumer) = (p.arg()?, p.arg()?, p.arg()?);
        let min_idle = integer(
            p.arg()?,
            Some("Invalid min-idle-time argument for XAUTOCLAIM"),
        )?;
        let start = super::streams::parse_bound(p.arg()?, 0, true)?;
        let mut claim = XAutoClaim {
            key,
            group,
            consumer,
            min_idle: min_idle.max(0),
            start,
            count: 100,
            justid: false,
        };
        while let Some(option) = p.try_arg() {
            if option.eq_ignore_ascii_case(b"COUNT") && p.remaining() > 0 {
                const BAD_COUNT: &str = "COUNT must be > 0";
                let n = p.next_i64_or(BAD_COUNT)?;
                if !(1..=AUTOCLAIM_MAX_COUNT).contains(&n) {
                    return Err(CommandError::err(BAD_COUNT));
                }
                claim.count = usize::try_from(n).unwrap_or(usize::MAX);
            } else if option.eq_ignore_ascii_case(b"JUSTID") {
                claim.justid = true;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(claim)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let (key, group_name, consumer) = (self.key, self.group, self.consumer);
        let now = ctx.now;
        let table = ctx.locks.table(key);
        let stream = ctx.session.stats.lookup(modify::<Stream>(table, key, now)?);
        let stream = stream
            .filter(|s| s.group(group_name).is_some())
            .ok_or_else(|| StreamError::no_key_or_group(key, group_name))?;
        let group = stream.group_mut(group_name).ok_or(StreamError::InvalidId)?;
        let created = group.seen(consumer, now);
        let done = stream.auto_claim(
            group_name,
            consumer,
            self.start,
            self.min_idle,
            self.count,
            self.justid,
            now,
        );
        let out = &mut *ctx.out;
        out.array(3);
        write_id(out, done.next);
        out.array(done.claimed.len());
        for (id, _) in &done.claimed {
            match (self.justid, stream.get(*id)) {
                (false, Some(entry)) => write_entry(out, &entry),
                _ => write_id(out, *id),
            }
        }
        out.array(done.deleted.len());
        for (id, _) in &done.deleted {
            write_id(out, *id);
        }
        let mut records = Vec::new();
        if created {
            records.push(create_consumer_record(key, group_name, consumer));
        }
        let group = stream.group(group_name).ok_or(StreamError::InvalidId)?;
        for (id, pending) in &done.claimed {
            records.push(xclaim_record(key, group_name, group, *id, pending));
        }
        if !done.deleted.is_empty() {
            let gone = done.deleted.iter().map(|(id, _)| *id);
            records.push(ack_record(key, group_name, gone));
        }
        let changes = (done.claimed.len() + done.deleted.len()) as u64;
        if created {
            ctx.changed(notify::STREAM, "xgroup-createconsumer", key);
        }
        changed_quietly(ctx, changes, key);
        if created || changes > 0 {
            propagate_all(ctx, &records);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// XINFO

/// Looks up the stream of an XINFO subcommand: `ERR no such key` if none.
/// Takes the context's fields, so the reply can be written while the stream
/// is borrowed.
fn info_stream<'t>(
    locks: &'t mut Locked<'_>,
    stats: &mut LocalStats,
    key: &[u8],
    now: u64,
) -> Result<&'t Stream, CommandError> {
    let stream = read::<Stream>(locks.table(key), key, now)?;
    stats.lookup(stream).ok_or(CommandError::NoSuchKey)
}

/// `XINFO STREAM key [FULL [COUNT count]]`.
struct XInfoStream<'a> {
    key: &'a [u8],
    /// `None` for the summary; `Some(count)` for FULL (0: everything).
    /// Bad options are reported after the key is looked up.
    full: Result<Option<usize>, CommandError>,
}

impl<'a> Command<'a> for XInfoStream<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let bad = p.subcommand_error();
        let options: Vec<&[u8]> = p.rest().iter().collect();
        let full = match options.as_slice() {
            [] => Ok(None),
            [full] if full.eq_ignore_ascii_case(b"FULL") => Ok(Some(10)),
            [full, count, n]
                if full.eq_ignore_ascii_case(b"FULL") && count.eq_ignore_ascii_case(b"COUNT") =>
            {
                // A negative count is the default.
                integer(n, None).map(|n| Some(usize::try_from(n).unwrap_or(10)))
            }
            _ => Err(bad),
        };
        Ok(XInfoStream { key, full })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let stream = info_stream(ctx.locks, &mut ctx.session.stats, self.key, ctx.now)?;
        let full = self.full?;
        let out = &mut *ctx.out;
        out.map(if full.is_some() { 9 } else { 10 });
        out.bulk(b"length");
        out.int(stream.len() as i64);
        out.bulk(b"radix-tree-keys");
        out.int(stream.nodes() as i64);
        out.bulk(b"radix-tree-nodes");
        out.int(stream.radix_tree_nodes() as i64);
        out.bulk(b"last-generated-id");
        write_id(out, stream.last_id());
        out.bulk(b"max-deleted-entry-id");
        write_id(out, stream.max_deleted());
        out.bulk(b"entries-added");
        out.int(stream.entries_added() as i64);
        out.bulk(b"recorded-first-entry-id");
        write_id(out, stream.first_id());
        match full {
            None => write_stream_summary(out, stream),
            Some(count) => write_stream_full(out, stream, count),
        }
        Ok(())
    }
}

/// XINFO STREAM's groups count and first and last entries.
fn write_stream_summary(out: &mut Reply, stream: &Stream) {
    out.bulk(b"groups");
    out.int(stream.groups().len() as i64);
    out.bulk(b"first-entry");
    match stream.range(StreamId::MIN, StreamId::MAX).next() {
        Some(entry) => write_entry(out, &entry),
        None => out.null(),
    }
    out.bulk(b"last-entry");
    match stream.range_rev(StreamId::MIN, StreamId::MAX).next() {
        Some(entry) => write_entry(out, &entry),
        None => out.null(),
    }
}

/// XINFO STREAM FULL's entries and groups, at most `count` of the entries
/// and of each PEL (0: all).
fn write_stream_full(out: &mut Reply, stream: &Stream, count: usize) {
    let limit = if count == 0 { usize::MAX } else { count };
    out.bulk(b"entries");
    let entries: Vec<EntryRef<'_>> = stream
        .range(StreamId::MIN, StreamId::MAX)
        .take(limit)
        .collect();
    out.array(entries.len());
    for entry in &entries {
        write_entry(out, entry);
    }
    out.bulk(b"groups");
    out.array(stream.groups().len());
    for (name, group) in stream.groups() {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name.as_bytes());
        out.bulk(b"last-delivered-id");
        write_id(out, group.last_id);
        out.bulk(b"entries-read");
        write_counter(out, group.entries_read);
        out.bulk(b"lag");
        write_signed(out, stream.lag(group));
        out.bulk(b"pel-count");
        out.int(group.pending().len() as i64);
        out.bulk(b"pending");
        let pel = group.pending().iter().take(limit);
        out.array(pel.len());
        for (id, pending) in pel {
            out.array(4);
            write_id(out, *id);
            out.bulk(pending.consumer.as_bytes());
            out.int(pending.delivery_time as i64);
            out.int(pending.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(group.consumers().len());
        for (name, consumer) in group.consumers() {
            out.map(5);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"seen-time");
            out.int(consumer.seen_time as i64);
            out.bulk(b"active-time");
            out.int(consumer.active_time.map_or(-1, |t| t as i64));
            out.bulk(b"pel-count");
            out.int(consumer.pending().len() as i64);
            out.bulk(b"pending");
            let pel = consumer.pending().iter().take(limit);
            out.array(pel.len());
            for id in pel {
                let pending = &group.pending()[id];
                out.array(3);
                write_id(out, *id);
                out.int(pending.delivery_time as i64);
                out.int(pending.delivery_count as i64);
            }
        }
    }
}

/// `XINFO GROUPS key`.
struct XInfoGroups<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for XInfoGroups<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XInfoGroups { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let stream = info_stream(ctx.locks, &mut ctx.session.stats, self.key, ctx.now)?;
        let out = &mut *ctx.out;
        out.array(stream.groups().len());
        for (name, group) in stream.groups() {
            out.map(6);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"consumers");
            out.int(group.consumers().len() as i64);
            out.bulk(b"pending");
            out.int(group.pending().len() as i64);
            out.bulk(b"last-delivered-id");
            write_id(out, group.last_id);
            out.bulk(b"entries-read");
            write_counter(out, group.entries_read);
            out.bulk(b"lag");
            write_signed(out, stream.lag(group));
        }
        Ok(())
    }
}

/// `XINFO CONSUMERS key group`.
struct XInfoConsumers<'a> {
    key: &'a [u8],
    group: &'a [u8],
}

impl<'a> Command<'a> for XInfoConsumers<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XInfoConsumers {
            key: p.arg()?,
            group: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let now = ctx.now;
        let stream = info_stream(ctx.locks, &mut ctx.session.stats, self.key, now)?;
        let group = stream
            .group(self.group)
            .ok_or_else(|| StreamError::no_group(self.key, self.group))?;
        let out = &mut *ctx.out;
        out.array(group.consumers().len());
        for (name, consumer) in group.consumers() {
            out.map(4);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"pending");
            out.int(consumer.pending().len() as i64);
            out.bulk(b"idle");
            out.int(idle(now, consumer.seen_time).max(0));
            // Not clamped, as Redis leaves it; -1 for never active.
            out.bulk(b"inactive");
            out.int(consumer.active_time.map_or(-1, |t| idle(now, t)));
        }
        Ok(())
    }
}

/// `XINFO HELP`.
struct XInfoHelp;

impl<'a> Command<'a> for XInfoHelp {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XInfoHelp)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "XINFO",
            &[
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
            ],
        );
        Ok(())
    }
}
