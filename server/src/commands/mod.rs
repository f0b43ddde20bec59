//! Commands: one module per family, each command a typed parse step and an apply
//! step that reads the dataset through its slot locks, records what it changed
//! and writes its reply. Commands never see the socket.
//!
//! ```text
//! request args ──▶ execute(): lookup, arity, auth, routing, keys' slots locked
//!                    └─ handler: parse ─▶ apply(Ctx) ─ effects ─▶ Changes
//!                    └─ write::commit() under the same locks ─▶ stats, reply
//! ```
//!
//! Uses the session, the shared node state, the write path and everything below;
//! only connections, the cron and the feed's applier sit above.

pub mod access;
pub mod error;
pub mod parse;
pub mod table;

mod bitmaps;
pub mod blocking;
mod cache;
mod client;
mod cluster;
mod connection;
mod debug;
mod expire;
mod functions;
mod geo;
mod hashes;
pub mod held;
mod hyperloglog;
mod info;
mod introspection;
mod keys;
mod lists;
mod locks;
mod migrate;
mod object;
pub mod pubsub;
mod random;
mod replication;
mod scan;
mod scripting;
mod server;
mod sets;
mod slot_migration;
mod sort;
mod stream_groups;
mod streams;
mod strings;
pub mod transactions;
mod zsets;

#[cfg(test)]
mod extra_args;

pub use cache::{cache_reply, CacheRead};
pub use error::{CommandError, CommandResult};
pub use parse::{Parser, ValueArg};
use table::{flag, CommandSpec, KeySpec};

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::blocking::Waiter;
use crate::clock::Millis;
use crate::eviction::Policy;
use crate::keyspace::types::EncodingLimits;
use crate::keyspace::{key_slot, KeySlots, Locked};
use crate::protocol::{Args, Protocol, Reply};
use crate::replication::Refusal;
use crate::session::Session;
use crate::shared::Shared;
use crate::stats::Outcome;

/// Every command family, in `COMMAND` order.
const FAMILIES: &[&[CommandSpec]] = &[
    connection::COMMANDS,
    client::COMMANDS,
    server::COMMANDS,
    introspection::COMMANDS,
    debug::COMMANDS,
    strings::COMMANDS,
    bitmaps::COMMANDS,
    sort::COMMANDS,
    keys::COMMANDS,
    migrate::COMMANDS,
    expire::COMMANDS,
    object::COMMANDS,
    lists::COMMANDS,
    blocking::COMMANDS,
    hashes::COMMANDS,
    sets::COMMANDS,
    zsets::COMMANDS,
    geo::COMMANDS,
    hyperloglog::COMMANDS,
    streams::COMMANDS,
    stream_groups::COMMANDS,
    locks::COMMANDS,
    cache::COMMANDS,
    cluster::COMMANDS,
    transactions::COMMANDS,
    scripting::COMMANDS,
    functions::COMMANDS,
    pubsub::COMMANDS,
    replication::COMMANDS,
];

/// A command's parse and apply steps.
pub trait Command<'a>: Sized {
    /// Reads the arguments; `p` is positioned after the command (and subcommand)
    /// name. Arguments it leaves unread are a syntax error (see `handler!`).
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError>;
    /// Runs the command and writes its reply.
    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult;
}

/// The handler of a command type: parse the request, refuse arguments the parse
/// left over (`ERR syntax error`, as Redis answers most commands), then apply it.
macro_rules! handler {
    ($t:ty) => {
        Some(|ctx, args| {
            let mut p = $crate::commands::Parser::new(args, ctx.skip);
            let command = <$t as $crate::commands::Command>::parse(&mut p)?;
            p.finish()?;
            command.apply(ctx)
        })
    };
}
pub(crate) use handler;

/// Everything a command can reach while it runs.
pub struct Ctx<'c, 'a> {
    /// Server-wide state.
    pub shared: &'a Shared,
    /// The slots of the command's keys, locked before it runs.
    pub locks: &'c mut Locked<'a>,
    /// The calling connection.
    pub session: &'c mut Session,
    /// Where the reply goes.
    pub out: &'c mut Reply,
    /// The time the command runs at.
    pub now: Millis,
    /// Arguments before the command's own (1, or 2 for a subcommand).
    pub skip: usize,
    /// The command being run.
    pub command: &'static table::Command,
    /// Set by a blocking command that found nothing: the connection waits.
    pub block: Option<Arc<Waiter>>,
    /// False inside a transaction, where blocking commands answer at once.
    pub may_block: bool,
    /// True when a script called the command.
    pub in_script: bool,
}

impl Ctx<'_, '_> {
    /// The name the command was called by (several share one handler).
    pub fn name(&self) -> &'static str {
        self.command.spec.name
    }

    /// The current `proto-max-bulk-len`.
    pub fn max_string(&self) -> u64 {
        self.shared.config.proto_max_bulk_len()
    }

    /// Records that the command changed `key`: one change, announced as
    /// keyspace event `event` of `class`. The commit that ends the unit of work
    /// counts it, touches the key's watchers, publishes the event and serves
    /// clients blocked on the key (see `write`).
    pub fn changed(&mut self, class: u32, event: &'static str, key: &[u8]) {
        self.session.changes.record(1, class, event, key);
    }

    /// Like [`Ctx::changed`], counting `count` changes (`LPUSH` of `count`
    /// elements); 0 for an event describing a change already counted (the `del`
    /// of a collection a removal emptied).
    pub fn changed_by(&mut self, count: u64, class: u32, event: &'static str, key: &[u8]) {
        self.session.changes.record(count, class, event, key);
    }

    /// Asks the commit to serve the clients blocked on `key`, which may be free
    /// for them without a change of this command's (a lock lease that ran out).
    pub fn ready(&mut self, key: &[u8]) {
        self.session.changes.ready(key);
    }

    /// True while the unit keeps records for the write feed (to skip building
    /// a record nobody needs).
    pub fn feeding(&self) -> bool {
        self.session.changes.feeding()
    }

    /// Writes the command's own records for the write feed, replacing its
    /// request: a command whose effect depends on the time it ran or a choice it
    /// made (`SET ... EX`, `SPOP`, `INCRBYFLOAT`) records what it did, as
    /// `SET ... PXAT`, `SREM`, `SET ... KEEPTTL`. Nothing is kept while nobody
    /// follows the feed.
    pub fn propagate(&mut self, args: &[&[u8]]) {
        self.session.changes.rewrite(args);
    }

    /// Records `key`'s whole state as the command left it (see
    /// [`crate::write::record_state`]), replacing its request.
    pub fn propagate_state(&mut self, key: &[u8]) {
        let changes = &mut self.session.changes;
        changes.rewritten();
        crate::write::record_state(changes, self.locks.table(key), key, self.now);
    }

    /// Notes that the command is about to change lock `key` (a lock, or a
    /// fill lease): refused as the unit's lock gate says (too few in-sync
    /// replicas), or allowed, the reply then waiting with the unit for
    /// acknowledgements where lock changes do (docs/CLUSTER.md, L1). Call
    /// before changing it, and only if it changes.
    pub fn lock_change(&mut self, key: &[u8]) -> CommandResult {
        self.noting_lock(key, false)
    }

    /// [`Ctx::lock_change`] for a new grant of a lock, which the node's
    /// `lock-delay` also refuses (L5).
    pub fn lock_grant(&mut self, key: &[u8]) -> CommandResult {
        self.noting_lock(key, true)
    }

    fn noting_lock(&mut self, key: &[u8], grant: bool) -> CommandResult {
        let table = self.locks.table(key);
        let changes = &mut self.session.changes;
        crate::write::lock_change(changes, table, key, self.now, grant)
            .map_err(CommandError::Lock)?;
        changes.own_lock_change();
        Ok(())
    }

    /// Records that the command moved `key` to another node, deleting it
    /// here: a `del`, whose blocked clients are redirected, not served.
    pub fn left(&mut self, key: &[u8]) {
        self.session.changes.left(key);
    }

    /// Records the `del` event of a collection the command emptied, which is
    /// removed (its change was recorded already).
    pub fn emptied(&mut self, key: &[u8]) {
        self.changed_by(0, crate::notify::GENERIC, "del", key);
    }

    /// The current encoding thresholds of the collection types.
    pub fn limits(&self) -> EncodingLimits {
        self.shared.config.encoding_limits()
    }
}

/// A request whose command was found and whose arity and authentication passed.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    /// The command (for a subcommand, the subcommand).
    pub command: &'static table::Command,
    /// Arguments before the command's own.
    pub skip: usize,
}

impl Checked {
    /// The command with id `id`, checked when it was queued in a transaction.
    fn queued(id: usize, skip: usize) -> Checked {
        Checked {
            command: table::registry().get(id),
            skip,
        }
    }
}

/// Finds the command of `args` and checks it may run; on failure the error reply
/// is written and `None` returned.
fn check(
    shared: &Shared,
    session: &mut Session,
    out: &mut Reply,
    args: Args<'_>,
) -> Option<Checked> {
    let registry = table::registry();
    let name = args.get(0).unwrap_or_default();
    let mut cmd = match session.lookup.get(name) {
        Some(id) => registry.get(id),
        None => {
            let Some(cmd) = registry.lookup(name) else {
                reply_error(shared, session, out, &unknown_command(args));
                return None;
            };
            session.lookup.put(name, cmd.id);
            cmd
        }
    };
    let mut skip = 1;
    if cmd.is_container() && args.len() >= 2 {
        let sub = args.get(1).unwrap_or_default();
        match registry.lookup_sub(cmd, sub) {
            Some(found) => {
                cmd = found;
                skip = 2;
            }
            None => {
                let err = CommandError::UnknownSubcommand {
                    cmd: cmd.spec.name.to_ascii_uppercase(),
                    sub: truncate_arg(sub),
                };
                reject(shared, session, out, cmd.id, &err);
                return None;
            }
        }
    }
    // A container called without a subcommand runs only if it has its own handler.
    if cmd.spec.handler.is_none() || !cmd.arity_ok(args.len()) {
        let err = CommandError::Arity(cmd.full_name.clone());
        reject(shared, session, out, cmd.id, &err);
        return None;
    }
    if !session.authenticated && shared.config.has_password() && !cmd.has(flag::NO_AUTH) {
        reject(shared, session, out, cmd.id, &CommandError::NoAuth);
        return None;
    }
    // While a script is busy, others get only the commands that end it or
    // keep a session going (a master's stream is applied regardless).
    if !cmd.has(flag::ALLOW_BUSY) && !session.master_link {
        if let Some(eval) = shared.busy_scripts.busy() {
            reject(shared, session, out, cmd.id, &CommandError::Busy { eval });
            return None;
        }
    }
    if session.subscriptions.count() > 0
        && out.protocol() == Protocol::Resp2
        && !cmd.has(flag::PUBSUB_CONTEXT)
    {
        let err = CommandError::err(format!(
            "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            cmd.full_name
        ));
        reject(shared, session, out, cmd.id, &err);
        return None;
    }
    Some(Checked { command: cmd, skip })
}

/// The keys the command names, with their slots: hashed here once, then used
/// to route the command, lock its slots and find its tables.
#[inline]
fn key_slots<'k>(command: &table::Command, args: Args<'k>) -> KeySlots<'k> {
    key_slots_by(command, args, key_slot)
}

/// [`key_slots`] with the slots as `slot_of` finds them.
#[inline]
fn key_slots_by<'k>(
    command: &table::Command,
    args: Args<'k>,
    slot_of: impl FnMut(&[u8]) -> u16,
) -> KeySlots<'k> {
    match command.spec.keys {
        KeySpec {
            first,
            last,
            numkeys: 0,
            keys_option: false,
            store_option: false,
            streams_option: false,
            stores_from: 0,
            ..
        } if first > 0 && first == last => KeySlots::with(args.get(first as usize), slot_of),
        keys => KeySlots::with(keys.positions(args).filter_map(|i| args.get(i)), slot_of),
    }
}

/// How [`execute`] ended.
#[derive(Debug)]
pub enum Executed {
    /// The reply is in the output.
    Done,
    /// The command blocked: the connection waits for the waiter before
    /// going on.
    Blocked(Arc<Waiter>),
    /// Nothing ran: the command runs a script, and the session's scripts
    /// run on a stack that can be suspended ([`Session::suspendable`]).
    /// Run the request again from there.
    NeedsStack,
}

/// Runs one request and appends its reply to `out`.
pub fn execute(
    shared: &Shared,
    session: &mut Session,
    out: &mut Reply,
    args: Args<'_>,
) -> Executed {
    let Some(checked) = check(shared, session, out, args) else {
        session.stats.commands += 1;
        if let Some(tx) = &mut session.multi {
            tx.failed = true;
        }
        return Executed::Done;
    };
    let scripted = runs_scripts(session, checked.command);
    if scripted {
        session.ran_script = true;
        if session.suspendable && !crate::util::suspend::inside() {
            return Executed::NeedsStack;
        }
    }
    session.stats.commands += 1;
    let now = session.command_start().1;
    session.handle.touch(checked.command.id, now);
    let keys = key_slots(checked.command, args);
    // The slot is likely out of cache: load it while the checks below run.
    if let Some((_, slot)) = keys.first() {
        shared.data.keyspace.prefetch(slot);
    }
    // `ASKING` lasts one command (inside MULTI, until EXEC), as in Redis.
    let asking = match session.multi {
        Some(_) => session.asking,
        None => std::mem::take(&mut session.asking),
    };
    if !session.master_link {
        if let Some(waiter) = paused(shared, session, checked.command, now) {
            return Executed::Blocked(waiter);
        }
        if let Err(err) = may_run(shared, session, checked.command, &keys, asking) {
            reject(shared, session, out, checked.command.id, &err);
            if let Some(tx) = &mut session.multi {
                tx.failed = true;
            }
            return Executed::Done;
        }
    }
    let bounded = shared.config.maxmemory() != 0 && !session.master_link;
    let limited = bounded && checked.command.has(flag::DENYOOM);
    // A script evicts first too: its writes are refused if that was not
    // enough (`Session::oom_at_start`).
    if limited || (bounded && scripted) {
        let oom = crate::write::make_room(&shared.data, now).is_err();
        if oom && limited {
            out_of_memory(shared, session, out, checked.command.id);
            return Executed::Done;
        }
        session.oom_at_start = oom;
    } else {
        session.oom_at_start = false;
    }
    if session.multi.is_some() && !checked.command.has(flag::NO_QUEUE) {
        transactions::queue(shared, session, out, checked, args);
        return Executed::Done;
    }
    let admit = limited && admitting(shared, now);
    let waiter = run_locked(shared, session, out, checked, args, &keys, admit);
    if let Some(key) = session.admit.take() {
        admit_stored_key(shared, &key);
    }
    match waiter {
        Some(waiter) => Executed::Blocked(waiter),
        None => Executed::Done,
    }
}

/// True if `command` runs a script now: `EVAL`, `FCALL` and friends outside
/// a transaction, or an `EXEC` that queued one.
#[inline]
fn runs_scripts(session: &Session, command: &table::Command) -> bool {
    match &session.multi {
        None => command.has(flag::SCRIPT),
        Some(tx) => tx.scripts && command.full_name == "exec",
    }
}

/// Whether a client's command may run on this node now: the cluster's routing
/// (which also fixes a transaction's slot), then the replication role's
/// refusals (a read-only replica, a sync loading, too few replicas).
#[inline]
fn may_run(
    shared: &Shared,
    session: &mut Session,
    command: &table::Command,
    keys: &KeySlots<'_>,
    asking: bool,
) -> Result<(), CommandError> {
    if let Some(Some(state)) = shared.cluster.view().as_deref() {
        let transaction_slot = session.multi.as_ref().and_then(|tx| tx.slot);
        let slot = cluster::route(
            state,
            command,
            keys,
            transaction_slot,
            (session.readonly, asking),
            &shared.config,
        )?;
        if let Some(tx) = &mut session.multi {
            tx.slot = tx.slot.or(slot);
        }
    }
    let write = command.has(flag::WRITE);
    // L3: a master that has not heard a majority of masters within half the
    // node timeout may already have a successor; it grants no lock or lease.
    let grants = matches!(command.spec.group, "lock" | "cache");
    if write && grants && !shared.replication.is_replica() && !shared.cluster.may_grant() {
        return Err(CommandError::MinorityMaster);
    }
    let flags = crate::replication::Flags {
        loading: command.has(flag::LOADING),
        stale: command.has(flag::STALE),
    };
    match shared.replication.refusal(&shared.config, write, flags) {
        None => Ok(()),
        Some(Refusal::ReadOnly) => Err(CommandError::ReadOnlyReplica),
        Some(Refusal::Loading) => Err(CommandError::Loading),
        Some(Refusal::MasterDown) => Err(CommandError::MasterDown),
        Some(Refusal::NoReplicas) => Err(CommandError::NoReplicas),
    }
}

/// How often a write held by a manual failover's pause checks again.
const PAUSE_POLL: Millis = 20;

/// A write (or `EXEC`) arriving while a manual failover pauses writes (F7)
/// waits, then runs again and is routed again: by then the node may be a
/// replica and answer `-MOVED`.
#[inline]
fn paused(
    shared: &Shared,
    session: &Session,
    command: &table::Command,
    now: Millis,
) -> Option<Arc<Waiter>> {
    let until = shared.cluster.writes_paused_until();
    if until <= now || session.multi.is_some() {
        return None;
    }
    let write =
        command.has(flag::WRITE) || command.has(flag::MAY_REPLICATE) || command.full_name == "exec";
    write.then(|| pause_waiter(session, until.min(now + PAUSE_POLL)))
}

/// A wait for a pause of writes, until `deadline`: the command then runs
/// again (and is routed again).
#[cold]
fn pause_waiter(session: &Session, deadline: Millis) -> Arc<Waiter> {
    let op = crate::blocking::BlockedOp::Paused;
    Arc::new(Waiter::new(
        session.handle.id,
        Vec::new(),
        op,
        Some(deadline),
    ))
}

/// M10: a write to a slot whose migration is handing it off waits, decided
/// under the slot's lock so that once the migration took that lock every
/// write still to come sees the pause (`EXEC` checks its slots itself, with
/// [`handoff_wait`]).
fn migration_paused(
    shared: &Shared,
    session: &Session,
    command: &table::Command,
    keys: &KeySlots<'_>,
    now: Millis,
) -> Option<Arc<Waiter>> {
    let paused = &shared.data.paused;
    if paused.is_empty() || !(command.has(flag::WRITE) || command.has(flag::MAY_REPLICATE)) {
        return None;
    }
    let (_, slot) = keys.first()?;
    paused
        .contains(slot)
        .then(|| pause_waiter(session, now + PAUSE_POLL))
}

/// [`migration_paused`] for a unit that locked its slots itself (`EXEC`):
/// the wait if one of them is being handed off.
pub(crate) fn handoff_wait(ctx: &Ctx<'_, '_>) -> Option<Arc<Waiter>> {
    let paused = &ctx.shared.data.paused;
    if paused.is_empty() || !ctx.locks.held().any(|slot| paused.contains(slot)) {
        return None;
    }
    Some(pause_waiter(ctx.session, ctx.now + PAUSE_POLL))
}

/// Before a unit of work over several slots changes anything: a full sync
/// under way may need some of them snapshotted first (see
/// `replication::snapshot`).
#[inline]
pub(crate) fn before_unit(shared: &Shared, locks: &mut Locked<'_>, now: Millis) {
    let syncs = &shared.replication.syncs;
    if syncs.active() {
        let held: smallvec::SmallVec<[u16; 8]> = locks.held().collect();
        syncs.before_unit(locks, &held, now);
    }
}

/// Locks the command's slots, runs it, and releases them.
#[inline]
fn run_locked(
    shared: &Shared,
    session: &mut Session,
    out: &mut Reply,
    checked: Checked,
    args: Args<'_>,
    keys: &KeySlots<'_>,
    admit: bool,
) -> Option<Arc<Waiter>> {
    let mut locks = match session.master_link {
        true => Locked::upstream(&shared.data.keyspace),
        false => Locked::new(&shared.data.keyspace),
    };
    let held = lock_unless_busy(shared, session.master_link, |give_up| {
        locks.acquire_slotted_unless(keys, give_up)
    });
    if let Err(err) = held {
        reject(shared, session, out, checked.command.id, &err);
        return None;
    }
    let now = session.command_start().1;
    if !session.master_link {
        let waiter = migration_paused(shared, session, checked.command, keys, now);
        if waiter.is_some() {
            return waiter;
        }
        let refusal = match checked.command.has(flag::OPEN_SLOTS) {
            // MIGRATE sends what is here and answers NOKEY for the rest (M4).
            true => None,
            false => open_slot_refusal(shared, &mut locks, keys, now),
        };
        if let Some(err) = refusal {
            reject(shared, session, out, checked.command.id, &err);
            return None;
        }
    }
    before_unit(shared, &mut locks, now);
    run(
        shared,
        session,
        out,
        &mut locks,
        checked,
        args,
        Unit::Whole { admit },
    )
}

/// Takes a unit's slots with `acquire`, which waits for a slot another
/// holder keeps until the closure it is given says stop: for a client,
/// once a script is busy (it may keep the slot for good), answered
/// `-BUSY`; a master's stream waits.
pub(crate) fn lock_unless_busy(
    shared: &Shared,
    master_link: bool,
    acquire: impl FnOnce(Option<&dyn Fn() -> bool>) -> bool,
) -> Result<(), CommandError> {
    let busy = || shared.busy_scripts.busy().is_some();
    let give_up: Option<&dyn Fn() -> bool> = match master_link {
        true => None,
        false => Some(&busy),
    };
    match acquire(give_up) {
        true => Ok(()),
        false => Err(CommandError::Busy {
            eval: shared.busy_scripts.busy().unwrap_or(true),
        }),
    }
}

/// M2, M3: a command (or a transaction's commands, `EXEC`) on a slot this
/// node migrates or imports, decided with the slot locked (a key cannot move
/// between the check and the run). On
/// the source, keys all here run, none here are asked of the target (`-ASK`),
/// some here get `-TRYAGAIN`; on the target, a multi-key command whose keys
/// are not all here gets `-TRYAGAIN`.
pub(crate) fn open_slot_refusal(
    shared: &Shared,
    locks: &mut Locked<'_>,
    keys: &KeySlots<'_>,
    now: Millis,
) -> Option<CommandError> {
    let (_, slot) = keys.first()?;
    let view = shared.cluster.view()?;
    let view = view.as_deref()?;
    let target = view.migrating_to(slot);
    if target.is_none() && !view.importing(slot) {
        return None;
    }
    let (mut total, mut here) = (0, 0);
    for key in keys.keys() {
        total += 1;
        here += usize::from(locks.table(key).is_live(key, now));
    }
    match target {
        Some(target) if here == 0 => Some(CommandError::Ask {
            slot,
            addr: target.client_addr(),
        }),
        _ if here < total && (target.is_some() || total > 1) => Some(CommandError::TryAgain),
        _ => None,
    }
}

/// How a command run relates to its unit of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// The command is the unit: it may block, and its effects are committed
    /// when it ends; with `admit`, the first key it stored is kept for TinyLFU
    /// admission (see [`admit_stored_key`]).
    Whole {
        /// Keep the first stored key in `Session::admit`.
        admit: bool,
    },
    /// The command runs inside `EXEC`: it answers at once instead of blocking,
    /// and its effects join the transaction's, committed when `EXEC` ends.
    InTransaction,
    /// The command runs inside a script: as in a transaction, and the few
    /// commands that refuse to run from scripts with some option know it.
    InScript,
}

#[cold]
fn out_of_memory(shared: &Shared, session: &mut Session, out: &mut Reply, id: usize) {
    reject(shared, session, out, id, &CommandError::OutOfMemory);
    if let Some(tx) = &mut session.multi {
        tx.failed = true;
    }
}

/// True when TinyLFU admission applies to writes: the policy is
/// `allkeys-tinylfu` and memory is under pressure.
fn admitting(shared: &Shared, now: Millis) -> bool {
    shared.config.policy() == Policy::AllkeysTinylfu && shared.data.evictor.under_pressure(now)
}

/// TinyLFU admission: under memory pressure, a key a write just stored must be
/// requested more often than the keys eviction samples, or it goes next. Takes
/// the key from the unit's effects (see [`Unit::Whole`]); runs with no slot
/// held (eviction takes the pool, then slots).
#[cold]
fn admit_stored_key(shared: &Shared, key: &[u8]) {
    let slot = key_slot(key);
    shared.data.evictor.admit(&shared.data.keyspace, slot, key);
}

/// Runs a checked command whose slots `locks` holds: the handler, then (for a
/// whole unit of work) the commit of what it changed while the slots are still
/// held, then statistics.
fn run<'a>(
    shared: &'a Shared,
    session: &mut Session,
    out: &mut Reply,
    locks: &mut Locked<'a>,
    checked: Checked,
    args: Args<'_>,
    unit: Unit,
) -> Option<Arc<Waiter>> {
    let (started, now) = session.command_start();
    let cmd = checked.command;
    let mark = out.len();
    let whole = matches!(unit, Unit::Whole { .. });
    let mut lock_unit = None;
    if whole {
        session.changes.begin(shared.data.feed.is_active());
        // A unit that may change a lock, or grant one to a waiter, opens the
        // lock gate (a replica's stream changes locks as its master did).
        let may_lock = cmd.has(flag::LOCKING) || shared.data.blocked.lease_waiters() > 0;
        if may_lock && !session.master_link {
            lock_unit = Some(held::open(shared, &mut session.changes, started));
        }
    }
    let command = session.changes.start_command();
    let mut ctx = Ctx {
        shared,
        locks,
        session: &mut *session,
        out: &mut *out,
        now,
        skip: checked.skip,
        command: cmd,
        block: None,
        may_block: whole,
        in_script: matches!(unit, Unit::InScript),
    };
    let mut result = match cmd.spec.handler {
        Some(handler) => handler(&mut ctx, args),
        None => Err(CommandError::Arity(cmd.full_name.clone())),
    };
    let block = ctx.block.take();
    let mut expired = Vec::new();
    locks.take_expired(|key| expired.push(key.to_vec()));
    session
        .changes
        .end_command(command, expired.iter().map(Vec::as_slice), || {
            args.iter().collect()
        });
    if let Unit::Whole { admit } = unit {
        if admit {
            session.admit = session.changes.first_stored().map(<[u8]>::to_vec);
        }
        crate::write::commit(&shared.data, locks, &mut session.changes, now);
    }
    let held = lock_unit
        .and_then(|members| held::close(shared, locks, &mut session.changes, members, now))
        .and_then(|(held, own)| own.then_some(held));
    let usec = session.command_end(started);
    if out.is_full() {
        result = Err(reply_too_large(shared, session, cmd));
    }
    match result {
        Ok(()) => session.stats.record(cmd.id, usec, Outcome::Ok),
        Err(err) => {
            // A failed command leaves no partial reply behind.
            out.truncate(mark);
            reply_error(shared, session, out, &err);
            session.stats.record(cmd.id, usec, Outcome::Failed);
        }
    }
    // The reply waits until the unit's lock changes are acknowledged.
    if let Some(held) = held {
        let reply = out.split_off(mark);
        session.held = Some(crate::session::HeldReply { held, reply });
    }
    block
}

/// A reply passed the client's output limit: nothing of it is sent, and the
/// client is closed, as Redis closes a client over its output buffer limit.
#[cold]
fn reply_too_large(shared: &Shared, session: &mut Session, cmd: &table::Command) -> CommandError {
    session.close_after_reply = true;
    shared
        .stats
        .output_limit_disconnections
        .fetch_add(1, Relaxed);
    tracing::warn!(
        client = session.handle.id,
        command = cmd.full_name,
        "closing client whose reply passed its output buffer limit"
    );
    CommandError::ReplyTooLarge
}

/// Answers a command refused before it ran (error paths are cold: out of
/// the hot code's way).
#[cold]
fn reject(shared: &Shared, session: &mut Session, out: &mut Reply, id: usize, err: &CommandError) {
    let command = table::registry().get(id);
    if session.multi.is_some() && command.full_name == "exec" {
        // As Redis: a refused EXEC discards its transaction, saying why.
        session.multi = None;
        session.unwatch_all(&shared.data.watches);
        let text = err.to_string();
        let reason = text.strip_prefix("ERR ").unwrap_or(&text);
        reply_error(
            shared,
            session,
            out,
            &CommandError::ExecAbortBecause(reason.to_owned()),
        );
    } else {
        reply_error(shared, session, out, err);
    }
    session.stats.record(id, 0, Outcome::Rejected);
}

/// Writes `err` as an error reply and counts it by its code.
#[cold]
fn reply_error(shared: &Shared, session: &mut Session, out: &mut Reply, err: &CommandError) {
    out.error(&err.to_string());
    session.stats.error_replies += 1;
    shared.stats.count_error(err.code());
}

/// At most 128 bytes of an argument, for error messages.
#[cold]
fn truncate_arg(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
}

/// Redis's error for an unknown command, quoting the first arguments.
#[cold]
fn unknown_command(args: Args<'_>) -> CommandError {
    let mut quoted = String::new();
    for arg in args.iter().skip(1) {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        let text = String::from_utf8_lossy(&arg[..arg.len().min(room)]).into_owned();
        quoted.push_str(&format!("'{text}' "));
    }
    CommandError::err(format!(
        "unknown command '{}', with args beginning with: {quoted}",
        truncate_arg(args.get(0).unwrap_or_default())
    ))
}
