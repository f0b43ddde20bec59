//! The scripts a node knows, by SHA1: their bodies and flags, shared by every
//! worker (each compiles them into its own interpreter on first use). Scripts
//! added by `SCRIPT LOAD` stay until `SCRIPT FLUSH`; those added by `EVAL`
//! are evicted least recently used beyond [`EVAL_SCRIPTS_MAX`], as Redis 7.4
//! does, so clients sending unique scripts cannot grow memory without bound.

use ahash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use sha1::{Digest, Sha1};

/// A script's SHA1, as 40 lowercase hex digits.
pub type Sha = [u8; 40];

/// Scripts kept from `EVAL` before the least recently used one goes.
pub const EVAL_SCRIPTS_MAX: usize = 500;

/// The SHA1 of `body` in lowercase hex (`redis.sha1hex`, script names).
pub fn sha1_hex(body: &[u8]) -> Sha {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha1::digest(body);
    let mut out = [0; 40];
    for (i, byte) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 15)];
    }
    out
}

/// `sha` lowercased, if it has the length of one (`EVALSHA` accepts any case).
pub fn parse_sha(sha: &[u8]) -> Option<Sha> {
    let mut out: Sha = sha.try_into().ok()?;
    out.make_ascii_lowercase();
    Some(out)
}

/// A script's flags, from its `#!lua flags=...` line (Redis 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptFlags(u8);

impl ScriptFlags {
    /// No shebang: Redis 6's rules (writes allowed, no flag checks).
    pub const EVAL_COMPAT: u8 = 1 << 0;
    /// `no-writes`: the script only reads.
    pub const NO_WRITES: u8 = 1 << 1;
    /// `allow-oom`: runs even when memory is over `maxmemory`.
    pub const ALLOW_OOM: u8 = 1 << 2;
    /// `allow-stale`: runs on a replica whose master link is down.
    pub const ALLOW_STALE: u8 = 1 << 3;
    /// `no-cluster`: refused in cluster mode.
    pub const NO_CLUSTER: u8 = 1 << 4;
    /// `allow-cross-slot-keys`: may touch keys of several slots.
    pub const ALLOW_CROSS_SLOT: u8 = 1 << 5;

    /// The flag names functions and shebangs use, with their bits.
    pub const NAMES: &[(&str, u8)] = &[
        ("no-writes", Self::NO_WRITES),
        ("allow-oom", Self::ALLOW_OOM),
        ("allow-stale", Self::ALLOW_STALE),
        ("no-cluster", Self::NO_CLUSTER),
        ("allow-cross-slot-keys", Self::ALLOW_CROSS_SLOT),
    ];

    /// True if every bit of `bits` is set.
    pub fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }

    /// The flags of a script without a shebang.
    pub fn compat() -> ScriptFlags {
        ScriptFlags(Self::EVAL_COMPAT)
    }

    /// The flags named `names` (a function's `flags` list).
    pub fn from_names<'n>(
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<ScriptFlags, &'n str> {
        let mut bits = 0;
        for name in names {
            let (_, bit) = Self::NAMES.iter().find(|(n, _)| *n == name).ok_or(name)?;
            bits |= bit;
        }
        Ok(ScriptFlags(bits))
    }
}

/// Reads the `#!lua [flags=a,b]` first line of an `EVAL` script: its flags,
/// and where the code starts (at the line feed, so line numbers stay the
/// user's). Errors are Redis's texts.
pub fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    if !body.starts_with(b"#!") {
        return Ok((ScriptFlags::compat(), 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or_default();
    if engine != "#!lua" {
        return Err(format!("Unexpected engine in script shebang: {engine}"));
    }
    let mut flags = ScriptFlags(0);
    for part in parts {
        let Some(names) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        let names = names.split(',').filter(|n| !n.is_empty());
        let parsed = ScriptFlags::from_names(names)
            .map_err(|name| format!("Unexpected flag in script shebang: {name}"))?;
        flags.0 |= parsed.0;
    }
    Ok((flags, end))
}

/// A known script.
#[derive(Debug, Clone)]
pub struct Script {
    /// Its source, shebang included.
    pub body: Arc<[u8]>,
    /// Its shebang's flags.
    pub flags: ScriptFlags,
}

#[derive(Debug)]
struct Entry {
    script: Script,
    /// Added by `EVAL` only: evictable.
    evictable: bool,
    /// When it was last run, for eviction.
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    scripts: HashMap<Sha, Entry>,
    evictable: usize,
    tick: u64,
    bytes: usize,
}

/// Every script this node knows (`Shared::scripts`).
#[derive(Debug, Default)]
pub struct Scripts {
    inner: Mutex<Inner>,
    /// Bumped by `SCRIPT FLUSH`: workers drop what they compiled.
    generation: AtomicU64,
    evicted: AtomicU64,
}

impl Scripts {
    /// The script named `sha`, marked as just used, and whether it is kept
    /// for good (loaded by `SCRIPT LOAD`, never evicted).
    pub fn get(&self, sha: &Sha) -> Option<(Script, bool)> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.scripts.get_mut(sha)?;
        entry.used = tick;
        Some((entry.script.clone(), !entry.evictable))
    }

    /// True if `sha` is known (`SCRIPT EXISTS`).
    pub fn exists(&self, sha: &[u8]) -> bool {
        let Ok(sha) = <Sha>::try_from(sha) else {
            return false;
        };
        self.inner.lock().scripts.contains_key(&sha)
    }

    /// Adds `script` as `sha` (its SHA1): kept for good by `SCRIPT LOAD`
    /// (`evictable` false), or evictable for `EVAL`, evicting the least
    /// recently used `EVAL` script beyond [`EVAL_SCRIPTS_MAX`]. A script known
    /// already keeps its entry (a loaded one becomes unevictable).
    pub fn add(&self, sha: Sha, script: Script, evictable: bool) {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(entry) = inner.scripts.get_mut(&sha) {
            entry.used = tick;
            if entry.evictable && !evictable {
                entry.evictable = false;
                inner.evictable -= 1;
            }
            return;
        }
        if evictable {
            while inner.evictable >= EVAL_SCRIPTS_MAX {
                let oldest = inner
                    .scripts
                    .iter()
                    .filter(|(_, e)| e.evictable)
                    .min_by_key(|(_, e)| e.used)
                    .map(|(sha, _)| *sha);
                let Some(oldest) = oldest else { break };
                if let Some(gone) = inner.scripts.remove(&oldest) {
                    inner.bytes -= gone.script.body.len();
                }
                inner.evictable -= 1;
                self.evicted.fetch_add(1, Relaxed);
            }
            inner.evictable += 1;
        }
        inner.bytes += script.body.len();
        let entry = Entry {
            script,
            evictable,
            used: tick,
        };
        inner.scripts.insert(sha, entry);
    }

    /// Forgets every script (`SCRIPT FLUSH`).
    pub fn flush(&self) {
        *self.inner.lock() = Inner::default();
        self.generation.fetch_add(1, Relaxed);
    }

    /// Changes with every `SCRIPT FLUSH`.
    pub fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// Scripts known, and the bytes of their bodies (`INFO memory`).
    pub fn size(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.scripts.len(), inner.bytes)
    }

    /// `EVAL` scripts evicted so far (`INFO stats`, `evicted_scripts`).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(body: &str) -> (Sha, Script) {
        let script = Script {
            body: body.as_bytes().into(),
            flags: ScriptFlags::compat(),
        };
        (sha1_hex(body.as_bytes()), script)
    }

    #[test]
    fn sha1_is_lowercase_hex() {
        assert_eq!(
            &sha1_hex(b"return 1"),
            b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
        assert_eq!(
            parse_sha(b"E0E1F9FABFC9D4800C877A703B823AC0578FF8DB"),
            Some(sha1_hex(b"return 1"))
        );
        assert_eq!(parse_sha(b"e0e1"), None);
    }

    #[test]
    fn shebangs_give_flags_or_redis_errors() {
        assert_eq!(
            parse_shebang(b"return 1").unwrap(),
            (ScriptFlags::compat(), 0)
        );
        let (flags, at) = parse_shebang(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(flags.has(ScriptFlags::NO_WRITES | ScriptFlags::ALLOW_OOM));
        assert!(!flags.has(ScriptFlags::EVAL_COMPAT));
        assert_eq!(at, 31);
        assert_eq!(
            parse_shebang(b"#!lua\nreturn 1").unwrap(),
            (ScriptFlags(0), 5)
        );
        assert_eq!(
            parse_shebang(b"#!lua").unwrap_err(),
            "Invalid script shebang"
        );
        assert_eq!(
            parse_shebang(b"#!python\n").unwrap_err(),
            "Unexpected engine in script shebang: #!python"
        );
        assert_eq!(
            parse_shebang(b"#!lua flags=bad\n").unwrap_err(),
            "Unexpected flag in script shebang: bad"
        );
        assert_eq!(
            parse_shebang(b"#!lua name=x\n").unwrap_err(),
            "Unknown lua shebang option: name=x"
        );
    }

    #[test]
    fn eval_scripts_are_evicted_least_recently_used_and_loaded_ones_never() {
        let scripts = Scripts::default();
        let (loaded, body) = script("return 'loaded'");
        scripts.add(loaded, body, false);
        let (first, body) = script("return 0");
        scripts.add(first, body, true);
        for i in 1..EVAL_SCRIPTS_MAX {
            let (sha, body) = script(&format!("return {i}"));
            scripts.add(sha, body, true);
        }
        // Using the first keeps it; the second oldest goes instead.
        assert!(scripts.get(&first).is_some());
        let (extra, body) = script("return 'extra'");
        scripts.add(extra, body, true);
        assert!(scripts.exists(&first));
        assert!(!scripts.exists(&script("return 1").0));
        assert!(scripts.exists(&loaded));
        assert_eq!(scripts.evicted(), 1);
        assert_eq!(scripts.size().0, EVAL_SCRIPTS_MAX + 1);
        let generation = scripts.generation();
        scripts.flush();
        assert!(!scripts.exists(&loaded));
        assert_ne!(scripts.generation(), generation);
    }
}
