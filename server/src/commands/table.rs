//! The command table: every command's name, arity, flags, key positions and
//! documentation, and the handler that runs it.
//!
//! Each family module declares a `COMMANDS` slice of [`CommandSpec`]; the registry
//! flattens them (subcommands included) and numbers them, so per-command counters
//! are plain array slots.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::error::CommandResult;
use super::Ctx;
use crate::protocol::Args;

/// Runs a command: parses `args` (the whole request) and replies through the context.
pub type Handler = fn(&mut Ctx<'_, '_>, Args<'_>) -> CommandResult;

/// Command flags, as `COMMAND INFO` names them.
pub mod flag {
    /// Modifies the dataset.
    pub const WRITE: u32 = 1 << 0;
    /// Only reads the dataset.
    pub const READONLY: u32 = 1 << 1;
    /// May grow memory use (refused when over `maxmemory`).
    pub const DENYOOM: u32 = 1 << 2;
    /// Administrative.
    pub const ADMIN: u32 = 1 << 3;
    /// Constant or logarithmic time.
    pub const FAST: u32 = 1 << 4;
    /// Allowed before authentication.
    pub const NO_AUTH: u32 = 1 << 5;
    /// Allowed while loading.
    pub const LOADING: u32 = 1 << 6;
    /// Allowed on a stale replica.
    pub const STALE: u32 = 1 << 7;
    /// Not allowed in scripts.
    pub const NOSCRIPT: u32 = 1 << 8;
    /// Allowed while the server is busy.
    pub const ALLOW_BUSY: u32 = 1 << 9;
    /// Not allowed inside MULTI.
    pub const NO_MULTI: u32 = 1 << 10;
    /// Reads a random or time-dependent result.
    pub const SKIP_SLOWLOG: u32 = 1 << 11;
    /// May block the client.
    pub const BLOCKING: u32 = 1 << 12;
    /// Walks or changes the whole keyspace (a transaction containing it holds every
    /// slot). Internal: not shown by `COMMAND INFO`.
    pub const ALL_SLOTS: u32 = 1 << 13;
    /// Runs at once even inside `MULTI` (transaction control). Internal.
    pub const NO_QUEUE: u32 = 1 << 14;
    /// Allowed while a RESP2 client is subscribed. Internal.
    pub const PUBSUB_CONTEXT: u32 = 1 << 15;
    /// A pub/sub command (the `@pubsub` category). Cluster clients route the
    /// commands with this flag by their channel argument (redis-py's
    /// RedisCluster looks for it in `COMMAND`).
    pub const PUBSUB: u32 = 1 << 16;
    /// May change a lock or grant a fill lease: its unit opens the lock gate
    /// (docs/CLUSTER.md, L1). Internal.
    pub const LOCKING: u32 = 1 << 17;
    /// Runs on a slot this node imports without a preceding `ASKING`
    /// (`RESTORE-ASKING`, docs/CLUSTER.md M3, M4).
    pub const ASKING: u32 = 1 << 18;
    /// Runs here on a slot this node holds open (`migrating` or
    /// `importing`), whoever owns it: `MIGRATE`, as Redis (docs/CLUSTER.md
    /// M4). Internal.
    pub const OPEN_SLOTS: u32 = 1 << 19;
    /// May write though not a write itself (`EVAL`): paused with writes,
    /// refused in read-only scripts.
    pub const MAY_REPLICATE: u32 = 1 << 20;
    /// Runs a Lua script, which may run long: its batch runs on a stack of
    /// its own, so the script can be suspended (`util::suspend`). Internal.
    pub const SCRIPT: u32 = 1 << 21;

    /// Names in `COMMAND INFO` order (Redis's; `movablekeys`, which is not a
    /// flag here, comes right before `allow_busy`).
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (ASKING, "asking"),
        (MAY_REPLICATE, "may_replicate"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

/// Where a command's keys are: Redis's legacy (first, last, step) range, plus
/// optionally a count argument followed by that many keys (`LMPOP numkeys key ...`,
/// `ZUNIONSTORE dest numkeys key ...`). The range may name shard channels
/// instead of keys ([`KeySpec::channels`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Position of the first key of the range (0: no range).
    pub first: i32,
    /// Position of the last key of the range; -1 is the last argument.
    pub last: i32,
    /// Distance between keys.
    pub step: i32,
    /// Position of a key count followed by the keys (0: none).
    pub numkeys: i32,
    /// The range holds shard channels, not keys (Redis's `not_key` key spec):
    /// they route and lock by slot like keys, but `COMMAND GETKEYS` skips them.
    pub not_key: bool,
    /// `MIGRATE`'s rule: when the key at `first` is empty, the keys are those
    /// after the `KEYS` option instead (Redis's `migrateGetKeys`).
    pub keys_option: bool,
    /// `SORT`'s rule: the argument after a `STORE` option is a key too (Redis's
    /// `sortGetKeys`).
    pub store_option: bool,
    /// `XREAD`'s rule: the keys are the first half of the arguments after
    /// `STREAMS` (Redis's `xreadGetKeys`).
    pub streams_option: bool,
    /// `GEORADIUS`'s rule (0: none): from this position on, the argument
    /// after the first `STORE` and the one after the first `STOREDIST` are
    /// keys too (Redis's keyword key specs), and so is the one the command
    /// stores into when a repeated option makes that another.
    pub stores_from: i32,
}

impl KeySpec {
    /// A command without keys.
    pub const NONE: KeySpec = KeySpec {
        first: 0,
        last: 0,
        step: 0,
        numkeys: 0,
        not_key: false,
        keys_option: false,
        store_option: false,
        streams_option: false,
        stores_from: 0,
    };
    /// One key, the first argument.
    pub const ONE: KeySpec = KeySpec {
        first: 1,
        last: 1,
        step: 1,
        numkeys: 0,
        not_key: false,
        keys_option: false,
        store_option: false,
        streams_option: false,
        stores_from: 0,
    };
    /// Every argument is a key.
    pub const ALL: KeySpec = KeySpec {
        first: 1,
        last: -1,
        step: 1,
        numkeys: 0,
        not_key: false,
        keys_option: false,
        store_option: false,
        streams_option: false,
        stores_from: 0,
    };

    /// Keys from `first` to `last` every `step`.
    pub const fn range(first: i32, last: i32, step: i32) -> KeySpec {
        KeySpec {
            first,
            last,
            step,
            numkeys: 0,
            not_key: false,
            keys_option: false,
            store_option: false,
            streams_option: false,
            stores_from: 0,
        }
    }

    /// Shard channels from `first` to `last` every `step`: in a cluster they
    /// must share a slot this node serves, as keys must (`SSUBSCRIBE`,
    /// `SPUBLISH`).
    pub const fn channels(first: i32, last: i32, step: i32) -> KeySpec {
        KeySpec {
            not_key: true,
            ..KeySpec::range(first, last, step)
        }
    }

    /// Keys counted by the argument at `at`, following it.
    pub const fn counted(at: i32) -> KeySpec {
        KeySpec {
            first: 0,
            last: 0,
            step: 0,
            numkeys: at,
            not_key: false,
            keys_option: false,
            store_option: false,
            streams_option: false,
            stores_from: 0,
        }
    }

    /// The same, plus keys counted by the argument at `at`.
    pub const fn and_counted(mut self, at: i32) -> KeySpec {
        self.numkeys = at;
        self
    }

    /// The same, plus the keys of `STORE` and `STOREDIST` options from
    /// position `from` on (see [`KeySpec::stores_from`]).
    pub const fn and_stores_from(mut self, from: i32) -> KeySpec {
        self.stores_from = from;
        self
    }

    /// `MIGRATE`'s keys: the one at position 3, or those after `KEYS`.
    pub const MIGRATE: KeySpec = KeySpec {
        keys_option: true,
        ..KeySpec::range(3, 3, 1)
    };

    /// `SORT`'s keys: the first argument, and the destination of `STORE`.
    pub const SORT: KeySpec = KeySpec {
        store_option: true,
        ..KeySpec::ONE
    };

    /// `XREAD`'s and `XREADGROUP`'s keys: those named after `STREAMS`.
    pub const STREAMS: KeySpec = KeySpec {
        streams_option: true,
        ..KeySpec::NONE
    };

    /// True when the key positions depend on the arguments (Redis's `movablekeys`).
    pub fn movable(self) -> bool {
        self.numkeys > 0
            || self.keys_option
            || self.store_option
            || self.streams_option
            || self.stores_from > 0
    }

    /// Positions of the keys (or shard channels) in `args` (the whole request).
    pub fn positions(self, args: Args<'_>) -> Positions {
        let argc = args.len() as i32;
        let mut last = if self.last < 0 {
            argc + self.last
        } else {
            self.last.min(argc - 1)
        };
        let mut first = self.first;
        if self.keys_option && args.get(first as usize).is_some_and(<[u8]>::is_empty) {
            if let Some(start) = keys_option_start(args, first as usize + 3) {
                (first, last) = (start as i32, argc - 1);
            }
        }
        if self.streams_option {
            (first, last) = streams_keys(args);
        }
        let ranged = match first > 0 && last >= first {
            true => first as usize..last as usize + 1,
            false => 0..0,
        };
        let counted = match self.numkeys {
            0 if self.store_option => match store_option_key(args) {
                Some(at) => at..at + 1,
                None => 0..0,
            },
            0 => 0..0,
            at => {
                let count = args
                    .get(at as usize)
                    .and_then(crate::protocol::number::parse_i64)
                    .filter(|&n| n > 0)
                    .unwrap_or(0);
                let start = at + 1;
                let end = start.saturating_add(count.min(i64::from(i32::MAX)) as i32);
                start as usize..end.min(argc).max(start) as usize
            }
        };
        let stored = match self.stores_from {
            0 => StoreKeys::default(),
            from => StoreKeys::find(args, from as usize),
        };
        Positions {
            ranged,
            step: self.step.max(1) as usize,
            counted,
            stored,
        }
    }
}

/// The first and last key of an `XREAD` or `XREADGROUP`: the first half of
/// what follows `STREAMS`, found skipping option values as Redis does; (0, 0)
/// when the rest is not even or empty.
fn streams_keys(args: Args<'_>) -> (i32, i32) {
    let argc = args.len();
    let is = |i: usize, word: &[u8]| args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(word));
    let mut i = 1;
    while i < argc {
        if is(i, b"STREAMS") {
            let rest = argc - i - 1;
            if rest == 0 || !rest.is_multiple_of(2) {
                return (0, 0);
            }
            return ((i + 1) as i32, (i + rest / 2) as i32);
        }
        i += match () {
            _ if is(i, b"BLOCK") || is(i, b"COUNT") => 2,
            _ if is(i, b"GROUP") => 3,
            _ => 1,
        };
    }
    (0, 0)
}

/// The keys `STORE` and `STOREDIST` options name ([`KeySpec::stores_from`]).
#[derive(Debug, Clone, Default)]
struct StoreKeys {
    at: [usize; 3],
    len: usize,
    next: usize,
}

impl StoreKeys {
    /// Finds them in `args` from position `from` on.
    fn find(args: Args<'_>, from: usize) -> StoreKeys {
        let argc = args.len();
        let is = |i: usize, word: &[u8]| args.get(i).is_some_and(|a| a.eq_ignore_ascii_case(word));
        // Redis's keyword specs: the first of each keyword with an argument after it.
        let first = |word: &[u8]| (from..argc.saturating_sub(1)).find(|&i| is(i, word));
        let mut keys = StoreKeys::default();
        for at in [first(b"STORE"), first(b"STOREDIST")].into_iter().flatten() {
            keys.push(at + 1);
        }
        // The one stored into: the last such option, read as the command
        // reads its options (COUNT takes a value).
        let (mut i, mut stored) = (from, None);
        while i + 1 < argc {
            if is(i, b"STORE") || is(i, b"STOREDIST") {
                stored = Some(i + 1);
                i += 2;
            } else if is(i, b"COUNT") {
                i += 2;
            } else {
                i += 1;
            }
        }
        if let Some(at) = stored.filter(|at| !keys.at[..keys.len].contains(at)) {
            keys.push(at);
        }
        keys
    }

    fn push(&mut self, at: usize) {
        self.at[self.len] = at;
        self.len += 1;
    }
}

/// The key positions of one request ([`KeySpec::positions`]): a stepped
/// range, then a counted run. A plain iterator rather than adapters: it runs
/// on every command and stays small.
#[derive(Debug, Clone)]
pub struct Positions {
    ranged: std::ops::Range<usize>,
    step: usize,
    counted: std::ops::Range<usize>,
    stored: StoreKeys,
}

impl Iterator for Positions {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.ranged.start < self.ranged.end {
            let at = self.ranged.start;
            self.ranged.start = (at + self.step).min(self.ranged.end);
            return Some(at);
        }
        if let Some(at) = self.counted.next() {
            return Some(at);
        }
        let stored = &mut self.stored;
        (stored.next < stored.len).then(|| {
            stored.next += 1;
            stored.at[stored.next - 1]
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let ranged = self.ranged.len().div_ceil(self.step);
        let n = ranged + self.counted.len() + self.stored.len - self.stored.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Positions {}

/// Where `MIGRATE`'s keys start after its `KEYS` option, reading the options
/// from `at` as the command parses them (`AUTH` and `AUTH2` take arguments
/// that may read `KEYS`).
fn keys_option_start(args: Args<'_>, mut at: usize) -> Option<usize> {
    while let Some(option) = args.get(at) {
        at += match option.to_ascii_uppercase().as_slice() {
            b"KEYS" => return Some(at + 1),
            b"COPY" | b"REPLACE" => 1,
            b"AUTH" => 2,
            b"AUTH2" => 3,
            _ => return None,
        };
    }
    None
}

/// Where `SORT`'s `STORE` destination is, skipping the other options'
/// arguments as Redis's `sortGetKeys` does; the last `STORE` counts.
fn store_option_key(args: Args<'_>) -> Option<usize> {
    let mut found = None;
    let mut at = 2;
    while let Some(option) = args.get(at) {
        match option.to_ascii_uppercase().as_slice() {
            b"LIMIT" => at += 2,
            b"GET" | b"BY" => at += 1,
            b"STORE" if at + 1 < args.len() => found = Some(at + 1),
            _ => {}
        }
        at += 1;
    }
    found
}

/// Static description of a command.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name (for a subcommand, just the subcommand).
    pub name: &'static str,
    /// Redis arity: exact argument count, or minimum when negative.
    pub arity: i32,
    /// Bitwise OR of [`flag`] constants.
    pub flags: u32,
    /// Key positions.
    pub keys: KeySpec,
    /// Documentation group (`string`, `generic`, `connection`, `server`, ...).
    pub group: &'static str,
    /// Redis version that introduced it.
    pub since: &'static str,
    /// One-line summary for `COMMAND DOCS`.
    pub summary: &'static str,
    /// What runs it; container commands dispatch to `subcommands`, and run this
    /// only when called without one (`COMMAND`).
    pub handler: Option<Handler>,
    /// Subcommands of a container command (`CLIENT LIST`, `CONFIG GET`, ...).
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// A command of `group` run by `handler`: no keys, since Redis 1.0.0 unless
    /// changed with [`CommandSpec::keys`] and [`CommandSpec::since`].
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        group: &'static str,
        summary: &'static str,
        handler: Option<Handler>,
    ) -> Self {
        CommandSpec {
            name,
            arity,
            flags,
            keys: KeySpec::NONE,
            group,
            since: "1.0.0",
            summary,
            handler,
            subcommands: &[],
        }
    }

    /// The same command with key positions.
    pub const fn keys(mut self, keys: KeySpec) -> Self {
        self.keys = keys;
        self
    }

    /// The same command, introduced in Redis `since`.
    pub const fn since(mut self, since: &'static str) -> Self {
        self.since = since;
        self
    }

    /// A container of subcommands (`CLIENT`, `CONFIG`, ...), which runs only with
    /// one of them.
    pub const fn container(
        name: &'static str,
        group: &'static str,
        since: &'static str,
        summary: &'static str,
        subcommands: &'static [CommandSpec],
    ) -> Self {
        CommandSpec {
            name,
            arity: -2,
            flags: 0,
            keys: KeySpec::NONE,
            group,
            since,
            summary,
            handler: None,
            subcommands,
        }
    }
}

/// A numbered command in the registry.
#[derive(Debug)]
pub struct Command {
    /// Index into per-command counters.
    pub id: usize,
    /// Name as shown in stats and errors: `get`, `client|list`.
    pub full_name: String,
    /// The static description.
    pub spec: &'static CommandSpec,
    /// Parent's id for a subcommand.
    pub parent: Option<usize>,
    subcommands: HashMap<&'static str, usize, ahash::RandomState>,
}

impl Command {
    /// True if the command has all of `flags`.
    pub fn has(&self, flags: u32) -> bool {
        self.spec.flags & flags == flags
    }

    /// True for a container command (`CLIENT`, `CONFIG`, ...).
    pub fn is_container(&self) -> bool {
        !self.spec.subcommands.is_empty()
    }

    /// Checks `argc` against the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.spec.arity;
        if arity >= 0 {
            argc == arity as usize
        } else {
            argc >= arity.unsigned_abs() as usize
        }
    }

    /// The ACL categories Redis would list for this command.
    pub fn acl_categories(&self) -> Vec<&'static str> {
        let spec = self.spec;
        let mut cats = Vec::new();
        let flags = spec.flags;
        if flags & flag::WRITE != 0 {
            cats.push("@write");
        }
        if flags & flag::READONLY != 0 {
            cats.push("@read");
        }
        match spec.group {
            "string" => cats.push("@string"),
            "generic" => cats.push("@keyspace"),
            "connection" => cats.push("@connection"),
            "list" => cats.push("@list"),
            "hash" => cats.push("@hash"),
            "set" => cats.push("@set"),
            "sorted-set" => cats.push("@sortedset"),
            "geo" => cats.push("@geo"),
            "hyperloglog" => cats.push("@hyperloglog"),
            "stream" => cats.push("@stream"),
            // PUBSUB HELP is of the group but not of the category, as in Redis.
            "pubsub" if flags & flag::PUBSUB != 0 => cats.push("@pubsub"),
            "transactions" => cats.push("@transaction"),
            _ => {}
        }
        if flags & flag::BLOCKING != 0 {
            cats.push("@blocking");
        }
        if flags & flag::ADMIN != 0 {
            cats.extend(["@admin", "@dangerous"]);
        }
        cats.push(if flags & flag::FAST != 0 {
            "@fast"
        } else {
            "@slow"
        });
        cats
    }
}

/// Every command, by id and by name.
#[derive(Debug)]
pub struct Registry {
    commands: Vec<Command>,
    by_name: HashMap<&'static str, usize, ahash::RandomState>,
}

/// Longest command name; longer names cannot be commands.
const MAX_NAME: usize = 32;

impl Registry {
    fn build(families: &[&'static [CommandSpec]]) -> Self {
        let mut registry = Registry {
            commands: Vec::new(),
            by_name: HashMap::default(),
        };
        for spec in families.iter().flat_map(|f| f.iter()) {
            let id = registry.add(spec, None);
            registry.by_name.insert(spec.name, id);
        }
        registry
    }

    fn add(&mut self, spec: &'static CommandSpec, parent: Option<usize>) -> usize {
        let id = self.commands.len();
        let full_name = match parent {
            Some(p) => format!("{}|{}", self.commands[p].spec.name, spec.name),
            None => spec.name.to_string(),
        };
        self.commands.push(Command {
            id,
            full_name,
            spec,
            parent,
            subcommands: HashMap::default(),
        });
        for sub in spec.subcommands {
            let sub_id = self.add(sub, Some(id));
            self.commands[id].subcommands.insert(sub.name, sub_id);
        }
        id
    }

    /// Number of commands and subcommands.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// True if there are no commands (never, in practice).
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The command with `id`.
    pub fn get(&self, id: usize) -> &Command {
        &self.commands[id]
    }

    /// Finds a top-level command by name, ignoring case.
    pub fn lookup(&self, name: &[u8]) -> Option<&Command> {
        self.find(&self.by_name, name)
    }

    /// Finds a subcommand of `parent` by name, ignoring case.
    pub fn lookup_sub(&self, parent: &Command, name: &[u8]) -> Option<&Command> {
        self.find(&parent.subcommands, name)
    }

    fn find(
        &self,
        map: &HashMap<&'static str, usize, ahash::RandomState>,
        name: &[u8],
    ) -> Option<&Command> {
        if name.len() > MAX_NAME {
            return None;
        }
        let mut lower = [0u8; MAX_NAME];
        let lower = &mut lower[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        let lower = std::str::from_utf8(lower).ok()?;
        map.get(lower).map(|&id| &self.commands[id])
    }

    /// Top-level commands, in table order.
    pub fn top_level(&self) -> impl Iterator<Item = &Command> {
        self.commands.iter().filter(|c| c.parent.is_none())
    }

    /// Subcommands of `parent`.
    pub fn subcommands<'a>(&'a self, parent: &'a Command) -> impl Iterator<Item = &'a Command> {
        self.commands
            .iter()
            .filter(move |c| c.parent == Some(parent.id))
    }

    /// All commands and subcommands.
    pub fn all(&self) -> impl Iterator<Item = &Command> {
        self.commands.iter()
    }
}

/// The process-wide command registry.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        crate::scripting::set_command_lookup(|name| registry().lookup(name).is_some());
        Registry::build(super::FAMILIES)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_documented() {
        let reg = registry();
        let mut seen = std::collections::HashSet::new();
        for cmd in reg.all() {
            assert!(
                seen.insert(cmd.full_name.clone()),
                "duplicate {}",
                cmd.full_name
            );
            assert_eq!(cmd.spec.name, cmd.spec.name.to_lowercase());
            assert!(
                !cmd.spec.summary.is_empty(),
                "{} lacks a summary",
                cmd.full_name
            );
            assert!(
                cmd.spec.handler.is_some() || cmd.is_container(),
                "{} has neither a handler nor subcommands",
                cmd.full_name
            );
            assert!(cmd.spec.name.len() <= MAX_NAME);
        }
    }

    #[test]
    fn pubsub_commands_carry_the_flag_cluster_clients_route_by() {
        let reg = registry();
        for name in [
            "subscribe",
            "unsubscribe",
            "psubscribe",
            "punsubscribe",
            "ssubscribe",
            "sunsubscribe",
            "publish",
            "spublish",
            "pubsub|channels",
            "pubsub|numsub",
            "pubsub|numpat",
            "pubsub|shardchannels",
            "pubsub|shardnumsub",
        ] {
            let cmd = reg.all().find(|c| c.full_name == name).unwrap();
            assert!(cmd.has(flag::PUBSUB), "{name}");
            assert_eq!(cmd.acl_categories()[0], "@pubsub", "{name}");
        }
        let help = reg.all().find(|c| c.full_name == "pubsub|help").unwrap();
        assert_eq!(help.acl_categories(), ["@slow"]);
        for name in ["ssubscribe", "sunsubscribe", "spublish"] {
            let keys = reg.lookup(name.as_bytes()).unwrap().spec.keys;
            assert!(keys.not_key && keys.first == 1, "{name}");
        }
        assert_eq!(reg.lookup(b"publish").unwrap().spec.keys, KeySpec::NONE);
    }

    #[test]
    fn lookup_ignores_case() {
        let reg = registry();
        assert_eq!(reg.lookup(b"GeT").unwrap().full_name, "get");
        let client = reg.lookup(b"CLIENT").unwrap();
        assert_eq!(
            reg.lookup_sub(client, b"list").unwrap().full_name,
            "client|list"
        );
        assert!(reg.lookup(b"nope").is_none());
    }

    fn positions(spec: KeySpec, request: &[&str]) -> Vec<usize> {
        let mut src = Vec::new();
        let mut spans = Vec::new();
        for a in request {
            spans.push((src.len(), src.len() + a.len()));
            src.extend_from_slice(a.as_bytes());
        }
        spec.positions(Args::new(&src, &spans)).collect()
    }

    #[test]
    fn key_positions_follow_the_spec() {
        assert_eq!(
            positions(KeySpec::range(1, -1, 2), &["mset", "a", "1", "b", "2"]),
            [1, 3]
        );
        assert_eq!(positions(KeySpec::ONE, &["get", "k"]), [1]);
        assert!(positions(KeySpec::NONE, &["ping", "x"]).is_empty());
        assert_eq!(positions(KeySpec::ALL, &["del", "a", "b", "c"]), [1, 2, 3]);
        assert_eq!(
            positions(KeySpec::range(1, -2, 1), &["blpop", "a", "b", "0"]),
            [1, 2]
        );
        assert_eq!(
            positions(KeySpec::counted(1), &["lmpop", "2", "a", "b", "LEFT"]),
            [2, 3]
        );
        let zstore = KeySpec::ONE.and_counted(2);
        assert_eq!(
            positions(zstore, &["zunionstore", "d", "2", "a", "b"]),
            [1, 3, 4]
        );
        // Shard channels sit where keys would, for routing.
        assert_eq!(
            positions(KeySpec::channels(1, -1, 1), &["ssubscribe", "a", "b"]),
            [1, 2]
        );
        assert_eq!(
            positions(KeySpec::channels(1, 1, 1), &["spublish", "c", "m"]),
            [1]
        );
        // A count larger than the arguments never reaches past them.
        assert_eq!(positions(KeySpec::counted(1), &["lmpop", "9", "a"]), [2]);
        assert!(positions(KeySpec::counted(1), &["lmpop", "x", "a"]).is_empty());
    }

    #[test]
    fn georadius_store_keys_are_keys() {
        let spec = KeySpec::ONE.and_stores_from(6);
        assert!(spec.movable());
        let radius = ["georadius", "k", "0", "0", "1", "m"];
        let with = |extra: &[&'static str]| {
            let mut request = radius.to_vec();
            request.extend_from_slice(extra);
            positions(spec, &request)
        };
        assert_eq!(with(&[]), [1]);
        assert_eq!(with(&["store", "a"]), [1, 7]);
        assert_eq!(with(&["COUNT", "2", "STOREDIST", "a"]), [1, 9]);
        // Redis's keyword specs: the first STORE, then the first STOREDIST.
        assert_eq!(with(&["STORE", "a", "STOREDIST", "b"]), [1, 7, 9]);
        assert_eq!(with(&["STORE", "store", "x"]), [1, 7]);
        // A keyword at the end names nothing.
        assert_eq!(with(&["COUNT", "2", "STORE"]), [1]);
        // The key stored into (the last option) is locked too.
        assert_eq!(with(&["STORE", "a", "STORE", "b"]), [1, 7, 9]);
        // Before the options, STORE is an argument like any other.
        let by_member = KeySpec::ONE.and_stores_from(5);
        assert_eq!(
            positions(by_member, &["georadiusbymember", "k", "store", "1", "m"]),
            [1]
        );
    }

    #[test]
    fn migrate_keys_are_its_key_or_those_after_its_keys_option() {
        let m = KeySpec::MIGRATE;
        let one = ["migrate", "h", "1", "k", "0", "5", "COPY"];
        assert_eq!(positions(m, &one), [3]);
        let many = [
            "migrate", "h", "1", "", "0", "5", "REPLACE", "keys", "a", "b",
        ];
        assert_eq!(positions(m, &many), [8, 9]);
        // A password that reads KEYS is a password.
        let auth = [
            "migrate", "h", "1", "", "0", "5", "AUTH", "keys", "KEYS", "a",
        ];
        assert_eq!(positions(m, &auth), [9]);
        let auth2 = [
            "migrate", "h", "1", "", "0", "5", "AUTH2", "u", "p", "KEYS", "a",
        ];
        assert_eq!(positions(m, &auth2), [10]);
        // No KEYS option: the empty key is the key, as Redis reads it.
        assert_eq!(positions(m, &["migrate", "h", "1", "", "0", "5"]), [3]);
        let bad = ["migrate", "h", "1", "", "0", "5", "x", "KEYS", "a"];
        assert_eq!(positions(m, &bad), [3]);
    }
}
