//! Introspection of single keys: `OBJECT` and `MEMORY` subcommands.

use super::client::write_help;
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};

const KEY2: KeySpec = KeySpec::range(2, 2, 1);

const fn sub(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    group: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, group, summary, handler)
        .keys(keys)
        .since("4.0.0")
}

/// The object family.
pub const COMMANDS: &[CommandSpec] = &[
    CommandSpec::container(
        "object",
        "generic",
        "2.2.3",
        "A container for object introspection commands.",
        &[
            sub(
                "encoding",
                3,
                READONLY,
                KEY2,
                "generic",
                "Returns the internal encoding of a Redis object.",
                handler!(Object<'_>),
            ),
            sub(
                "freq",
                3,
                READONLY,
                KEY2,
                "generic",
                "Returns the logarithmic access frequency counter of a Redis object.",
                handler!(Object<'_>),
            ),
            sub(
                "idletime",
                3,
                READONLY,
                KEY2,
                "generic",
                "Returns the time since the last access to a Redis object.",
                handler!(Object<'_>),
            ),
            sub(
                "refcount",
                3,
                READONLY,
                KEY2,
                "generic",
                "Returns the reference count of a value of a key.",
                handler!(Object<'_>),
            ),
            sub(
                "help",
                2,
                LOADING | STALE,
                KeySpec::NONE,
                "generic",
                "Returns helpful text about the different subcommands.",
                handler!(ObjectHelp),
            ),
        ],
    ),
    CommandSpec::container(
        "memory",
        "server",
        "4.0.0",
        "A container for memory diagnostics commands.",
        &[
            sub(
                "usage",
                -3,
                READONLY,
                KEY2,
                "server",
                "Estimates the memory usage of a key.",
                handler!(MemoryUsage<'_>),
            ),
            sub(
                "help",
                2,
                LOADING | STALE,
                KeySpec::NONE,
                "server",
                "Returns helpful text about the different subcommands.",
                handler!(MemoryHelp),
            ),
        ],
    ),
];

/// `OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key`.
struct Object<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for Object<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Object { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let name = ctx.name();
        let table = ctx.locks.table(self.key);
        let lfu = table.tracking().lfu;
        let Some(entry) = table.peek(self.key, ctx.now) else {
            ctx.out.null();
            return Ok(());
        };
        match name {
            "encoding" => ctx.out.bulk(entry.value.encoding().as_bytes()),
            "refcount" => ctx.out.int(1),
            "idletime" if !lfu => {
                let idle = table.idle_seconds(self.key, ctx.now).unwrap_or(0);
                ctx.out.int(idle as i64);
            }
            "freq" if lfu => {
                let freq = table.frequency(self.key, ctx.now).unwrap_or(0);
                ctx.out.int(i64::from(freq));
            }
            "idletime" => {
                return Err(CommandError::err(
                    "An LFU maxmemory policy is selected, idle time not tracked. \
                     Please note that when switching between policies at runtime LRU and LFU \
                     data will take some time to adjust.",
                ))
            }
            _ => {
                return Err(CommandError::err(
                    "An LFU maxmemory policy is not selected, access frequency not tracked. \
                     Please note that when switching between policies at runtime LRU and LFU \
                     data will take some time to adjust.",
                ))
            }
        }
        Ok(())
    }
}

/// `OBJECT HELP`.
struct ObjectHelp;

impl<'a> Command<'a> for ObjectHelp {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ObjectHelp)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "OBJECT",
            &[
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
            ],
        );
        Ok(())
    }
}

/// `MEMORY USAGE key [SAMPLES count]`. The figure is exact for every type ringkv
/// stores, so SAMPLES is accepted and has nothing to change.
struct MemoryUsage<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for MemoryUsage<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        if p.eat("SAMPLES") && p.next_i64()? < 0 {
            return Err(CommandError::Syntax);
        }
        Ok(MemoryUsage { key })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        match ctx.locks.table(self.key).memory_usage(self.key, ctx.now) {
            Some(bytes) => ctx.out.int(bytes as i64),
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// `MEMORY HELP`.
struct MemoryHelp;

impl<'a> Command<'a> for MemoryHelp {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(MemoryHelp)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "MEMORY",
            &[
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
            ],
        );
        Ok(())
    }
}
