//! Scripting: `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO` and `SCRIPT`.
//!
//! A script is one unit of work: `EVAL` locks its declared keys' slots like
//! any command, and every `redis.call` runs inside that unit (as `EXEC`'s
//! commands do), so its effects are committed once, replicated as the
//! commands' effects, never as the script's text.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::write_help;
use super::table::{self, flag::*, CommandSpec, KeySpec};
use super::Unit;
use super::{
    handler, key_slots_by, run, Checked, Command, CommandError, CommandResult, Ctx, Parser,
};
use crate::keyspace::{key_slot, Locked};
use crate::protocol::{Args, Reply};
use crate::replication::Refusal;
use crate::scripting::{
    parse_sha, parse_shebang, sha1_hex, with_engine, BusyScript, Call, Host, KillRefusal, Script,
    ScriptFlags, Sha,
};
use crate::session::Session;
use crate::shared::Shared;
use crate::util::suspend::{suspend, Resume};

/// How long a script waits for the slot of a key it did not declare, held
/// by another client, before it fails (two scripts could wait on each other).
const UNDECLARED_SLOT_WAIT: Duration = Duration::from_secs(1);

const fn eval(
    name: &'static str,
    flags: u32,
    since: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec::new(
        name,
        -3,
        flags | NOSCRIPT | STALE | SCRIPT,
        "scripting",
        summary,
        handler!(Eval<'_>),
    )
    .keys(KeySpec::counted(2))
    .since(since)
}

const fn script(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Option<table::Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags | NOSCRIPT, "scripting", summary, handler).since("2.6.0")
}

/// The scripting family.
pub const COMMANDS: &[CommandSpec] = &[
    eval(
        "eval",
        MAY_REPLICATE | LOCKING,
        "2.6.0",
        "Executes a server-side Lua script.",
    ),
    eval(
        "evalsha",
        MAY_REPLICATE | LOCKING,
        "2.6.0",
        "Executes a server-side Lua script by SHA1 digest.",
    ),
    eval(
        "eval_ro",
        READONLY,
        "7.0.0",
        "Executes a read-only server-side Lua script.",
    ),
    eval(
        "evalsha_ro",
        READONLY,
        "7.0.0",
        "Executes a read-only server-side Lua script by SHA1 digest.",
    ),
    CommandSpec::container(
        "script",
        "scripting",
        "2.6.0",
        "A container for Lua scripts management commands.",
        &[
            script(
                "load",
                3,
                STALE,
                "Loads a server-side Lua script to the script cache.",
                handler!(ScriptLoad<'_>),
            ),
            script(
                "exists",
                -3,
                STALE,
                "Determines whether server-side Lua scripts exist in the script cache.",
                handler!(ScriptExists<'_>),
            ),
            script(
                "flush",
                -2,
                STALE,
                "Removes all server-side Lua scripts from the script cache.",
                handler!(ScriptFlush),
            ),
            script(
                "kill",
                2,
                STALE | ALLOW_BUSY,
                "Terminates a server-side Lua script during execution.",
                handler!(ScriptKill),
            ),
            script(
                "help",
                2,
                LOADING | STALE,
                "Returns helpful text about the different subcommands.",
                handler!(ScriptHelp),
            ),
        ],
    ),
];

/// Where an `EVAL` family command's script comes from.
enum Source<'a> {
    Body(&'a [u8]),
    Sha(&'a [u8]),
}

/// `EVAL script numkeys [key ...] [arg ...]` and its `SHA` and `_RO` forms.
struct Eval<'a> {
    source: Source<'a>,
    keys: Args<'a>,
    args: Args<'a>,
}

impl<'a> Command<'a> for Eval<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let by_sha = p.called_as("evalsha");
        let script = p.arg()?;
        let numkeys = p.next_i64()?;
        if numkeys > p.remaining() as i64 {
            return Err(CommandError::err(
                "Number of keys can't be greater than number of args",
            ));
        }
        if numkeys < 0 {
            return Err(CommandError::err("Number of keys can't be negative"));
        }
        let (keys, args) = p.rest().split_at(numkeys as usize);
        let source = match by_sha {
            true => Source::Sha(script),
            false => Source::Body(script),
        };
        Ok(Eval { source, keys, args })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let shared = ctx.shared;
        let generation = shared.scripts.generation();
        let sha = match self.source {
            Source::Sha(given) => parse_sha(given).ok_or(CommandError::NoScript)?,
            Source::Body(body) => sha1_hex(body),
        };
        // A script this thread compiled and the registry keeps for good
        // runs without asking the registry (the usual `EVALSHA`).
        let pinned = with_engine(|engine| {
            engine.sync_generation(generation);
            engine.pinned(&sha)
        });
        let (script, known) = match (pinned, self.source) {
            (Some(flags), _) => (Found::Pinned(flags), true),
            (None, Source::Sha(_)) => {
                let (script, kept) = shared.scripts.get(&sha).ok_or(CommandError::NoScript)?;
                (Found::Script(script, kept), true)
            }
            (None, Source::Body(body)) => match shared.scripts.get(&sha) {
                Some((script, kept)) => (Found::Script(script, kept), true),
                None => {
                    let (flags, _) = parse_shebang(body).map_err(CommandError::Other)?;
                    let script = Script {
                        body: body.into(),
                        flags,
                    };
                    (Found::Script(script, false), false)
                }
            },
        };
        let read_only_command = ctx.name().ends_with("_ro");
        let flags = match &script {
            Found::Pinned(flags) => *flags,
            Found::Script(script, _) => script.flags,
        };
        may_start(ctx, flags, read_only_command)?;
        // Hex digits: always UTF-8.
        let name = std::str::from_utf8(&sha).unwrap_or_default();
        let call = Call {
            name,
            keys: self.keys,
            args: self.args,
        };
        let read_only = read_only_command || flags.has(ScriptFlags::NO_WRITES);
        let mut host = ScriptHost::new(ctx, read_only, flags, &call);
        with_engine(|engine| {
            if let Found::Script(script, kept) = script {
                if !engine.is_compiled(&sha) {
                    let (_, start) = parse_shebang(&script.body).map_err(CommandError::Other)?;
                    engine
                        .compile(sha, &script.body[start..])
                        .map_err(CommandError::Other)?;
                }
                if kept {
                    engine.pin(&sha, script.flags);
                }
                if !known {
                    shared.scripts.add(sha, script, true);
                }
            }
            engine.run(&sha, &call, &mut host.host, host.out);
            Ok(())
        })
    }
}

/// How an `EVAL` found its script.
enum Found {
    /// Compiled here and kept for good: only its flags are needed.
    Pinned(ScriptFlags),
    /// From the registry (or the request), and whether the registry keeps it
    /// for good.
    Script(Script, bool),
}

/// Redis's checks before a script with a shebang runs (scripts without
/// one are checked command by command as they run).
pub(super) fn may_start(
    ctx: &Ctx<'_, '_>,
    flags: ScriptFlags,
    read_only_command: bool,
) -> CommandResult {
    if flags.has(ScriptFlags::EVAL_COMPAT) {
        return Ok(());
    }
    let shared = ctx.shared;
    if flags.has(ScriptFlags::NO_CLUSTER) && shared.cluster.view().is_some_and(|v| v.is_some()) {
        return Err(CommandError::err(
            "Can not run script on cluster, 'no-cluster' flag is set.",
        ));
    }
    // As Redis, which takes `stale` from a script with a shebang unless it
    // has `allow-stale`.
    let stale = !ctx.session.master_link && shared.replication.running_stale(&shared.config);
    if stale && !flags.has(ScriptFlags::ALLOW_STALE) {
        return Err(CommandError::MasterDown);
    }
    if flags.has(ScriptFlags::NO_WRITES) {
        return Ok(());
    }
    // As Redis, which gives a script that may write `denyoom` unless it
    // allows running out of memory.
    if ctx.session.oom_at_start && !flags.has(ScriptFlags::ALLOW_OOM) {
        return Err(CommandError::OutOfMemory);
    }
    let replica = shared.replication.is_replica() && !ctx.session.master_link;
    if replica && shared.config.replica_read_only() {
        return Err(CommandError::ScriptOnReadOnlyReplica);
    }
    if read_only_command {
        return Err(CommandError::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    Ok(())
}

/// A script about to run: what its `redis.call`s reach, and where its
/// result goes.
pub(super) struct ScriptHost<'c, 'a> {
    /// Runs its commands.
    pub host: Runner<'c, 'a>,
    /// The caller's reply.
    pub out: &'c mut Reply,
}

impl<'c, 'a> ScriptHost<'c, 'a> {
    /// The script `call` run by the command of `ctx`, with `flags` (the
    /// slots of its keys are held).
    pub fn new(
        ctx: &'c mut Ctx<'_, 'a>,
        read_only: bool,
        flags: ScriptFlags,
        call: &'c Call<'c>,
    ) -> ScriptHost<'c, 'a> {
        let command = ctx.command.full_name.as_str();
        // The command holds its keys' slots: in a cluster, their one slot.
        let slot = ctx.locks.held().next();
        ScriptHost {
            host: Runner {
                shared: ctx.shared,
                started: ctx.session.command_start().0,
                session: &mut *ctx.session,
                locks: &mut *ctx.locks,
                read_only,
                cross_slot: flags.has(ScriptFlags::ALLOW_CROSS_SLOT),
                allow_oom: flags.has(ScriptFlags::ALLOW_OOM),
                slot,
                wrote: false,
                call,
                command,
                busy: None,
            },
            out: &mut *ctx.out,
        }
    }
}

/// The error of a script stopped by `SCRIPT KILL` or `FUNCTION KILL`.
const KILLED: &str = "Script killed by user with SCRIPT KILL...";

/// What a running script's `redis.call`s reach: the caller's session and
/// slot locks, with the script's rules.
pub(super) struct Runner<'c, 'a> {
    shared: &'a Shared,
    session: &'c mut Session,
    locks: &'c mut Locked<'a>,
    /// `EVAL_RO`, or a `no-writes` script.
    read_only: bool,
    /// `allow-cross-slot-keys`.
    cross_slot: bool,
    /// `allow-oom`.
    allow_oom: bool,
    /// In a cluster, the one slot the script's keys may be in.
    slot: Option<u16>,
    /// A write command ran.
    wrote: bool,
    /// When the command started.
    started: Instant,
    /// The script, for `FUNCTION STATS` and the log once it is busy.
    call: &'c Call<'c>,
    /// The command that runs it (`eval`, `fcall_ro`, ...).
    command: &'c str,
    /// Set once it ran past `busy-reply-threshold`.
    busy: Option<Arc<BusyScript>>,
}

impl Drop for Runner<'_, '_> {
    fn drop(&mut self) {
        if let Some(busy) = &self.busy {
            self.shared.busy_scripts.leave(busy);
        }
    }
}

impl Host for Runner<'_, '_> {
    fn call(&mut self, args: Args<'_>, out: &mut Reply) -> Result<(), String> {
        let registry = table::registry();
        let mut command = registry
            .lookup(args.get(0).unwrap_or_default())
            .ok_or_else(unknown_from_script)?;
        let mut skip = 1;
        if command.is_container() && args.len() >= 2 {
            command = registry
                .lookup_sub(command, args.get(1).unwrap_or_default())
                .ok_or_else(unknown_from_script)?;
            skip = 2;
        }
        if command.spec.handler.is_none() || !command.arity_ok(args.len()) {
            return Err(refused(
                "Wrong number of args calling Redis command from script",
            ));
        }
        if command.has(NOSCRIPT) {
            return Err(refused("This Redis command is not allowed from script"));
        }
        let write = command.has(WRITE);
        if self.read_only && (write || command.has(MAY_REPLICATE)) {
            return Err(refused(
                "Write commands are not allowed from read-only scripts.",
            ));
        }
        // On a stale replica only `stale` commands run, whatever the script.
        let shared = self.shared;
        let stale = !command.has(STALE) && !self.session.master_link;
        if stale && shared.replication.running_stale(&shared.config) {
            return Err(refused("Can not execute the command on a stale replica"));
        }
        // Over maxmemory when the script started: what may grow memory is
        // refused, unless the script wrote already (it stays whole).
        let oom = self.session.oom_at_start && !self.allow_oom && !self.wrote;
        if oom && command.has(DENYOOM) && !self.session.master_link {
            return Err(refused(format!("-{}", CommandError::OutOfMemory)));
        }
        if write && !self.wrote && !self.session.master_link {
            let flags = crate::replication::Flags {
                loading: command.has(LOADING),
                stale: command.has(STALE),
            };
            let refusal = self
                .shared
                .replication
                .refusal(&self.shared.config, true, flags);
            if let Some(refusal) = refusal {
                return Err(refused(format!("-{}", refusal_error(refusal))));
            }
        }
        // A declared key's slot was found when the script's slots were
        // locked: a command on it does not hash it again.
        let (declared, locks) = (self.call.keys, &*self.locks);
        let keys = key_slots_by(command, args, |key| {
            declared
                .iter()
                .find(|&declared| declared == key)
                .and_then(|declared| locks.known_slot(declared))
                .unwrap_or_else(|| key_slot(key))
        });
        for slot in keys.slots() {
            self.claim(slot, command)?;
        }
        // A busy script's kill and its first write race: one of them wins.
        if write && self.busy.as_ref().is_some_and(|busy| !busy.may_write()) {
            return Err(KILLED.into());
        }
        let checked = Checked { command, skip };
        // Hashed once: the command's tables find the slots of its keys.
        let mark = self.locks.remember_keys(&keys);
        run(
            self.shared,
            self.session,
            out,
            self.locks,
            checked,
            args,
            Unit::InScript,
        );
        self.locks.forget_keys(mark);
        self.wrote |= write;
        Ok(())
    }

    /// Past `busy-reply-threshold`, the script is busy: other clients get
    /// `-BUSY`, and each check gives the worker back to its other clients
    /// for a turn, unless the script was killed (or the server stops).
    fn interrupt(&mut self) -> Result<(), String> {
        let busy = match &self.busy {
            Some(busy) => busy.clone(),
            None => {
                if self.started.elapsed() < self.shared.config.busy_reply_threshold() {
                    return Ok(());
                }
                let script = BusyScript::new(
                    self.command.starts_with("eval"),
                    self.call.name,
                    self.request(),
                    self.started,
                    self.wrote,
                );
                let busy = self.shared.busy_scripts.enter(script);
                self.busy = Some(busy.clone());
                busy
            }
        };
        if busy.killed() {
            return Err(KILLED.into());
        }
        if suspend() == Some(Resume::Abort) {
            // The server is stopping: end the script and its client.
            self.session.close_after_reply = true;
            return Err("Script stopped: the server is shutting down".into());
        }
        match busy.killed() {
            true => Err(KILLED.into()),
            false => Ok(()),
        }
    }
}

impl Runner<'_, '_> {
    /// The script's request as `FUNCTION STATS` shows it.
    fn request(&self) -> Vec<Vec<u8>> {
        let call = self.call;
        let head = [
            self.command.as_bytes().to_vec(),
            call.name.as_bytes().to_vec(),
            call.keys.len().to_string().into_bytes(),
        ];
        head.into_iter()
            .chain(call.keys.iter().chain(call.args.iter()).map(|a| a.to_vec()))
            .collect()
    }
}

impl Runner<'_, '_> {
    /// Makes sure the script holds `slot` before a command touches it: a
    /// declared key's slot is held already; in a cluster, an undeclared key
    /// must be in a slot this node serves, stable, and (unless the script
    /// allows cross-slot keys) the script's one slot; its slot is then taken
    /// as it is free, never waited for in a way that could deadlock.
    fn claim(&mut self, slot: u16, command: &table::Command) -> Result<(), String> {
        if self.locks.holds(slot) {
            return Ok(());
        }
        if let Some(Some(view)) = self.shared.cluster.view().as_deref() {
            if !view.is_mine(slot) {
                return Err("Script attempted to access a non local key in a cluster node".into());
            }
            match self.slot {
                Some(first) if first != slot && !self.cross_slot => {
                    return Err(
                        "Script attempted to access keys that do not hash to the same slot".into(),
                    )
                }
                _ => self.slot = self.slot.or(Some(slot)),
            }
            let data = &self.shared.data;
            let unstable = view.importing(slot)
                || view.migrating_to(slot).is_some()
                || data.paused.contains(slot)
                || data.keyspace.is_hidden(slot);
            if unstable {
                return Err(format!(
                    "Unable to execute command '{}' in script because undeclared keys were accessed during rehashing of the slot",
                    command.full_name
                ));
            }
        }
        // A replica's full sync must not see the unit split across a slot it
        // sent and one it did not (`replication::snapshot`): undeclared slots
        // are fine only before the script changed anything.
        let syncing = self.shared.replication.syncs.active();
        if syncing && self.wrote {
            return Err("Script attempted to access an undeclared key after writing while a replica syncs; declare its keys".into());
        }
        let deadline = Instant::now() + UNDECLARED_SLOT_WAIT;
        while !self.locks.try_acquire(slot) {
            if Instant::now() >= deadline {
                return Err("Script attempted to access an undeclared key whose slot another client held too long; declare its keys".into());
            }
            std::thread::yield_now();
        }
        if syncing {
            let now = self.session.command_start().1;
            super::before_unit(self.shared, self.locks, now);
        }
        Ok(())
    }
}

/// The error a replica's refusal of a write gives.
fn refusal_error(refusal: Refusal) -> CommandError {
    match refusal {
        Refusal::ReadOnly => CommandError::ReadOnlyReplica,
        Refusal::Loading => CommandError::Loading,
        Refusal::MasterDown => CommandError::MasterDown,
        Refusal::NoReplicas => CommandError::NoReplicas,
    }
}

/// `SCRIPT LOAD script`.
struct ScriptLoad<'a> {
    body: &'a [u8],
}

impl<'a> Command<'a> for ScriptLoad<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ScriptLoad { body: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let scripts = &ctx.shared.scripts;
        let sha: Sha = sha1_hex(self.body);
        let (flags, start) = parse_shebang(self.body).map_err(CommandError::Other)?;
        with_engine(|engine| {
            engine.sync_generation(scripts.generation());
            engine
                .compile(sha, &self.body[start..])
                .map_err(CommandError::Other)
        })?;
        let script = Script {
            body: self.body.into(),
            flags,
        };
        scripts.add(sha, script, false);
        with_engine(|engine| engine.pin(&sha, flags));
        ctx.out.bulk(&sha);
        Ok(())
    }
}

/// `SCRIPT EXISTS sha1 [sha1 ...]`.
struct ScriptExists<'a> {
    shas: Args<'a>,
}

impl<'a> Command<'a> for ScriptExists<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ScriptExists { shas: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.array(self.shas.len());
        for sha in self.shas.iter() {
            let known = parse_sha(sha).is_some_and(|sha| ctx.shared.scripts.exists(&sha));
            ctx.out.int(i64::from(known));
        }
        Ok(())
    }
}

/// Reads `SCRIPT FLUSH`'s or `FUNCTION FLUSH`'s optional `ASYNC|SYNC` (both
/// flush at once), refusing anything else with `error`, Redis's text.
pub(super) fn flush_mode(p: &mut Parser<'_>, error: &'static str) -> CommandResult {
    if p.remaining() > 1 || (p.remaining() == 1 && !p.eat("ASYNC") && !p.eat("SYNC")) {
        return Err(CommandError::err(error));
    }
    Ok(())
}

/// `SCRIPT FLUSH [ASYNC|SYNC]`.
struct ScriptFlush;

impl<'a> Command<'a> for ScriptFlush {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        flush_mode(p, "SCRIPT FLUSH only support SYNC|ASYNC option")?;
        Ok(ScriptFlush)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.shared.scripts.flush();
        ctx.out.ok();
        Ok(())
    }
}

/// `SCRIPT KILL`.
struct ScriptKill;

impl<'a> Command<'a> for ScriptKill {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ScriptKill)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        kill_busy(ctx, true)
    }
}

/// `SCRIPT KILL` (`eval`) or `FUNCTION KILL`: stops the busy scripts of that
/// kind, with Redis's refusals.
pub(super) fn kill_busy(ctx: &mut Ctx<'_, '_>, eval: bool) -> CommandResult {
    match ctx.shared.busy_scripts.kill(eval) {
        Ok(()) => {
            ctx.out.ok();
            Ok(())
        }
        Err(KillRefusal::NotBusy) => Err(CommandError::NotBusy),
        Err(KillRefusal::Unkillable) => Err(CommandError::Unkillable),
        Err(KillRefusal::OtherKind { eval }) => Err(CommandError::Busy { eval }),
    }
}

/// `SCRIPT HELP`.
struct ScriptHelp;

impl<'a> Command<'a> for ScriptHelp {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ScriptHelp)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "SCRIPT",
            &[
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
            ],
        );
        Ok(())
    }
}

/// Redis's error for a script calling a command that does not exist.
fn unknown_from_script() -> String {
    refused("Unknown Redis command called from script")
}

/// A `redis.call` refused before its command ran. Cold, so the refusals stay
/// out of the hot code of every call.
#[cold]
fn refused(text: impl Into<String>) -> String {
    text.into()
}
