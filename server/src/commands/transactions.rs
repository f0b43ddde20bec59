//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between MULTI and EXEC, commands are checked (name, arity, authentication) and
//! queued; a failed check makes EXEC refuse with EXECABORT. EXEC locks the slots of
//! every queued key at once, in ascending order (every slot when a queued command
//! walks the whole keyspace), checks the watched keys, and runs the queue with
//! nothing else able to touch those keys in between.

use std::sync::atomic::Ordering;

use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, run, Checked, Command, CommandError, CommandResult, Ctx, Parser, Unit};
use crate::clock::Millis;
use crate::keyspace::SLOTS;
use crate::protocol::{Args, Reply};
use crate::session::{Session, Transaction};
use crate::shared::Shared;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(
        name,
        arity,
        flags | NOSCRIPT | LOADING | STALE | FAST,
        "transactions",
        summary,
        handler,
    )
    .keys(keys)
    .since(since)
}

/// The transactions family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "multi",
        1,
        NO_QUEUE | ALLOW_BUSY,
        KeySpec::NONE,
        "1.2.0",
        "Starts a transaction.",
        handler!(Multi),
    ),
    spec(
        "exec",
        1,
        NO_QUEUE | SKIP_SLOWLOG | LOCKING,
        KeySpec::NONE,
        "1.2.0",
        "Executes all commands in a transaction.",
        handler!(Exec),
    ),
    spec(
        "discard",
        1,
        NO_QUEUE | ALLOW_BUSY,
        KeySpec::NONE,
        "2.0.0",
        "Discards a transaction.",
        handler!(Discard),
    ),
    spec(
        "watch",
        -2,
        NO_QUEUE | NO_MULTI | ALLOW_BUSY,
        KeySpec::ALL,
        "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.",
        handler!(Watch<'_>),
    ),
    spec(
        "unwatch",
        1,
        ALLOW_BUSY,
        KeySpec::NONE,
        "2.2.0",
        "Forgets about watched keys of a transaction.",
        handler!(Unwatch),
    ),
];

/// Queues a checked command while a transaction is open, replying `+QUEUED`.
pub(super) fn queue(
    shared: &Shared,
    session: &mut Session,
    out: &mut Reply,
    checked: Checked,
    args: Args<'_>,
) {
    let Some(tx) = &mut session.multi else {
        return;
    };
    if checked.command.has(NO_MULTI) {
        tx.failed = true;
        super::reject(
            shared,
            session,
            out,
            checked.command.id,
            &CommandError::err("Command not allowed inside a transaction"),
        );
        return;
    }
    tx.push(checked.command.id, checked.skip, args);
    tx.scripts |= checked.command.has(SCRIPT);
    out.simple("QUEUED");
}

/// `MULTI`.
struct Multi;

impl<'a> Command<'a> for Multi {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Multi)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if ctx.session.multi.is_some() {
            return Err(CommandError::err("MULTI calls can not be nested"));
        }
        ctx.session.multi = Some(Transaction::default());
        ctx.out.ok();
        Ok(())
    }
}

/// `DISCARD`.
struct Discard;

impl<'a> Command<'a> for Discard {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Discard)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if ctx.session.multi.take().is_none() {
            return Err(CommandError::err("DISCARD without MULTI"));
        }
        ctx.session.unwatch_all(&ctx.shared.data.watches);
        ctx.out.ok();
        Ok(())
    }
}

/// `EXEC`.
struct Exec;

impl<'a> Command<'a> for Exec {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Exec)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let Some(tx) = ctx.session.multi.take() else {
            return Err(CommandError::err("EXEC without MULTI"));
        };
        if tx.failed {
            ctx.session.unwatch_all(&ctx.shared.data.watches);
            return Err(CommandError::ExecAbort);
        }
        let queued: Vec<(Checked, Args<'_>)> = tx
            .iter()
            .map(|q| (Checked::queued(q.command, q.skip), q.args()))
            .collect();
        // Free memory first, holding no slot yet, as any single write would.
        if queued.iter().any(|(c, _)| c.command.has(DENYOOM))
            && crate::write::make_room(&ctx.shared.data, ctx.now).is_err()
        {
            ctx.session.unwatch_all(&ctx.shared.data.watches);
            return Err(CommandError::OutOfMemory);
        }
        let keys = crate::keyspace::KeySlots::new(queued.iter().flat_map(|&(checked, args)| {
            checked
                .command
                .spec
                .keys
                .positions(args)
                .filter_map(move |i| args.get(i))
        }));
        // Hold every slot the transaction touches for its whole run.
        let all = queued.iter().any(|(c, _)| c.command.has(ALL_SLOTS));
        let locks = &mut *ctx.locks;
        let held =
            super::lock_unless_busy(ctx.shared, ctx.session.master_link, |give_up| match all {
                true => locks.acquire_unless(0..SLOTS as u16, give_up),
                false => locks.acquire_slotted_unless(&keys, give_up),
            });
        if let Err(err) = held {
            ctx.session.unwatch_all(&ctx.shared.data.watches);
            return Err(err);
        }
        // A slot being handed to another master (M10): wait, then run again.
        if let Some(waiter) = super::handoff_wait(ctx) {
            drop(keys);
            drop(queued);
            ctx.session.multi = Some(tx);
            ctx.block = Some(waiter);
            return Ok(());
        }
        // A slot moving by `MIGRATE` (M2): the whole transaction is asked of
        // the target or retried, and discarded here, as Redis does.
        if let Some(err) = super::open_slot_refusal(ctx.shared, ctx.locks, &keys, ctx.now) {
            ctx.session.unwatch_all(&ctx.shared.data.watches);
            return Err(err);
        }
        super::before_unit(ctx.shared, ctx.locks, ctx.now);
        let touched = ctx.session.watch_flag.load(Ordering::Acquire)
            || ctx
                .session
                .watching
                .iter()
                .any(|(_, expiry)| expiry.is_some_and(|at| at <= ctx.now));
        ctx.session.unwatch_all(&ctx.shared.data.watches);
        if touched {
            ctx.out.null_array();
            return Ok(());
        }
        ctx.out.array(queued.len());
        for (checked, args) in queued {
            // One unit of work: EXEC's own commit covers every queued command.
            run(
                ctx.shared,
                ctx.session,
                ctx.out,
                ctx.locks,
                checked,
                args,
                Unit::InTransaction,
            );
        }
        Ok(())
    }
}

/// `WATCH key [key ...]`.
struct Watch<'a> {
    keys: Args<'a>,
}

impl<'a> Command<'a> for Watch<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Watch { keys: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if ctx.session.multi.is_some() {
            return Err(CommandError::err("WATCH inside MULTI is not allowed"));
        }
        for key in self.keys.iter() {
            // A key with a TTL counts as touched if it expires before EXEC.
            let expiry: Option<Millis> = ctx
                .locks
                .table(key)
                .peek(key, ctx.now)
                .and_then(|e| e.expire_at());
            ctx.shared.data.watches.watch(key, &ctx.session.watch_flag);
            if !ctx.session.watching.iter().any(|(k, _)| k == key) {
                ctx.session.watching.push((key.to_vec(), expiry));
            }
        }
        ctx.out.ok();
        Ok(())
    }
}

/// `UNWATCH`.
struct Unwatch;

impl<'a> Command<'a> for Unwatch {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Unwatch)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.session.unwatch_all(&ctx.shared.data.watches);
        ctx.out.ok();
        Ok(())
    }
}
