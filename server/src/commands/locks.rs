//! Native locks: LOCK.ACQUIRE, LOCK.RELEASE, LOCK.EXTEND, LOCK.INFO.
//!
//! A lock is a key of type `lock` whose TTL is the lease: the owner id, a hold
//! count (reentrancy) and the fencing token of the grant. Acquiring with `WAIT`
//! queues the client behind earlier waiters (first come, first served); a
//! release, a `DEL` or the lease running out hands the lock to exactly the
//! first waiter (`crate::blocking`). The rules themselves are plain code in
//! `keyspace::types::Lock`.
//!
//! Every change is a lock change (docs/CLUSTER.md, L1): refused while too few
//! replicas are in sync, and answered only once they acknowledged it. A new
//! grant is also refused during the node's `lock-delay` (L5). Leases are at
//! most `lock-max-ttl`.
//!
//! ```text
//! LOCK.ACQUIRE name owner ttl-ms [WAIT timeout-ms]  -> token | nil (busy, timed out)
//! LOCK.RELEASE name owner                           -> holds left (0: free) | -1 (not yours)
//! LOCK.EXTEND name owner ttl-ms                     -> 1 | 0 (not yours)
//! LOCK.INFO name                                    -> {owner, holds, token, ttl, waiters} | nil
//! ```

use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::blocking::BlockedOp;
use crate::clock::Millis;
use crate::keyspace::types::{Lock, Release};
use crate::keyspace::{Expiry, Value};
use crate::notify;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "lock", summary, handler)
        .keys(KeySpec::ONE)
        .since("0.1.0")
}

/// The lock family.
#[rustfmt::skip]
pub const COMMANDS: &[CommandSpec] = &[
    spec("lock.acquire", -4, WRITE | DENYOOM | FAST | BLOCKING | LOCKING, "Takes a lock for an owner with a lease in milliseconds, or once more if the owner holds it; with WAIT, queues in arrival order. Replies the fencing token, or nil.", handler!(Acquire<'_>)),
    spec("lock.release", 3, WRITE | FAST | LOCKING, "Gives back one hold of a lock; at zero the lock is free and the first waiter gets it. Replies the holds left, or -1 if the owner does not hold it.", handler!(Release_<'_>)),
    spec("lock.extend", 4, WRITE | FAST | LOCKING, "Sets a held lock's lease to the given milliseconds from now. Replies 1, or 0 if the owner does not hold it.", handler!(Extend<'_>)),
    spec("lock.info", 2, READONLY | FAST, "Describes a lock: owner, holds, fencing token, lease left in milliseconds and waiters; nil if free.", handler!(Info<'_>)),
];

/// The lock `name` holds, if any; WRONGTYPE for other values.
fn held(value: Option<&mut Value>) -> Result<Option<&mut Lock>, CommandError> {
    match value {
        None => Ok(None),
        Some(Value::Lock(lock)) => Ok(Some(lock)),
        Some(_) => Err(CommandError::WrongType),
    }
}

/// Refuses a lease longer than `lock-max-ttl`: a node that lost its grants
/// waits that long before granting again (L5).
fn check_lease(ctx: &Ctx<'_, '_>, ttl: Millis) -> CommandResult {
    let max = ctx.shared.config.locks().max_ttl_ms;
    match ttl <= max {
        true => Ok(()),
        false => Err(CommandError::err(format!(
            "lease is longer than lock-max-ttl ({max} ms)"
        ))),
    }
}

/// `LOCK.ACQUIRE name owner ttl-ms [WAIT timeout-ms]`.
struct Acquire<'a> {
    name: &'a [u8],
    owner: &'a [u8],
    ttl: Millis,
    /// `Some`: wait this long (0: forever) for the lock.
    wait: Option<Millis>,
}

impl<'a> Command<'a> for Acquire<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let name = p.arg()?;
        let owner = p.arg()?;
        let ttl = p.next_millis("lease")?;
        let wait = match p.next_keyword() {
            None => None,
            Some(k) if k.as_str() == "WAIT" => match p.next_i64()? {
                n if (0..i64::MAX / 4).contains(&n) => Some(n as Millis),
                _ => {
                    return Err(CommandError::err(
                        "invalid WAIT: expected milliseconds >= 0",
                    ))
                }
            },
            Some(_) => return Err(CommandError::Syntax),
        };
        Ok(Acquire {
            name,
            owner,
            ttl,
            wait,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        check_lease(ctx, self.ttl)?;
        let (now, name) = (ctx.now, self.name);
        let queued = ctx.shared.data.blocked.has_waiters(name);
        let table = ctx.locks.table(name);
        let found = held(table.get(name, now).map(|e| e.value))?;
        match found.map(|lock| lock.is_owned_by(self.owner)) {
            // The owner again: one more hold, and a renewed lease (not a new
            // grant: no lock-delay).
            Some(true) => {
                ctx.lock_change(name)?;
                let table = ctx.locks.table(name);
                let Some(Value::Lock(lock)) = table.get(name, now).map(|e| e.value) else {
                    return Err(CommandError::WrongType);
                };
                lock.reenter(self.owner);
                let token = lock.token();
                table.set_expire(name, Some(now + self.ttl), now);
                ctx.changed(notify::GENERIC, "lock.acquire", name);
                // Locks and leases travel whole, their tokens with them.
                ctx.propagate_state(name);
                ctx.out.int(token as i64);
                return Ok(());
            }
            Some(false) => {}
            // Free, and nobody queued first: take it. With waiters queued (a
            // lease just ran out and the cron has not handed it on yet) the
            // newcomer goes behind them.
            None if !queued => {
                ctx.lock_grant(name)?;
                let token = ctx.shared.data.next_token(now);
                let lock = Value::Lock(Box::new(Lock::new(self.owner, token)));
                let table = ctx.locks.table(name);
                table.insert(name, lock, Expiry::At(now + self.ttl), now);
                ctx.changed(notify::GENERIC, "lock.acquire", name);
                // Locks and leases travel whole, their tokens with them.
                ctx.propagate_state(name);
                ctx.out.int(token as i64);
                return Ok(());
            }
            // Free, but others queued first (its lease just ran out): the
            // commit serves them; this client queues behind them.
            None => ctx.ready(name),
        }
        match self.wait {
            Some(timeout) => super::blocking::block(
                ctx,
                vec![name.to_vec()],
                BlockedOp::LockAcquire {
                    owner: self.owner.to_vec(),
                    ttl: self.ttl,
                },
                timeout,
            ),
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// `LOCK.RELEASE name owner`.
struct Release_<'a> {
    name: &'a [u8],
    owner: &'a [u8],
}

impl<'a> Command<'a> for Release_<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Release_ {
            name: p.arg()?,
            owner: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.name);
        let owned = held(table.get(self.name, ctx.now).map(|e| e.value))?
            .is_some_and(|lock| lock.is_owned_by(self.owner));
        if owned {
            ctx.lock_change(self.name)?;
        }
        let table = ctx.locks.table(self.name);
        let released = match held(table.get(self.name, ctx.now).map(|e| e.value))? {
            None => Release::NotOwner,
            Some(lock) => lock.release(self.owner),
        };
        match released {
            Release::NotOwner => ctx.out.int(-1),
            Release::Remaining(holds) => {
                if holds == 0 {
                    // The commit hands the lock to its first waiter.
                    table.remove(self.name, ctx.now);
                }
                ctx.changed(notify::GENERIC, "lock.release", self.name);
                // Locks and leases travel whole, their tokens with them.
                ctx.propagate_state(self.name);
                ctx.out.int(i64::from(holds));
            }
        }
        Ok(())
    }
}

/// `LOCK.EXTEND name owner ttl-ms`.
struct Extend<'a> {
    name: &'a [u8],
    owner: &'a [u8],
    ttl: Millis,
}

impl<'a> Command<'a> for Extend<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Extend {
            name: p.arg()?,
            owner: p.arg()?,
            ttl: p.next_millis("lease")?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        check_lease(ctx, self.ttl)?;
        let table = ctx.locks.table(self.name);
        let owned = held(table.get(self.name, ctx.now).map(|e| e.value))?
            .is_some_and(|lock| lock.is_owned_by(self.owner));
        if owned {
            ctx.lock_change(self.name)?;
            let table = ctx.locks.table(self.name);
            table.set_expire(self.name, Some(ctx.now + self.ttl), ctx.now);
            ctx.changed(notify::GENERIC, "lock.extend", self.name);
            // Locks and leases travel whole, their tokens with them.
            ctx.propagate_state(self.name);
        }
        ctx.out.int(i64::from(owned));
        Ok(())
    }
}

/// `LOCK.INFO name`.
struct Info<'a> {
    name: &'a [u8],
}

impl<'a> Command<'a> for Info<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Info { name: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let waiters = ctx.shared.data.blocked.waiters_on(self.name);
        let table = ctx.locks.table(self.name);
        let Some(entry) = table.peek(self.name, ctx.now) else {
            ctx.out.null();
            return Ok(());
        };
        let Value::Lock(lock) = entry.value else {
            return Err(CommandError::WrongType);
        };
        let ttl = entry
            .expire_at()
            .map_or(-1, |at| at.saturating_sub(ctx.now) as i64);
        ctx.out.map(5);
        ctx.out.bulk(b"owner");
        ctx.out.bulk(lock.owner());
        ctx.out.bulk(b"holds");
        ctx.out.int(i64::from(lock.holds()));
        ctx.out.bulk(b"token");
        ctx.out.int(lock.token() as i64);
        ctx.out.bulk(b"ttl");
        ctx.out.int(ttl);
        ctx.out.bulk(b"waiters");
        ctx.out.int(waiters as i64);
        Ok(())
    }
}
