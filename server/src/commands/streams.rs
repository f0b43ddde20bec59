//! Stream commands: XADD, XRANGE, XREVRANGE, XLEN, XDEL, XTRIM, XSETID, and
//! the readers XREAD and XREADGROUP, which may block until entries arrive.
//! The consumer groups' own commands are in `stream_groups`.
//!
//! Records for replicas say exactly what happened: XADD names the id it
//! chose and trims to the length it reached; XREADGROUP records the pending
//! entries it made as `XCLAIM ... FORCE JUSTID` and the group's position as
//! `XGROUP SETID`, as Redis propagates them.

use super::blocking::block;
use super::stream_groups::StreamError;
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::blocking::{BlockedOp, ReadEntry, StreamRead};
use crate::keyspace::types::stream::{self, AppendError, EntryRef, IdArg, StreamId, Trim};
use crate::keyspace::types::Stream;
use crate::notify;
use crate::protocol::number::parse_i64;
use crate::protocol::{Protocol, Reply};
use crate::write::GroupRead;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    summary: &'static str,
    since: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "stream", summary, handler)
        .keys(keys)
        .since(since)
}

/// The stream family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "xadd",
        -5,
        WRITE | DENYOOM | FAST,
        KeySpec::ONE,
        "Appends a new message to a stream. Creates the key if it doesn't exist.",
        "5.0.0",
        handler!(XAdd<'_>),
    ),
    spec(
        "xrange",
        -4,
        READONLY,
        KeySpec::ONE,
        "Returns the messages from a stream within a range of IDs.",
        "5.0.0",
        handler!(XRange<'_>),
    ),
    spec(
        "xrevrange",
        -4,
        READONLY,
        KeySpec::ONE,
        "Returns the messages from a stream within a range of IDs in reverse order.",
        "5.0.0",
        handler!(XRange<'_>),
    ),
    spec(
        "xlen",
        2,
        READONLY | FAST,
        KeySpec::ONE,
        "Return the number of messages in a stream.",
        "5.0.0",
        handler!(XLen<'_>),
    ),
    spec(
        "xdel",
        -3,
        WRITE | FAST,
        KeySpec::ONE,
        "Returns the number of messages after removing them from a stream.",
        "5.0.0",
        handler!(XDel<'_>),
    ),
    spec(
        "xtrim",
        -4,
        WRITE,
        KeySpec::ONE,
        "Deletes messages from the beginning of a stream.",
        "5.0.0",
        handler!(XTrim<'_>),
    ),
    spec(
        "xsetid",
        -3,
        WRITE | DENYOOM | FAST,
        KeySpec::ONE,
        "An internal command for replicating stream values.",
        "5.0.0",
        handler!(XSetId<'_>),
    ),
    spec(
        "xread",
        -4,
        READONLY | BLOCKING,
        KeySpec::STREAMS,
        "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
        "5.0.0",
        handler!(XRead<'_>),
    ),
    spec(
        "xreadgroup",
        -7,
        WRITE | BLOCKING,
        KeySpec::STREAMS,
        "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
        "5.0.0",
        handler!(XRead<'_>),
    ),
];

fn invalid_id() -> CommandError {
    StreamError::InvalidId.into()
}

/// A complete id (`-`/`+` refused when `strict`).
pub(super) fn parse_id(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
) -> Result<StreamId, CommandError> {
    stream::parse_id(arg, missing_seq, strict).ok_or_else(invalid_id)
}

/// A signed 64-bit integer argument.
fn parse_int(arg: &[u8]) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
}

/// Writes `id` as a bulk string.
pub(super) fn write_id(out: &mut Reply, id: StreamId) {
    let mut buf = [0u8; 41];
    let (mut ms, mut seq) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (ms, seq) = (ms.format(id.ms).as_bytes(), seq.format(id.seq).as_bytes());
    let len = ms.len() + 1 + seq.len();
    buf[..ms.len()].copy_from_slice(ms);
    buf[ms.len()] = b'-';
    buf[ms.len() + 1..len].copy_from_slice(seq);
    out.bulk(&buf[..len]);
}

/// Writes an owned entry as [`write_entry`] does; one whose entry is gone
/// as `[id, nil]`.
pub fn write_read_entry(out: &mut Reply, entry: &ReadEntry) {
    out.array(2);
    write_id(out, entry.id);
    match &entry.fields {
        Some(fields) => {
            out.array(fields.len());
            for s in fields {
                out.bulk(s);
            }
        }
        None => out.null_array(),
    }
}

/// Writes one stream of an XREAD reply (with the key) from owned entries.
pub fn write_read(out: &mut Reply, key: &[u8], entries: &[ReadEntry]) {
    write_stream_key(out, key);
    out.array(entries.len());
    for entry in entries {
        write_read_entry(out, entry);
    }
}

/// Writes an entry as `[id, [field, value, ...]]`.
pub(super) fn write_entry(out: &mut Reply, entry: &EntryRef<'_>) {
    out.array(2);
    write_id(out, entry.id);
    out.array(2 * entry.len());
    for (field, value) in entry.fields() {
        out.bulk(field);
        out.bulk(value);
    }
}

/// Writes up to `count` (0: all) entries as an array; returns how many.
pub(super) fn write_entries<'e>(
    out: &mut Reply,
    entries: impl Iterator<Item = EntryRef<'e>>,
    count: usize,
) -> usize {
    let mark = out.len();
    let mut written = 0;
    for entry in entries {
        write_entry(out, &entry);
        written += 1;
        if written == count {
            break;
        }
    }
    out.array_at(mark, written);
    written
}

/// The trimming options XADD and XTRIM share.
#[derive(Debug, Clone, Copy, Default)]
struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    /// `LIMIT`, if given.
    limit: Option<u64>,
}

impl TrimArgs {
    /// Reads `MAXLEN|MINID [=|~] threshold` or `LIMIT count` at `args[*i]`,
    /// moving `i` past it; false if `args[*i]` is neither.
    fn parse_option(&mut self, args: &[&[u8]], i: &mut usize) -> Result<bool, CommandError> {
        let more = args.len() - 1 - *i;
        let opt = args[*i];
        let maxlen = opt.eq_ignore_ascii_case(b"MAXLEN");
        if (maxlen || opt.eq_ignore_ascii_case(b"MINID")) && more > 0 {
            if self.trim.is_some() {
                return Err(CommandError::err(
                    "syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            let next = args[*i + 1];
            self.approx = more >= 2 && next == b"~";
            if more >= 2 && (next == b"~" || next == b"=") {
                *i += 1;
            }
            let threshold = args[*i + 1];
            self.trim = Some(if maxlen {
                let n = parse_int(threshold)?;
                if n < 0 {
                    return Err(CommandError::err("The MAXLEN argument must be >= 0."));
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(parse_id(threshold, 0, true)?)
            });
            *i += 2;
            return Ok(true);
        }
        if opt.eq_ignore_ascii_case(b"LIMIT") && more > 0 {
            let n = parse_int(args[*i + 1])?;
            if n < 0 {
                return Err(CommandError::err("The LIMIT argument must be >= 0."));
            }
            self.limit = Some(n as u64);
            *i += 2;
            return Ok(true);
        }
        Ok(false)
    }

    /// The checks once every option is read, in Redis's order.
    fn check(&self, xtrim: bool) -> Result<(), CommandError> {
        if self.limit.is_some_and(|n| n != 0) && self.trim.is_none() {
            return Err(CommandError::err(
                "syntax error, LIMIT cannot be used without specifying a trimming strategy",
            ));
        }
        if xtrim && self.trim.is_none() {
            return Err(CommandError::err(
                "syntax error, XTRIM must be called with a trimming strategy",
            ));
        }
        if self.limit.is_some() && !self.approx {
            return Err(CommandError::err(
                "syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
        Ok(())
    }

    /// Trims `stream`; how many entries went. Without LIMIT, `~` does at
    /// most 100 nodes' worth of work (`node_entries` is
    /// `stream-node-max-entries`), as in Redis; an exact trim has no limit.
    fn apply(&self, stream: &mut Stream, node_entries: u64) -> u64 {
        let limit = match (self.limit, self.approx) {
            (Some(n), _) => n,
            (None, true) => match node_entries.saturating_mul(100) {
                0 => 10_000,
                n => n.min(1_000_000),
            },
            (None, false) => 0,
        };
        self.trim
            .map_or(0, |trim| stream.trim(trim, self.approx, limit))
    }
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id
/// field value [field value ...]`.
struct XAdd<'a> {
    key: &'a [u8],
    nomkstream: bool,
    trim: TrimArgs,
    id: Option<IdArg>,
    fields: Vec<&'a [u8]>,
}

impl<'a> Command<'a> for XAdd<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let args: Vec<&[u8]> = p.rest().iter().collect();
        let (mut nomkstream, mut trim, mut id) = (false, TrimArgs::default(), None);
        let mut i = 0;
        while i < args.len() {
            if args[i] == b"*" {
                break;
            }
            if trim.parse_option(&args, &mut i)? {
                continue;
            }
            if args[i].eq_ignore_ascii_case(b"NOMKSTREAM") {
                nomkstream = true;
                i += 1;
                continue;
            }
            id = Some(stream::parse(args[i], 0, true, true).ok_or_else(invalid_id)?);
            break;
        }
        trim.check(false)?;
        let fields = args.get(i + 1..).unwrap_or_default().to_vec();
        if fields.len() < 2 || fields.len() % 2 == 1 {
            return Err(p.arity_error());
        }
        if id == Some(IdArg::Id(StreamId::MIN)) {
            return Err(CommandError::err(
                "The ID specified in XADD must be greater than 0-0",
            ));
        }
        Ok(XAdd {
            key,
            nomkstream,
            trim,
            id,
            fields,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let table = ctx.locks.table(self.key);
        let made = !table.contains(self.key, ctx.now);
        let stream = match self.nomkstream {
            true => match super::access::modify::<Stream>(table, self.key, ctx.now)? {
                Some(stream) => stream,
                None => {
                    ctx.out.null();
                    return Ok(());
                }
            },
            false => super::access::create(table, self.key, ctx.now, Stream::default)?,
        };
        let id = match stream.append(self.id, &self.fields, limits.stream_nodes(), ctx.now) {
            Ok(id) => id,
            Err(e) => {
                // A stream this command just made is not kept.
                if made {
                    table.remove(self.key, ctx.now);
                }
                return Err(append_error(e));
            }
        };
        let trimmed = self.trim.apply(stream, limits.stream_node_entries);
        let len = stream.len();
        write_id(ctx.out, id);
        ctx.changed(notify::STREAM, "xadd", self.key);
        if trimmed > 0 {
            ctx.changed_by(0, notify::STREAM, "xtrim", self.key);
        }
        if ctx.feeding() {
            self.record(ctx, id, len);
        }
        Ok(())
    }
}

impl XAdd<'_> {
    /// Records the XADD with the id it chose and, after an approximate trim,
    /// the length it left, so a replica ends with the same entries.
    fn record(&self, ctx: &mut Ctx<'_, '_>, id: StreamId, len: u64) {
        let id = id.to_bytes();
        let mut args: Vec<&[u8]> = vec![b"XADD", self.key];
        let threshold;
        match (self.trim.trim, self.trim.approx) {
            (None, _) => {}
            (Some(_), true) => {
                threshold = len.to_string();
                args.extend([&b"MAXLEN"[..], b"=", threshold.as_bytes()]);
            }
            (Some(Trim::MaxLen(n)), false) => {
                threshold = n.to_string();
                args.extend([&b"MAXLEN"[..], b"=", threshold.as_bytes()]);
            }
            (Some(Trim::MinId(min)), false) => {
                threshold = min.to_string();
                args.extend([&b"MINID"[..], b"=", threshold.as_bytes()]);
            }
        }
        args.push(&id);
        args.extend(&self.fields);
        ctx.propagate(&args);
    }
}

fn append_error(e: AppendError) -> CommandError {
    CommandError::err(e.to_string())
}

/// `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`.
struct XTrim<'a> {
    key: &'a [u8],
    trim: TrimArgs,
}

impl<'a> Command<'a> for XTrim<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let args: Vec<&[u8]> = p.rest().iter().collect();
        let mut trim = TrimArgs::default();
        let mut i = 0;
        while i < args.len() {
            if !trim.parse_option(&args, &mut i)? {
                return Err(CommandError::Syntax);
            }
        }
        trim.check(true)?;
        Ok(XTrim { key, trim })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let node_entries = ctx.limits().stream_node_entries;
        let table = ctx.locks.table(self.key);
        let Some(stream) = super::access::modify::<Stream>(table, self.key, ctx.now)? else {
            ctx.out.int(0);
            return Ok(());
        };
        let trimmed = self.trim.apply(stream, node_entries);
        let len = stream.len().to_string();
        ctx.out.int(trimmed as i64);
        if trimmed > 0 {
            ctx.changed_by(trimmed, notify::STREAM, "xtrim", self.key);
            if self.trim.approx {
                ctx.propagate(&[b"XTRIM", self.key, b"MAXLEN", b"=", len.as_bytes()]);
            }
        }
        Ok(())
    }
}

/// `XRANGE key start end [COUNT count]`, `XREVRANGE key end start [COUNT
/// count]`.
struct XRange<'a> {
    key: &'a [u8],
    start: StreamId,
    end: StreamId,
    count: Option<usize>,
}

/// Reads a range bound: `(id` excludes it; `missing_seq` completes `<ms>`.
pub(super) fn parse_bound(
    arg: &[u8],
    missing_seq: u64,
    start: bool,
) -> Result<StreamId, CommandError> {
    match arg.strip_prefix(b"(").filter(|_| arg.len() > 1) {
        Some(id) => {
            let id = parse_id(id, missing_seq, true)?;
            let moved = if start { id.next() } else { id.prev() };
            moved.ok_or_else(|| {
                CommandError::err(match start {
                    true => "invalid start ID for the interval",
                    false => "invalid end ID for the interval",
                })
            })
        }
        None => parse_id(arg, missing_seq, false),
    }
}

impl<'a> Command<'a> for XRange<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let rev = p.called_as("xrev");
        let key = p.arg()?;
        let (first, second) = (p.arg()?, p.arg()?);
        let (start, end) = if rev {
            (second, first)
        } else {
            (first, second)
        };
        let start = parse_bound(start, 0, true)?;
        let end = parse_bound(end, u64::MAX, false)?;
        let mut count = None;
        while p.remaining() > 0 {
            if p.remaining() >= 2 && p.eat("COUNT") {
                count = Some(parse_int(p.arg()?)?.max(0) as usize);
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(XRange {
            key,
            start,
            end,
            count,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let rev = ctx.name() == "xrevrange";
        let table = ctx.locks.table(self.key);
        let Some(stream) = super::access::read::<Stream>(table, self.key, ctx.now)? else {
            ctx.out.array(0);
            return Ok(());
        };
        if self.count == Some(0) {
            ctx.out.null_array();
            return Ok(());
        }
        let (start, end) = (self.start, self.end);
        let count = self.count.unwrap_or(0);
        match rev {
            false => write_entries(ctx.out, stream.range(start, end), count),
            true => write_entries(ctx.out, stream.range_rev(start, end), count),
        };
        Ok(())
    }
}

/// `XLEN key`.
struct XLen<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for XLen<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XLen { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let stream = super::access::read::<Stream>(table, self.key, ctx.now)?;
        ctx.out.int(stream.map_or(0, Stream::len) as i64);
        Ok(())
    }
}

/// `XDEL key id [id ...]`.
struct XDel<'a> {
    key: &'a [u8],
    ids: Vec<&'a [u8]>,
}

impl<'a> Command<'a> for XDel<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(XDel {
            key: p.arg()?,
            ids: p.rest().iter().collect(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        // As Redis: the key is looked up before the ids are read.
        let Some(stream) = super::access::modify::<Stream>(table, self.key, ctx.now)? else {
            ctx.out.int(0);
            return Ok(());
        };
        let ids = self
            .ids
            .iter()
            .map(|id| parse_id(id, 0, true))
            .collect::<Result<Vec<_>, _>>()?;
        let deleted = ids.into_iter().filter(|&id| stream.delete(id)).count() as u64;
        if deleted > 0 {
            ctx.changed_by(deleted, notify::STREAM, "xdel", self.key);
        }
        ctx.out.int(deleted as i64);
        Ok(())
    }
}

/// `XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID
/// max-deleted-id]`.
struct XSetId<'a> {
    key: &'a [u8],
    last_id: StreamId,
    entries_added: Option<u64>,
    max_deleted: Option<StreamId>,
}

impl<'a> Command<'a> for XSetId<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let last_id = parse_id(p.arg()?, 0, true)?;
        let (mut entries_added, mut max_deleted) = (None, None);
        while p.remaining() > 0 {
            if p.remaining() >= 2 && p.eat("ENTRIESADDED") {
                let n = parse_int(p.arg()?)?;
                if n < 0 {
                    return Err(CommandError::err("entries_added must be positive"));
                }
                entries_added = Some(n as u64);
            } else if p.remaining() >= 2 && p.eat("MAXDELETEDID") {
                let id = parse_id(p.arg()?, 0, true)?;
                if last_id < id {
                    return Err(CommandError::err(
                        "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                    ));
                }
                max_deleted = Some(id);
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(XSetId {
            key,
            last_id,
            entries_added,
            max_deleted,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let stream = super::access::modify::<Stream>(table, self.key, ctx.now)?
            .ok_or(CommandError::NoSuchKey)?;
        if self.last_id < stream.max_deleted() {
            return Err(CommandError::err(
                "The ID specified in XSETID is smaller than current max_deleted_entry_id",
            ));
        }
        if let Some(top) = stream.last_entry_id() {
            if self.last_id < top {
                return Err(CommandError::err(
                    "The ID specified in XSETID is smaller than the target stream top item",
                ));
            }
            if self.entries_added.is_some_and(|n| n < stream.len()) {
                return Err(CommandError::err(
                    "The entries_added specified in XSETID is smaller than the target stream length",
                ));
            }
        }
        let max_deleted = self.max_deleted.filter(|id| !id.is_zero());
        stream.set_last_id(self.last_id, self.entries_added, max_deleted);
        ctx.out.ok();
        ctx.changed(notify::STREAM, "xsetid", self.key);
        Ok(())
    }
}

/// Where a reader starts in one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFrom {
    /// After this id (`$` is the stream's last id when the command ran).
    After(StreamId),
    /// `>`: the group's undelivered entries.
    New,
}

/// `XREAD [COUNT count] [BLOCK ms] STREAMS key [key ...] id [id ...]` and
/// `XREADGROUP GROUP group consumer [COUNT count] [BLOCK ms] [NOACK] STREAMS
/// key [key ...] id [id ...]`.
struct XRead<'a> {
    /// The name as called (Redis names it so in one error).
    name: String,
    group: Option<(&'a [u8], &'a [u8])>,
    count: usize,
    block: Option<u64>,
    noack: bool,
    keys: Vec<&'a [u8]>,
    from: Vec<&'a [u8]>,
}

impl<'a> Command<'a> for XRead<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let grouped = p.called_as("xreadgroup");
        let name = if grouped { "XREADGROUP" } else { "XREAD" };
        let mut read = XRead {
            name: String::from_utf8_lossy(p.all().get(0).unwrap_or_default()).into_owned(),
            group: None,
            count: 0,
            block: None,
            noack: false,
            keys: Vec::new(),
            from: Vec::new(),
        };
        let args: Vec<&[u8]> = p.rest().iter().collect();
        let mut i = 0;
        let mut streams = None;
        while i < args.len() {
            let more = args.len() - 1 - i;
            let opt = args[i];
            if opt.eq_ignore_ascii_case(b"BLOCK") && more > 0 {
                read.block = Some(parse_block(args[i + 1])?);
                i += 2;
            } else if opt.eq_ignore_ascii_case(b"COUNT") && more > 0 {
                read.count = parse_int(args[i + 1])?.max(0) as usize;
                i += 2;
            } else if opt.eq_ignore_ascii_case(b"STREAMS") && more > 0 {
                let rest = &args[i + 1..];
                if !rest.len().is_multiple_of(2) {
                    let symbol = if grouped { '>' } else { '$' };
                    return Err(CommandError::err(format!(
                        "Unbalanced '{}' list of streams: for each stream key an ID or '{symbol}' must be specified.",
                        name.to_ascii_lowercase()
                    )));
                }
                streams = Some(rest.split_at(rest.len() / 2));
                break;
            } else if opt.eq_ignore_ascii_case(b"GROUP") && more >= 2 {
                if !grouped {
                    return Err(CommandError::err(
                        "The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                    ));
                }
                read.group = Some((args[i + 1], args[i + 2]));
                i += 3;
            } else if opt.eq_ignore_ascii_case(b"NOACK") {
                if !grouped {
                    return Err(CommandError::err(
                        "The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                    ));
                }
                read.noack = true;
                i += 1;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        let (keys, from) = streams.ok_or(CommandError::Syntax)?;
        if grouped && read.group.is_none() {
            return Err(CommandError::err("Missing GROUP option for XREADGROUP"));
        }
        read.keys = keys.to_vec();
        read.from = from.to_vec();
        Ok(read)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if self.block.is_some() && ctx.in_script {
            return Err(CommandError::err(format!(
                "{} command is not allowed with BLOCK option from scripts",
                self.name
            )));
        }
        let from = self.resolve(ctx)?;
        if let Some((group, consumer)) = self.group {
            // As Redis 7.2: every stream's consumer is seen (or made), served or not.
            for &key in &self.keys {
                let table = ctx.locks.table(key);
                if let Ok(Some(stream)) = super::access::modify::<Stream>(table, key, ctx.now) {
                    let read = self.group_read(key, group, consumer);
                    read.see(stream, ctx.now, &mut ctx.session.changes);
                }
            }
        }
        // Which streams have something for this reader, before writing.
        let ready: Vec<(usize, ReadFrom)> = from
            .iter()
            .enumerate()
            .filter_map(|(i, &from)| self.servable(ctx, i, from).map(|f| (i, f)))
            .collect();
        if !ready.is_empty() {
            write_streams_header(ctx.out, ready.len());
            for (i, from) in ready {
                self.serve(ctx, i, from);
            }
            return Ok(());
        }
        if let Some(ms) = self.block {
            let op = BlockedOp::StreamRead(Box::new(StreamRead {
                after: from
                    .iter()
                    .map(|f| match f {
                        ReadFrom::After(id) => *id,
                        _ => StreamId::MAX,
                    })
                    .collect(),
                count: self.count,
                group: self
                    .group
                    .map(|(g, c)| (g.to_vec(), c.to_vec(), self.noack)),
            }));
            let keys = self.keys.iter().map(|k| k.to_vec()).collect();
            block(ctx, keys, op, ms);
            return Ok(());
        }
        ctx.out.null_array();
        Ok(())
    }
}

/// Writes the header of a reply with `n` streams: an array of `[key,
/// entries]` pairs in RESP2, a map in RESP3.
pub(super) fn write_streams_header(out: &mut Reply, n: usize) {
    match out.protocol() {
        Protocol::Resp2 => out.array(n),
        Protocol::Resp3 => out.map(n),
    }
}

/// Writes one stream's key before its entries (an array of two in RESP2).
pub(super) fn write_stream_key(out: &mut Reply, key: &[u8]) {
    if out.protocol() == Protocol::Resp2 {
        out.array(2);
    }
    out.bulk(key);
}

/// XREAD's `BLOCK` milliseconds (0: forever).
fn parse_block(arg: &[u8]) -> Result<u64, CommandError> {
    let ms = parse_i64(arg)
        .ok_or_else(|| CommandError::err("timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CommandError::err("timeout is negative"));
    }
    if ms > i64::MAX / 2 {
        return Err(CommandError::err("timeout is out of range"));
    }
    Ok(ms as u64)
}

/// Redis's NOGROUP reply for a reader whose key or group is missing.
pub(super) fn no_group(key: &[u8], group: &[u8]) -> CommandError {
    StreamError::NoReadGroup {
        key: String::from_utf8_lossy(key).into_owned(),
        group: String::from_utf8_lossy(group).into_owned(),
    }
    .into()
}

impl<'a> XRead<'a> {
    /// The group read of stream `key`.
    fn group_read(&self, key: &'a [u8], group: &'a [u8], consumer: &'a [u8]) -> GroupRead<'a> {
        GroupRead {
            key,
            group,
            consumer,
            count: self.count,
            noack: self.noack,
        }
    }

    /// Checks every key (type, and group when reading one) and reads every
    /// id, in Redis's order.
    fn resolve(&self, ctx: &mut Ctx<'_, '_>) -> Result<Vec<ReadFrom>, CommandError> {
        let mut from = Vec::with_capacity(self.keys.len());
        for (&key, &arg) in self.keys.iter().zip(&self.from) {
            let table = ctx.locks.table(key);
            let stream = super::access::read::<Stream>(table, key, ctx.now)?;
            if let Some((group, _)) = self.group {
                if stream.and_then(|s| s.group(group)).is_none() {
                    return Err(no_group(key, group));
                }
            }
            from.push(match arg {
                b"$" if self.group.is_some() => {
                    return Err(CommandError::err(
                        "The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.",
                    ))
                }
                b"$" => ReadFrom::After(stream.map_or(StreamId::MIN, Stream::last_id)),
                b">" if self.group.is_none() => {
                    return Err(CommandError::err(
                        "The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
                    ))
                }
                b">" => ReadFrom::New,
                _ => ReadFrom::After(parse_id(arg, 0, true)?),
            });
        }
        Ok(from)
    }

    /// Whether stream `i` has something for the reader now, and from where.
    fn servable(&self, ctx: &mut Ctx<'_, '_>, i: usize, from: ReadFrom) -> Option<ReadFrom> {
        let key = self.keys[i];
        let table = ctx.locks.table(key);
        let stream = super::access::read::<Stream>(table, key, ctx.now).ok()??;
        let top = stream.last_entry_id();
        match (from, self.group) {
            // A consumer's history is always served, even when empty.
            (ReadFrom::After(_), Some(_)) => Some(from),
            (ReadFrom::New, Some((group, _))) => {
                let last = stream.group(group)?.last_id;
                (top? > last).then_some(ReadFrom::New)
            }
            (ReadFrom::After(id), None) => (top? > id).then_some(from),
            (ReadFrom::New, None) => None,
        }
    }

    /// Writes stream `i`'s part of the reply, changing its group's state
    /// for XREADGROUP.
    fn serve(&self, ctx: &mut Ctx<'_, '_>, i: usize, from: ReadFrom) {
        let key = self.keys[i];
        write_stream_key(ctx.out, key);
        let now = ctx.now;
        let Some((group, consumer)) = self.group else {
            let table = ctx.locks.table(key);
            if let Ok(Some(stream)) = super::access::read::<Stream>(table, key, now) {
                if let ReadFrom::After(id) = from {
                    let start = id.next().unwrap_or(StreamId::MAX);
                    write_entries(ctx.out, stream.range(start, StreamId::MAX), self.count);
                }
            }
            return;
        };
        let table = ctx.locks.table(key);
        let Ok(Some(stream)) = super::access::modify::<Stream>(table, key, now) else {
            return;
        };
        let read = self.group_read(key, group, consumer);
        let after = match from {
            ReadFrom::After(id) => Some(id),
            ReadFrom::New => None,
        };
        let entries = read.run(stream, after, now, &mut ctx.session.changes);
        ctx.out.array(entries.len());
        for entry in &entries {
            write_read_entry(ctx.out, entry);
        }
    }
}
