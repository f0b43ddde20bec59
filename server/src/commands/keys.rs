//! Generic key commands: DEL, UNLINK, EXISTS, TYPE, RENAME, RENAMENX, COPY, KEYS,
//! SCAN, RANDOMKEY, TOUCH, DUMP, RESTORE.

use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::keyspace::{dump_value, key_slot, restore_value, Expiry, Value, SLOTS};
use crate::notify;
use crate::protocol::number::parse_u64;
use crate::protocol::Args;
use crate::util::glob::glob_match;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "generic", summary, handler)
        .keys(keys)
        .since(since)
}

const ONE: KeySpec = KeySpec::ONE;
const TWO: KeySpec = KeySpec::range(1, 2, 1);

/// The keys family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("del", -2, WRITE, KeySpec::ALL, "1.0.0", "Deletes one or more keys.", handler!(Del<'_>)),
    spec("unlink", -2, WRITE | FAST, KeySpec::ALL, "4.0.0", "Asynchronously deletes one or more keys.", handler!(Del<'_>)),
    spec("exists", -2, READONLY | FAST, KeySpec::ALL, "1.0.0", "Determines whether one or more keys exist.", handler!(Exists<'_>)),
    spec("touch", -2, READONLY | FAST, KeySpec::ALL, "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", handler!(Exists<'_>)),
    spec("type", 2, READONLY | FAST, ONE, "1.0.0", "Determines the type of value stored at a key.", handler!(Type<'_>)),
    spec("rename", 3, WRITE, TWO, "1.0.0", "Renames a key and overwrites the destination.", handler!(Rename<'_>)),
    spec("renamenx", 3, WRITE | FAST, TWO, "1.0.0", "Renames a key only when the target key name doesn't exist.", handler!(Rename<'_>)),
    spec("copy", -3, WRITE | DENYOOM, TWO, "6.2.0", "Copies the value of a key to a new key.", handler!(Copy<'_>)),
    spec("keys", 2, READONLY | ALL_SLOTS, KeySpec::NONE, "1.0.0", "Returns all key names that match a pattern.", handler!(Keys<'_>)),
    spec("scan", -2, READONLY | ALL_SLOTS, KeySpec::NONE, "2.8.0", "Iterates over the key names in the database.", handler!(Scan<'_>)),
    spec("randomkey", 1, READONLY | ALL_SLOTS, KeySpec::NONE, "1.0.0", "Returns a random key name from the database.", handler!(RandomKey)),
    spec("dump", 2, READONLY, ONE, "2.6.0", "Returns a serialized representation of the value stored at a key.", handler!(Dump<'_>)),
    spec("restore", -4, WRITE | DENYOOM, ONE, "2.6.0", "Creates a key from the serialized representation of a value.", handler!(Restore<'_>)),
    spec("restore-asking", -4, WRITE | DENYOOM | ASKING, ONE, "3.0.0", "An internal command for migrating keys in a cluster.", handler!(Restore<'_>)),
];

/// `DEL key [key ...]` and `UNLINK`.
struct Del<'a> {
    keys: Args<'a>,
}

impl<'a> Command<'a> for Del<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Del { keys: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let mut removed = 0;
        for key in self.keys.iter() {
            if ctx.locks.table(key).remove(key, ctx.now).is_some() {
                removed += 1;
                // The commit hands a deleted lock to its first waiter.
                ctx.changed(notify::GENERIC, "del", key);
            }
        }
        ctx.out.int(removed as i64);
        Ok(())
    }
}

/// `EXISTS key [key ...]` (a key named twice counts twice) and `TOUCH`.
struct Exists<'a> {
    keys: Args<'a>,
}

impl<'a> Command<'a> for Exists<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Exists { keys: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let mut found = 0;
        // TOUCH counts as an access; EXISTS does not.
        let touch = ctx.name() == "touch";
        for key in self.keys.iter() {
            let table = ctx.locks.table(key);
            let live = if touch {
                table.get(key, ctx.now).is_some()
            } else {
                table.contains(key, ctx.now)
            };
            found += i64::from(live);
        }
        ctx.out.int(found);
        Ok(())
    }
}

/// `TYPE key`.
struct Type<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for Type<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Type { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let name = table
            .peek(self.key, ctx.now)
            .map_or("none", |e| e.value.type_name());
        ctx.out.simple(name);
        Ok(())
    }
}

/// `RENAME source destination` and `RENAMENX`.
struct Rename<'a> {
    from: &'a [u8],
    to: &'a [u8],
}

impl<'a> Command<'a> for Rename<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Rename {
            from: p.arg()?,
            to: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let nx = ctx.name() == "renamenx";
        let locked = &mut *ctx.locks;
        if !locked.table(self.from).contains(self.from, ctx.now) {
            return Err(CommandError::NoSuchKey);
        }
        if self.from == self.to {
            if nx {
                ctx.out.int(0);
            } else {
                ctx.out.ok();
            }
            return Ok(());
        }
        if nx && locked.table(self.to).contains(self.to, ctx.now) {
            ctx.out.int(0);
            return Ok(());
        }
        let entry = locked
            .table(self.from)
            .remove(self.from, ctx.now)
            .ok_or(CommandError::NoSuchKey)?;
        let expiry = entry.expire_at().map_or(Expiry::Persist, Expiry::At);
        locked
            .table(self.to)
            .insert(self.to, entry.value, expiry, ctx.now);
        ctx.changed(notify::GENERIC, "rename_from", self.from);
        ctx.changed_by(0, notify::GENERIC, "rename_to", self.to);
        if nx {
            ctx.out.int(1);
        } else {
            ctx.out.ok();
        }
        Ok(())
    }
}

/// `COPY source destination [DB destination-db] [REPLACE]`.
struct Copy<'a> {
    from: &'a [u8],
    to: &'a [u8],
    replace: bool,
}

impl<'a> Command<'a> for Copy<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut copy = Copy {
            from: p.arg()?,
            to: p.arg()?,
            replace: false,
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "REPLACE" => copy.replace = true,
                "DB" => {
                    match p.next_i64()? {
                        0 => {}
                        db if i32::try_from(db).is_err() => return Err(CommandError::err(
                            "value is out of range, value must between -2147483648 and 2147483647",
                        )),
                        _ => return Err(CommandError::DbOutOfRange),
                    }
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(copy)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if self.from == self.to {
            return Err(CommandError::err(
                "source and destination objects are the same",
            ));
        }
        let locked = &mut *ctx.locks;
        let Some(source) = locked
            .table(self.from)
            .peek(self.from, ctx.now)
            .map(|e| e.cloned())
        else {
            ctx.out.int(0);
            return Ok(());
        };
        if !self.replace && locked.table(self.to).contains(self.to, ctx.now) {
            ctx.out.int(0);
            return Ok(());
        }
        let expiry = source.expire_at().map_or(Expiry::Persist, Expiry::At);
        locked
            .table(self.to)
            .insert(self.to, source.value, expiry, ctx.now);
        ctx.changed(notify::GENERIC, "copy_to", self.to);
        ctx.out.int(1);
        Ok(())
    }
}

/// The one slot every key matching `pattern` must be in, when the pattern fixes its
/// hash tag (`{user1}:*`), as Redis computes it.
fn pattern_slot(pattern: &[u8]) -> Option<u16> {
    let mut open = None;
    for (i, &b) in pattern.iter().enumerate() {
        match (b, open) {
            (b'*' | b'?' | b'[' | b'\\', _) => return None,
            (b'{', None) => open = Some(i),
            (b'}', Some(o)) if i == o + 1 => return None,
            (b'}', Some(o)) => return Some(key_slot(&pattern[o + 1..i])),
            _ => {}
        }
    }
    None
}

/// `KEYS pattern`.
struct Keys<'a> {
    pattern: &'a [u8],
}

impl<'a> Command<'a> for Keys<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Keys { pattern: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let all = self.pattern == b"*";
        let slots = match pattern_slot(self.pattern) {
            Some(slot) => slot..slot + 1,
            None => 0..SLOTS as u16,
        };
        let mark = ctx.out.len();
        let mut count = 0;
        for slot in slots {
            if ctx.locks.slot_len(slot) == 0 {
                continue;
            }
            ctx.locks.with_slot(slot, |table| {
                for (key, entry) in table.iter() {
                    let key = key.as_bytes();
                    if !entry.is_expired(ctx.now) && (all || glob_match(self.pattern, key, false)) {
                        ctx.out.bulk(key);
                        count += 1;
                    }
                }
            });
        }
        ctx.out.array_at(mark, count);
        Ok(())
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
struct Scan<'a> {
    cursor: u64,
    pattern: Option<&'a [u8]>,
    count: usize,
    kind: Option<Vec<u8>>,
}

impl<'a> Command<'a> for Scan<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let cursor = parse_u64(p.arg()?).ok_or_else(|| CommandError::err("invalid cursor"))?;
        let mut scan = Scan {
            cursor,
            pattern: None,
            count: 10,
            kind: None,
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "MATCH" => scan.pattern = Some(p.arg()?),
                "COUNT" => {
                    let count = p.next_i64()?;
                    if count < 1 {
                        return Err(CommandError::Syntax);
                    }
                    scan.count = count as usize;
                }
                "TYPE" => scan.kind = Some(p.arg()?.to_ascii_lowercase()),
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(scan)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let pattern = self.pattern.filter(|p| *p != b"*");
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut visit = |key: &crate::keyspace::Key, entry: crate::keyspace::Entry<&Value>| {
            let key = key.as_bytes();
            let type_ok = self
                .kind
                .as_deref()
                .is_none_or(|k| k == entry.value.type_name().as_bytes());
            if type_ok && pattern.is_none_or(|p| glob_match(p, key, false)) {
                keys.push(key.to_vec());
            }
        };
        let next = match pattern.and_then(pattern_slot) {
            // Every match lives in one slot: walk only that one.
            Some(slot) => {
                let (left, _) =
                    ctx.locks
                        .scan_slot(slot, self.cursor >> 14, self.count, ctx.now, &mut visit);
                if left > 0 {
                    (left << 14) | u64::from(slot)
                } else {
                    0
                }
            }
            None => ctx.locks.scan(self.cursor, self.count, ctx.now, &mut visit),
        };
        ctx.out.array(2);
        ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
        ctx.out.array(keys.len());
        for key in keys {
            ctx.out.bulk(&key);
        }
        Ok(())
    }
}

/// `RANDOMKEY`.
struct RandomKey;

impl<'a> Command<'a> for RandomKey {
    fn parse(_: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(RandomKey)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        match ctx.locks.random_key(ctx.now) {
            Some(key) => ctx.out.bulk(&key),
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// `DUMP key`.
struct Dump<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for Dump<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Dump { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let payload = ctx
            .locks
            .table(self.key)
            .peek(self.key, ctx.now)
            .map(|e| dump_value(e.value));
        match payload {
            Some(p) => ctx.out.bulk(&p),
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]`.
struct Restore<'a> {
    key: &'a [u8],
    ttl: i64,
    payload: &'a [u8],
    replace: bool,
    absolute: bool,
    idle: Option<u64>,
    freq: Option<u8>,
}

impl<'a> Command<'a> for Restore<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let ttl = p.next_i64()?;
        let payload = p.arg()?;
        let mut restore = Restore {
            key,
            ttl,
            payload,
            replace: false,
            absolute: false,
            idle: None,
            freq: None,
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "REPLACE" => restore.replace = true,
                "ABSTTL" => restore.absolute = true,
                "IDLETIME" if restore.freq.is_none() => {
                    let idle = p.next_i64()?;
                    if idle < 0 {
                        return Err(CommandError::err("Invalid IDLETIME value, must be >= 0"));
                    }
                    restore.idle = Some(idle as u64);
                }
                "FREQ" if restore.idle.is_none() => {
                    let f = p.next_i64()?;
                    let f = u8::try_from(f).map_err(|_| {
                        CommandError::err("Invalid FREQ value, must be >= 0 and <= 255")
                    })?;
                    restore.freq = Some(f);
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        if ttl < 0 {
            return Err(CommandError::err("Invalid TTL value, must be >= 0"));
        }
        Ok(restore)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let value = restore_value(self.payload, &ctx.limits())
            .map_err(|e| CommandError::err(e.to_string()))?;
        let expire_at = match (self.ttl, self.absolute) {
            (0, _) => None,
            (ttl, true) => Some(ttl as u64),
            (ttl, false) => Some((ctx.now as i64).saturating_add(ttl) as u64),
        };
        let table = ctx.locks.table(self.key);
        if !self.replace && table.contains(self.key, ctx.now) {
            return Err(CommandError::BusyKey);
        }
        // Later grants must stay above a restored token, or fencing breaks.
        if let Some(token) = value.fencing_token() {
            ctx.shared
                .data
                .keyspace
                .observe_token(token)
                .map_err(|e| CommandError::err(format!("Bad data format: {e}")))?;
        }
        match expire_at {
            // Already expired: the restore leaves the key absent.
            Some(at) if at <= ctx.now => {
                table.remove(self.key, ctx.now);
            }
            _ => {
                let expiry = expire_at.map_or(Expiry::Persist, Expiry::At);
                table.insert(self.key, value, expiry, ctx.now);
                // As in Redis, each hint applies only under the policy that uses it.
                match (table.tracking().lfu, self.idle, self.freq) {
                    (false, Some(idle), _) => table.set_idle(self.key, idle, ctx.now),
                    (true, _, Some(freq)) => table.set_frequency(self.key, freq, ctx.now),
                    _ => {}
                }
            }
        }
        ctx.changed(notify::GENERIC, "restore", self.key);
        // Recorded with the expiry as an absolute time (or the deletion).
        match expire_at {
            Some(at) if at <= ctx.now => ctx.propagate(&[b"DEL", self.key]),
            _ => {
                let mut at_text = itoa::Buffer::new();
                let at = at_text.format(expire_at.unwrap_or(0)).as_bytes();
                let key = self.key;
                ctx.propagate(&[b"RESTORE", key, at, self.payload, b"REPLACE", b"ABSTTL"]);
            }
        }
        ctx.out.ok();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_slot_needs_a_literal_hash_tag() {
        assert_eq!(pattern_slot(b"{user1}:*"), Some(key_slot(b"user1")));
        assert_eq!(pattern_slot(b"*{user1}"), None);
        assert_eq!(pattern_slot(b"{us*er}"), None);
        assert_eq!(pattern_slot(b"{}*"), None);
        assert_eq!(pattern_slot(b"plain*"), None);
    }
}
