//! Random requests for one command: argument counts around its arity, keys of
//! every type at key positions, and elsewhere a mix of the extremes, small
//! numbers, members, keys, the command's option keywords (with numbers after
//! them), values only some commands take (config parameters, command names,
//! DUMP payloads...) and random bytes.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::spec::Spec;

/// The numbers at and around every integer width's edge, floats that are not
/// numbers, and the empty string.
const NUMERIC_EXTREMES: &[&str] = &[
    "0",
    "-1",
    "2147483647",
    "-2147483648",
    "2147483648",
    "-2147483649",
    "4294967296",
    "4611686018427387903",
    "-4611686018427387903",
    "-4611686018427387904",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "1000000000000000",
    "-1000000000000000",
    "nan",
    "inf",
    "-inf",
    "+inf",
    "1e308",
    "-0",
];

/// Bytes a protocol or number parser may trip on.
const BINARY: &[u8] = b"\0\r\n\xff*1\r\n$-1\r\n\x00a\n";

/// Size of the large argument.
const BIG: usize = 64 * 1024;

/// Small numbers most commands accept: counts, indexes, scores.
const SMALL_NUMBERS: &[&str] = &["1", "2", "3", "5", "10", "100", "-2", "0.5", "-1.5"];

/// Lex and score range bounds, and glob patterns.
const RANGES_AND_PATTERNS: &[&str] = &["(1", "[a", "-", "+", "*", "fz:*", "h?llo", "[a-", "\\"];

/// Members, fields and values the fixtures hold (and some they do not).
const MEMBERS: &[&str] = &[
    "a", "b", "c", "d", "f1", "f2", "v1", "1", "2", "-5", "owner", "x",
];

/// Every extreme argument: [`NUMERIC_EXTREMES`], empty, binary and 64 KB.
pub fn extremes() -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = NUMERIC_EXTREMES
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    all.push(Vec::new());
    all.push(BINARY.to_vec());
    all.push(vec![b'x'; BIG]);
    all
}

fn owned(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// What arguments are drawn from.
pub struct Pools {
    /// Fixture keys of every type, and missing ones.
    keys: Vec<Vec<u8>>,
    /// The keys of the type each command group works on.
    keys_by_group: HashMap<String, Vec<Vec<u8>>>,
    extremes: Vec<Vec<u8>>,
    /// Values that only some commands take, by command name.
    context: HashMap<String, Vec<Vec<u8>>>,
    /// Configuration parameters CONFIG SET may not touch (see `DENIED_CONFIG`).
    denied: Vec<Vec<u8>>,
    /// Parameters it may set.
    settable: Vec<Vec<u8>>,
}

impl Pools {
    /// Pools for `specs`, with `context` values per command (set by the caller:
    /// client ids, DUMP payloads, config parameters...).
    pub fn new(
        keys: &[&str],
        keys_by_group: &[(&str, &[&str])],
        specs: &[Spec],
        mut context: HashMap<String, Vec<Vec<u8>>>,
        denied: &[&str],
        settable: Vec<Vec<u8>>,
    ) -> Pools {
        let names: Vec<Vec<u8>> = specs.iter().map(|s| s.name.as_bytes().to_vec()).collect();
        for spec in specs {
            let entry = context.entry(spec.name.clone()).or_default();
            entry.extend(spec.subcommands.iter().cloned());
            if spec.name.starts_with("command|") {
                entry.extend(names.iter().cloned());
            }
            if spec.name.starts_with("config|") {
                entry.extend(settable.iter().cloned());
                entry.push(b"*".to_vec());
            }
        }
        Pools {
            keys: owned(keys),
            keys_by_group: keys_by_group
                .iter()
                .map(|(group, keys)| (group.to_string(), owned(keys)))
                .collect(),
            extremes: extremes(),
            context,
            denied: owned(denied),
            settable,
        }
    }
}

/// The request generator of one command.
pub struct Gen<'a> {
    /// Its random source: seeded by the run's seed and the command's name, so a
    /// command's requests do not depend on which other commands run.
    pub rng: StdRng,
    spec: &'a Spec,
    pools: &'a Pools,
    context: &'a [Vec<u8>],
    /// Keys of the type the command works on (empty: any type).
    typed: &'a [Vec<u8>],
}

/// FNV-1a: a hash that is the same on every build, for per-command seeds.
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl<'a> Gen<'a> {
    /// A generator for `spec` under the run's `seed`.
    pub fn new(seed: u64, spec: &'a Spec, pools: &'a Pools) -> Gen<'a> {
        Gen {
            rng: StdRng::seed_from_u64(seed ^ stable_hash(&spec.name)),
            spec,
            pools,
            context: pools.context.get(&spec.name).map_or(&[], Vec::as_slice),
            typed: pools
                .keys_by_group
                .get(&spec.group)
                .map_or(&[], Vec::as_slice),
        }
    }

    fn pick(&mut self, from: &[Vec<u8>]) -> Vec<u8> {
        from[self.rng.random_range(0..from.len())].clone()
    }

    fn pick_str(&mut self, from: &[&str]) -> Vec<u8> {
        from[self.rng.random_range(0..from.len())]
            .as_bytes()
            .to_vec()
    }

    /// A request length around the arity: mostly valid, sometimes one short or
    /// a few over.
    fn argc(&mut self) -> usize {
        let min = self.spec.arity.unsigned_abs() as usize;
        let n = if self.spec.arity >= 0 {
            match self.rng.random_range(0..10) {
                0 => min.saturating_sub(1),
                1 => min + 1,
                2 => min + self.rng.random_range(2..5),
                _ => min,
            }
        } else {
            match self.rng.random_range(0..10) {
                0 => min.saturating_sub(1),
                1..=3 => min,
                _ => min + self.rng.random_range(1..8),
            }
        };
        n.max(self.spec.words.len())
    }

    /// A key: mostly one of the type the command works on, sometimes a missing
    /// one or any.
    fn key(&mut self) -> Vec<u8> {
        let pools = self.pools;
        match self.rng.random_range(0..10) {
            0..=7 if !self.typed.is_empty() => self.pick(self.typed),
            8 => b"fz:missing".to_vec(),
            _ => self.pick(&pools.keys),
        }
    }

    /// A number: an extreme or a small one.
    fn number(&mut self) -> Vec<u8> {
        if self.rng.random_bool(0.5) {
            self.pick_str(NUMERIC_EXTREMES)
        } else {
            self.pick_str(SMALL_NUMBERS)
        }
    }

    fn token(&mut self) -> Vec<u8> {
        let spec = self.spec;
        let mut token = self.pick(&spec.tokens);
        if self.rng.random_bool(0.3) {
            token.make_ascii_lowercase();
        }
        token
    }

    /// A non-key argument following `prev`.
    fn value(&mut self, prev: &[u8]) -> Vec<u8> {
        let pools = self.pools;
        let after_token = self
            .spec
            .tokens
            .iter()
            .any(|t| t.eq_ignore_ascii_case(prev));
        let roll = self.rng.random_range(0..100);
        if after_token && roll < 50 {
            return self.number();
        }
        match roll {
            0..=19 if !self.spec.tokens.is_empty() => self.token(),
            0..=39 => self.pick(&pools.extremes),
            40..=49 => self.pick_str(SMALL_NUMBERS),
            50..=59 => self.pick_str(RANGES_AND_PATTERNS),
            60..=71 => self.pick_str(MEMBERS),
            72..=81 => self.key(),
            82..=93 if !self.context.is_empty() => self.pick(self.context),
            _ => {
                let len = self.rng.random_range(0..12);
                (0..len).map(|_| self.rng.random()).collect()
            }
        }
    }

    /// True where the command expects one of its context values: parameter
    /// names of CONFIG, command names of COMMAND, the payload of RESTORE...
    fn takes_context(&self, pos: usize) -> bool {
        if self.context.is_empty() {
            return false;
        }
        match self.spec.name.as_str() {
            "config|set" => pos.is_multiple_of(2),
            "restore" => pos == 3,
            "hello" | "publish" | "command|getkeys" => pos == self.spec.words.len(),
            "config|get" | "command|info" | "command|docs" | "info" | "subscribe"
            | "psubscribe" | "unsubscribe" | "punsubscribe" | "pubsub|numsub" => true,
            // Containers called without a known subcommand.
            _ => !self.spec.subcommands.is_empty() && pos == 1,
        }
    }

    /// A request of `argc` arguments, `forced` at its position if given.
    fn build(&mut self, argc: usize, forced: Option<(usize, &[u8])>) -> Vec<Vec<u8>> {
        let mut args = self.spec.words.clone();
        while args.len() < argc {
            let pos = args.len();
            let arg = match forced {
                Some((at, value)) if at == pos => value.to_vec(),
                _ if self.spec.is_key(pos, argc) && self.rng.random_bool(0.85) => self.key(),
                _ if self.takes_context(pos) && self.rng.random_bool(0.75) => {
                    self.pick(self.context)
                }
                _ => self.value(args.last().map_or(&[][..], Vec::as_slice)),
            };
            args.push(arg);
        }
        args
    }

    /// A random request.
    pub fn random(&mut self) -> Vec<Vec<u8>> {
        let argc = self.argc();
        let args = self.build(argc, None);
        self.neutralise(args)
    }

    /// Requests with `extreme` at each non-key argument of a request of valid
    /// length (at a key if it has no other argument).
    pub fn with_extreme(&mut self, extreme: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let words = self.spec.words.len();
        let min = self.spec.arity.unsigned_abs() as usize;
        let argc = (min + usize::from(self.spec.arity < 0)).max(words + 1);
        let mut positions: Vec<usize> = (words..argc)
            .filter(|&p| !self.spec.is_key(p, argc))
            .collect();
        if positions.is_empty() {
            positions.push(self.rng.random_range(words..argc));
        }
        positions
            .into_iter()
            .map(|pos| {
                let args = self.build(argc, Some((pos, extreme)));
                self.neutralise(args)
            })
            .collect()
    }

    /// A request ending in one of the command's option keywords followed by
    /// `extreme` (and sometimes another number); `None` if it has no options.
    pub fn with_option(&mut self, extreme: &[u8]) -> Option<Vec<Vec<u8>>> {
        if self.spec.tokens.is_empty() {
            return None;
        }
        // Options follow the required arguments; for some commands (CLIENT KILL)
        // the last required one is an alternative to the options.
        let min = self.spec.arity.unsigned_abs() as usize;
        let argc = min - usize::from(self.spec.arity < 0 && self.rng.random_bool(0.3));
        let mut args = self.build(argc.max(self.spec.words.len()), None);
        args.push(self.token());
        args.push(extreme.to_vec());
        if self.rng.random_bool(0.5) {
            args.push(self.number());
        }
        Some(self.neutralise(args))
    }

    /// Keeps CONFIG SET off the parameters that would break the test itself.
    fn neutralise(&mut self, mut args: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        if self.spec.name == "config|set" {
            for arg in args.iter_mut().skip(2) {
                if self
                    .pools
                    .denied
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(arg))
                {
                    *arg = self.pick(&self.pools.settable);
                }
            }
        }
        args
    }
}
