//! SORT and SORT_RO: the elements of a list, set or sorted set, sorted as
//! numbers or as strings, by themselves or by other keys' values (`BY`),
//! replied or stored as a list, with other keys' values in their place (`GET`).

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use super::access::read;
use super::table::{flag::*, CommandSpec, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::keyspace::types::{End, Hash, List};
use crate::keyspace::{key_slot, Expiry, Value};
use crate::notify;
use crate::protocol::number::parse_double;

const fn spec(
    name: &'static str,
    flags: u32,
    keys: KeySpec,
    summary: &'static str,
    since: &'static str,
) -> CommandSpec {
    CommandSpec::new(name, -2, flags, "generic", summary, handler!(Sort<'_>))
        .keys(keys)
        .since(since)
}

/// The sort family.
pub const COMMANDS: &[CommandSpec] = &[
    // STORE's destination is a key too (found by COMMAND GETKEYS, routed in a
    // cluster): the first key and, after a STORE keyword, the next argument.
    spec(
        "sort",
        WRITE | DENYOOM,
        KeySpec::SORT,
        "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        "1.0.0",
    ),
    spec(
        "sort_ro",
        READONLY,
        KeySpec::ONE,
        "Returns the sorted elements of a list, a set, or a sorted set.",
        "7.0.0",
    ),
];

/// How long SORT waits for another client's hold on a slot that a `BY` or
/// `GET` pattern reads, before giving up.
const PATTERN_SLOT_WAIT: Duration = Duration::from_secs(1);

/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC]
/// [ALPHA] [STORE destination]`, and `SORT_RO` without `STORE`.
struct Sort<'a> {
    key: &'a [u8],
    /// `BY`: a pattern with `*` sorts by other keys' values; one without sorts
    /// nothing (the elements stay in the order stored).
    by: Option<&'a [u8]>,
    /// `LIMIT offset count`.
    limit: Option<(i64, i64)>,
    /// The `GET` patterns, in order.
    gets: Vec<&'a [u8]>,
    desc: bool,
    alpha: bool,
    store: Option<&'a [u8]>,
}

impl<'a> Command<'a> for Sort<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let mut sort = Sort {
            key: p.arg()?,
            by: None,
            limit: None,
            gets: Vec::new(),
            desc: false,
            alpha: false,
            store: None,
        };
        while let Some(word) = p.next_keyword() {
            match word.as_str() {
                "ASC" => sort.desc = false,
                "DESC" => sort.desc = true,
                "ALPHA" => sort.alpha = true,
                "LIMIT" if p.remaining() >= 2 => {
                    sort.limit = Some((p.next_i64()?, p.next_i64()?));
                }
                // SORT_RO has no STORE: its parse refuses it below.
                "STORE" if p.remaining() >= 1 && !p.called_as("sort_ro") => {
                    sort.store = Some(p.arg()?)
                }
                "BY" if p.remaining() >= 1 => sort.by = Some(p.arg()?),
                "GET" if p.remaining() >= 1 => sort.gets.push(p.arg()?),
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(sort)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        // Patterns read keys in any slot: a cluster node cannot.
        if ctx.shared.cluster.enabled() {
            if self.by.is_some_and(|by| by.contains(&b'*')) {
                return Err(CommandError::err(
                    "BY option of SORT denied in Cluster mode.",
                ));
            }
            if !self.gets.is_empty() {
                return Err(CommandError::err(
                    "GET option of SORT denied in Cluster mode.",
                ));
            }
        }
        let (elements, ordered) = self.load(ctx)?;
        let mut dont_sort = self.by.is_some_and(|by| !by.contains(&b'*'));
        let mut alpha = self.alpha;
        let mut by = self.by.filter(|_| !dont_sort);
        // A set's stored order is arbitrary: stored, it is sorted as strings so
        // that a replica's copy or a script's result does not depend on it.
        if dont_sort && !ordered && self.store.is_some() {
            (dont_sort, alpha, by) = (false, true, None);
        }
        let (start, end) = limits(self.limit, elements.len());
        let mut items: Vec<Item> = elements
            .into_iter()
            .map(|element| Item {
                element,
                score: 0.0,
                key: None,
            })
            .collect();
        if dont_sort {
            if self.desc && ordered {
                items.reverse();
            }
        } else {
            let mut unconvertible = false;
            for item in &mut items {
                let value = match by {
                    Some(pattern) => match lookup(ctx, pattern, &item.element)? {
                        Some(value) => value,
                        // A missing value sorts as 0, or first as a string.
                        None => continue,
                    },
                    None => item.element.clone(),
                };
                if alpha {
                    if by.is_some() {
                        item.key = Some(value);
                    }
                } else {
                    match sort_score(&value) {
                        Some(score) => item.score = score,
                        None => unconvertible = true,
                    }
                }
            }
            if unconvertible {
                return Err(CommandError::err(
                    "One or more scores can't be converted into double",
                ));
            }
            let by_pattern = by.is_some();
            items.sort_by(|a, b| {
                let order = compare(a, b, alpha, by_pattern);
                if self.desc {
                    order.reverse()
                } else {
                    order
                }
            });
        }
        let chosen = items.get(start..end).unwrap_or_default();
        let mut out: Vec<Option<Vec<u8>>> = Vec::new();
        for item in chosen {
            if self.gets.is_empty() {
                out.push(Some(item.element.clone()));
            }
            for pattern in &self.gets {
                out.push(lookup(ctx, pattern, &item.element)?);
            }
        }
        match self.store {
            None => {
                ctx.out.array(out.len());
                for value in &out {
                    match value {
                        Some(v) => ctx.out.bulk(v),
                        None => ctx.out.null(),
                    }
                }
            }
            Some(destination) => store(ctx, destination, &out),
        }
        Ok(())
    }
}

impl Sort<'_> {
    /// The elements to sort, and whether their stored order means something
    /// (a list's or a sorted set's, not a set's). A missing key has none.
    fn load(&self, ctx: &mut Ctx<'_, '_>) -> Result<(Vec<Vec<u8>>, bool), CommandError> {
        let table = ctx.locks.table(self.key);
        let Some(entry) = table.get(self.key, ctx.now) else {
            return Ok((Vec::new(), true));
        };
        // One lookup: the value is read where it was found (a second would
        // count a second access for eviction).
        Ok(match &*entry.value {
            Value::List(list) => (list.iter().map(<[u8]>::to_vec).collect(), true),
            Value::Set(set) => (set.iter().map(|m| m.to_vec()).collect(), false),
            Value::ZSet(zset) => (
                zset.iter_from(0, false).map(|(m, _)| m.to_vec()).collect(),
                true,
            ),
            _ => return Err(CommandError::WrongType),
        })
    }
}

/// An element being sorted, with what it sorts by.
struct Item {
    element: Vec<u8>,
    /// Numeric sorts: the element's (or its `BY` value's) number.
    score: f64,
    /// `ALPHA` sorts by pattern: the `BY` value, `None` where missing.
    key: Option<Vec<u8>>,
}

/// Redis's order: numbers by value then by the element's bytes; strings by
/// their bytes, a missing `BY` value first.
fn compare(a: &Item, b: &Item, alpha: bool, by_pattern: bool) -> Ordering {
    if !alpha {
        return a
            .score
            .partial_cmp(&b.score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.element.cmp(&b.element));
    }
    if by_pattern {
        return a.key.cmp(&b.key);
    }
    a.element.cmp(&b.element)
}

/// An element or `BY` value as a number, as Redis reads it with `strtod`: the
/// empty string is 0, leading spaces are allowed, anything left over, NaN or a
/// number out of a double's range is not a number.
fn sort_score(bytes: &[u8]) -> Option<f64> {
    if bytes.is_empty() {
        return Some(0.0);
    }
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    parse_double(&bytes[start..])
}

/// The range of sorted items `LIMIT offset count` keeps out of `len`, as
/// Redis clamps it.
fn limits(limit: Option<(i64, i64)>, len: usize) -> (usize, usize) {
    let len = len as i64;
    let (offset, count) = limit.unwrap_or((0, -1));
    let start = offset.clamp(0, len);
    let count = count.clamp(-1, len);
    let end = if count < 0 {
        len
    } else {
        (start + count).min(len)
    };
    (start as usize, end.max(start) as usize)
}

/// The value a `BY` or `GET` pattern names for `element`: `#` is the element
/// itself; otherwise the first `*` is replaced by it, giving a string key, or a
/// hash field after `->`. `None` when the pattern has no `*`, the key is missing
/// or holds another type, or the field is missing.
fn lookup(
    ctx: &mut Ctx<'_, '_>,
    pattern: &[u8],
    element: &[u8],
) -> Result<Option<Vec<u8>>, CommandError> {
    if pattern == b"#" {
        return Ok(Some(element.to_vec()));
    }
    let Some(star) = pattern.iter().position(|&b| b == b'*') else {
        return Ok(None);
    };
    let rest = &pattern[star + 1..];
    let (postfix, field) = match rest.windows(2).position(|w| w == b"->") {
        Some(at) if at + 2 < rest.len() => (&rest[..at], Some(&rest[at + 2..])),
        _ => (rest, None),
    };
    let key = [&pattern[..star], element, postfix].concat();
    reach(ctx, key_slot(&key))?;
    let table = ctx.locks.table(&key);
    let Some(entry) = table.get(&key, ctx.now) else {
        return Ok(None);
    };
    Ok(match (field, &*entry.value) {
        (None, value @ (Value::Str(_) | Value::Int(_))) => {
            value.string_bytes().map(|b| b.into_owned())
        }
        (Some(field), Value::Hash(_)) => read::<Hash>(table, &key, ctx.now)?
            .and_then(|hash| hash.get(field))
            .map(<[u8]>::to_vec),
        _ => None,
    })
}

/// Locks `slot` for a pattern's read if the command does not hold it yet,
/// waiting a little for another client that does (a try, never a wait that
/// could deadlock with it).
fn reach(ctx: &mut Ctx<'_, '_>, slot: u16) -> CommandResult {
    if ctx.locks.holds(slot) {
        return Ok(());
    }
    let deadline = Instant::now() + PATTERN_SLOT_WAIT;
    while !ctx.locks.try_acquire(slot) {
        if Instant::now() >= deadline {
            return Err(CommandError::err(
                "SORT could not read a key of a slot another client held too long",
            ));
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// `STORE`: the result as a list at `destination` (a missing `GET` value as
/// the empty string), replacing it and its TTL; an empty result deletes it.
/// Replies the list's length.
fn store(ctx: &mut Ctx<'_, '_>, destination: &[u8], values: &[Option<Vec<u8>>]) {
    let limits = ctx.limits();
    let table = ctx.locks.table(destination);
    if values.is_empty() {
        if table.remove(destination, ctx.now).is_some() {
            ctx.changed(notify::GENERIC, "del", destination);
        }
    } else {
        let mut list = List::new(&limits);
        for value in values {
            list.push(End::Right, value.as_deref().unwrap_or_default());
        }
        table.insert(
            destination,
            Value::List(Box::new(list)),
            Expiry::Persist,
            ctx.now,
        );
        ctx.changed_by(values.len() as u64, notify::LIST, "sortstore", destination);
        // The stored list, not the request: patterns may have read keys the
        // replica would read in another state.
        ctx.propagate_state(destination);
    }
    ctx.out.int(values.len() as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_clamp_as_redis_does() {
        assert_eq!(limits(None, 5), (0, 5));
        assert_eq!(limits(Some((1, 2)), 5), (1, 3));
        assert_eq!(limits(Some((-3, 2)), 5), (0, 2));
        assert_eq!(limits(Some((4, 10)), 5), (4, 5));
        assert_eq!(limits(Some((5, 1)), 5), (5, 5));
        assert_eq!(limits(Some((2, -7)), 5), (2, 5));
        assert_eq!(limits(Some((0, 0)), 5), (0, 0));
        assert_eq!(limits(Some((i64::MAX, i64::MAX)), 5), (5, 5));
    }

    #[test]
    fn scores_read_as_strtod_reads_them() {
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b"  2.5"), Some(2.5));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        for bad in [&b"2.5 "[..], b"x", b"nan", b"1e400", b"1e-400", b"   "] {
            assert_eq!(sort_score(bad), None, "{:?}", bad);
        }
    }
}
