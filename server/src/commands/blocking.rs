//! Blocking pops: BLPOP, BRPOP, BLMPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX.
//!
//! Each first tries its non-blocking form. If every key is empty, the client is
//! registered as a waiter while its key slots are still locked (so no push can slip
//! in between) and the connection waits; writers serve it later (see
//! `crate::blocking`). Inside a transaction they answer at once instead.

use std::sync::Arc;

use super::access::read;
use super::lists::{move_element, parse_end};
use super::parse::MPopArgs;
use super::table::{flag::*, CommandSpec, KeySpec};
use super::zsets::{parse_min_max, zmpop};
use super::CacheRead;
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::blocking::{BlockedOp, Outcome, Waiter};
use crate::clock::Millis;
use crate::keyspace::types::{End, List, ZSet};
use crate::notify;
use crate::protocol::number::parse_f64;
use crate::protocol::Reply;
use crate::session::Session;
use crate::shared::Shared;

const KEYS_THEN_TIMEOUT: KeySpec = KeySpec::range(1, -2, 1);

/// The blocking family.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("blpop", -3, WRITE | BLOCKING, "list", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", handler!(BPop<'_>)).keys(KEYS_THEN_TIMEOUT).since("2.0.0"),
    CommandSpec::new("brpop", -3, WRITE | BLOCKING, "list", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", handler!(BPop<'_>)).keys(KEYS_THEN_TIMEOUT).since("2.0.0"),
    CommandSpec::new("blmpop", -5, WRITE | BLOCKING, "list", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", handler!(BLMPop<'_>)).keys(KeySpec::counted(2)).since("7.0.0"),
    CommandSpec::new("blmove", 6, WRITE | DENYOOM | BLOCKING, "list", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", handler!(BLMove<'_>)).keys(KeySpec::range(1, 2, 1)).since("6.2.0"),
    CommandSpec::new("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, "list", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", handler!(BLMove<'_>)).keys(KeySpec::range(1, 2, 1)).since("2.2.0"),
    CommandSpec::new("bzpopmin", -3, WRITE | FAST | BLOCKING, "sorted-set", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", handler!(BZPop<'_>)).keys(KEYS_THEN_TIMEOUT).since("5.0.0"),
    CommandSpec::new("bzmpop", -5, WRITE | BLOCKING, "sorted-set", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", handler!(BZMPop<'_>)).keys(KeySpec::counted(2)).since("7.0.0"),
    CommandSpec::new("bzpopmax", -3, WRITE | FAST | BLOCKING, "sorted-set", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", handler!(BZPop<'_>)).keys(KEYS_THEN_TIMEOUT).since("5.0.0"),
];

/// A blocking timeout in seconds (fractions allowed; 0 waits forever), as
/// milliseconds.
fn parse_timeout(arg: &[u8]) -> Result<u64, CommandError> {
    let seconds = parse_f64(arg)
        .filter(|s| s.is_finite())
        .ok_or_else(|| CommandError::err("timeout is not a float or out of range"))?;
    if seconds < 0.0 {
        return Err(CommandError::err("timeout is negative"));
    }
    let ms = (seconds * 1000.0).ceil();
    if ms > (i64::MAX / 2) as f64 {
        return Err(CommandError::err("timeout is out of range"));
    }
    Ok(ms as u64)
}

/// Blocks the client on `keys` (or, inside a transaction, replies nil at once).
pub(super) fn block(ctx: &mut Ctx<'_, '_>, keys: Vec<Vec<u8>>, op: BlockedOp, timeout_ms: u64) {
    if !ctx.may_block {
        write_timeout(ctx.shared, &op, ctx.out);
        return;
    }
    let deadline: Option<Millis> = (timeout_ms > 0).then(|| ctx.now + timeout_ms);
    let waiter = Arc::new(Waiter::new(ctx.session.handle.id, keys, op, deadline));
    ctx.shared.data.blocked.register(waiter.clone());
    ctx.block = Some(waiter);
}

/// The reply of a blocked command whose wait timed out: a null array for pops,
/// a null string for moves and locks, `[wait]` for a cache read.
pub fn write_timeout(shared: &Shared, op: &BlockedOp, out: &mut Reply) {
    match op {
        BlockedOp::Replicas { offset } => {
            out.int(shared.replication.replicas.acked(*offset) as i64)
        }
        // Never answered by a timeout: the connection runs the command again.
        BlockedOp::ListMove { .. } | BlockedOp::LockAcquire { .. } | BlockedOp::Paused => {
            out.null()
        }
        BlockedOp::CacheRead { .. } => super::cache_reply(out, CacheRead::Wait),
        BlockedOp::ListPop { .. } | BlockedOp::ZPop { .. } | BlockedOp::StreamRead(_) => {
            out.null_array()
        }
    }
}

/// The reply of a blocked command that was served, in the shape the command
/// replies with when it finds data at once. An error is counted as any error
/// reply is (`INFO errorstats`).
pub fn write_outcome(shared: &Shared, session: &mut Session, outcome: &Outcome, out: &mut Reply) {
    match outcome {
        Outcome::ListPop {
            key,
            items,
            counted,
        } => {
            out.array(2);
            out.bulk(key);
            if *counted {
                out.array(items.len());
            }
            for item in items {
                out.bulk(item);
            }
        }
        Outcome::ZPop {
            key,
            popped,
            counted: false,
        } => {
            out.array(1 + 2 * popped.len());
            out.bulk(key);
            for (member, score) in popped {
                out.bulk(member);
                out.double(*score);
            }
        }
        Outcome::ZPop {
            key,
            popped,
            counted: true,
        } => {
            out.array(2);
            out.bulk(key);
            out.array(popped.len());
            for (member, score) in popped {
                out.array(2);
                out.bulk(member);
                out.double(*score);
            }
        }
        Outcome::Stream { key, entries } => {
            super::streams::write_streams_header(out, 1);
            super::streams::write_read(out, key, entries);
        }
        Outcome::NoGroup { key, group } => {
            let error = super::streams::no_group(key, group);
            super::reply_error(shared, session, out, &error)
        }
        Outcome::Moved(item) => out.bulk(item),
        Outcome::Cached(Some(value)) => super::cache_reply(out, CacheRead::Value(value.into())),
        Outcome::Cached(None) => super::cache_reply(out, CacheRead::Null),
        Outcome::Lease(token) => super::cache_reply(out, CacheRead::Lease(*token)),
        Outcome::Locked(token) => out.int(*token as i64),
        Outcome::Replicas(count) => out.int(*count as i64),
        Outcome::WrongType => super::reply_error(shared, session, out, &CommandError::WrongType),
    }
}

/// `BLPOP`/`BRPOP key [key ...] timeout`.
struct BPop<'a> {
    keys: Vec<&'a [u8]>,
    timeout: u64,
}

impl<'a> Command<'a> for BPop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut keys = Vec::with_capacity(p.remaining() - 1);
        while p.remaining() > 1 {
            keys.push(p.arg()?);
        }
        Ok(BPop {
            keys,
            timeout: parse_timeout(p.arg()?)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let end = if ctx.name() == "blpop" {
            End::Left
        } else {
            End::Right
        };
        for &key in &self.keys {
            let table = ctx.locks.table(key);
            if read::<List>(table, key, ctx.now)?.is_some_and(|l| !l.is_empty()) {
                let list = super::access::modify::<List>(table, key, ctx.now)?
                    .ok_or(CommandError::NoSuchKey)?;
                let item = list.pop(end).ok_or(CommandError::NoSuchKey)?;
                let emptied = table.remove_if_empty(key, ctx.now);
                ctx.out.array(2);
                ctx.out.bulk(key);
                ctx.out.bulk(item.as_bytes());
                // The same events as the pop it stands for (LPOP/RPOP).
                let (event, pop): (_, &[u8]) = match end {
                    End::Left => ("lpop", b"LPOP"),
                    End::Right => ("rpop", b"RPOP"),
                };
                ctx.changed(notify::LIST, event, key);
                if emptied {
                    ctx.emptied(key);
                }
                ctx.propagate(&[pop, key]);
                return Ok(());
            }
        }
        let keys = self.keys.iter().map(|k| k.to_vec()).collect();
        block(
            ctx,
            keys,
            BlockedOp::ListPop { end, count: None },
            self.timeout,
        );
        Ok(())
    }
}

/// `BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]`.
struct BLMPop<'a> {
    timeout: u64,
    args: MPopArgs<'a, End>,
}

impl<'a> Command<'a> for BLMPop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let timeout = parse_timeout(p.arg()?)?;
        Ok(BLMPop {
            timeout,
            args: MPopArgs::parse(p, parse_end)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if self.args.pop(ctx)? {
            return Ok(());
        }
        let keys = self.args.keys.iter().map(|k| k.to_vec()).collect();
        let op = BlockedOp::ListPop {
            end: self.args.end,
            count: Some(self.args.count),
        };
        block(ctx, keys, op, self.timeout);
        Ok(())
    }
}

/// `BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout` and
/// `BRPOPLPUSH source destination timeout`.
struct BLMove<'a> {
    source: &'a [u8],
    destination: &'a [u8],
    from: End,
    to: End,
    timeout: u64,
}

impl<'a> Command<'a> for BLMove<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (source, destination) = (p.arg()?, p.arg()?);
        let end = |arg: &[u8]| match arg.to_ascii_uppercase().as_slice() {
            b"LEFT" => Ok(End::Left),
            b"RIGHT" => Ok(End::Right),
            _ => Err(CommandError::Syntax),
        };
        let (from, to) = if p.remaining() == 3 {
            (end(p.arg()?)?, end(p.arg()?)?)
        } else {
            (End::Right, End::Left)
        };
        Ok(BLMove {
            source,
            destination,
            from,
            to,
            timeout: parse_timeout(p.arg()?)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if let Some(item) = move_element(ctx, self.source, self.destination, self.from, self.to)? {
            ctx.out.bulk(&item);
            return Ok(());
        }
        let op = BlockedOp::ListMove {
            destination: self.destination.to_vec(),
            from: self.from,
            to: self.to,
            limits: ctx.limits(),
        };
        block(ctx, vec![self.source.to_vec()], op, self.timeout);
        Ok(())
    }
}

/// `BZPOPMIN`/`BZPOPMAX key [key ...] timeout`.
struct BZPop<'a> {
    keys: Vec<&'a [u8]>,
    timeout: u64,
}

impl<'a> Command<'a> for BZPop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut keys = Vec::with_capacity(p.remaining() - 1);
        while p.remaining() > 1 {
            keys.push(p.arg()?);
        }
        Ok(BZPop {
            keys,
            timeout: parse_timeout(p.arg()?)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let max = ctx.name() == "bzpopmax";
        for &key in &self.keys {
            let table = ctx.locks.table(key);
            let Some(zset) = super::access::modify::<ZSet>(table, key, ctx.now)? else {
                continue;
            };
            if let Some((member, score)) = zset.pop_end(max) {
                let emptied = table.remove_if_empty(key, ctx.now);
                ctx.out.array(3);
                ctx.out.bulk(key);
                ctx.out.bulk(&member);
                ctx.out.double(score);
                let (event, pop): (_, &[u8]) = match max {
                    true => ("zpopmax", b"ZPOPMAX"),
                    false => ("zpopmin", b"ZPOPMIN"),
                };
                ctx.changed(notify::ZSET, event, key);
                if emptied {
                    ctx.emptied(key);
                }
                ctx.propagate(&[pop, key]);
                return Ok(());
            }
        }
        let keys = self.keys.iter().map(|k| k.to_vec()).collect();
        block(
            ctx,
            keys,
            BlockedOp::ZPop { max, count: None },
            self.timeout,
        );
        Ok(())
    }
}

/// `BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]`.
struct BZMPop<'a> {
    timeout: u64,
    args: MPopArgs<'a, bool>,
}

impl<'a> Command<'a> for BZMPop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let timeout = parse_timeout(p.arg()?)?;
        Ok(BZMPop {
            timeout,
            args: MPopArgs::parse(p, parse_min_max)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if zmpop(&self.args, ctx)? {
            return Ok(());
        }
        let keys = self.args.keys.iter().map(|k| k.to_vec()).collect();
        let op = BlockedOp::ZPop {
            max: self.args.end,
            count: Some(self.args.count),
        };
        block(ctx, keys, op, self.timeout);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(parse_timeout(b"0"), Ok(0));
        assert_eq!(parse_timeout(b"1.5"), Ok(1500));
        assert_eq!(parse_timeout(b"0.0001"), Ok(1));
        assert_eq!(
            parse_timeout(b"-1").unwrap_err().to_string(),
            "ERR timeout is negative"
        );
        assert_eq!(
            parse_timeout(b"x").unwrap_err().to_string(),
            "ERR timeout is not a float or out of range"
        );
        assert!(parse_timeout(b"1e300").is_err());
    }
}
