//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE and PFDEBUG, over string
//! values holding Redis's HyperLogLog bytes (see `keyspace::types::hll`), so
//! `GET` and `SET` carry them to and from Redis.
//!
//! As in Redis, `PFCOUNT` of one key caches the count in the value when the
//! cache was stale: a change (watchers see it, replicas get the `PFCOUNT`)
//! with no keyspace event. `PFMERGE` announces `pfadd`, as Redis does.

use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::keyspace::types::hll::{self, Encoding, HllError, Registers};
use crate::keyspace::types::Str;
use crate::keyspace::{Expiry, Value};
use crate::notify;
use crate::protocol::Args;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "hyperloglog", summary, handler)
        .keys(keys)
        .since("2.8.9")
}

/// The HyperLogLog family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "pfadd",
        -2,
        WRITE | DENYOOM | FAST,
        KeySpec::ONE,
        "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.",
        handler!(PfAdd<'_>),
    ),
    spec(
        "pfcount",
        -2,
        READONLY | MAY_REPLICATE,
        KeySpec::ALL,
        "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).",
        handler!(PfCount<'_>),
    ),
    spec(
        "pfmerge",
        -2,
        WRITE | DENYOOM,
        KeySpec::ALL,
        "Merges one or more HyperLogLog values into a single key.",
        handler!(PfMerge<'_>),
    ),
    spec(
        "pfdebug",
        3,
        WRITE | DENYOOM | ADMIN,
        KeySpec::range(2, 2, 1),
        "Internal commands for debugging HyperLogLog values.",
        handler!(PfDebug<'_>),
    ),
    spec(
        "pfselftest",
        1,
        ADMIN,
        KeySpec::NONE,
        "An internal command for testing HyperLogLog values.",
        handler!(PfSelfTest),
    ),
];

/// `PFSELFTEST`: checks the register packing and the estimator, as Redis's
/// does (about a second: ten million elements).
struct PfSelfTest;

impl<'a> Command<'a> for PfSelfTest {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(PfSelfTest)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        hll::self_test(sparse_max(ctx), ctx.now).map_err(CommandError::TestFailed)?;
        ctx.out.ok();
        Ok(())
    }
}

/// The bytes of the HyperLogLog in `value` and their encoding: WRONGTYPE for
/// a value that is not a string, Redis's "not a valid HyperLogLog" for a
/// string that is not one (a number included).
fn checked(value: &Value) -> Result<(&[u8], Encoding), CommandError> {
    match value {
        Value::Str(s) => Ok((s.as_bytes(), hll::encoding(s.as_bytes())?)),
        Value::Int(_) => Err(HllError::NotHll.into()),
        _ => Err(CommandError::WrongType),
    }
}

/// Checks the HyperLogLog in `value`, then lets `change` work on its bytes
/// in place (moved out of the string and back, not copied).
fn edit<T>(
    value: &mut Value,
    change: impl FnOnce(&mut Vec<u8>, Encoding) -> Result<T, HllError>,
) -> Result<T, CommandError> {
    let encoding = checked(value)?.1;
    let Value::Str(s) = value else {
        // `checked` passes strings only.
        return Err(CommandError::WrongType);
    };
    let mut bytes = std::mem::replace(s, Str::new(b"")).into_vec();
    let result = change(&mut bytes, encoding);
    *s = Str::from_vec(bytes);
    Ok(result?)
}

/// The current `hll-sparse-max-bytes`.
fn sparse_max(ctx: &Ctx<'_, '_>) -> usize {
    ctx.shared.config.hll_sparse_max_bytes()
}

/// `PFADD key [element ...]`.
struct PfAdd<'a> {
    key: &'a [u8],
    elements: Args<'a>,
}

impl<'a> Command<'a> for PfAdd<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(PfAdd {
            key: p.arg()?,
            elements: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let sparse_max = sparse_max(ctx);
        let table = ctx.locks.table(self.key);
        let updated = match table.get(self.key, ctx.now) {
            Some(entry) => edit(entry.value, |bytes, encoding| {
                // A sparse value may turn out corrupted halfway through the
                // elements: it is left as it was (Redis keeps the half).
                let original = (encoding == Encoding::Sparse).then(|| bytes.clone());
                let added = add_all(bytes, self.elements, sparse_max);
                if let (Err(_), Some(original)) = (&added, original) {
                    *bytes = original;
                }
                added
            })?,
            None => {
                let mut bytes = hll::empty();
                let added = add_all(&mut bytes, self.elements, sparse_max)?;
                // Created: a change even with no elements.
                hll::invalidate_count(&mut bytes);
                let value = Value::Str(Str::from_vec(bytes));
                table.insert(self.key, value, Expiry::Persist, ctx.now);
                added + 1
            }
        };
        if updated > 0 {
            ctx.changed_by(updated, notify::STRING, "pfadd", self.key);
        }
        ctx.out.int(i64::from(updated > 0));
        Ok(())
    }
}

/// Adds `elements`: how many raised a register (the cached count goes
/// stale if any did).
fn add_all(bytes: &mut Vec<u8>, elements: Args<'_>, sparse_max: usize) -> Result<u64, HllError> {
    let mut updated = 0;
    for element in elements.iter() {
        updated += u64::from(hll::add(bytes, element, sparse_max)?);
    }
    if updated > 0 {
        hll::invalidate_count(bytes);
    }
    Ok(updated)
}

/// `PFCOUNT key [key ...]`.
struct PfCount<'a> {
    keys: Args<'a>,
}

impl<'a> Command<'a> for PfCount<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(PfCount { keys: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let count = match (self.keys.len(), self.keys.get(0)) {
            (1, Some(key)) => count_one(ctx, key)?,
            // Several keys (even one named twice): their union, cached nowhere.
            _ => union(ctx, self.keys)?.count(),
        };
        ctx.out.int(count as i64);
        Ok(())
    }
}

/// The count of one key: the cached one, or one computed and cached.
fn count_one(ctx: &mut Ctx<'_, '_>, key: &[u8]) -> Result<u64, CommandError> {
    let table = ctx.locks.table(key);
    let Some(entry) = ctx.session.stats.lookup(table.get(key, ctx.now)) else {
        return Ok(0);
    };
    let (bytes, _) = checked(entry.value)?;
    if let Some(cached) = hll::cached_count(bytes) {
        return Ok(cached);
    }
    let count = hll::count(bytes)?;
    edit(entry.value, |bytes, _| {
        hll::store_count(bytes, count);
        Ok(())
    })?;
    // Redis's signalModifiedKey and dirty++ without an event: watchers see
    // the change, and the PFCOUNT is replicated.
    ctx.session.changes.touch(key);
    ctx.session.changes.count(1);
    Ok(count)
}

/// The union of the HyperLogLogs at `keys` (missing ones empty).
fn union(ctx: &mut Ctx<'_, '_>, keys: Args<'_>) -> Result<Registers, CommandError> {
    let mut union = Registers::default();
    for key in keys.iter() {
        let table = ctx.locks.table(key);
        if let Some(entry) = ctx.session.stats.lookup(table.get(key, ctx.now)) {
            union.merge(checked(entry.value)?.0)?;
        }
    }
    Ok(union)
}

/// `PFMERGE destkey [sourcekey ...]`.
struct PfMerge<'a> {
    target: &'a [u8],
    /// Every key, the target first: it is merged too.
    keys: Args<'a>,
}

impl<'a> Command<'a> for PfMerge<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let keys = p.rest();
        Ok(PfMerge {
            target: keys.get(0).ok_or(CommandError::Syntax)?,
            keys,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let union = union(ctx, self.keys)?;
        let sparse_max = sparse_max(ctx);
        let table = ctx.locks.table(self.target);
        match table.get(self.target, ctx.now) {
            // Merged above, so whole: storing cannot fail halfway.
            Some(entry) => edit(entry.value, |bytes, _| union.store(bytes, sparse_max))?,
            None => {
                let mut bytes = hll::empty();
                union.store(&mut bytes, sparse_max)?;
                let value = Value::Str(Str::from_vec(bytes));
                table.insert(self.target, value, Expiry::Persist, ctx.now);
            }
        }
        // Redis announces a merge as the mass add it is.
        ctx.changed(notify::STRING, "pfadd", self.target);
        ctx.out.ok();
        Ok(())
    }
}

/// `PFDEBUG GETREG|DECODE|ENCODING|TODENSE key`.
struct PfDebug<'a> {
    subcommand: &'a [u8],
    key: &'a [u8],
}

impl<'a> Command<'a> for PfDebug<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(PfDebug {
            subcommand: p.arg()?,
            key: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        // As Redis: the key is looked up and checked before the subcommand.
        let table = ctx.locks.table(self.key);
        let Some(entry) = table.get(self.key, ctx.now) else {
            return Err(CommandError::err("The specified key does not exist"));
        };
        let (bytes, encoding) = checked(entry.value)?;
        match self.subcommand.to_ascii_lowercase().as_slice() {
            b"getreg" => {
                if encoding == Encoding::Sparse {
                    edit(entry.value, |bytes, _| hll::to_dense(bytes))?;
                    // An encoding change, replicated; not one watchers see.
                    ctx.session.changes.count(1);
                }
                let (bytes, _) = checked(entry.value)?;
                ctx.out.array(hll::REGISTERS);
                for register in hll::dense_registers(bytes) {
                    ctx.out.int(i64::from(register));
                }
            }
            b"decode" => match hll::decode(bytes) {
                Some(text) => ctx.out.bulk(text.as_bytes()),
                None => return Err(CommandError::err("HLL encoding is not sparse")),
            },
            b"encoding" => ctx.out.simple(encoding.name()),
            b"todense" => {
                let converted = edit(entry.value, |bytes, _| hll::to_dense(bytes))?;
                if converted {
                    ctx.session.changes.count(1);
                }
                ctx.out.int(i64::from(converted));
            }
            _ => {
                return Err(CommandError::err(format!(
                    "Unknown PFDEBUG subcommand '{}'",
                    String::from_utf8_lossy(self.subcommand)
                )))
            }
        }
        Ok(())
    }
}
