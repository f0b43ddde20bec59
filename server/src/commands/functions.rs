//! Redis 7 functions: `FUNCTION LOAD | LIST | DELETE | FLUSH | DUMP |
//! RESTORE | STATS | KILL | HELP`, `FCALL` and `FCALL_RO`.
//!
//! A library is checked by loading it into this worker's interpreter; other
//! workers load it on its first call there. Changes to the libraries reach
//! replicas as their requests, beside the keyspace's records.

use super::client::write_help;
use super::scripting::{flush_mode, kill_busy, may_start, ScriptHost};
use super::table::{self, flag::*, CommandSpec, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::protocol::Args;
use crate::scripting::functions::{parse_header, read_dump, RestorePolicy, ENGINE};
use crate::scripting::{with_engine, Call, FunctionInfo, Library, ScriptFlags};
use crate::util::glob::glob_match;
use std::time::Duration;

const fn fcall(name: &'static str, flags: u32, summary: &'static str) -> CommandSpec {
    CommandSpec::new(
        name,
        -3,
        flags | NOSCRIPT | STALE | SCRIPT,
        "scripting",
        summary,
        handler!(Fcall<'_>),
    )
    .keys(KeySpec::counted(2))
    .since("7.0.0")
}

const fn sub(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: Option<table::Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags | NOSCRIPT, "scripting", summary, handler).since("7.0.0")
}

/// The functions family.
pub const COMMANDS: &[CommandSpec] = &[
    fcall("fcall", MAY_REPLICATE | LOCKING, "Invokes a function."),
    fcall("fcall_ro", READONLY, "Invokes a read-only function."),
    CommandSpec::container(
        "function",
        "scripting",
        "7.0.0",
        "A container for function commands.",
        &[
            sub(
                "load",
                -3,
                WRITE | DENYOOM,
                "Creates a library.",
                handler!(FunctionLoad<'_>),
            ),
            sub(
                "list",
                -2,
                0,
                "Returns information about all libraries.",
                handler!(FunctionList<'_>),
            ),
            sub(
                "delete",
                3,
                WRITE,
                "Deletes a library and its functions.",
                handler!(FunctionDelete<'_>),
            ),
            sub(
                "flush",
                -2,
                WRITE,
                "Deletes all libraries and functions.",
                handler!(FunctionFlush),
            ),
            sub(
                "dump",
                2,
                0,
                "Dumps all libraries into a serialized binary payload.",
                handler!(FunctionDump),
            ),
            sub(
                "restore",
                -3,
                WRITE | DENYOOM,
                "Restores all libraries from a payload.",
                handler!(FunctionRestore<'_>),
            ),
            sub(
                "stats",
                2,
                ALLOW_BUSY,
                "Returns information about a function during execution.",
                handler!(FunctionStats),
            ),
            sub(
                "kill",
                2,
                ALLOW_BUSY,
                "Terminates a function during execution.",
                handler!(FunctionKill),
            ),
            sub(
                "help",
                2,
                LOADING | STALE,
                "Returns helpful text about the different subcommands.",
                handler!(FunctionHelp),
            ),
        ],
    ),
];

/// How long `FUNCTION LOAD` lets a library's code run, as Redis: loading
/// should only register functions. A master's stream and `FUNCTION
/// RESTORE` load what was accepted once already, without a limit.
const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// Loads `code` (a whole library, header included) into this worker's
/// interpreter as a new version, and describes it.
fn load(
    ctx: &Ctx<'_, '_>,
    code: &[u8],
    timeout: Option<Duration>,
) -> Result<Library, CommandError> {
    let (name, start) = parse_header(code).map_err(CommandError::Other)?;
    let id = ctx.shared.functions.next_id();
    let functions = with_engine(|engine| engine.load_library(&code[start..], id, timeout))
        .map_err(CommandError::Other)?;
    Ok(Library {
        name,
        code: code.into(),
        id,
        functions,
    })
}

/// `FCALL function numkeys [key ...] [arg ...]` and `FCALL_RO`.
struct Fcall<'a> {
    function: String,
    numkeys: &'a [u8],
    rest: Args<'a>,
}

impl<'a> Command<'a> for Fcall<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Fcall {
            function: String::from_utf8_lossy(p.arg()?).into_owned(),
            numkeys: p.arg()?,
            rest: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let shared = ctx.shared;
        // As Redis: the function is looked up before its keys are counted.
        let (library, index) = shared
            .functions
            .find(&self.function)
            .ok_or_else(|| CommandError::err("Function not found"))?;
        let numkeys = std::str::from_utf8(self.numkeys)
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(|| CommandError::err("Bad number of keys provided"))?;
        if numkeys > self.rest.len() as i64 {
            return Err(CommandError::err(
                "Number of keys can't be greater than number of args",
            ));
        }
        if numkeys < 0 {
            return Err(CommandError::err("Number of keys can't be negative"));
        }
        let (keys, args) = self.rest.split_at(numkeys as usize);
        let flags = library.functions[index].flags;
        let read_only_command = ctx.name().ends_with("_ro");
        may_start(ctx, flags, read_only_command)?;
        let call = Call {
            name: &self.function,
            keys,
            args,
        };
        let mut host = ScriptHost::new(
            ctx,
            read_only_command || flags.has(ScriptFlags::NO_WRITES),
            flags,
            &call,
        );
        with_engine(|engine| {
            if !engine.has_function(&self.function, library.id) {
                let (_, start) = parse_header(&library.code).map_err(CommandError::Other)?;
                engine
                    .load_library(&library.code[start..], library.id, None)
                    .map_err(CommandError::Other)?;
            }
            engine.run_function(&call, &mut host.host, host.out);
            Ok(())
        })
    }
}

/// `FUNCTION LOAD [REPLACE] code`.
struct FunctionLoad<'a> {
    replace: bool,
    code: &'a [u8],
    request: Args<'a>,
}

impl<'a> Command<'a> for FunctionLoad<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut replace = false;
        while p.remaining() > 1 {
            let option = p.arg()?;
            if !option.eq_ignore_ascii_case(b"REPLACE") {
                return Err(CommandError::err(format!(
                    "Unknown option given: {}",
                    String::from_utf8_lossy(option)
                )));
            }
            replace = true;
        }
        let code = p
            .arg()
            .map_err(|_| CommandError::err("Function code is missing"))?;
        Ok(FunctionLoad {
            replace,
            code,
            request: p.all(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let timeout = (!ctx.session.master_link).then_some(LOAD_TIMEOUT);
        let library = load(ctx, self.code, timeout)?;
        let name = library.name.clone();
        ctx.shared
            .functions
            .add(library, self.replace)
            .map_err(CommandError::Other)?;
        let request: Vec<&[u8]> = self.request.iter().collect();
        crate::write::beside_keyspace(&ctx.shared.data, &request);
        ctx.out.bulk(name.as_bytes());
        Ok(())
    }
}

/// `FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]`.
struct FunctionList<'a> {
    pattern: Option<&'a [u8]>,
    with_code: bool,
}

impl<'a> Command<'a> for FunctionList<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (mut pattern, mut with_code) = (None, false);
        while let Some(arg) = p.try_arg() {
            if !with_code && arg.eq_ignore_ascii_case(b"WITHCODE") {
                with_code = true;
            } else if pattern.is_none() && arg.eq_ignore_ascii_case(b"LIBRARYNAME") {
                pattern = Some(
                    p.arg()
                        .map_err(|_| CommandError::err("library name argument was not given"))?,
                );
            } else {
                return Err(CommandError::err(format!(
                    "Unknown argument {}",
                    String::from_utf8_lossy(arg)
                )));
            }
        }
        Ok(FunctionList { pattern, with_code })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let libraries: Vec<_> = ctx
            .shared
            .functions
            .list()
            .into_iter()
            .filter(|l| {
                self.pattern
                    .is_none_or(|p| glob_match(p, l.name.as_bytes(), false))
            })
            .collect();
        let out = &mut *ctx.out;
        out.array(libraries.len());
        for library in &libraries {
            out.map(if self.with_code { 4 } else { 3 });
            out.bulk(b"library_name");
            out.bulk(library.name.as_bytes());
            out.bulk(b"engine");
            out.bulk(ENGINE.as_bytes());
            out.bulk(b"functions");
            out.array(library.functions.len());
            for function in &library.functions {
                write_function(out, function);
            }
            if self.with_code {
                out.bulk(b"library_code");
                out.bulk(&library.code);
            }
        }
        Ok(())
    }
}

fn write_function(out: &mut crate::protocol::Reply, function: &FunctionInfo) {
    out.map(3);
    out.bulk(b"name");
    out.bulk(function.name.as_bytes());
    out.bulk(b"description");
    match &function.description {
        Some(text) => out.bulk(text.as_bytes()),
        None => out.null(),
    }
    out.bulk(b"flags");
    let flags: Vec<&str> = ScriptFlags::NAMES
        .iter()
        .filter(|(_, bit)| function.flags.has(*bit))
        .map(|(name, _)| *name)
        .collect();
    out.set(flags.len());
    for flag in flags {
        out.simple(flag);
    }
}

/// `FUNCTION DELETE library`.
struct FunctionDelete<'a> {
    name: &'a [u8],
    request: Args<'a>,
}

impl<'a> Command<'a> for FunctionDelete<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(FunctionDelete {
            name: p.arg()?,
            request: p.all(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if !ctx
            .shared
            .functions
            .delete(&String::from_utf8_lossy(self.name))
        {
            return Err(CommandError::err("Library not found"));
        }
        let request: Vec<&[u8]> = self.request.iter().collect();
        crate::write::beside_keyspace(&ctx.shared.data, &request);
        ctx.out.ok();
        Ok(())
    }
}

/// `FUNCTION FLUSH [ASYNC|SYNC]`.
struct FunctionFlush;

impl<'a> Command<'a> for FunctionFlush {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        flush_mode(p, "FUNCTION FLUSH only supports SYNC|ASYNC option")?;
        Ok(FunctionFlush)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.shared.functions.flush();
        crate::write::beside_keyspace(&ctx.shared.data, &[b"FUNCTION", b"FLUSH"]);
        ctx.out.ok();
        Ok(())
    }
}

/// `FUNCTION DUMP`.
struct FunctionDump;

impl<'a> Command<'a> for FunctionDump {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(FunctionDump)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.bulk(&ctx.shared.functions.dump());
        Ok(())
    }
}

/// `FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]`.
struct FunctionRestore<'a> {
    payload: &'a [u8],
    policy: RestorePolicy,
    request: Args<'a>,
}

impl<'a> Command<'a> for FunctionRestore<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        if p.remaining() > 2 {
            return Err(p.subcommand_error());
        }
        let payload = p.arg()?;
        let policy =
            match p.try_arg() {
                None => RestorePolicy::Append,
                Some(word) if word.eq_ignore_ascii_case(b"FLUSH") => RestorePolicy::Flush,
                Some(word) if word.eq_ignore_ascii_case(b"APPEND") => RestorePolicy::Append,
                Some(word) if word.eq_ignore_ascii_case(b"REPLACE") => RestorePolicy::Replace,
                Some(_) => return Err(CommandError::err(
                    "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                )),
            };
        Ok(FunctionRestore {
            payload,
            policy,
            request: p.all(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let codes = read_dump(self.payload).map_err(CommandError::Other)?;
        let libraries = codes
            .into_iter()
            .map(|code| load(ctx, code, None))
            .collect::<Result<Vec<_>, _>>()?;
        ctx.shared
            .functions
            .restore(libraries, self.policy)
            .map_err(CommandError::Other)?;
        let request: Vec<&[u8]> = self.request.iter().collect();
        crate::write::beside_keyspace(&ctx.shared.data, &request);
        ctx.out.ok();
        Ok(())
    }
}

/// `FUNCTION STATS`.
struct FunctionStats;

impl<'a> Command<'a> for FunctionStats {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(FunctionStats)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let running = ctx.shared.busy_scripts.oldest();
        if running.as_ref().is_some_and(|script| script.eval) {
            return Err(CommandError::Busy { eval: true });
        }
        let (libraries, functions) = ctx.shared.functions.counts();
        let out = &mut *ctx.out;
        out.map(2);
        out.bulk(b"running_script");
        match running {
            None => out.null(),
            Some(script) => {
                out.map(3);
                out.bulk(b"name");
                out.bulk(script.name.as_bytes());
                out.bulk(b"command");
                out.array(script.command.len());
                for arg in &script.command {
                    out.bulk(arg);
                }
                out.bulk(b"duration_ms");
                out.int(script.started.elapsed().as_millis() as i64);
            }
        }
        out.bulk(b"engines");
        out.map(1);
        out.bulk(ENGINE.as_bytes());
        out.map(2);
        out.bulk(b"libraries_count");
        out.int(libraries as i64);
        out.bulk(b"functions_count");
        out.int(functions as i64);
        Ok(())
    }
}

/// `FUNCTION KILL`.
struct FunctionKill;

impl<'a> Command<'a> for FunctionKill {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(FunctionKill)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        kill_busy(ctx, false)
    }
}

/// `FUNCTION HELP`.
struct FunctionHelp;

impl<'a> Command<'a> for FunctionHelp {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(FunctionHelp)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "FUNCTION",
            &[
                "LOAD [REPLACE] <FUNCTION CODE>",
                "    Create a new library with the given library name and code.",
                "DELETE <LIBRARY NAME>",
                "    Delete the given library.",
                "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
                "    Return general information on all the libraries.",
                "FLUSH [ASYNC|SYNC]",
                "    Delete all the libraries.",
                "STATS",
                "    Return information about the current function running.",
                "KILL",
                "    Kill the current running function.",
                "DUMP",
                "    Return a serialized payload representing the current libraries.",
                "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
                "    Restore the libraries represented by the given payload.",
            ],
        );
        Ok(())
    }
}
