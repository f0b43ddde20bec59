//! Set commands, including the set algebra (`SINTER`, `SUNION`, `SDIFF` and their
//! `STORE` forms).

use indexmap::IndexSet;

use super::access::{create, modify, read};
use super::random::Picks;
use super::scan::{CursorArgs, ScanReply};
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::clock::Millis;
use crate::keyspace::types::{EncodingLimits, Member, Set};
use crate::keyspace::{Expiry, KeyHasher, Locked, Value};
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
    CommandSpec::new(name, arity, flags, "set", summary, handler)
        .keys(keys)
        .since(since)
}

const ONE: KeySpec = KeySpec::ONE;

/// The set family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("sadd", -3, WRITE | DENYOOM | FAST, ONE, "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist.", handler!(SAdd<'_>)),
    spec("srem", -3, WRITE | FAST, ONE, "1.0.0", "Removes one or more members from a set. Deletes the set if the last member was removed.", handler!(SRem<'_>)),
    spec("smembers", 2, READONLY, ONE, "1.0.0", "Returns all members of a set.", handler!(SMembers<'_>)),
    spec("sismember", 3, READONLY | FAST, ONE, "1.0.0", "Determines whether a member belongs to a set.", handler!(SIsMember<'_>)),
    spec("smismember", -3, READONLY | FAST, ONE, "6.2.0", "Determines whether multiple members belong to a set.", handler!(SMIsMember<'_>)),
    spec("scard", 2, READONLY | FAST, ONE, "1.0.0", "Returns the number of members in a set.", handler!(SCard<'_>)),
    spec("spop", -2, WRITE | FAST, ONE, "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", handler!(SPop<'_>)),
    spec("srandmember", -2, READONLY, ONE, "1.0.0", "Get one or multiple random members from a set", handler!(SRandMember<'_>)),
    spec("smove", 4, WRITE | FAST, KeySpec::range(1, 2, 1), "1.0.0", "Moves a member from one set to another.", handler!(SMove<'_>)),
    spec("sinter", -2, READONLY, KeySpec::ALL, "1.0.0", "Returns the intersect of multiple sets.", handler!(Algebra<'_>)),
    spec("sunion", -2, READONLY, KeySpec::ALL, "1.0.0", "Returns the union of multiple sets.", handler!(Algebra<'_>)),
    spec("sdiff", -2, READONLY, KeySpec::ALL, "1.0.0", "Returns the difference of multiple sets.", handler!(Algebra<'_>)),
    spec("sinterstore", -3, WRITE | DENYOOM, KeySpec::ALL, "1.0.0", "Stores the intersect of multiple sets in a key.", handler!(Algebra<'_>)),
    spec("sunionstore", -3, WRITE | DENYOOM, KeySpec::ALL, "1.0.0", "Stores the union of multiple sets in a key.", handler!(Algebra<'_>)),
    spec("sdiffstore", -3, WRITE | DENYOOM, KeySpec::ALL, "1.0.0", "Stores the difference of multiple sets in a key.", handler!(Algebra<'_>)),
    spec("sintercard", -3, READONLY, KeySpec::counted(1), "7.0.0", "Returns the number of members of the intersect of multiple sets.", handler!(SInterCard<'_>)),
    spec("sscan", -3, READONLY, ONE, "2.8.0", "Iterates over members of a set.", handler!(SScan<'_>)),
];

/// `SADD key member [member ...]`.
struct SAdd<'a> {
    key: &'a [u8],
    members: Args<'a>,
}

impl<'a> Command<'a> for SAdd<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SAdd {
            key: p.arg()?,
            members: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let first = self.members.get(0).unwrap_or_default();
        let set = create(ctx.locks.table(self.key), self.key, ctx.now, || {
            Set::for_member(first, &limits)
        })?;
        let added = self.members.iter().filter(|m| set.add(m, &limits)).count();
        if added > 0 {
            ctx.changed_by(added as u64, notify::SET, "sadd", self.key);
        }
        ctx.out.int(added as i64);
        Ok(())
    }
}

/// `SREM key member [member ...]`.
struct SRem<'a> {
    key: &'a [u8],
    members: Args<'a>,
}

impl<'a> Command<'a> for SRem<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SRem {
            key: p.arg()?,
            members: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let removed = match modify::<Set>(table, self.key, ctx.now)? {
            Some(set) => self.members.iter().filter(|m| set.remove(m)).count(),
            None => 0,
        };
        let emptied = table.remove_if_empty(self.key, ctx.now);
        if removed > 0 {
            ctx.changed_by(removed as u64, notify::SET, "srem", self.key);
        }
        if emptied {
            ctx.emptied(self.key);
        }
        ctx.out.int(removed as i64);
        Ok(())
    }
}

/// Writes members as a set reply.
fn reply_members<'m>(
    ctx: &mut Ctx<'_, '_>,
    len: usize,
    members: impl Iterator<Item = Vec<u8>> + 'm,
) {
    ctx.out.set(len);
    for m in members {
        ctx.out.bulk(&m);
    }
}

/// `SMEMBERS key`.
struct SMembers<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for SMembers<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SMembers { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let set = read::<Set>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let members: Vec<Vec<u8>> = set
            .into_iter()
            .flat_map(Set::iter)
            .map(|m| m.to_vec())
            .collect();
        reply_members(ctx, members.len(), members.into_iter());
        Ok(())
    }
}

/// `SISMEMBER key member`.
struct SIsMember<'a> {
    key: &'a [u8],
    member: &'a [u8],
}

impl<'a> Command<'a> for SIsMember<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SIsMember {
            key: p.arg()?,
            member: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let set = read::<Set>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out
            .int(i64::from(set.is_some_and(|s| s.contains(self.member))));
        Ok(())
    }
}

/// `SMISMEMBER key member [member ...]`.
struct SMIsMember<'a> {
    key: &'a [u8],
    members: Args<'a>,
}

impl<'a> Command<'a> for SMIsMember<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SMIsMember {
            key: p.arg()?,
            members: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let set = read::<Set>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out.array(self.members.len());
        for m in self.members.iter() {
            ctx.out.int(i64::from(set.is_some_and(|s| s.contains(m))));
        }
        Ok(())
    }
}

/// `SCARD key`.
struct SCard<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for SCard<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SCard { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let set = read::<Set>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out.int(set.map_or(0, Set::len) as i64);
        Ok(())
    }
}

/// Parses an optional non-negative count.
fn optional_count(p: &mut Parser<'_>) -> Result<Option<usize>, CommandError> {
    let Some(arg) = p.try_arg() else {
        return Ok(None);
    };
    match crate::protocol::number::parse_i64(arg) {
        Some(n) if n >= 0 => Ok(Some(n as usize)),
        // Redis gives the range message to non-integers too.
        _ => Err(CommandError::err("value is out of range, must be positive")),
    }
}

/// `SPOP key [count]`.
struct SPop<'a> {
    key: &'a [u8],
    count: Option<usize>,
}

impl<'a> Command<'a> for SPop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let count = optional_count(p)?;
        Ok(SPop { key, count })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let popped: Vec<Vec<u8>> = match modify::<Set>(table, self.key, ctx.now)? {
            Some(set) => (0..self.count.unwrap_or(1))
                .map_while(|_| set.pop_random())
                .collect(),
            None => Vec::new(),
        };
        let emptied = table.remove_if_empty(self.key, ctx.now);
        if !popped.is_empty() {
            ctx.changed_by(popped.len() as u64, notify::SET, "spop", self.key);
            if emptied {
                ctx.emptied(self.key);
            }
            // The members chosen, not the choice.
            if ctx.feeding() {
                let mut srem: Vec<&[u8]> = vec![b"SREM", self.key];
                srem.extend(popped.iter().map(Vec::as_slice));
                ctx.propagate(&srem);
            }
        }
        match self.count {
            None => match popped.first() {
                Some(m) => ctx.out.bulk(m),
                None => ctx.out.null(),
            },
            Some(_) => reply_members(ctx, popped.len(), popped.into_iter()),
        }
        Ok(())
    }
}

/// `SRANDMEMBER key [count]`.
struct SRandMember<'a> {
    key: &'a [u8],
    count: Option<i64>,
}

impl<'a> Command<'a> for SRandMember<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let (count, _) = super::random::parse_count(p, None)?;
        Ok(SRandMember { key, count })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let set = read::<Set>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let picks = Picks::new(set.map_or(0, Set::len), self.count);
        picks.reply(ctx.out, self.count.is_some(), false, |out, i| {
            match set.and_then(|s| s.member_at(i)) {
                Some(Member::Int(n)) => out.bulk_int(n),
                Some(Member::Bytes(b)) => out.bulk(b),
                None => {}
            }
        });
        Ok(())
    }
}

/// `SMOVE source destination member`.
struct SMove<'a> {
    source: &'a [u8],
    destination: &'a [u8],
    member: &'a [u8],
}

impl<'a> Command<'a> for SMove<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(SMove {
            source: p.arg()?,
            destination: p.arg()?,
            member: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let in_source = match read::<Set>(ctx.locks.table(self.source), self.source, ctx.now)? {
            Some(set) => set.contains(self.member),
            None => false,
        };
        read::<Set>(ctx.locks.table(self.destination), self.destination, ctx.now)?;
        if !in_source || self.source == self.destination {
            ctx.out.int(i64::from(in_source));
            return Ok(());
        }
        let table = ctx.locks.table(self.source);
        if let Some(set) = modify::<Set>(table, self.source, ctx.now)? {
            set.remove(self.member);
        }
        let emptied = table.remove_if_empty(self.source, ctx.now);
        ctx.changed(notify::SET, "srem", self.source);
        if emptied {
            ctx.emptied(self.source);
        }
        let added = create(
            ctx.locks.table(self.destination),
            self.destination,
            ctx.now,
            || Set::for_member(self.member, &limits),
        )?
        .add(self.member, &limits);
        // As Redis: the destination changed only if the member was new there.
        if added {
            ctx.changed(notify::SET, "sadd", self.destination);
        }
        ctx.out.int(1);
        Ok(())
    }
}

/// The sets at `keys`, borrowed side by side (`None` where a key is missing, which
/// counts as an empty set); WRONGTYPE if any key holds another type.
fn borrow_sets<'l>(
    locks: &'l mut Locked<'_>,
    keys: &[&[u8]],
    now: Millis,
) -> Result<Vec<Option<&'l Set>>, CommandError> {
    locks
        .values(keys, now)
        .into_iter()
        .map(|value| match value {
            None => Ok(None),
            Some(Value::Set(set)) => Ok(Some(&**set)),
            Some(_) => Err(CommandError::WrongType),
        })
        .collect()
}

/// Runs `f` on a member's bytes (an integer-set member formatted on the stack).
fn with_bytes<R>(member: Member<'_>, f: impl FnOnce(&[u8]) -> R) -> R {
    match member {
        Member::Bytes(b) => f(b),
        Member::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
    }
}

/// The members common to all `sets`: the smallest one's members, each checked
/// against the others, so O(N*M) for N members of the smallest of M sets, as in
/// Redis. Lazy, so a count with a limit stops early.
fn intersection<'s>(sets: &[Option<&'s Set>]) -> impl Iterator<Item = Member<'s>> + 's {
    // A missing key is an empty set, and so is then the intersection.
    let mut sets: Vec<&Set> = sets
        .iter()
        .copied()
        .collect::<Option<_>>()
        .unwrap_or_default();
    sets.sort_by_key(|s| s.len());
    let smallest = sets.first().copied();
    smallest
        .into_iter()
        .flat_map(Set::iter)
        .filter(move |&m| with_bytes(m, |b| sets[1..].iter().all(|o| o.contains(b))))
}

/// A set of `members` (`None` for none), encoded as SADD would encode it.
fn collect_set<'m>(
    members: impl Iterator<Item = Member<'m>>,
    limits: &EncodingLimits,
) -> Option<Set> {
    let mut set: Option<Set> = None;
    for member in members {
        with_bytes(member, |b| {
            set.get_or_insert_with(|| Set::for_member(b, limits))
                .add(b, limits)
        });
    }
    set
}

/// The members of any of `sets`, each once, in first-seen order: O(total size).
fn union(sets: &[Option<&Set>]) -> Vec<Vec<u8>> {
    let mut seen: IndexSet<Vec<u8>, KeyHasher> = IndexSet::default();
    for member in sets.iter().flatten().flat_map(|s| s.iter()) {
        with_bytes(member, |b| {
            if !seen.contains(b) {
                seen.insert(b.to_vec());
            }
        });
    }
    seen.into_iter().collect()
}

/// The members of the first set in none of the others, by whichever of Redis's
/// two ways is less work: check each member of the first against the others
/// (N*M), or take the others' members out of a copy of the first (total size).
fn difference(sets: &[Option<&Set>]) -> Vec<Vec<u8>> {
    let Some(Some(first)) = sets.first() else {
        return Vec::new();
    };
    let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
    let check_each = first.len() * others.len() / 2;
    let take_out: usize = first.len() + others.iter().map(|s| s.len()).sum::<usize>();
    if check_each <= take_out {
        first
            .iter()
            .filter(|&m| with_bytes(m, |b| !others.iter().any(|o| o.contains(b))))
            .map(Member::to_vec)
            .collect()
    } else {
        let mut left: IndexSet<Vec<u8>, KeyHasher> = first.iter().map(Member::to_vec).collect();
        for member in others.iter().flat_map(|s| s.iter()) {
            with_bytes(member, |b| left.swap_remove(b));
            if left.is_empty() {
                break;
            }
        }
        left.into_iter().collect()
    }
}

/// `SINTER`, `SUNION`, `SDIFF key [key ...]` and their `STORE destination key
/// [key ...]` forms.
struct Algebra<'a> {
    keys: Args<'a>,
}

impl<'a> Command<'a> for Algebra<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Algebra { keys: p.rest() })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let name = ctx.name();
        let store = name.ends_with("store");
        let op = &name[1..if store { name.len() - 5 } else { name.len() }];
        let sources: Vec<&[u8]> = if store { self.keys.skip(1) } else { self.keys }
            .iter()
            .collect();
        let limits = ctx.limits();
        let sets = borrow_sets(ctx.locks, &sources, ctx.now)?;
        if !store {
            let result = match op {
                "inter" => intersection(&sets).map(Member::to_vec).collect(),
                "union" => union(&sets),
                _ => difference(&sets),
            };
            reply_members(ctx, result.len(), result.into_iter());
            return Ok(());
        }
        // Stored results go straight into the new set, which also dedups a union.
        let result = match op {
            "inter" => collect_set(intersection(&sets), &limits),
            "union" => collect_set(sets.iter().flatten().flat_map(|s| s.iter()), &limits),
            _ => collect_set(difference(&sets).iter().map(|m| Member::Bytes(m)), &limits),
        };
        let len = result.as_ref().map_or(0, Set::len);
        let destination = self.keys.get(0).unwrap_or_default();
        let table = ctx.locks.table(destination);
        let existed = table.remove(destination, ctx.now).is_some();
        match result {
            Some(set) => {
                table.insert(
                    destination,
                    Value::Set(Box::new(set)),
                    Expiry::Persist,
                    ctx.now,
                );
                ctx.changed(notify::SET, name, destination);
            }
            // As Redis: an empty result deletes the destination.
            None if existed => ctx.changed(notify::GENERIC, "del", destination),
            None => {}
        }
        ctx.out.int(len as i64);
        Ok(())
    }
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`.
struct SInterCard<'a> {
    keys: Vec<&'a [u8]>,
    limit: usize,
}

impl<'a> Command<'a> for SInterCard<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        const NO_KEYS: &str = "numkeys should be greater than 0";
        let numkeys = p.next_i64_or(NO_KEYS)?;
        if numkeys <= 0 {
            return Err(CommandError::err(NO_KEYS));
        }
        if numkeys as usize > p.remaining() {
            return Err(CommandError::err(
                "Number of keys can't be greater than number of args",
            ));
        }
        let keys = (0..numkeys)
            .map(|_| p.arg())
            .collect::<Result<Vec<_>, _>>()?;
        let mut limit = 0;
        if p.eat("LIMIT") {
            const NEGATIVE: &str = "LIMIT can't be negative";
            let n = p.next_i64_or(NEGATIVE)?;
            if n < 0 {
                return Err(CommandError::err(NEGATIVE));
            }
            limit = n as usize;
        }
        Ok(SInterCard { keys, limit })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let sets = borrow_sets(ctx.locks, &self.keys, ctx.now)?;
        let limit = if self.limit == 0 {
            usize::MAX
        } else {
            self.limit
        };
        let count = intersection(&sets).take(limit).count();
        ctx.out.int(count as i64);
        Ok(())
    }
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`.
struct SScan<'a> {
    key: &'a [u8],
    args: CursorArgs<'a>,
}

impl<'a> Command<'a> for SScan<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let (args, _) = CursorArgs::parse(p, &[])?;
        Ok(SScan { key, args })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let set = read::<Set>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let mut reply = ScanReply::default();
        if let Some(set) = set {
            reply.cursor = self.args.walk(set.len(), set.is_compact(), |i| {
                if let Some(member) = set.member_at(i).map(|m| m.to_vec()) {
                    if self.args.matches(&member) {
                        reply.items.push(member);
                    }
                }
            });
        }
        reply.write(ctx.out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[&str]) -> Set {
        let limits = EncodingLimits::default();
        let mut s = Set::for_member(members.first().map_or(b"", |m| m.as_bytes()), &limits);
        for m in members {
            s.add(m.as_bytes(), &limits);
        }
        s
    }

    fn sorted(mut v: Vec<Vec<u8>>) -> Vec<String> {
        v.sort();
        v.into_iter()
            .map(|m| String::from_utf8(m).unwrap())
            .collect()
    }

    #[test]
    fn set_algebra() {
        let (a, b, c) = (
            set(&["a", "b", "c", "d"]),
            set(&["c"]),
            set(&["a", "c", "e"]),
        );
        let input = [Some(&a), Some(&b), Some(&c)];
        let inter: Vec<Vec<u8>> = intersection(&input).map(Member::to_vec).collect();
        assert_eq!(sorted(inter), ["c"]);
        assert_eq!(sorted(union(&input)), ["a", "b", "c", "d", "e"]);
        assert_eq!(sorted(difference(&input)), ["b", "d"]);
        assert_eq!(intersection(&[Some(&a), None]).count(), 0);
        assert_eq!(sorted(union(&[None, Some(&b)])), ["c"]);
        assert!(difference(&[None, Some(&a)]).is_empty());
    }

    #[test]
    fn both_ways_of_taking_a_difference_agree() {
        let big: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let big_refs: Vec<&str> = big.iter().map(String::as_str).collect();
        let (big, small) = (set(&big_refs), set(&["5", "50", "x"]));
        // Small first: each member checked. Big first: the small one taken out.
        assert_eq!(sorted(difference(&[Some(&small), Some(&big)])), ["x"]);
        let rest = difference(&[Some(&big), Some(&small), Some(&small)]);
        assert_eq!(rest.len(), 98);
        assert!(!rest.contains(&b"5".to_vec()) && rest.contains(&b"6".to_vec()));
    }
}
