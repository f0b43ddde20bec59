//! `COMMAND` and its subcommands: what clients learn about the command table
//! (redis-cli's hints come from `COMMAND DOCS`).

use super::client::write_help;
use super::table::{flag, registry, Command as Cmd, CommandSpec, Handler};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::protocol::{Args, Reply};
use crate::util::glob::glob_match;

const fn sub(
    name: &'static str,
    arity: i32,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(
        name,
        arity,
        flag::LOADING | flag::STALE,
        "server",
        summary,
        handler,
    )
    .since("2.8.13")
}

/// A container command that also runs without a subcommand (`COMMAND` alone lists
/// everything), so it has both a handler and subcommands.
pub const COMMANDS: &[CommandSpec] = &[CommandSpec {
    arity: -1,
    flags: flag::LOADING | flag::STALE,
    handler: handler!(All),
    ..CommandSpec::container(
        "command",
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
        &[
            sub("count", 2, "Returns a count of commands.", handler!(Count)),
            sub(
                "info",
                -2,
                "Returns information about one, multiple or all commands.",
                handler!(Info<'_>),
            ),
            sub(
                "docs",
                -2,
                "Returns documentary information about one, multiple or all commands.",
                handler!(Docs<'_>),
            ),
            sub(
                "list",
                -2,
                "Returns a list of command names.",
                handler!(List<'_>),
            ),
            sub(
                "getkeys",
                -3,
                "Extracts the key names from an arbitrary command.",
                handler!(GetKeys<'_>),
            ),
            sub(
                "help",
                2,
                "Returns helpful text about the different subcommands.",
                handler!(Help),
            ),
        ],
    )
}];

fn write_info(out: &mut Reply, cmd: &Cmd) {
    let spec = cmd.spec;
    out.array(10);
    out.bulk(cmd.full_name.as_bytes());
    out.int(i64::from(spec.arity));
    let mut flags: Vec<&str> = flag::NAMES
        .iter()
        .filter(|(f, _)| spec.flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    if spec.keys.movable() {
        let at = flags.iter().position(|&f| f == "allow_busy");
        flags.insert(at.unwrap_or(flags.len()), "movablekeys");
    }
    out.set(flags.len());
    for f in flags {
        out.simple(f);
    }
    out.int(i64::from(spec.keys.first));
    out.int(i64::from(spec.keys.last));
    out.int(i64::from(spec.keys.step));
    let cats = cmd.acl_categories();
    out.set(cats.len());
    for c in cats {
        out.simple(c);
    }
    out.array(0);
    write_key_specs(out, spec);
    let subs: Vec<&Cmd> = registry().subcommands(cmd).collect();
    out.array(subs.len());
    for sub in subs {
        write_info(out, sub);
    }
}

fn write_key_specs(out: &mut Reply, spec: &CommandSpec) {
    let k = spec.keys;
    if k.streams_option {
        write_streams_key_spec(out, spec);
        return;
    }
    if k.first == 0 {
        out.array(0);
        return;
    }
    let stores = match k.stores_from {
        0 => &[][..],
        _ => &["STORE", "STOREDIST"][..],
    };
    out.array(1 + stores.len());
    out.map(3);
    out.bulk(b"flags");
    out.array(1);
    // GEORADIUS only reads its first key: it writes those of its options.
    out.simple(if k.not_key {
        "not_key"
    } else if spec.flags & flag::WRITE != 0 && stores.is_empty() {
        "RW"
    } else {
        "RO"
    });
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"index");
    out.bulk(b"spec");
    out.map(1);
    out.bulk(b"index");
    out.int(i64::from(k.first));
    let lastkey = if k.last < 0 { k.last } else { k.last - k.first };
    find_keys_range(out, i64::from(lastkey), i64::from(k.step), 0);
    // The keys after GEORADIUS's STORE and STOREDIST options.
    for keyword in stores {
        out.map(3);
        out.bulk(b"flags");
        out.array(2);
        out.simple("OW");
        out.simple("update");
        begin_search_keyword(out, keyword, i64::from(k.stores_from));
        find_keys_range(out, 0, 1, 0);
    }
}

/// XREAD's key spec: after the `STREAMS` keyword, the first half of the rest.
fn write_streams_key_spec(out: &mut Reply, spec: &CommandSpec) {
    out.array(1);
    out.map(3);
    out.bulk(b"flags");
    let flags: &[&str] = match spec.flags & flag::WRITE != 0 {
        true => &["RW", "access", "update"],
        false => &["RO", "access"],
    };
    out.array(flags.len());
    for f in flags {
        out.simple(f);
    }
    begin_search_keyword(out, "STREAMS", 1);
    // The keys are the first of the two halves after the keyword.
    find_keys_range(out, -1, 1, 2);
}

/// A key spec's `begin_search` entry of type `keyword`.
fn begin_search_keyword(out: &mut Reply, keyword: &str, startfrom: i64) {
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"keyword");
    out.bulk(b"spec");
    out.map(2);
    out.bulk(b"keyword");
    out.bulk(keyword.as_bytes());
    out.bulk(b"startfrom");
    out.int(startfrom);
}

/// A key spec's `find_keys` entry of type `range`.
fn find_keys_range(out: &mut Reply, lastkey: i64, keystep: i64, limit: i64) {
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    out.bulk(b"range");
    out.bulk(b"spec");
    out.map(3);
    out.bulk(b"lastkey");
    out.int(lastkey);
    out.bulk(b"keystep");
    out.int(keystep);
    out.bulk(b"limit");
    out.int(limit);
}

fn write_docs(out: &mut Reply, cmd: &Cmd) {
    let spec = cmd.spec;
    let subs: Vec<&Cmd> = registry().subcommands(cmd).collect();
    out.map(if subs.is_empty() { 3 } else { 4 });
    out.bulk(b"summary");
    out.bulk(spec.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(spec.since.as_bytes());
    out.bulk(b"group");
    out.bulk(spec.group.as_bytes());
    if !subs.is_empty() {
        out.bulk(b"subcommands");
        out.map(subs.len());
        for sub in subs {
            out.bulk(sub.full_name.as_bytes());
            write_docs(out, sub);
        }
    }
}

/// `COMMAND`: info on every command.
struct All;

impl<'a> Command<'a> for All {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(All)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let all: Vec<&Cmd> = registry().top_level().collect();
        ctx.out.array(all.len());
        for cmd in all {
            write_info(ctx.out, cmd);
        }
        Ok(())
    }
}

/// `COMMAND COUNT`.
struct Count;

impl<'a> Command<'a> for Count {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Count)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        ctx.out.int(registry().top_level().count() as i64);
        Ok(())
    }
}

/// Finds a command by `name` or `container|sub`.
fn find(name: &[u8]) -> Option<&'static Cmd> {
    let reg = registry();
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => reg
            .lookup(&name[..bar])
            .and_then(|parent| reg.lookup_sub(parent, &name[bar + 1..])),
        None => reg.lookup(name),
    }
}

/// `COMMAND INFO [name ...]`.
struct Info<'a> {
    names: Args<'a>,
}

impl<'a> Command<'a> for Info<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Info { names: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if self.names.is_empty() {
            return All.apply(ctx);
        }
        ctx.out.array(self.names.len());
        for name in self.names.iter() {
            match find(name) {
                Some(cmd) => write_info(ctx.out, cmd),
                None => ctx.out.null_array(),
            }
        }
        Ok(())
    }
}

/// `COMMAND DOCS [name ...]`.
struct Docs<'a> {
    names: Args<'a>,
}

impl<'a> Command<'a> for Docs<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Docs { names: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let cmds: Vec<&Cmd> = if self.names.is_empty() {
            registry().top_level().collect()
        } else {
            self.names.iter().filter_map(find).collect()
        };
        ctx.out.map(cmds.len());
        for cmd in cmds {
            ctx.out.bulk(cmd.full_name.as_bytes());
            write_docs(ctx.out, cmd);
        }
        Ok(())
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`.
struct List<'a> {
    filter: Option<(&'static str, &'a [u8])>,
}

impl<'a> Command<'a> for List<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        if p.remaining() == 0 {
            return Ok(List { filter: None });
        }
        if !p.eat("FILTERBY") || p.remaining() != 2 {
            return Err(CommandError::Syntax);
        }
        let kind = match p.next_keyword().map(|k| k.as_str().to_string()).as_deref() {
            Some("MODULE") => "module",
            Some("ACLCAT") => "aclcat",
            Some("PATTERN") => "pattern",
            _ => return Err(CommandError::Syntax),
        };
        Ok(List {
            filter: Some((kind, p.arg()?)),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let names: Vec<&str> = registry()
            .all()
            .filter(|cmd| match self.filter {
                None => true,
                Some(("module", _)) => false,
                Some(("aclcat", cat)) => {
                    let cat = String::from_utf8_lossy(cat).to_ascii_lowercase();
                    cmd.acl_categories().iter().any(|c| c[1..] == cat)
                }
                Some((_, pattern)) => glob_match(pattern, cmd.full_name.as_bytes(), true),
            })
            .map(|cmd| cmd.full_name.as_str())
            .collect();
        ctx.out.array(names.len());
        for name in names {
            ctx.out.bulk(name.as_bytes());
        }
        Ok(())
    }
}

/// `COMMAND GETKEYS command [arg ...]`.
struct GetKeys<'a> {
    request: Args<'a>,
}

impl<'a> Command<'a> for GetKeys<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(GetKeys { request: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let reg = registry();
        let name = self.request.get(0).unwrap_or_default();
        let mut cmd = reg
            .lookup(name)
            .ok_or_else(|| CommandError::err("Invalid command specified"))?;
        if cmd.is_container() {
            if let Some(sub) = self.request.get(1).and_then(|s| reg.lookup_sub(cmd, s)) {
                cmd = sub;
            }
        }
        if !cmd.arity_ok(self.request.len()) {
            return Err(CommandError::err(
                "Invalid number of arguments specified for command",
            ));
        }
        // Shard channels route like keys but are not keys: Redis lists none.
        let spec = cmd.spec.keys;
        let keys: Vec<&[u8]> = spec
            .positions(self.request)
            .filter(|_| !spec.not_key)
            .filter_map(|i| self.request.get(i))
            .collect();
        if keys.is_empty() {
            return Err(CommandError::err("The command has no key arguments"));
        }
        ctx.out.array(keys.len());
        for key in keys {
            ctx.out.bulk(key);
        }
        Ok(())
    }
}

/// `COMMAND HELP`.
struct Help;

impl<'a> Command<'a> for Help {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Help)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        write_help(
            ctx,
            "COMMAND",
            &[
                "(no subcommand)",
                "    Return details about all commands.",
                "COUNT",
                "    Return the total number of commands in this server.",
                "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
                "    Return a list of all commands in this server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple commands.",
                "GETKEYS <full-command>",
                "    Return the keys from a full command.",
            ],
        );
        Ok(())
    }
}
