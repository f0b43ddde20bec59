//! List commands: pushes and pops at both ends, ranges, indexes, moves.

use super::access::{create, modify, read};
use super::parse::MPopArgs;
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::keyspace::types::{clamp_range, End, List};
use crate::notify;
use crate::protocol::Args;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "list", summary, handler)
        .keys(keys)
        .since(since)
}

const ONE: KeySpec = KeySpec::ONE;
const TWO: KeySpec = KeySpec::range(1, 2, 1);

/// The list family (blocking pops live in `blocking.rs`).
pub const COMMANDS: &[CommandSpec] = &[
    spec("lpush", -3, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist.", handler!(Push<'_>)),
    spec("rpush", -3, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist.", handler!(Push<'_>)),
    spec("lpushx", -3, WRITE | DENYOOM | FAST, ONE, "2.2.0", "Prepends one or more elements to a list only when the list exists.", handler!(Push<'_>)),
    spec("rpushx", -3, WRITE | DENYOOM | FAST, ONE, "2.2.0", "Appends an element to a list only when the list exists.", handler!(Push<'_>)),
    spec("lpop", -2, WRITE | FAST, ONE, "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", handler!(Pop<'_>)),
    spec("rpop", -2, WRITE | FAST, ONE, "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped.", handler!(Pop<'_>)),
    spec("llen", 2, READONLY | FAST, ONE, "1.0.0", "Returns the length of a list.", handler!(Len<'_>)),
    spec("lrange", 4, READONLY, ONE, "1.0.0", "Returns a range of elements from a list.", handler!(Range<'_>)),
    spec("lindex", 3, READONLY, ONE, "1.0.0", "Returns an element from a list by its index.", handler!(Index<'_>)),
    spec("lset", 4, WRITE | DENYOOM, ONE, "1.0.0", "Sets the value of an element in a list by its index.", handler!(Set<'_>)),
    spec("lrem", 4, WRITE, ONE, "1.0.0", "Removes elements from a list. Deletes the list if the last element was removed.", handler!(Rem<'_>)),
    spec("ltrim", 4, WRITE, ONE, "1.0.0", "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", handler!(Trim<'_>)),
    spec("linsert", 5, WRITE | DENYOOM, ONE, "2.2.0", "Inserts an element before or after another element in a list.", handler!(Insert<'_>)),
    spec("lpos", -3, READONLY, ONE, "6.0.6", "Returns the index of matching elements in a list.", handler!(Pos<'_>)),
    spec("lmove", 5, WRITE | DENYOOM, TWO, "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", handler!(Move<'_>)),
    spec("rpoplpush", 3, WRITE | DENYOOM, TWO, "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", handler!(Move<'_>)),
    spec("lmpop", -4, WRITE, KeySpec::counted(1), "7.0.0", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", handler!(MPop<'_>)),
];

/// The list at `key` for a read, if any.
fn get_list<'t>(ctx: &'t mut Ctx<'_, '_>, key: &[u8]) -> Result<Option<&'t List>, CommandError> {
    read::<List>(ctx.locks.table(key), key, ctx.now)
}

/// `LPUSH`, `RPUSH`, `LPUSHX`, `RPUSHX key element [element ...]`.
struct Push<'a> {
    key: &'a [u8],
    elements: Args<'a>,
}

impl<'a> Command<'a> for Push<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Push {
            key: p.arg()?,
            elements: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let name = ctx.name();
        let end = if name.starts_with('l') {
            End::Left
        } else {
            End::Right
        };
        let list = if name.ends_with('x') {
            match modify::<List>(ctx.locks.table(self.key), self.key, ctx.now)? {
                Some(list) => list,
                None => {
                    ctx.out.int(0);
                    return Ok(());
                }
            }
        } else {
            list_for_push(ctx, self.key)?
        };
        for element in self.elements.iter() {
            list.push(end, element);
        }
        let len = list.len();
        let event = if end == End::Left { "lpush" } else { "rpush" };
        ctx.changed_by(self.elements.len() as u64, notify::LIST, event, self.key);
        ctx.out.int(len as i64);
        Ok(())
    }
}

/// The list at `key` for a push, created if missing with the configured node
/// size (looked up only then: pushes to an existing list are the hot path).
fn list_for_push<'t>(ctx: &'t mut Ctx<'_, '_>, key: &[u8]) -> Result<&'t mut List, CommandError> {
    let limits = match read::<List>(ctx.locks.table(key), key, ctx.now)? {
        Some(_) => None,
        None => Some(ctx.limits()),
    };
    create(ctx.locks.table(key), key, ctx.now, || {
        List::new(&limits.unwrap_or_default())
    })
}

/// Parses the optional positive COUNT of the pop commands.
fn parse_count(p: &mut Parser<'_>) -> Result<Option<usize>, CommandError> {
    let Some(arg) = p.try_arg() else {
        return Ok(None);
    };
    match crate::protocol::number::parse_i64(arg) {
        Some(n) if n >= 0 => Ok(Some(n as usize)),
        _ => Err(CommandError::err("value is out of range, must be positive")),
    }
}

/// `LPOP`, `RPOP key [count]`.
struct Pop<'a> {
    key: &'a [u8],
    count: Option<usize>,
}

impl<'a> Command<'a> for Pop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        if p.remaining() > 1 {
            return Err(p.arity_error());
        }
        Ok(Pop {
            key,
            count: parse_count(p)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let end = if ctx.name() == "lpop" {
            End::Left
        } else {
            End::Right
        };
        let table = ctx.locks.table(self.key);
        let Some(list) = modify::<List>(table, self.key, ctx.now)? else {
            match self.count {
                Some(_) => ctx.out.null_array(),
                None => ctx.out.null(),
            }
            return Ok(());
        };
        let popped = match self.count {
            None => {
                let item = list.pop(end);
                ctx.out
                    .bulk(item.as_ref().map_or(&b""[..], |i| i.as_bytes()));
                1
            }
            Some(count) => {
                let n = count.min(list.len());
                ctx.out.array(n);
                for _ in 0..n {
                    if let Some(item) = list.pop(end) {
                        ctx.out.bulk(item.as_bytes());
                    }
                }
                n as u64
            }
        };
        let emptied = table.remove_if_empty(self.key, ctx.now);
        let event = if end == End::Left { "lpop" } else { "rpop" };
        ctx.changed_by(popped, notify::LIST, event, self.key);
        if emptied {
            ctx.emptied(self.key);
        }
        Ok(())
    }
}

/// `LLEN key`.
struct Len<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for Len<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Len { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let len = get_list(ctx, self.key)?.map_or(0, List::len);
        ctx.out.int(len as i64);
        Ok(())
    }
}

/// `LRANGE key start stop`.
struct Range<'a> {
    key: &'a [u8],
    start: i64,
    stop: i64,
}

impl<'a> Command<'a> for Range<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Range {
            key: p.arg()?,
            start: p.next_i64()?,
            stop: p.next_i64()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let list = read::<List>(ctx.locks.table(self.key), self.key, ctx.now)?;
        match list.and_then(|l| clamp_range(self.start, self.stop, l.len()).map(|r| (l, r))) {
            Some((list, (start, stop))) => {
                ctx.out.array(stop - start + 1);
                for item in list.range(start, stop) {
                    ctx.out.bulk(item);
                }
            }
            None => ctx.out.array(0),
        }
        Ok(())
    }
}

/// `LINDEX key index`.
struct Index<'a> {
    key: &'a [u8],
    index: i64,
}

impl<'a> Command<'a> for Index<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Index {
            key: p.arg()?,
            index: p.next_i64()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let list = read::<List>(ctx.locks.table(self.key), self.key, ctx.now)?;
        match list.and_then(|l| l.resolve(self.index).and_then(|i| l.get(i))) {
            Some(item) => ctx.out.bulk(item),
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// `LSET key index element`.
struct Set<'a> {
    key: &'a [u8],
    index: i64,
    element: &'a [u8],
}

impl<'a> Command<'a> for Set<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Set {
            key: p.arg()?,
            index: p.next_i64()?,
            element: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let list = modify::<List>(table, self.key, ctx.now)?.ok_or(CommandError::NoSuchKey)?;
        let index = list
            .resolve(self.index)
            .ok_or_else(|| CommandError::err("index out of range"))?;
        list.set(index, self.element);
        ctx.changed(notify::LIST, "lset", self.key);
        ctx.out.ok();
        Ok(())
    }
}

/// `LREM key count element`.
struct Rem<'a> {
    key: &'a [u8],
    count: i64,
    element: &'a [u8],
}

impl<'a> Command<'a> for Rem<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Rem {
            key: p.arg()?,
            count: p.next_i64()?,
            element: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let removed = match modify::<List>(table, self.key, ctx.now)? {
            Some(list) => list.remove(self.count, self.element),
            None => 0,
        };
        let emptied = table.remove_if_empty(self.key, ctx.now);
        if removed > 0 {
            ctx.changed_by(removed as u64, notify::LIST, "lrem", self.key);
        }
        if emptied {
            ctx.emptied(self.key);
        }
        ctx.out.int(removed as i64);
        Ok(())
    }
}

/// `LTRIM key start stop`.
struct Trim<'a> {
    key: &'a [u8],
    start: i64,
    stop: i64,
}

impl<'a> Command<'a> for Trim<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Trim {
            key: p.arg()?,
            start: p.next_i64()?,
            stop: p.next_i64()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        if let Some(list) = modify::<List>(table, self.key, ctx.now)? {
            let keep = clamp_range(self.start, self.stop, list.len());
            list.retain_range(keep);
            let emptied = table.remove_if_empty(self.key, ctx.now);
            ctx.changed(notify::LIST, "ltrim", self.key);
            if emptied {
                ctx.emptied(self.key);
            }
        }
        ctx.out.ok();
        Ok(())
    }
}

/// `LINSERT key BEFORE|AFTER pivot element`.
struct Insert<'a> {
    key: &'a [u8],
    after: bool,
    pivot: &'a [u8],
    element: &'a [u8],
}

impl<'a> Command<'a> for Insert<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let after = match p.next_keyword().map(|k| k.as_str() == "AFTER") {
            Some(after) if after || p.clone().rest().len() == 2 => after,
            _ => return Err(CommandError::Syntax),
        };
        Ok(Insert {
            key,
            after,
            pivot: p.arg()?,
            element: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let reply = match modify::<List>(table, self.key, ctx.now)? {
            None => 0,
            Some(list) => match list.insert(self.pivot, self.after, self.element) {
                Some(len) => {
                    ctx.changed(notify::LIST, "linsert", self.key);
                    len as i64
                }
                None => -1,
            },
        };
        ctx.out.int(reply);
        Ok(())
    }
}

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
struct Pos<'a> {
    key: &'a [u8],
    element: &'a [u8],
    rank: i64,
    count: Option<usize>,
    maxlen: usize,
}

impl<'a> Command<'a> for Pos<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut pos = Pos {
            key: p.arg()?,
            element: p.arg()?,
            rank: 1,
            count: None,
            maxlen: 0,
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "RANK" => {
                    pos.rank = p.next_i64()?;
                    // i64::MIN has no positive counterpart: Redis bounds RANK to ±i64::MAX.
                    if pos.rank == i64::MIN {
                        return Err(CommandError::err(
                            "value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                        ));
                    }
                    if pos.rank == 0 {
                        return Err(CommandError::err(
                            "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                        ));
                    }
                }
                "COUNT" => {
                    const NEGATIVE: &str = "COUNT can't be negative";
                    let n = p.next_i64_or(NEGATIVE)?;
                    if n < 0 {
                        return Err(CommandError::err(NEGATIVE));
                    }
                    pos.count = Some(n as usize);
                }
                "MAXLEN" => {
                    const NEGATIVE: &str = "MAXLEN can't be negative";
                    let n = p.next_i64_or(NEGATIVE)?;
                    if n < 0 {
                        return Err(CommandError::err(NEGATIVE));
                    }
                    pos.maxlen = n as usize;
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(pos)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let list = read::<List>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let mut found = Vec::new();
        if let Some(list) = list {
            let len = list.len();
            let scan = if self.maxlen == 0 {
                len
            } else {
                self.maxlen.min(len)
            };
            let wanted = match self.count {
                None => 1,
                Some(0) => usize::MAX,
                Some(n) => n,
            };
            // One walk from the end RANK names, comparing at most MAXLEN elements.
            let walk: Box<dyn Iterator<Item = (usize, &[u8])>> = if self.rank > 0 {
                Box::new(list.iter().enumerate().take(scan))
            } else {
                Box::new(
                    list.iter()
                        .rev()
                        .enumerate()
                        .take(scan)
                        .map(|(k, item)| (len - 1 - k, item)),
                )
            };
            let mut skip = self.rank.unsigned_abs() - 1;
            for (i, _) in walk.filter(|&(_, item)| item == self.element) {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                found.push(i);
                if found.len() == wanted {
                    break;
                }
            }
        }
        match self.count {
            None => match found.first() {
                Some(&i) => ctx.out.int(i as i64),
                None => ctx.out.null(),
            },
            Some(_) => {
                ctx.out.array(found.len());
                for i in found {
                    ctx.out.int(i as i64);
                }
            }
        }
        Ok(())
    }
}

/// Parses `LEFT` or `RIGHT`.
pub fn parse_end(arg: &[u8]) -> Result<End, CommandError> {
    match arg.to_ascii_uppercase().as_slice() {
        b"LEFT" => Ok(End::Left),
        b"RIGHT" => Ok(End::Right),
        _ => Err(CommandError::Syntax),
    }
}

/// Pops from `source` at `from` and pushes onto `destination` at `to`; the moved
/// element, or `None` when the source is empty. Checks both types first.
pub fn move_element(
    ctx: &mut Ctx<'_, '_>,
    source: &[u8],
    destination: &[u8],
    from: End,
    to: End,
) -> Result<Option<Vec<u8>>, CommandError> {
    if read::<List>(ctx.locks.table(source), source, ctx.now)?.is_none() {
        return Ok(None);
    }
    read::<List>(ctx.locks.table(destination), destination, ctx.now)?;
    let table = ctx.locks.table(source);
    let Some(item) = modify::<List>(table, source, ctx.now)?.and_then(|l| l.pop(from)) else {
        return Ok(None);
    };
    let emptied = table.remove_if_empty(source, ctx.now);
    list_for_push(ctx, destination)?.push(to, item.as_bytes());
    ctx.changed(
        notify::LIST,
        if from == End::Left { "lpop" } else { "rpop" },
        source,
    );
    if emptied {
        ctx.emptied(source);
    }
    ctx.changed(
        notify::LIST,
        if to == End::Left { "lpush" } else { "rpush" },
        destination,
    );
    // Blocking forms are recorded as the move they made.
    ctx.propagate(&[b"LMOVE", source, destination, from.word(), to.word()]);
    Ok(Some(item.as_bytes().to_vec()))
}

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT` and `RPOPLPUSH source destination`.
struct Move<'a> {
    source: &'a [u8],
    destination: &'a [u8],
    ends: Option<(End, End)>,
}

impl<'a> Command<'a> for Move<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (source, destination) = (p.arg()?, p.arg()?);
        let ends = match p.try_arg() {
            Some(from) => Some((parse_end(from)?, parse_end(p.arg()?)?)),
            None => None,
        };
        Ok(Move {
            source,
            destination,
            ends,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let (from, to) = self.ends.unwrap_or((End::Right, End::Left));
        match move_element(ctx, self.source, self.destination, from, to)? {
            Some(item) => ctx.out.bulk(&item),
            None => ctx.out.null(),
        }
        Ok(())
    }
}

impl MPopArgs<'_, End> {
    /// Pops from the first non-empty list and replies `[key, [elements]]`; false
    /// (nothing written) when every list is empty or missing.
    pub fn pop(&self, ctx: &mut Ctx<'_, '_>) -> Result<bool, CommandError> {
        for &key in &self.keys {
            let table = ctx.locks.table(key);
            let Some(list) = modify::<List>(table, key, ctx.now)? else {
                continue;
            };
            let n = self.count.min(list.len());
            ctx.out.array(2);
            ctx.out.bulk(key);
            ctx.out.array(n);
            for _ in 0..n {
                if let Some(item) = list.pop(self.end) {
                    ctx.out.bulk(item.as_bytes());
                }
            }
            let emptied = table.remove_if_empty(key, ctx.now);
            let event = if self.end == End::Left {
                "lpop"
            } else {
                "rpop"
            };
            ctx.changed_by(n as u64, notify::LIST, event, key);
            if emptied {
                ctx.emptied(key);
            }
            let mut count = itoa::Buffer::new();
            let pop: &[u8] = if self.end == End::Left {
                b"LPOP"
            } else {
                b"RPOP"
            };
            ctx.propagate(&[pop, key, count.format(n).as_bytes()]);
            return Ok(true);
        }
        Ok(false)
    }
}

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`.
struct MPop<'a>(MPopArgs<'a, End>);

impl<'a> Command<'a> for MPop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        MPopArgs::parse(p, parse_end).map(MPop)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if !self.0.pop(ctx)? {
            ctx.out.null_array();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 5), Some((0, 4)));
        assert_eq!(clamp_range(-2, -1, 5), Some((3, 4)));
        assert_eq!(clamp_range(-100, 1, 5), Some((0, 1)));
        assert_eq!(clamp_range(2, 100, 5), Some((2, 4)));
        assert_eq!(clamp_range(5, 10, 5), None);
        assert_eq!(clamp_range(3, 1, 5), None);
        assert_eq!(clamp_range(0, -1, 0), None);
    }
}
