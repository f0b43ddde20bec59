//! Atomic slot migration's commands (docs/CLUSTER.md, M7-M10), after Valkey
//! 9's: `CLUSTER MIGRATESLOTS` starts migrations from this master,
//! `CLUSTER GETSLOTMIGRATIONS` lists them (here and as a target),
//! `CLUSTER CANCELSLOTMIGRATIONS` cancels this node's; `CLUSTER SYNCSLOTS`
//! is the nodes' own (a source opening a stream, or asking how its handoff
//! ended). The work is done by the migrations' tasks (`net`).

use super::cluster::{admin_error, cluster, slot_arg, step, OUT_OF_RANGE};
use super::table::{flag::*, CommandSpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::cluster::id::Id;
use crate::cluster::machine::AdminError;
use crate::cluster::migration::{Job, JobSettings};
use crate::cluster::slots::SlotSet;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Option<super::table::Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "cluster", summary, handler).since("9.0.0")
}

/// `CLUSTER MIGRATESLOTS`.
pub const MIGRATESLOTS: CommandSpec = spec(
    "migrateslots",
    -6,
    ADMIN | STALE,
    "Migrates slot ranges to other masters atomically (the source's writes pause only for the handoff).",
    handler!(MigrateSlots),
);
/// `CLUSTER GETSLOTMIGRATIONS`.
pub const GETSLOTMIGRATIONS: CommandSpec = spec(
    "getslotmigrations",
    2,
    ADMIN | STALE,
    "Lists the atomic slot migrations this node sends or receives, running and finished.",
    handler!(GetSlotMigrations),
);
/// `CLUSTER CANCELSLOTMIGRATIONS`.
pub const CANCELSLOTMIGRATIONS: CommandSpec = spec(
    "cancelslotmigrations",
    2,
    ADMIN | STALE,
    "Cancels this node's atomic slot migrations that have not reached their handoff.",
    handler!(CancelSlotMigrations),
);
/// `CLUSTER SYNCSLOTS`.
pub const SYNCSLOTS: CommandSpec = spec(
    "syncslots",
    -3,
    ADMIN | STALE,
    "Internal: a migration source opens its stream (BEGIN) or asks how its handoff ended (FINISH).",
    handler!(SyncSlots),
);

/// Reads `start end` pairs after `SLOTSRANGE` (Valkey's syntax) into
/// `slots`, up to and including `NODE`.
fn slot_ranges(p: &mut Parser<'_>, slots: &mut SlotSet) -> Result<(), CommandError> {
    while !p.eat("NODE") {
        if p.remaining() < 2 {
            return Err(CommandError::Syntax);
        }
        let start = slot_arg(p, OUT_OF_RANGE)?;
        let end = slot_arg(p, OUT_OF_RANGE)?;
        if start > end {
            return Err(CommandError::err(format!(
                "start slot number {start} is greater than end slot number {end}"
            )));
        }
        for slot in start..=end {
            if slots.contains(slot) {
                return Err(CommandError::err(format!(
                    "Slot {slot} specified multiple times"
                )));
            }
            slots.insert(slot);
        }
    }
    match slots.is_empty() {
        true => Err(CommandError::Syntax),
        false => Ok(()),
    }
}

/// A node id argument.
fn node(p: &mut Parser<'_>) -> Result<Id, CommandError> {
    let text = String::from_utf8_lossy(p.arg()?).into_owned();
    Id::parse(&text.to_ascii_lowercase())
        .ok_or_else(|| admin_error(AdminError::UnknownSetSlotNode(text)))
}

/// `CLUSTER MIGRATESLOTS SLOTSRANGE start end [start end ...] NODE id
/// [SLOTSRANGE ... NODE id ...]`: one job per target, all started or none.
struct MigrateSlots {
    moves: Vec<(SlotSet, Id)>,
}

impl<'a> Command<'a> for MigrateSlots {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut moves = Vec::new();
        while p.remaining() > 0 {
            if !p.eat("SLOTSRANGE") {
                return Err(CommandError::Syntax);
            }
            let mut slots = SlotSet::default();
            slot_ranges(p, &mut slots)?;
            moves.push((slots, node(p)?));
        }
        Ok(MigrateSlots { moves })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        let mut all = SlotSet::default();
        for (slots, target) in &self.moves {
            if let Some(slot) = slots.iter().find(|&s| all.contains(s)) {
                return Err(CommandError::err(format!(
                    "Slot {slot} specified multiple times"
                )));
            }
            for slot in slots.iter() {
                all.insert(slot);
            }
            step(ctx, |c, _| c.check_export(slots, *target))?;
        }
        let settings = ctx.shared.config.slot_migration();
        let settings = JobSettings {
            max_lag: settings.max_lag,
            pause_timeout: settings.pause_timeout_ms,
            progress_timeout: ctx.shared.config.replication().timeout_ms,
        };
        let jobs = self
            .moves
            .into_iter()
            .map(|(slots, target)| Job::new(rand::random(), target, slots, settings, ctx.now))
            .collect();
        ctx.shared
            .migrations
            .start(jobs)
            .map_err(|e| CommandError::err(e.to_string().trim_start_matches("ERR ")))?;
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER GETSLOTMIGRATIONS`: one map per migration.
struct GetSlotMigrations;

impl<'a> Command<'a> for GetSlotMigrations {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(GetSlotMigrations)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let view = cluster(ctx)?;
        let me = view.myself_id().to_string();
        let list = ctx.shared.migrations.list();
        ctx.out.array(list.len());
        for m in list {
            let peer = m.peer.to_string();
            let (source, target) = match m.source_side {
                true => (me.as_str(), peer.as_str()),
                false => (peer.as_str(), me.as_str()),
            };
            let ranges = m.slots.range_words();
            let end = m.ended.unwrap_or(ctx.now);
            let seconds = end.saturating_sub(m.started).max(1) as f64 / 1000.0;
            let out = &mut *ctx.out;
            out.map(11);
            out.bulk(b"id");
            out.bulk(format!("{:016x}", m.id).as_bytes());
            out.bulk(b"operation");
            out.bulk(if m.source_side { b"EXPORT" } else { b"IMPORT" });
            out.bulk(b"slot_ranges");
            out.bulk(ranges.join(" ").as_bytes());
            out.bulk(b"source_node");
            out.bulk(source.as_bytes());
            out.bulk(b"target_node");
            out.bulk(target.as_bytes());
            out.bulk(b"state");
            out.bulk(m.state.as_bytes());
            out.bulk(b"last_error");
            out.bulk(m.error.unwrap_or_default().as_bytes());
            out.bulk(b"keys");
            out.int(m.keys as i64);
            out.bulk(b"bytes");
            out.int(m.bytes as i64);
            out.bulk(b"bytes_per_sec");
            out.int((m.bytes as f64 / seconds) as i64);
            out.bulk(b"duration_ms");
            out.int(end.saturating_sub(m.started) as i64);
        }
        Ok(())
    }
}

/// `CLUSTER CANCELSLOTMIGRATIONS`.
struct CancelSlotMigrations;

impl<'a> Command<'a> for CancelSlotMigrations {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(CancelSlotMigrations)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        ctx.shared.migrations.cancel_all();
        ctx.out.ok();
        Ok(())
    }
}

/// `CLUSTER SYNCSLOTS BEGIN id source-id start-end...` and `CLUSTER
/// SYNCSLOTS FINISH id start-end...`.
enum SyncSlots {
    Begin {
        id: u64,
        source: Id,
        slots: Box<SlotSet>,
    },
    Finish {
        id: u64,
        slots: Box<SlotSet>,
    },
}

/// `start-end` arguments (at least one) into a slot set.
fn range_args(p: &mut Parser<'_>) -> Result<SlotSet, CommandError> {
    let mut slots = SlotSet::default();
    while let Some(range) = p.try_arg() {
        let range = std::str::from_utf8(range).unwrap_or_default();
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) else {
            return Err(CommandError::err(OUT_OF_RANGE));
        };
        if a > b || usize::from(b) >= crate::keyspace::SLOTS {
            return Err(CommandError::err(OUT_OF_RANGE));
        }
        (a..=b).for_each(|s| slots.insert(s));
    }
    match slots.is_empty() {
        true => Err(CommandError::Syntax),
        false => Ok(slots),
    }
}

fn job_id(p: &mut Parser<'_>) -> Result<u64, CommandError> {
    let text = p.arg()?;
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| u64::from_str_radix(t, 16).ok())
        .ok_or_else(|| CommandError::err("Invalid migration id"))
}

impl<'a> Command<'a> for SyncSlots {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let keyword = p.next_keyword().ok_or(CommandError::Syntax)?;
        match keyword.as_str() {
            "BEGIN" => {
                let id = job_id(p)?;
                let source = node(p)?;
                let slots = Box::new(range_args(p)?);
                Ok(SyncSlots::Begin { id, source, slots })
            }
            "FINISH" => {
                let id = job_id(p)?;
                let slots = Box::new(range_args(p)?);
                Ok(SyncSlots::Finish { id, slots })
            }
            _ => Err(CommandError::Syntax),
        }
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        cluster(ctx)?;
        match self {
            SyncSlots::Begin { id, source, slots } => {
                step(ctx, |c, _| c.check_import(&slots, source))?;
                let migrations = &ctx.shared.migrations;
                migrations
                    .begin_import(id, source, *slots, ctx.now)
                    .map_err(|e| CommandError::err(e.to_string().trim_start_matches("ERR ")))?;
                ctx.session.import = Some(id);
                ctx.out.ok();
            }
            // M10: claimed, or (an import this node does not know: it
            // restarted) the slots are its own since; otherwise the import
            // is over for good and never claims.
            SyncSlots::Finish { id, slots } => {
                let claimed = ctx.shared.migrations.finish_import(id).or_else(|| {
                    let view = ctx.shared.cluster.view();
                    let view = view.as_deref().and_then(Option::as_deref)?;
                    let me = view.myself();
                    let owns = slots.iter().any(|s| view.is_mine(s));
                    owns.then_some(me.line.config_epoch)
                });
                match claimed {
                    Some(epoch) => ctx.out.simple(&format!("HANDOFF {epoch}")),
                    None => ctx.out.simple("CANCELLED"),
                }
            }
        }
        Ok(())
    }
}
