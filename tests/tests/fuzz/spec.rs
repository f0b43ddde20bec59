//! What the server says about its commands: names and subcommands (`COMMAND
//! LIST`), arity, flags and key positions (`COMMAND INFO`), and option keywords
//! (the tokens `COMMAND DOCS` lists where it documents arguments, plus
//! `tests/data/command-tokens.txt`, taken from Redis's `COMMAND DOCS`).

use std::collections::BTreeMap;
use std::time::Duration;

use super::wire::{Conn, Value};

/// Option keywords per command, from Redis 7's `COMMAND DOCS` and ringkv's own.
const TOKEN_TABLE: &str = include_str!("../../data/command-tokens.txt");

/// One command or subcommand, as the fuzzer uses it.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `get`, `client|kill`.
    pub name: String,
    /// The words that name it in a request: `[get]`, `[client, kill]`.
    pub words: Vec<Vec<u8>>,
    /// Redis arity: the exact argument count, or the minimum when negative
    /// (counting the words).
    pub arity: i64,
    /// `COMMAND INFO` flags (`write`, `blocking`, ...).
    pub flags: Vec<String>,
    /// First key position, last (negative: from the end) and step; 0 for none.
    pub keys: (i64, i64, i64),
    /// Its `COMMAND DOCS` group (`list`, `sorted-set`, `lock`...).
    pub group: String,
    /// Option keywords it accepts.
    pub tokens: Vec<Vec<u8>>,
    /// For a container (`CLIENT`, `CONFIG`...), its subcommand names.
    pub subcommands: Vec<Vec<u8>>,
}

impl Spec {
    /// True if argument `pos` (0 is the command name) of a request of `argc`
    /// arguments is a key.
    pub fn is_key(&self, pos: usize, argc: usize) -> bool {
        let (first, last, step) = self.keys;
        if first <= 0 || step <= 0 {
            return false;
        }
        let last = if last < 0 { argc as i64 + last } else { last };
        let pos = pos as i64;
        pos >= first && pos <= last && (pos - first) % step == 0
    }

    /// True if `COMMAND INFO` lists `flag`.
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("expected an integer in COMMAND INFO, got {other}"),
    }
}

fn text(v: &Value) -> String {
    String::from_utf8_lossy(v.bytes().unwrap_or_default()).to_lowercase()
}

/// Reads one `COMMAND INFO` entry and its subcommands into `out`.
fn read_info(entry: &Value, out: &mut BTreeMap<String, Spec>) {
    let items = entry.items();
    assert!(items.len() >= 10, "COMMAND INFO entry too short: {entry}");
    let name = text(&items[0]);
    let subcommands: Vec<Vec<u8>> = items[9]
        .items()
        .iter()
        .map(|sub| {
            read_info(sub, out);
            let full = text(&sub.items()[0]);
            full.split('|')
                .nth(1)
                .unwrap_or_default()
                .as_bytes()
                .to_vec()
        })
        .collect();
    let spec = Spec {
        words: name.split('|').map(|w| w.as_bytes().to_vec()).collect(),
        arity: int(&items[1]),
        flags: items[2].items().iter().map(text).collect(),
        keys: (int(&items[3]), int(&items[4]), int(&items[5])),
        group: String::new(),
        tokens: Vec::new(),
        subcommands,
        name: name.clone(),
    };
    out.insert(name, spec);
}

/// Key/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v)).collect(),
        Value::Array(items) => items
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (text(&c[0]), &c[1]))
            .collect(),
        _ => Vec::new(),
    }
}

/// Collects `token` fields of documented arguments, nested blocks included.
fn doc_tokens(arguments: &Value, out: &mut Vec<Vec<u8>>) {
    for arg in arguments.items() {
        for (key, value) in pairs(arg) {
            match key.as_str() {
                "token" => out.extend(value.bytes().map(<[u8]>::to_vec)),
                "arguments" => doc_tokens(value, out),
                _ => {}
            }
        }
    }
}

/// Reads one command's `COMMAND DOCS` entry (and its subcommands') into `specs`.
fn read_docs(name: &str, docs: &Value, specs: &mut BTreeMap<String, Spec>) {
    for (key, value) in pairs(docs) {
        match key.as_str() {
            "group" => {
                if let Some(spec) = specs.get_mut(name) {
                    spec.group = text(value);
                }
            }
            "arguments" => {
                if let Some(spec) = specs.get_mut(name) {
                    doc_tokens(value, &mut spec.tokens);
                }
            }
            "subcommands" => {
                for (sub, sub_docs) in pairs(value) {
                    read_docs(&sub, sub_docs, specs);
                }
            }
            _ => {}
        }
    }
}

/// Asks the server for every command it has and describes each.
pub fn discover(ctl: &mut Conn, timeout: Duration) -> Vec<Spec> {
    let mut call = |args: Vec<&[u8]>| {
        let args: Vec<Vec<u8>> = args.into_iter().map(<[u8]>::to_vec).collect();
        ctl.call(&args, timeout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let listed: Vec<String> = call(vec![b"COMMAND", b"LIST"])
        .items()
        .iter()
        .map(text)
        .collect();
    assert!(
        listed.len() > 100,
        "COMMAND LIST names {} commands",
        listed.len()
    );
    let top: Vec<&String> = listed.iter().filter(|n| !n.contains('|')).collect();

    let mut specs = BTreeMap::new();
    let mut info: Vec<&[u8]> = vec![b"COMMAND", b"INFO"];
    info.extend(top.iter().map(|n| n.as_bytes()));
    for entry in call(info).items() {
        read_info(entry, &mut specs);
    }
    for name in &listed {
        assert!(
            specs.contains_key(name),
            "COMMAND INFO does not describe {name}"
        );
    }

    let mut docs: Vec<&[u8]> = vec![b"COMMAND", b"DOCS"];
    docs.extend(top.iter().map(|n| n.as_bytes()));
    for (name, entry) in pairs(&call(docs)) {
        read_docs(&name, entry, &mut specs);
    }
    for line in TOKEN_TABLE.lines().filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        let Some(spec) = words.next().and_then(|name| specs.get_mut(name)) else {
            continue;
        };
        for token in words {
            if !spec
                .tokens
                .iter()
                .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
            {
                spec.tokens.push(token.as_bytes().to_vec());
            }
        }
    }
    specs.into_values().collect()
}
