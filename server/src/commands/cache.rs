//! Cache-penetration protection: CACHE.GET and CACHE.FILL.
//!
//! A reader that misses gets a fill lease (Facebook memcache's leases): the key
//! then holds a `cache-lease` placeholder with the lease as its TTL, so readers
//! arriving meanwhile are told to wait (or block until the fill) instead of all
//! querying the database, and a holder that dies loses its lease when the
//! placeholder expires. The fill is stored only if the key still holds that
//! very lease: any write or delete in between replaced it, so a stale value is
//! refused. A fill may store a "known absent" marker (`cache-null`, for ids
//! that do not exist), which `CACHE.GET` reports as such and plain `GET`
//! answers as nil; `JITTER` spreads TTLs against avalanches.
//!
//! ```text
//! CACHE.GET key [LEASE ms] [WAIT ms]     -> [value, <bytes>] | [null] | [lease, <token>] | [wait]
//! CACHE.FILL key token VALUE v [PX ms] [JITTER pct]
//! CACHE.FILL key token NULL [PX ms] [JITTER pct]   -> 1 stored | 0 stale lease
//! CACHE.RELEASE key token                           -> 1 released | 0 not this lease
//! ```

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;

use super::strings::string_bytes;
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser, ValueArg};
use crate::blocking::BlockedOp;
use crate::clock::Millis;
use crate::keyspace::{Expiry, Value};
use crate::notify;
use crate::protocol::Reply;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "cache", summary, handler)
        .keys(KeySpec::ONE)
        .since("0.1.0")
}

/// The cache family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    spec("cache.get", -2, WRITE | DENYOOM | FAST | BLOCKING | LOCKING, "Reads a cached value telling a value, a cached absence and a miss apart; a miss grants a fill lease, and readers meanwhile wait (or block with WAIT) for the fill.", handler!(Get<'_>)),
    spec("cache.fill", -4, WRITE | DENYOOM, "Stores a value (or a known absence) for a key, only with the lease a miss granted and no write since; optional TTL and jitter.", handler!(Fill<'_>)),
    spec("cache.release", 3, WRITE | FAST, "Gives a fill lease back unfilled (the load failed), so the next waiting reader gets the lease at once.", handler!(ReleaseLease<'_>)),
];

/// Lease granted on a miss unless `LEASE` says otherwise.
const DEFAULT_LEASE: Millis = 10_000;

/// What a cache read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRead<'v> {
    /// A cached value.
    Value(Cow<'v, [u8]>),
    /// A cached "known absent".
    Null,
    /// A miss: the reader fills it, presenting this token.
    Lease(u64),
    /// Someone else is filling it.
    Wait,
}

impl<'v> CacheRead<'v> {
    /// What a stored value reads as (`None` for lists, sets, ...: not a cache entry).
    pub fn of(value: &'v Value) -> Option<Self> {
        match value {
            Value::Absent => Some(CacheRead::Null),
            Value::Lease(_) => Some(CacheRead::Wait),
            other => string_bytes(other).ok().map(CacheRead::Value),
        }
    }
}

/// Writes a cache read's reply.
pub fn cache_reply(out: &mut Reply, read: CacheRead<'_>) {
    match read {
        CacheRead::Value(bytes) => {
            out.array(2);
            out.bulk(b"value");
            out.bulk(&bytes);
        }
        CacheRead::Null => {
            out.array(1);
            out.bulk(b"null");
        }
        CacheRead::Lease(token) => {
            out.array(2);
            out.bulk(b"lease");
            out.int(token as i64);
        }
        CacheRead::Wait => {
            out.array(1);
            out.bulk(b"wait");
        }
    }
}

/// `CACHE.GET key [LEASE ms] [WAIT ms]`.
struct Get<'a> {
    key: &'a [u8],
    lease: Millis,
    wait: Option<Millis>,
}

impl<'a> Command<'a> for Get<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let (mut lease, mut wait) = (DEFAULT_LEASE, None);
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "LEASE" => lease = p.next_millis("LEASE")?,
                "WAIT" => wait = Some(p.next_millis("WAIT")?),
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(Get { key, lease, wait })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let (key, now) = (self.key, ctx.now);
        let table = ctx.locks.table(key);
        let found = ctx.session.stats.lookup(table.get(key, now));
        match found.map(|e| &*e.value) {
            None => {
                // A lease granted is a lock change (L1), not a lock grant:
                // lock-delay does not refuse it (a lease lost in a crash
                // costs one more load; its fill is refused as stale).
                ctx.lock_change(key)?;
                let token = ctx.shared.data.next_token(now);
                let table = ctx.locks.table(key);
                table.insert(key, Value::Lease(token), Expiry::At(now + self.lease), now);
                ctx.changed(notify::GENERIC, "cache.lease", key);
                // Locks and leases travel whole, their tokens with them.
                ctx.propagate_state(key);
                ctx.shared.stats.cache.lease_grants.fetch_add(1, Relaxed);
                cache_reply(ctx.out, CacheRead::Lease(token));
            }
            Some(Value::Lease(_)) => match self.wait {
                Some(timeout) => {
                    let op = BlockedOp::CacheRead { lease: self.lease };
                    super::blocking::block(ctx, vec![key.to_vec()], op, timeout);
                }
                None => cache_reply(ctx.out, CacheRead::Wait),
            },
            Some(value) => {
                let read = CacheRead::of(value).ok_or(CommandError::WrongType)?;
                if read == CacheRead::Null {
                    ctx.shared.stats.cache.null_hits.fetch_add(1, Relaxed);
                }
                cache_reply(ctx.out, read);
            }
        }
        Ok(())
    }
}

/// `CACHE.FILL key token (VALUE v | NULL) [PX ms] [JITTER pct]`.
struct Fill<'a> {
    key: &'a [u8],
    token: u64,
    /// `None`: a known absence.
    value: Option<ValueArg<'a>>,
    ttl: Option<Millis>,
    jitter: u8,
}

impl<'a> Command<'a> for Fill<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let token = p.next_u64()?;
        let value = match p.next_keyword() {
            Some(k) if k.as_str() == "VALUE" => Some(p.value()?),
            Some(k) if k.as_str() == "NULL" => None,
            _ => return Err(CommandError::Syntax),
        };
        let (mut ttl, mut jitter) = (None, 0);
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "PX" => ttl = Some(p.next_millis("PX")?),
                "JITTER" => {
                    jitter = match p.next_i64()? {
                        n @ 0..=100 => n as u8,
                        _ => {
                            return Err(CommandError::err(
                                "JITTER must be a percentage from 0 to 100",
                            ))
                        }
                    }
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(Fill {
            key,
            token,
            value,
            ttl,
            jitter,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let (key, now) = (self.key, ctx.now);
        let table = ctx.locks.table(key);
        let leased = matches!(table.peek(key, now).map(|e| e.value), Some(Value::Lease(t)) if *t == self.token);
        if !leased {
            ctx.shared.stats.cache.stale_fills.fetch_add(1, Relaxed);
            ctx.out.int(0);
            return Ok(());
        }
        let value = self.value.map_or(Value::Absent, |v| v.to_value());
        let expiry = match self.ttl {
            Some(ttl) => Expiry::At(now + jittered(ttl, self.jitter, rand::random::<f64>())),
            None => Expiry::Persist,
        };
        table.insert(key, value, expiry, now);
        ctx.changed(notify::STRING, "set", key);
        // Locks and leases travel whole, their tokens with them.
        ctx.propagate_state(key);
        ctx.out.int(1);
        Ok(())
    }
}

/// `CACHE.RELEASE key token`.
struct ReleaseLease<'a> {
    key: &'a [u8],
    token: u64,
}

impl<'a> Command<'a> for ReleaseLease<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let token = p.next_u64()?;
        Ok(ReleaseLease { key, token })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let (key, now) = (self.key, ctx.now);
        let table = ctx.locks.table(key);
        let leased = matches!(table.peek(key, now).map(|e| e.value), Some(Value::Lease(t)) if *t == self.token);
        if leased {
            table.remove(key, now);
            // The commit serves the first waiting reader a fresh lease.
            ctx.changed(notify::GENERIC, "del", key);
            // Locks and leases travel whole, their tokens with them.
            ctx.propagate_state(key);
        }
        ctx.out.int(i64::from(leased));
        Ok(())
    }
}

/// `ttl` moved by up to `percent`% either way, by the uniform draw `unit` in
/// [0, 1); never below 1 ms.
fn jittered(ttl: Millis, percent: u8, unit: f64) -> Millis {
    let spread = ttl as f64 * f64::from(percent) / 100.0;
    let moved = ttl as f64 + spread * (2.0 * unit - 1.0);
    (moved.round() as Millis).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_spreads_within_the_percentage() {
        assert_eq!(jittered(10_000, 0, 0.9), 10_000);
        assert_eq!(jittered(10_000, 20, 0.0), 8_000);
        assert_eq!(jittered(10_000, 20, 0.5), 10_000);
        assert!(jittered(10_000, 20, 0.999_999) <= 12_000);
        assert_eq!(jittered(1, 100, 0.0), 1);
    }
}
