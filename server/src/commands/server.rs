//! Server commands: INFO, CONFIG, DBSIZE, FLUSHDB, FLUSHALL, TIME, SHUTDOWN.

use super::client::write_help;
use super::table::{flag::*, CommandSpec, Handler};
use super::{handler, info, Command, CommandError, CommandResult, Ctx, Parser};

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "server", summary, handler).since(since)
}

/// The server family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "info",
        -1,
        LOADING | STALE,
        "1.0.0",
        "Returns information and statistics about the server.",
        handler!(Info<'_>),
    ),
    CommandSpec::container(
        "config",
        "server",
        "2.0.0",
        "A container for server configuration commands.",
        &[
            spec(
                "get",
                -3,
                ADMIN | NOSCRIPT | LOADING | STALE,
                "2.0.0",
                "Returns the effective values of configuration parameters.",
                handler!(ConfigGet<'_>),
            ),
            spec(
                "set",
                -4,
                ADMIN | NOSCRIPT | LOADING | STALE,
                "2.0.0",
                "Sets configuration parameters in-flight.",
                handler!(ConfigSet<'_>),
            ),
            spec(
                "resetstat",
                2,
                ADMIN | NOSCRIPT | LOADING | STALE,
                "2.0.0",
                "Resets the server's statistics.",
                handler!(ConfigResetStat),
            ),
            spec(
                "help",
                2,
                LOADING | STALE,
                "5.0.0",
                "Returns helpful text about the different subcommands.",
                handler!(ConfigHelp),
            ),
        ],
    ),
    spec(
        "dbsize",
        1,
        READONLY | FAST | ALL_SLOTS,
        "1.0.0",
        "Returns the number of keys in the database.",
        handler!(DbSize),
    ),
    spec(
        "flushdb",
        -1,
        WRITE | ALL_SLOTS,
        "1.0.0",
        "Removes all keys from the current database.",
        handler!(Flush),
    ),
    spec(
        "flushall",
        -1,
        WRITE | ALL_SLOTS,
        "1.0.0",
        "Removes all keys from all databases.",
        handler!(Flush),
    ),
    spec(
        "time",
        1,
        LOADING | STALE | FAST,
        "2.6.0",
        "Returns the server time.",
        handler!(Time),
    ),
    spec(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY,
        "1.0.0",
        "Synchronously saves the database(s) to disk and shuts down the Redis server.",
        handler!(Shutdown),
    ),
];

/// `INFO [section ...]`.
struct Info<'a> {
    sections: Vec<&'a [u8]>,
}

impl<'a> Command<'a> for Info<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Info {
            sections: p.rest().iter().collect(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let text = info::render(ctx.shared, &self.sections);
        ctx.out.verbatim(text.as_bytes());
        Ok(())
    }
}

/// `CONFIG GET parameter [parameter ...]`.
struct ConfigGet<'a> {
    patterns: Vec<&'a [u8]>,
}

impl<'a> Command<'a> for ConfigGet<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ConfigGet {
            patterns: p.rest().iter().collect(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let mut found = ctx.shared.config.get(&self.patterns);
        // `replicaof` is where this node replicates from now (REPLICAOF and
        // failovers change it), as Redis shows it.
        for (name, value) in &mut found {
            if matches!(*name, "replicaof" | "slaveof") {
                *value = ctx
                    .shared
                    .replication
                    .ids()
                    .master
                    .map_or_else(String::new, |m| format!("{} {}", m.host, m.port));
            }
        }
        ctx.out.map(found.len());
        for (name, value) in found {
            ctx.out.bulk(name.as_bytes());
            ctx.out.bulk(value.as_bytes());
        }
        Ok(())
    }
}

/// `CONFIG SET parameter value [parameter value ...]`.
struct ConfigSet<'a> {
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Command<'a> for ConfigSet<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        // Redis answers an odd count (a name without a value) with a syntax error.
        if !p.remaining().is_multiple_of(2) {
            return Err(CommandError::Syntax);
        }
        let mut pairs = Vec::new();
        while let Some(name) = p.try_arg() {
            pairs.push((name, p.arg()?));
        }
        Ok(ConfigSet { pairs })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let changed = ctx
            .shared
            .config
            .set(&self.pairs)
            .map_err(|e| CommandError::err(e.to_string()))?;
        ctx.shared.data.apply_settings();
        if changed.replication {
            let (data, config) = (&ctx.shared.data, &ctx.shared.config);
            ctx.shared
                .replication
                .settings_changed(&data.feed, &data.keyspace, config);
        }
        if changed.memory {
            // A lower limit takes effect at once, as in Redis. Inside EXEC slots
            // may be held; the cron then does it a moment later.
            if !ctx.locks.holds_any() {
                // Running out of keys to evict is not this command's failure.
                let _ = crate::write::make_room(&ctx.shared.data, ctx.now);
            }
        }
        ctx.out.ok();
        Ok(())
    }
}

/// `CONFIG RESETSTAT`.
struct ConfigResetStat;

impl<'a> Command<'a> for ConfigResetStat {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ConfigResetStat)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.shared.stats.reset();
        ctx.out.ok();
        Ok(())
    }
}

/// `CONFIG HELP`.
struct ConfigHelp;

impl<'a> Command<'a> for ConfigHelp {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ConfigHelp)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "CONFIG",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
            ],
        );
        Ok(())
    }
}

/// `DBSIZE`.
struct DbSize;

impl<'a> Command<'a> for DbSize {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(DbSize)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.int(ctx.locks.key_count() as i64);
        Ok(())
    }
}

/// `FLUSHDB|FLUSHALL [ASYNC|SYNC]` (one database, so both are the same).
struct Flush {
    lazy: bool,
}

impl<'a> Command<'a> for Flush {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let lazy = match p.next_keyword() {
            None => false,
            Some(k) if k.as_str() == "ASYNC" => true,
            Some(k) if k.as_str() == "SYNC" => false,
            Some(_) => return Err(CommandError::Syntax),
        };
        Ok(Flush { lazy })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        // As Redis 7: only the watchers of keys that existed are touched.
        for key in ctx.shared.data.watches.keys() {
            let slot = crate::keyspace::key_slot(&key);
            if ctx.locks.with_slot(slot, |t| t.contains(&key, ctx.now)) {
                ctx.session.changes.touch(&key);
            }
        }
        let removed = ctx.locks.flush(self.lazy);
        ctx.session.changes.count(removed as u64 + 1);
        ctx.out.ok();
        Ok(())
    }
}

/// `TIME`.
struct Time;

impl<'a> Command<'a> for Time {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Time)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let us = ctx.shared.clock.now_us();
        ctx.out.array(2);
        ctx.out.bulk_int((us / 1_000_000) as i64);
        ctx.out.bulk_int((us % 1_000_000) as i64);
        Ok(())
    }
}

/// `SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]`. ringkv keeps no data on disk, so
/// SAVE has nothing to write; shutdown is immediate, so there is nothing to abort.
struct Shutdown {
    abort: bool,
    nosave: bool,
}

impl<'a> Command<'a> for Shutdown {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (mut save, mut nosave, mut abort) = (false, false, false);
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "SAVE" => save = true,
                "NOSAVE" => nosave = true,
                "NOW" | "FORCE" => {}
                "ABORT" => abort = true,
                _ => return Err(CommandError::Syntax),
            }
        }
        if (save && nosave) || (abort && (save || nosave)) {
            return Err(CommandError::Syntax);
        }
        Ok(Shutdown { abort, nosave })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if self.abort {
            return Err(CommandError::err("No shutdown in progress."));
        }
        // As Redis: while a script is busy, only SHUTDOWN NOSAVE stops.
        if let Some(eval) = ctx.shared.busy_scripts.busy().filter(|_| !self.nosave) {
            return Err(CommandError::Busy { eval });
        }
        tracing::warn!(client = ctx.session.handle.id, "user requested shutdown");
        ctx.shared.shutdown.cancel();
        // Like Redis, a successful SHUTDOWN never replies: the connection just closes.
        ctx.session.close_after_reply = true;
        Ok(())
    }
}
