//! String commands: GET, SET and its variants, MGET/MSET, APPEND, ranges, counters,
//! LCS.

use std::borrow::Cow;

use super::expire::{ExpireArg, Unit};
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser, ValueArg};
use crate::keyspace::types::Str;
use crate::keyspace::{Expiry, Value};
use crate::notify;
use crate::protocol::number::{format_f64_human, parse_f64, parse_i64};
use crate::protocol::Reply;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "string", summary, handler)
        .keys(keys)
        .since(since)
}

const ONE: KeySpec = KeySpec::ONE;
const PAIRS: KeySpec = KeySpec::range(1, -1, 2);

/// The string family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("get", 2, READONLY | FAST, ONE, "1.0.0", "Returns the string value of a key.", handler!(Get<'_>)),
    spec("set", -3, WRITE | DENYOOM, ONE, "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", handler!(Set<'_>)),
    spec("setnx", 3, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Set the string value of a key only when the key doesn't exist.", handler!(SetNx<'_>)),
    spec("setex", 4, WRITE | DENYOOM, ONE, "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", handler!(SetEx<'_>)),
    spec("psetex", 4, WRITE | DENYOOM, ONE, "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", handler!(SetEx<'_>)),
    spec("getset", 3, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Returns the previous string value of a key after setting it to a new value.", handler!(GetSet<'_>)),
    spec("getdel", 2, WRITE | FAST, ONE, "6.2.0", "Returns the string value of a key after deleting the key.", handler!(GetDel<'_>)),
    spec("delifeq", 3, WRITE | FAST, ONE, "9.0.0", "Deletes a key if it holds the given string (Valkey 9): a lock release that cannot free another owner's lock.", handler!(DelIfEq<'_>)),
    spec("delex", -2, WRITE | FAST, ONE, "8.4.0", "Deletes a key, optionally only if its string value equals (IFEQ) or differs from (IFNE) the given one (Redis 8.4).", handler!(DelEx<'_>)),
    spec("getex", -2, WRITE | FAST, ONE, "6.2.0", "Returns the string value of a key after setting its expiration time.", handler!(GetEx<'_>)),
    spec("mget", -2, READONLY | FAST, KeySpec::ALL, "1.0.0", "Atomically returns the string values of one or more keys.", handler!(MGet<'_>)),
    spec("mset", -3, WRITE | DENYOOM, PAIRS, "1.0.1", "Atomically creates or modifies the string values of one or more keys.", handler!(MSet<'_>)),
    spec("msetnx", -3, WRITE | DENYOOM, PAIRS, "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.", handler!(MSet<'_>)),
    spec("append", 3, WRITE | DENYOOM | FAST, ONE, "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", handler!(Append<'_>)),
    spec("strlen", 2, READONLY | FAST, ONE, "2.2.0", "Returns the length of a string value.", handler!(StrLen<'_>)),
    spec("getrange", 4, READONLY, ONE, "2.4.0", "Returns a substring of the string stored at a key.", handler!(GetRange<'_>)),
    spec("substr", 4, READONLY, ONE, "1.0.0", "Returns a substring from a string value.", handler!(GetRange<'_>)),
    spec("setrange", 4, WRITE | DENYOOM, ONE, "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", handler!(SetRange<'_>)),
    spec("incr", 2, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", handler!(IncrBy<'_>)),
    spec("decr", 2, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", handler!(IncrBy<'_>)),
    spec("incrby", 3, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", handler!(IncrBy<'_>)),
    spec("decrby", 3, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", handler!(IncrBy<'_>)),
    spec("incrbyfloat", 3, WRITE | DENYOOM | FAST, ONE, "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", handler!(IncrByFloat<'_>)),
    spec("lcs", -3, READONLY, KeySpec::range(1, 2, 1), "7.0.0", "Finds the longest common substring.", handler!(Lcs<'_>)),
];

/// The bytes of a string value (integers formatted); WRONGTYPE for other types.
pub fn string_bytes(value: &Value) -> Result<Cow<'_, [u8]>, CommandError> {
    value.string_bytes().ok_or(CommandError::WrongType)
}

/// A string value as text to edit in place (an integer becomes its digits);
/// WRONGTYPE for other types.
pub(super) fn as_str(value: &mut Value) -> Result<&mut Str, CommandError> {
    if let Value::Int(n) = value {
        *value = Value::Str(Str::new(itoa::Buffer::new().format(*n).as_bytes()));
    }
    match value {
        Value::Str(s) => Ok(s),
        _ => Err(CommandError::WrongType),
    }
}

/// Replies with a string value; WRONGTYPE for other types.
pub fn reply_string(out: &mut Reply, value: &Value) -> CommandResult {
    match value {
        Value::Str(s) => out.bulk(s.as_bytes()),
        Value::Int(n) => out.bulk_int(*n),
        _ => return Err(CommandError::WrongType),
    }
    Ok(())
}

/// `GET key`.
struct Get<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for Get<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Get { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        match ctx.session.stats.lookup(table.get(self.key, ctx.now)) {
            // A cached "known absent" or a fill lease (see `cache.rs`) is no value.
            Some(entry) if entry.value.reads_as_nil() => ctx.out.null(),
            Some(entry) => reply_string(ctx.out, entry.value)?,
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// The existence condition of a `SET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition<'a> {
    Always,
    /// Only if the key does not exist.
    Nx,
    /// Only if it exists.
    Xx,
    /// Only if it exists and its value equals this.
    IfEq(&'a [u8]),
    /// Only if it does not exist or its value differs from this.
    IfNe(&'a [u8]),
}

/// What happens to the TTL on a `SET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TtlChange {
    Clear,
    Keep,
    Expire(ExpireArg),
}

/// `SET key value [NX|XX|IFEQ v|IFNE v] [GET] [EX s|PX ms|EXAT t|PXAT t|KEEPTTL]`, and
/// the older forms SETNX, SETEX, PSETEX and GETSET.
#[derive(Debug)]
struct Set<'a> {
    key: &'a [u8],
    value: ValueArg<'a>,
    condition: Condition<'a>,
    get: bool,
    ttl: TtlChange,
}

impl<'a> Set<'a> {
    fn parse_options(&mut self, p: &mut Parser<'a>) -> Result<(), CommandError> {
        while let Some(option) = p.next_keyword() {
            let no_condition = self.condition == Condition::Always;
            let no_ttl = self.ttl == TtlChange::Clear;
            let expire = |unit, relative, p: &mut Parser<'a>| -> Result<TtlChange, CommandError> {
                Ok(TtlChange::Expire(ExpireArg {
                    value: p.next_i64()?,
                    unit,
                    relative,
                }))
            };
            match option.as_str() {
                "NX" if no_condition => self.condition = Condition::Nx,
                "XX" if no_condition => self.condition = Condition::Xx,
                "IFEQ" if no_condition => self.condition = Condition::IfEq(p.arg()?),
                "IFNE" if no_condition => self.condition = Condition::IfNe(p.arg()?),
                "GET" => self.get = true,
                "KEEPTTL" if no_ttl => self.ttl = TtlChange::Keep,
                "EX" if no_ttl => self.ttl = expire(Unit::Seconds, true, p)?,
                "PX" if no_ttl => self.ttl = expire(Unit::Millis, true, p)?,
                "EXAT" if no_ttl => self.ttl = expire(Unit::Seconds, false, p)?,
                "PXAT" if no_ttl => self.ttl = expire(Unit::Millis, false, p)?,
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(())
    }
}

impl<'a> Set<'a> {
    fn plain(key: &'a [u8], value: ValueArg<'a>) -> Self {
        Set {
            key,
            value,
            condition: Condition::Always,
            get: false,
            ttl: TtlChange::Clear,
        }
    }
}

impl<'a> Command<'a> for Set<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut set = Set::plain(p.arg()?, p.value()?);
        set.parse_options(p)?;
        Ok(set)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        self.run(ctx)
    }
}

/// `SETNX key value`: SET NX replying 1 or 0.
struct SetNx<'a>(Set<'a>);

impl<'a> Command<'a> for SetNx<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let set = Set {
            condition: Condition::Nx,
            ..Set::plain(p.arg()?, p.value()?)
        };
        Ok(SetNx(set))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        self.0.run(ctx)
    }
}

/// `SETEX key seconds value` and `PSETEX key milliseconds value`.
struct SetEx<'a> {
    key: &'a [u8],
    time: i64,
    value: ValueArg<'a>,
}

impl<'a> Command<'a> for SetEx<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SetEx {
            key: p.arg()?,
            time: p.next_i64()?,
            value: p.value()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let unit = if ctx.name() == "psetex" {
            Unit::Millis
        } else {
            Unit::Seconds
        };
        let expire = ExpireArg {
            value: self.time,
            unit,
            relative: true,
        };
        Set {
            ttl: TtlChange::Expire(expire),
            ..Set::plain(self.key, self.value)
        }
        .run(ctx)
    }
}

/// `GETSET key value`: SET GET.
struct GetSet<'a>(Set<'a>);

impl<'a> Command<'a> for GetSet<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(GetSet(Set {
            get: true,
            ..Set::plain(p.arg()?, p.value()?)
        }))
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        self.0.run(ctx)
    }
}

impl Set<'_> {
    fn run(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let expire_at = match self.ttl {
            TtlChange::Expire(arg) => Some(arg.resolve(ctx.now, ctx.name(), true)?),
            TtlChange::Clear | TtlChange::Keep => None,
        };
        let table = ctx.locks.table(self.key);
        // A plain SET needs nothing from the old value: skip the lookup.
        let (allowed, previous) = if self.condition == Condition::Always && !self.get {
            (true, None)
        } else {
            let old = table.get(self.key, ctx.now).map(|e| &*e.value);
            // Only GET and the value comparisons need a string; NX/XX look at existence.
            let needs_string =
                self.get || matches!(self.condition, Condition::IfEq(_) | Condition::IfNe(_));
            let old_bytes = match old {
                Some(v) if needs_string => Some(string_bytes(v)?),
                _ => None,
            };
            let allowed = match self.condition {
                Condition::Always => true,
                Condition::Nx => old.is_none(),
                Condition::Xx => old.is_some(),
                Condition::IfEq(v) => old_bytes.as_deref() == Some(v),
                Condition::IfNe(v) => old_bytes.as_deref() != Some(v),
            };
            (allowed, old_bytes.filter(|_| self.get).map(Cow::into_owned))
        };
        if allowed {
            match expire_at {
                // An absolute time already past: the key ends up not existing.
                Some(at) if at <= ctx.now as i64 => {
                    table.remove(self.key, ctx.now);
                }
                Some(at) => {
                    table.insert(
                        self.key,
                        self.value.to_value(),
                        Expiry::At(at as u64),
                        ctx.now,
                    );
                }
                None => {
                    let expiry = if self.ttl == TtlChange::Keep {
                        Expiry::Keep
                    } else {
                        Expiry::Persist
                    };
                    table.insert(self.key, self.value.to_value(), expiry, ctx.now);
                }
            }
            ctx.changed(notify::STRING, "set", self.key);
            if expire_at.is_some() {
                ctx.changed_by(0, notify::GENERIC, "expire", self.key);
            }
            // Recorded with the expiry resolved: an absolute time, or gone.
            let value = self.value.bytes();
            match expire_at {
                Some(at) if at <= ctx.now as i64 => ctx.propagate(&[b"DEL", self.key]),
                Some(at) => {
                    let mut at_text = itoa::Buffer::new();
                    let at = at_text.format(at).as_bytes();
                    ctx.propagate(&[b"SET", self.key, value, b"PXAT", at]);
                }
                None if self.ttl == TtlChange::Keep => {
                    ctx.propagate(&[b"SET", self.key, value, b"KEEPTTL"])
                }
                None => ctx.propagate(&[b"SET", self.key, value]),
            }
        }
        match (self.get, previous) {
            (true, Some(prev)) => ctx.out.bulk(&prev),
            (true, None) => ctx.out.null(),
            (false, _) if allowed => match ctx.name() {
                "setnx" => ctx.out.int(1),
                _ => ctx.out.ok(),
            },
            (false, _) => match ctx.name() {
                "setnx" => ctx.out.int(0),
                _ => ctx.out.null(),
            },
        }
        Ok(())
    }
}

/// `GETDEL key`.
struct GetDel<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for GetDel<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(GetDel { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        match ctx.session.stats.lookup(table.get(self.key, ctx.now)) {
            Some(entry) => {
                reply_string(ctx.out, entry.value)?;
                table.remove(self.key, ctx.now);
                ctx.changed(notify::GENERIC, "del", self.key);
            }
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// When a conditional delete goes ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeleteIf<'a> {
    /// Whatever the key holds.
    Always,
    /// The key holds a string equal to this.
    Equal(&'a [u8]),
    /// The key holds a string different from this.
    NotEqual(&'a [u8]),
}

/// Deletes `key` if `condition` holds; replies 1 if it did, 0 otherwise
/// (missing key, or another value). A condition on a non-string is WRONGTYPE.
fn delete_if(ctx: &mut Ctx<'_, '_>, key: &[u8], condition: DeleteIf<'_>) -> CommandResult {
    let table = ctx.locks.table(key);
    let allowed = match table.peek(key, ctx.now) {
        None => false,
        Some(entry) => match condition {
            DeleteIf::Always => true,
            DeleteIf::Equal(v) => *string_bytes(entry.value)? == *v,
            DeleteIf::NotEqual(v) => *string_bytes(entry.value)? != *v,
        },
    };
    if allowed {
        table.remove(key, ctx.now);
        ctx.changed(notify::GENERIC, "del", key);
    }
    ctx.out.int(i64::from(allowed));
    Ok(())
}

/// `DELIFEQ key value`.
struct DelIfEq<'a> {
    key: &'a [u8],
    value: &'a [u8],
}

impl<'a> Command<'a> for DelIfEq<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(DelIfEq {
            key: p.arg()?,
            value: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        delete_if(ctx, self.key, DeleteIf::Equal(self.value))
    }
}

/// `DELEX key [IFEQ value | IFNE value]`.
struct DelEx<'a> {
    key: &'a [u8],
    condition: DeleteIf<'a>,
}

impl<'a> Command<'a> for DelEx<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let condition = match p.next_keyword() {
            None => DeleteIf::Always,
            Some(option) => match option.as_str() {
                "IFEQ" => DeleteIf::Equal(p.arg()?),
                "IFNE" => DeleteIf::NotEqual(p.arg()?),
                "IFDEQ" | "IFDNE" => {
                    return Err(CommandError::err(
                        "IFDEQ and IFDNE (value digests) are not supported; use IFEQ or IFNE",
                    ))
                }
                _ => return Err(CommandError::Syntax),
            },
        };
        Ok(DelEx { key, condition })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        delete_if(ctx, self.key, self.condition)
    }
}

/// `GETEX key [EX s|PX ms|EXAT t|PXAT t|PERSIST]`.
struct GetEx<'a> {
    key: &'a [u8],
    change: Option<TtlChange>,
}

impl<'a> Command<'a> for GetEx<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let mut change = None;
        while let Some(option) = p.next_keyword() {
            let arg =
                |unit, relative, p: &mut Parser<'a>| -> Result<Option<TtlChange>, CommandError> {
                    Ok(Some(TtlChange::Expire(ExpireArg {
                        value: p.next_i64()?,
                        unit,
                        relative,
                    })))
                };
            if change.is_some() {
                return Err(CommandError::Syntax);
            }
            change = match option.as_str() {
                "EX" => arg(Unit::Seconds, true, p)?,
                "PX" => arg(Unit::Millis, true, p)?,
                "EXAT" => arg(Unit::Seconds, false, p)?,
                "PXAT" => arg(Unit::Millis, false, p)?,
                "PERSIST" => Some(TtlChange::Clear),
                _ => return Err(CommandError::Syntax),
            };
        }
        Ok(GetEx { key, change })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let expire_at = match self.change {
            Some(TtlChange::Expire(arg)) => Some(arg.resolve(ctx.now, "getex", true)?),
            _ => None,
        };
        let table = ctx.locks.table(self.key);
        let Some(entry) = ctx.session.stats.lookup(table.get(self.key, ctx.now)) else {
            ctx.out.null();
            return Ok(());
        };
        reply_string(ctx.out, entry.value)?;
        match (self.change, expire_at) {
            (_, Some(at)) if at <= ctx.now as i64 => {
                table.remove(self.key, ctx.now);
                ctx.changed(notify::GENERIC, "del", self.key);
                ctx.propagate(&[b"DEL", self.key]);
            }
            (_, Some(at)) => {
                table.set_expire(self.key, Some(at as u64), ctx.now);
                ctx.changed(notify::GENERIC, "expire", self.key);
                let mut at_text = itoa::Buffer::new();
                ctx.propagate(&[b"PEXPIREAT", self.key, at_text.format(at).as_bytes()]);
            }
            (Some(TtlChange::Clear), None) if table.set_expire(self.key, None, ctx.now) => {
                ctx.changed(notify::GENERIC, "persist", self.key);
                ctx.propagate(&[b"PERSIST", self.key]);
            }
            _ => {}
        }
        Ok(())
    }
}

/// `MGET key [key ...]`: nil for missing keys and keys of other types.
struct MGet<'a> {
    keys: crate::protocol::Args<'a>,
}

impl<'a> Command<'a> for MGet<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(MGet { keys: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.array(self.keys.len());
        for key in self.keys.iter() {
            match ctx
                .session
                .stats
                .lookup(ctx.locks.table(key).get(key, ctx.now))
            {
                // Keys of other types read as nil here, as in Redis.
                Some(entry) if reply_string(ctx.out, entry.value).is_ok() => {}
                _ => ctx.out.null(),
            }
        }
        Ok(())
    }
}

/// `MSET key value [key value ...]` and `MSETNX`.
struct MSet<'a> {
    pairs: Vec<(&'a [u8], ValueArg<'a>)>,
}

impl<'a> Command<'a> for MSet<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        if !p.remaining().is_multiple_of(2) {
            return Err(p.arity_error());
        }
        let mut pairs = Vec::with_capacity(p.remaining() / 2);
        while let Some(key) = p.try_arg() {
            pairs.push((key, p.value()?));
        }
        Ok(MSet { pairs })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let nx = ctx.name() == "msetnx";
        let locked = &mut *ctx.locks;
        if nx
            && self
                .pairs
                .iter()
                .any(|&(k, _)| locked.table(k).contains(k, ctx.now))
        {
            ctx.out.int(0);
            return Ok(());
        }
        for &(key, value) in &self.pairs {
            locked
                .table(key)
                .insert(key, value.to_value(), Expiry::Persist, ctx.now);
        }
        for &(key, _) in &self.pairs {
            ctx.changed(notify::STRING, "set", key);
        }
        if nx {
            ctx.out.int(1);
        } else {
            ctx.out.ok();
        }
        Ok(())
    }
}

/// Fails when a string would grow past `max` (`proto-max-bulk-len`).
fn check_size(max: u64, len: u64) -> CommandResult {
    if len > max {
        Err(CommandError::TooLarge)
    } else {
        Ok(())
    }
}

/// `APPEND key value`.
struct Append<'a> {
    key: &'a [u8],
    value: ValueArg<'a>,
}

impl<'a> Command<'a> for Append<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Append {
            key: p.arg()?,
            value: p.value()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let max = ctx.max_string();
        let table = ctx.locks.table(self.key);
        let len = match table.get(self.key, ctx.now) {
            Some(entry) => {
                let value = self.value.bytes();
                let len = string_bytes(entry.value)?.len() + value.len();
                check_size(max, len as u64)?;
                as_str(entry.value)?.append(value);
                len
            }
            None => {
                table.insert(self.key, self.value.to_value(), Expiry::Persist, ctx.now);
                self.value.bytes().len()
            }
        };
        ctx.changed(notify::STRING, "append", self.key);
        ctx.out.int(len as i64);
        Ok(())
    }
}

/// `STRLEN key`.
struct StrLen<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for StrLen<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(StrLen { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let len = table
            .get(self.key, ctx.now)
            .map(|e| string_bytes(e.value).map(|b| b.len()))
            .transpose()?
            .unwrap_or(0);
        ctx.out.int(len as i64);
        Ok(())
    }
}

/// The byte range `[start, end]` (inclusive, negative from the end) of a string of
/// `len` bytes, clamped as Redis does; `None` when empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return None;
    }
    let fix = |i: i64| if i < 0 { (len + i).max(0) } else { i };
    let (start, end) = (fix(start), fix(end).min(len - 1));
    (start <= end).then_some((start as usize, end as usize))
}

/// `GETRANGE key start end` (and its old name SUBSTR).
struct GetRange<'a> {
    key: &'a [u8],
    start: i64,
    end: i64,
}

impl<'a> Command<'a> for GetRange<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(GetRange {
            key: p.arg()?,
            start: p.next_i64()?,
            end: p.next_i64()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let Some(entry) = table.get(self.key, ctx.now) else {
            ctx.out.bulk(b"");
            return Ok(());
        };
        let bytes = string_bytes(entry.value)?;
        match clamp_range(self.start, self.end, bytes.len()) {
            Some((s, e)) => ctx.out.bulk(&bytes[s..=e]),
            None => ctx.out.bulk(b""),
        }
        Ok(())
    }
}

/// `SETRANGE key offset value`.
struct SetRange<'a> {
    key: &'a [u8],
    offset: i64,
    value: &'a [u8],
}

impl<'a> Command<'a> for SetRange<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let offset = p.next_i64()?;
        if offset < 0 {
            return Err(CommandError::err("offset is out of range"));
        }
        Ok(SetRange {
            key,
            offset,
            value: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let offset = self.offset as u64;
        let max = ctx.max_string();
        let table = ctx.locks.table(self.key);
        let existing = table.get(self.key, ctx.now);
        if self.value.is_empty() {
            // Nothing to write: report the length without creating the key.
            let len = match existing {
                Some(e) => string_bytes(e.value)?.len(),
                None => 0,
            };
            ctx.out.int(len as i64);
            return Ok(());
        }
        check_size(max, offset + self.value.len() as u64)?;
        let offset = offset as usize;
        let len = match existing {
            Some(e) => {
                let s = as_str(e.value)?;
                s.write_at(offset, self.value);
                s.len()
            }
            None => {
                let s = Str::padded(offset, self.value);
                let len = s.len();
                table.insert(self.key, Value::Str(s), Expiry::Keep, ctx.now);
                len
            }
        };
        ctx.changed(notify::STRING, "setrange", self.key);
        ctx.out.int(len as i64);
        Ok(())
    }
}

/// The integer in a string value: WRONGTYPE for other types, not-an-integer for
/// other strings.
fn as_integer(value: &Value) -> Result<i64, CommandError> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::Str(s) => parse_i64(s.as_bytes()).ok_or(CommandError::NotInteger),
        _ => Err(CommandError::WrongType),
    }
}

/// `INCR`, `DECR`, `INCRBY`, `DECRBY`.
struct IncrBy<'a> {
    key: &'a [u8],
    by: Option<i64>,
}

impl<'a> Command<'a> for IncrBy<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let by = match p.remaining() {
            0 => None,
            _ => Some(p.next_i64()?),
        };
        Ok(IncrBy { key, by })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let delta = match (ctx.name(), self.by) {
            ("incr", _) => 1,
            ("decr", _) => -1,
            ("decrby", Some(by)) => by
                .checked_neg()
                .ok_or_else(|| CommandError::err("decrement would overflow"))?,
            (_, by) => by.unwrap_or(1),
        };
        let table = ctx.locks.table(self.key);
        let result = match table.get(self.key, ctx.now) {
            Some(entry) => {
                let current = as_integer(entry.value)?;
                let next = current.checked_add(delta).ok_or(CommandError::Overflow)?;
                *entry.value = Value::Int(next);
                next
            }
            None => {
                table.insert(self.key, Value::Int(delta), Expiry::Persist, ctx.now);
                delta
            }
        };
        ctx.changed(notify::STRING, "incrby", self.key);
        ctx.out.int(result);
        Ok(())
    }
}

/// `INCRBYFLOAT key increment`.
struct IncrByFloat<'a> {
    key: &'a [u8],
    by: f64,
}

impl<'a> Command<'a> for IncrByFloat<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(IncrByFloat {
            key: p.arg()?,
            by: p.next_f64()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let current = match table.get(self.key, ctx.now) {
            Some(entry) => match &entry.value {
                Value::Int(n) => *n as f64,
                Value::Str(s) => parse_f64(s.as_bytes()).ok_or(CommandError::NotFloat)?,
                _ => return Err(CommandError::WrongType),
            },
            None => 0.0,
        };
        let next = current + self.by;
        if !next.is_finite() {
            return Err(CommandError::err("increment would produce NaN or Infinity"));
        }
        let mut text = Vec::with_capacity(24);
        format_f64_human(next, &mut text);
        table.insert(self.key, Value::string(&text), Expiry::Keep, ctx.now);
        ctx.changed(notify::STRING, "incrbyfloat", self.key);
        // The result, not the increment: float formatting is not redone elsewhere.
        ctx.propagate(&[b"SET", self.key, &text, b"KEEPTTL"]);
        ctx.out.bulk(&text);
        Ok(())
    }
}

/// `LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]`.
struct Lcs<'a> {
    a: &'a [u8],
    b: &'a [u8],
    len: bool,
    idx: bool,
    min_match: usize,
    with_match_len: bool,
}

impl<'a> Command<'a> for Lcs<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut lcs = Lcs {
            a: p.arg()?,
            b: p.arg()?,
            len: false,
            idx: false,
            min_match: 0,
            with_match_len: false,
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "LEN" => lcs.len = true,
                "IDX" => lcs.idx = true,
                "WITHMATCHLEN" => lcs.with_match_len = true,
                "MINMATCHLEN" => lcs.min_match = p.next_i64()?.max(0) as usize,
                _ => return Err(CommandError::Syntax),
            }
        }
        if lcs.len && lcs.idx {
            return Err(CommandError::err(
                "If you want both the length and indexes, please just use IDX.",
            ));
        }
        Ok(lcs)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let mut fetch = |key: &[u8]| -> Result<Vec<u8>, CommandError> {
            let table = ctx.locks.table(key);
            match table.get(key, ctx.now) {
                None => Ok(Vec::new()),
                Some(e) => string_bytes(e.value).map(Cow::into_owned).map_err(|_| {
                    CommandError::err("The specified keys must contain string values")
                }),
            }
        };
        let (a, b) = (fetch(self.a)?, fetch(self.b)?);
        let cells = (a.len() as u64 + 1).saturating_mul(b.len() as u64 + 1);
        if cells.saturating_mul(4) > ctx.max_string() {
            return Err(CommandError::err(
                "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
            ));
        }
        let table = LcsTable::new(&a, &b);
        if self.len {
            ctx.out.int(table.len() as i64);
            return Ok(());
        }
        let (common, matches) = table.walk();
        if !self.idx {
            ctx.out.bulk(&common);
            return Ok(());
        }
        let kept: Vec<_> = matches
            .into_iter()
            .filter(|m| self.min_match == 0 || m.len >= self.min_match)
            .collect();
        ctx.out.map(2);
        ctx.out.bulk(b"matches");
        ctx.out.array(kept.len());
        for m in kept {
            ctx.out.array(if self.with_match_len { 3 } else { 2 });
            for (start, end) in [m.a, m.b] {
                ctx.out.array(2);
                ctx.out.int(start as i64);
                ctx.out.int(end as i64);
            }
            if self.with_match_len {
                ctx.out.int(m.len as i64);
            }
        }
        ctx.out.bulk(b"len");
        ctx.out.int(table.len() as i64);
        Ok(())
    }
}

/// One common run found by `LCS IDX`: inclusive ranges in both strings.
struct LcsMatch {
    a: (usize, usize),
    b: (usize, usize),
    len: usize,
}

/// The dynamic-programming table of LCS lengths of every pair of prefixes.
struct LcsTable<'s> {
    a: &'s [u8],
    b: &'s [u8],
    cells: Vec<u32>,
}

impl<'s> LcsTable<'s> {
    fn new(a: &'s [u8], b: &'s [u8]) -> Self {
        let width = b.len() + 1;
        let mut cells = vec![0u32; (a.len() + 1) * width];
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                cells[i * width + j] = if a[i - 1] == b[j - 1] {
                    cells[(i - 1) * width + j - 1] + 1
                } else {
                    cells[(i - 1) * width + j].max(cells[i * width + j - 1])
                };
            }
        }
        LcsTable { a, b, cells }
    }

    fn at(&self, i: usize, j: usize) -> u32 {
        self.cells[i * (self.b.len() + 1) + j]
    }

    fn len(&self) -> usize {
        self.at(self.a.len(), self.b.len()) as usize
    }

    /// Walks back from the end: the common subsequence, and its contiguous runs from
    /// the last to the first (the order Redis reports them in).
    fn walk(&self) -> (Vec<u8>, Vec<LcsMatch>) {
        let mut common = vec![0u8; self.len()];
        let mut matches = Vec::new();
        let mut run: Option<LcsMatch> = None;
        let (mut i, mut j, mut k) = (self.a.len(), self.b.len(), self.len());
        while i > 0 && j > 0 {
            if self.a[i - 1] == self.b[j - 1] {
                common[k - 1] = self.a[i - 1];
                k -= 1;
                i -= 1;
                j -= 1;
                match &mut run {
                    // Extends the current run one step to the left in both strings.
                    Some(m) if m.a.0 == i + 1 && m.b.0 == j + 1 => {
                        m.a.0 = i;
                        m.b.0 = j;
                        m.len += 1;
                    }
                    _ => {
                        matches.extend(run.take());
                        run = Some(LcsMatch {
                            a: (i, i),
                            b: (j, j),
                            len: 1,
                        });
                    }
                }
            } else {
                if self.at(i - 1, j) > self.at(i, j - 1) {
                    i -= 1;
                } else {
                    j -= 1;
                }
                matches.extend(run.take());
            }
        }
        matches.extend(run);
        (common, matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, 3, 10), Some((0, 3)));
        assert_eq!(clamp_range(-3, -1, 10), Some((7, 9)));
        assert_eq!(clamp_range(0, -1, 10), Some((0, 9)));
        assert_eq!(clamp_range(10, 100, 10), None);
        assert_eq!(clamp_range(-1, -5, 10), None);
        assert_eq!(clamp_range(-100, 2, 10), Some((0, 2)));
        assert_eq!(clamp_range(0, 0, 0), None);
    }

    #[test]
    fn lcs_matches_the_redis_example() {
        let t = LcsTable::new(b"ohmytext", b"mynewtext");
        assert_eq!(t.len(), 6);
        let (common, matches) = t.walk();
        assert_eq!(common, b"mytext");
        let ranges: Vec<_> = matches.iter().map(|m| (m.a, m.b, m.len)).collect();
        assert_eq!(ranges, [((4, 7), (5, 8), 4), ((2, 3), (0, 1), 2)]);
    }
}
