//! Sorted-set commands: adds with all of ZADD's options, rank/score/lex ranges,
//! pops, removals by range, and union/intersection/difference.

use indexmap::IndexMap;

use super::access::{create, modify, read};
use super::parse::MPopArgs;
use super::random::Picks;
use super::scan::{CursorArgs, ScanReply};
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::keyspace::types::{clamp_range, LexBound, Member, ScoreBound, Set, ZSet};
use crate::keyspace::{Expiry, KeyHasher, Value};
use crate::notify;
use crate::protocol::number::parse_double;
use crate::protocol::{Args, Protocol, Reply};

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "sorted-set", summary, handler)
        .keys(keys)
        .since(since)
}

const ONE: KeySpec = KeySpec::ONE;
const STORE: KeySpec = KeySpec::ONE.and_counted(2);

/// The sorted-set family (blocking pops live in `blocking.rs`).
pub const COMMANDS: &[CommandSpec] = &[
    spec("zadd", -4, WRITE | DENYOOM | FAST, ONE, "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", handler!(ZAdd<'_>)),
    spec("zincrby", 4, WRITE | DENYOOM | FAST, ONE, "1.2.0", "Increments the score of a member in a sorted set.", handler!(ZIncrBy<'_>)),
    spec("zrem", -3, WRITE | FAST, ONE, "1.2.0", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", handler!(ZRem<'_>)),
    spec("zscore", 3, READONLY | FAST, ONE, "1.2.0", "Returns the score of a member in a sorted set.", handler!(ZScore<'_>)),
    spec("zmscore", -3, READONLY | FAST, ONE, "6.2.0", "Returns the score of one or more members in a sorted set.", handler!(ZMScore<'_>)),
    spec("zcard", 2, READONLY | FAST, ONE, "1.2.0", "Returns the number of members in a sorted set.", handler!(ZCard<'_>)),
    spec("zcount", 4, READONLY | FAST, ONE, "2.0.0", "Returns the count of members in a sorted set that have scores within a range.", handler!(ZCount<'_>)),
    spec("zlexcount", 4, READONLY | FAST, ONE, "2.8.9", "Returns the number of members in a sorted set within a lexicographical range.", handler!(ZCount<'_>)),
    spec("zrange", -4, READONLY, ONE, "1.2.0", "Returns members in a sorted set within a range of indexes.", handler!(ZRange<'_>)),
    spec("zrevrange", -4, READONLY, ONE, "1.2.0", "Returns members in a sorted set within a range of indexes in reverse order.", handler!(ZRange<'_>)),
    spec("zrangebyscore", -4, READONLY, ONE, "1.0.5", "Returns members in a sorted set within a range of scores.", handler!(ZRange<'_>)),
    spec("zrevrangebyscore", -4, READONLY, ONE, "2.2.0", "Returns members in a sorted set within a range of scores in reverse order.", handler!(ZRange<'_>)),
    spec("zrangebylex", -4, READONLY, ONE, "2.8.9", "Returns members in a sorted set within a lexicographical range.", handler!(ZRange<'_>)),
    spec("zrevrangebylex", -4, READONLY, ONE, "2.8.9", "Returns members in a sorted set within a lexicographical range in reverse order.", handler!(ZRange<'_>)),
    spec("zrangestore", -5, WRITE | DENYOOM, KeySpec::range(1, 2, 1), "6.2.0", "Stores a range of members from sorted set in a key.", handler!(ZRangeStore<'_>)),
    spec("zrank", -3, READONLY | FAST, ONE, "2.0.0", "Returns the index of a member in a sorted set ordered by ascending scores.", handler!(ZRank<'_>)),
    spec("zrevrank", -3, READONLY | FAST, ONE, "2.0.0", "Returns the index of a member in a sorted set ordered by descending scores.", handler!(ZRank<'_>)),
    spec("zpopmin", -2, WRITE | FAST, ONE, "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", handler!(ZPop<'_>)),
    spec("zpopmax", -2, WRITE | FAST, ONE, "5.0.0", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", handler!(ZPop<'_>)),
    spec("zmpop", -4, WRITE, KeySpec::counted(1), "7.0.0", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", handler!(ZMPop<'_>)),
    spec("zremrangebyscore", 4, WRITE, ONE, "1.2.0", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", handler!(ZRemRange<'_>)),
    spec("zremrangebyrank", 4, WRITE, ONE, "2.0.0", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", handler!(ZRemRange<'_>)),
    spec("zremrangebylex", 4, WRITE, ONE, "2.8.9", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", handler!(ZRemRange<'_>)),
    spec("zunionstore", -4, WRITE | DENYOOM, STORE, "2.0.0", "Stores the union of multiple sorted sets in a key.", handler!(Combine<'_>)),
    spec("zinterstore", -4, WRITE | DENYOOM, STORE, "2.0.0", "Stores the intersect of multiple sorted sets in a key.", handler!(Combine<'_>)),
    spec("zdiffstore", -4, WRITE | DENYOOM, STORE, "6.2.0", "Stores the difference of multiple sorted sets in a key.", handler!(Combine<'_>)),
    spec("zunion", -3, READONLY, KeySpec::counted(1), "6.2.0", "Returns the union of multiple sorted sets.", handler!(Combine<'_>)),
    spec("zinter", -3, READONLY, KeySpec::counted(1), "6.2.0", "Returns the intersect of multiple sorted sets.", handler!(Combine<'_>)),
    spec("zdiff", -3, READONLY, KeySpec::counted(1), "6.2.0", "Returns the difference between multiple sorted sets.", handler!(Combine<'_>)),
    spec("zintercard", -3, READONLY, KeySpec::counted(1), "7.0.0", "Returns the number of members of the intersect of multiple sorted sets.", handler!(Combine<'_>)),
    spec("zrandmember", -2, READONLY, ONE, "6.2.0", "Returns one or more random members from a sorted set.", handler!(ZRandMember<'_>)),
    spec("zscan", -3, READONLY, ONE, "2.8.0", "Iterates over members and scores of a sorted set.", handler!(ZScan<'_>)),
];

fn parse_score(arg: &[u8]) -> Result<f64, CommandError> {
    parse_double(arg)
        .filter(|f| !f.is_nan())
        .ok_or(CommandError::NotFloat)
}

fn score_bound(arg: &[u8]) -> Result<ScoreBound, CommandError> {
    ScoreBound::parse(arg).ok_or_else(|| CommandError::err("min or max is not a float"))
}

fn lex_bound(arg: &[u8]) -> Result<LexBound<'_>, CommandError> {
    LexBound::parse(arg).ok_or_else(|| CommandError::err("min or max not valid string range item"))
}

/// Writes scored members: a flat `[m, s, ...]` array (RESP2, or without scores), or
/// `[[m, s], ...]` pairs in RESP3.
fn write_scored(out: &mut Reply, items: &[(Vec<u8>, f64)], with_scores: bool) {
    let pairs = with_scores && out.protocol() == Protocol::Resp3;
    out.array(items.len() * if with_scores && !pairs { 2 } else { 1 });
    for (member, score) in items {
        if pairs {
            out.array(2);
        }
        out.bulk(member);
        if with_scores {
            out.double(*score);
        }
    }
}

/// The ZADD options.
#[derive(Debug, Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`.
struct ZAdd<'a> {
    key: &'a [u8],
    flags: AddFlags,
    pairs: Vec<(f64, &'a [u8])>,
}

impl<'a> Command<'a> for ZAdd<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let mut f = AddFlags::default();
        loop {
            let mut probe = p.clone();
            match probe.next_keyword().as_ref().map(|k| k.as_str()) {
                Some("NX") => f.nx = true,
                Some("XX") => f.xx = true,
                Some("GT") => f.gt = true,
                Some("LT") => f.lt = true,
                Some("CH") => f.ch = true,
                Some("INCR") => f.incr = true,
                _ => break,
            }
            *p = probe;
        }
        if f.nx && f.xx {
            return Err(CommandError::err(
                "XX and NX options at the same time are not compatible",
            ));
        }
        if (f.gt && f.lt) || (f.nx && (f.gt || f.lt)) {
            return Err(CommandError::err(
                "GT, LT, and/or NX options at the same time are not compatible",
            ));
        }
        if p.remaining() == 0 || !p.remaining().is_multiple_of(2) {
            return Err(CommandError::Syntax);
        }
        if f.incr && p.remaining() > 2 {
            return Err(CommandError::err(
                "INCR option supports a single increment-element pair",
            ));
        }
        let mut pairs = Vec::with_capacity(p.remaining() / 2);
        while let Some(score) = p.try_arg() {
            pairs.push((parse_score(score)?, p.arg()?));
        }
        Ok(ZAdd {
            key,
            flags: f,
            pairs,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let f = self.flags;
        let table = ctx.locks.table(self.key);
        if f.xx && read::<ZSet>(table, self.key, ctx.now)?.is_none() {
            // Nothing to update and nothing may be added: don't create the key.
            if f.incr {
                ctx.out.null();
            } else {
                ctx.out.int(0);
            }
            return Ok(());
        }
        let zset = create(table, self.key, ctx.now, ZSet::default)?;
        let (mut added, mut changed) = (0, 0);
        let mut incr_result = None;
        for &(score, member) in &self.pairs {
            let old = zset.score(member);
            let new = match (f.incr, old) {
                (true, Some(old)) => old + score,
                _ => score,
            };
            if new.is_nan() {
                table.remove_if_empty(self.key, ctx.now);
                return Err(CommandError::err("resulting score is not a number (NaN)"));
            }
            let allowed = match old {
                None => !f.xx,
                Some(old) => !f.nx && (!f.gt || new > old) && (!f.lt || new < old),
            };
            if !allowed {
                continue;
            }
            incr_result = Some(new);
            if zset.insert(member, new, &limits) {
                added += 1;
            } else if old != Some(new) {
                changed += 1;
            }
        }
        table.remove_if_empty(self.key, ctx.now);
        if added + changed > 0 {
            ctx.changed_by(
                added + changed,
                notify::ZSET,
                if f.incr { "zincr" } else { "zadd" },
                self.key,
            );
        }
        if f.incr {
            match incr_result {
                Some(score) => ctx.out.double(score),
                None => ctx.out.null(),
            }
        } else {
            ctx.out.int((added + if f.ch { changed } else { 0 }) as i64);
        }
        Ok(())
    }
}

/// `ZINCRBY key increment member`.
struct ZIncrBy<'a> {
    key: &'a [u8],
    by: f64,
    member: &'a [u8],
}

impl<'a> Command<'a> for ZIncrBy<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ZIncrBy {
            key: p.arg()?,
            by: parse_score(p.arg()?)?,
            member: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let table = ctx.locks.table(self.key);
        let zset = create(table, self.key, ctx.now, ZSet::default)?;
        let new = zset.score(self.member).unwrap_or(0.0) + self.by;
        if new.is_nan() {
            table.remove_if_empty(self.key, ctx.now);
            return Err(CommandError::err("resulting score is not a number (NaN)"));
        }
        zset.insert(self.member, new, &limits);
        ctx.changed(notify::ZSET, "zincr", self.key);
        ctx.out.double(new);
        Ok(())
    }
}

/// `ZREM key member [member ...]`.
struct ZRem<'a> {
    key: &'a [u8],
    members: Args<'a>,
}

impl<'a> Command<'a> for ZRem<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ZRem {
            key: p.arg()?,
            members: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let removed = match modify::<ZSet>(table, self.key, ctx.now)? {
            Some(z) => self.members.iter().filter(|m| z.remove(m)).count(),
            None => 0,
        };
        table.remove_if_empty(self.key, ctx.now);
        if removed > 0 {
            ctx.changed_by(removed as u64, notify::ZSET, "zrem", self.key);
        }
        ctx.out.int(removed as i64);
        Ok(())
    }
}

/// `ZSCORE key member`.
struct ZScore<'a> {
    key: &'a [u8],
    member: &'a [u8],
}

impl<'a> Command<'a> for ZScore<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ZScore {
            key: p.arg()?,
            member: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        match zset.and_then(|z| z.score(self.member)) {
            Some(score) => ctx.out.double(score),
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// `ZMSCORE key member [member ...]`.
struct ZMScore<'a> {
    key: &'a [u8],
    members: Args<'a>,
}

impl<'a> Command<'a> for ZMScore<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ZMScore {
            key: p.arg()?,
            members: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out.array(self.members.len());
        for m in self.members.iter() {
            match zset.and_then(|z| z.score(m)) {
                Some(score) => ctx.out.double(score),
                None => ctx.out.null(),
            }
        }
        Ok(())
    }
}

/// `ZCARD key`.
struct ZCard<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for ZCard<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ZCard { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out.int(zset.map_or(0, ZSet::len) as i64);
        Ok(())
    }
}

/// `ZCOUNT key min max` and `ZLEXCOUNT key min max`.
struct ZCount<'a> {
    key: &'a [u8],
    min: &'a [u8],
    max: &'a [u8],
}

impl<'a> Command<'a> for ZCount<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ZCount {
            key: p.arg()?,
            min: p.arg()?,
            max: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let by = if ctx.name() == "zlexcount" {
            RangeBy::Lex(lex_bound(self.min)?, lex_bound(self.max)?)
        } else {
            RangeBy::Score(score_bound(self.min)?, score_bound(self.max)?)
        };
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let count = zset.map_or(0, |z| {
            let (first, end) = by.ranks(z);
            end - first
        });
        ctx.out.int(count as i64);
        Ok(())
    }
}

/// What a range selects by.
#[derive(Debug, Clone)]
enum RangeBy<'a> {
    /// Indexes (negative from the end).
    Rank(i64, i64),
    /// Scores from min to max.
    Score(ScoreBound, ScoreBound),
    /// Members from min to max.
    Lex(LexBound<'a>, LexBound<'a>),
}

impl RangeBy<'_> {
    /// Ascending ranks `[first, end)` for score and lex ranges.
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        match self {
            RangeBy::Score(min, max) => z.score_ranks(*min, *max),
            RangeBy::Lex(min, max) => z.lex_ranks(min, max),
            RangeBy::Rank(..) => (0, z.len()),
        }
    }
}

/// A range query of the ZRANGE family.
#[derive(Debug, Clone)]
struct RangeQuery<'a> {
    by: RangeBy<'a>,
    rev: bool,
    /// LIMIT offset count (count `None`: no limit).
    offset: usize,
    count: Option<usize>,
    limited: bool,
    with_scores: bool,
}

impl<'a> RangeQuery<'a> {
    /// Parses `start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]` as
    /// the command `name` spells it (the older commands fix the mode and order).
    fn parse(name: &str, p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (start, stop) = (p.arg()?, p.arg()?);
        let (mut byscore, mut bylex, mut rev) = (
            name.contains("byscore"),
            name.contains("bylex"),
            name.starts_with("zrev"),
        );
        let modern = name == "zrange" || name == "zrangestore";
        let mut q = RangeQuery {
            by: RangeBy::Rank(0, 0),
            rev,
            offset: 0,
            count: None,
            limited: false,
            with_scores: false,
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "WITHSCORES" if name != "zrangestore" && !name.contains("bylex") => {
                    q.with_scores = true
                }
                "LIMIT" if !(name == "zrange" || name == "zrevrange") || modern => {
                    let offset = p.next_i64()?;
                    let count = p.next_i64()?;
                    q.limited = true;
                    q.offset = if offset < 0 {
                        usize::MAX
                    } else {
                        offset as usize
                    };
                    q.count = (count >= 0).then_some(count as usize);
                }
                "BYSCORE" if modern && !bylex => byscore = true,
                "BYLEX" if modern && !byscore => bylex = true,
                "REV" if modern => rev = true,
                _ => return Err(CommandError::Syntax),
            }
        }
        if q.limited && !byscore && !bylex {
            return Err(CommandError::err(
                "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if bylex && q.with_scores {
            return Err(CommandError::err(
                "syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        // Reverse score and lex ranges are written max first.
        let (low, high) = if rev && (byscore || bylex) {
            (stop, start)
        } else {
            (start, stop)
        };
        q.rev = rev;
        q.by = if byscore {
            RangeBy::Score(score_bound(low)?, score_bound(high)?)
        } else if bylex {
            RangeBy::Lex(lex_bound(low)?, lex_bound(high)?)
        } else {
            let parse =
                |a: &[u8]| crate::protocol::number::parse_i64(a).ok_or(CommandError::NotInteger);
            RangeBy::Rank(parse(start)?, parse(stop)?)
        };
        Ok(q)
    }

    /// The selected members with their scores, in reply order.
    fn select(&self, z: &ZSet) -> Vec<(Vec<u8>, f64)> {
        let len = z.len();
        let (first, end) = match self.by {
            RangeBy::Rank(start, stop) => match clamp_range(start, stop, len) {
                // Ranks of a reverse range count from the highest score.
                Some((s, e)) if self.rev => (len - 1 - e, len - s),
                Some((s, e)) => (s, e + 1),
                None => return Vec::new(),
            },
            _ => self.by.ranks(z),
        };
        if first >= end || self.offset >= end - first {
            return Vec::new();
        }
        let take = (end - first - self.offset).min(self.count.unwrap_or(usize::MAX));
        let start = if self.rev {
            end - 1 - self.offset
        } else {
            first + self.offset
        };
        z.iter_from(start, self.rev)
            .take(take)
            .map(|(m, s)| (m.to_vec(), s))
            .collect()
    }
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`
/// and the older ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX,
/// ZREVRANGEBYLEX.
struct ZRange<'a> {
    key: &'a [u8],
    query: RangeQuery<'a>,
}

impl<'a> Command<'a> for ZRange<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let name = p.command_name();
        let key = p.arg()?;
        Ok(ZRange {
            key,
            query: RangeQuery::parse(&name, p)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let items = zset.map(|z| self.query.select(z)).unwrap_or_default();
        write_scored(ctx.out, &items, self.query.with_scores);
        Ok(())
    }
}

/// `ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]`.
struct ZRangeStore<'a> {
    destination: &'a [u8],
    source: &'a [u8],
    query: RangeQuery<'a>,
}

impl<'a> Command<'a> for ZRangeStore<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (destination, source) = (p.arg()?, p.arg()?);
        Ok(ZRangeStore {
            destination,
            source,
            query: RangeQuery::parse("zrangestore", p)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.source), self.source, ctx.now)?;
        let items = zset.map(|z| self.query.select(z)).unwrap_or_default();
        store(ctx, self.destination, &items);
        ctx.out.int(items.len() as i64);
        Ok(())
    }
}

/// Replaces `key` with a sorted set of `items` (or deletes it when empty).
fn store(ctx: &mut Ctx<'_, '_>, key: &[u8], items: &[(Vec<u8>, f64)]) {
    let limits = ctx.limits();
    let table = ctx.locks.table(key);
    let existed = table.remove(key, ctx.now).is_some();
    if items.is_empty() {
        // As Redis: an empty result deletes the destination.
        if existed {
            ctx.changed(notify::GENERIC, "del", key);
        }
        return;
    }
    let mut zset = ZSet::default();
    for (member, score) in items {
        zset.insert(member, *score, &limits);
    }
    table.insert(key, Value::ZSet(Box::new(zset)), Expiry::Persist, ctx.now);
    let event = ctx.name();
    ctx.changed(notify::ZSET, event, key);
}

/// `ZRANK`/`ZREVRANK key member [WITHSCORE]`.
struct ZRank<'a> {
    key: &'a [u8],
    member: &'a [u8],
    with_score: bool,
}

impl<'a> Command<'a> for ZRank<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (key, member) = (p.arg()?, p.arg()?);
        // Redis 7.2: more than one option is an arity error, a wrong one a syntax error.
        if p.remaining() > 1 {
            return Err(p.arity_error());
        }
        let with_score = p.eat("WITHSCORE");
        Ok(ZRank {
            key,
            member,
            with_score,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let rev = ctx.name() == "zrevrank";
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let found = zset.and_then(|z| {
            let rank = z.rank(self.member)?;
            let rank = if rev { z.len() - 1 - rank } else { rank };
            Some((rank, z.score(self.member)?))
        });
        match (found, self.with_score) {
            (Some((rank, _)), false) => ctx.out.int(rank as i64),
            (Some((rank, score)), true) => {
                ctx.out.array(2);
                ctx.out.int(rank as i64);
                ctx.out.double(score);
            }
            (None, false) => ctx.out.null(),
            (None, true) => ctx.out.null_array(),
        }
        Ok(())
    }
}

/// Pops `count` members from the low end (or the high end with `max`).
pub fn pop(z: &mut ZSet, count: usize, max: bool) -> Vec<(Vec<u8>, f64)> {
    let n = count.min(z.len());
    if n == 0 {
        return Vec::new();
    }
    let len = z.len();
    let removed = if max {
        z.remove_ranks(len - n, len - 1)
    } else {
        z.remove_ranks(0, n - 1)
    };
    let popped = removed.into_iter().map(|(m, s)| (m.as_bytes().to_vec(), s));
    // The highest come first from ZPOPMAX.
    if max {
        popped.rev().collect()
    } else {
        popped.collect()
    }
}

/// Parses `MIN` or `MAX`: true to pop the highest scores.
pub fn parse_min_max(arg: &[u8]) -> Result<bool, CommandError> {
    match arg.to_ascii_uppercase().as_slice() {
        b"MIN" => Ok(false),
        b"MAX" => Ok(true),
        _ => Err(CommandError::Syntax),
    }
}

/// The pop of `ZMPOP` and `BZMPOP`: from the first of `args.keys` that exists,
/// replied `[key, [[member, score] ...]]` and replicated as `ZPOPMIN|ZPOPMAX key
/// count`. False when none exists (nothing replied).
pub fn zmpop(args: &MPopArgs<'_, bool>, ctx: &mut Ctx<'_, '_>) -> Result<bool, CommandError> {
    let max = args.end;
    for &key in &args.keys {
        let table = ctx.locks.table(key);
        let Some(zset) = modify::<ZSet>(table, key, ctx.now)? else {
            continue;
        };
        let popped = pop(zset, args.count, max);
        let emptied = table.remove_if_empty(key, ctx.now);
        ctx.out.array(2);
        ctx.out.bulk(key);
        ctx.out.array(popped.len());
        for (member, score) in &popped {
            ctx.out.array(2);
            ctx.out.bulk(member);
            ctx.out.double(*score);
        }
        let (event, name): (_, &[u8]) = match max {
            true => ("zpopmax", b"ZPOPMAX"),
            false => ("zpopmin", b"ZPOPMIN"),
        };
        ctx.changed_by(popped.len() as u64, notify::ZSET, event, key);
        if emptied {
            ctx.emptied(key);
        }
        let mut count = itoa::Buffer::new();
        ctx.propagate(&[name, key, count.format(popped.len()).as_bytes()]);
        return Ok(true);
    }
    Ok(false)
}

/// `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`.
struct ZMPop<'a>(MPopArgs<'a, bool>);

impl<'a> Command<'a> for ZMPop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        MPopArgs::parse(p, parse_min_max).map(ZMPop)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        if !zmpop(&self.0, ctx)? {
            ctx.out.null_array();
        }
        Ok(())
    }
}

/// `ZPOPMIN`/`ZPOPMAX key [count]`.
struct ZPop<'a> {
    key: &'a [u8],
    count: Option<usize>,
}

impl<'a> Command<'a> for ZPop<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let count = match p.try_arg() {
            None => None,
            Some(arg) => match crate::protocol::number::parse_i64(arg) {
                Some(n) if n >= 0 => Some(n as usize),
                // Redis gives the range message to non-integers too.
                _ => return Err(CommandError::err("value is out of range, must be positive")),
            },
        };
        Ok(ZPop { key, count })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let max = ctx.name() == "zpopmax";
        let table = ctx.locks.table(self.key);
        let popped = match modify::<ZSet>(table, self.key, ctx.now)? {
            Some(z) => pop(z, self.count.unwrap_or(1), max),
            None => Vec::new(),
        };
        let emptied = table.remove_if_empty(self.key, ctx.now);
        if !popped.is_empty() {
            ctx.changed_by(
                popped.len() as u64,
                notify::ZSET,
                if max { "zpopmax" } else { "zpopmin" },
                self.key,
            );
        }
        if emptied {
            ctx.emptied(self.key);
        }
        match self.count {
            // Without a count, one flat pair even in RESP3.
            None => {
                ctx.out.array(2 * popped.len());
                for (member, score) in &popped {
                    ctx.out.bulk(member);
                    ctx.out.double(*score);
                }
            }
            Some(_) => write_scored(ctx.out, &popped, true),
        }
        Ok(())
    }
}

/// `ZREMRANGEBYSCORE`, `ZREMRANGEBYRANK`, `ZREMRANGEBYLEX key min max`.
struct ZRemRange<'a> {
    key: &'a [u8],
    min: &'a [u8],
    max: &'a [u8],
}

impl<'a> Command<'a> for ZRemRange<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(ZRemRange {
            key: p.arg()?,
            min: p.arg()?,
            max: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let name = ctx.name();
        let by = match name {
            "zremrangebyscore" => RangeBy::Score(score_bound(self.min)?, score_bound(self.max)?),
            "zremrangebylex" => RangeBy::Lex(lex_bound(self.min)?, lex_bound(self.max)?),
            _ => {
                let parse = |a: &[u8]| {
                    crate::protocol::number::parse_i64(a).ok_or(CommandError::NotInteger)
                };
                RangeBy::Rank(parse(self.min)?, parse(self.max)?)
            }
        };
        let table = ctx.locks.table(self.key);
        let removed = match modify::<ZSet>(table, self.key, ctx.now)? {
            None => 0,
            Some(z) => {
                let (first, end) = match by {
                    RangeBy::Rank(start, stop) => {
                        clamp_range(start, stop, z.len()).map_or((0, 0), |(s, e)| (s, e + 1))
                    }
                    _ => by.ranks(z),
                };
                if first < end {
                    z.remove_ranks(first, end - 1).len()
                } else {
                    0
                }
            }
        };
        table.remove_if_empty(self.key, ctx.now);
        if removed > 0 {
            ctx.changed_by(removed as u64, notify::ZSET, name, self.key);
        }
        ctx.out.int(removed as i64);
        Ok(())
    }
}

/// How ZUNION and ZINTER combine the scores of a member found in several inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

impl Aggregate {
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            // inf + -inf is NaN; Redis counts it as 0.
            Aggregate::Sum => Some(a + b).filter(|s| !s.is_nan()).unwrap_or(0.0),
            Aggregate::Min => a.min(b),
            Aggregate::Max => a.max(b),
        }
    }
}

/// `ZUNION|ZINTER|ZDIFF|ZINTERCARD numkeys key ... [...]` and the `STORE` forms
/// `destination numkeys key ... [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]`.
struct Combine<'a> {
    /// `union`, `inter`, `diff` or `intercard`.
    op: String,
    destination: Option<&'a [u8]>,
    keys: Vec<&'a [u8]>,
    weights: Vec<f64>,
    aggregate: Aggregate,
    with_scores: bool,
    limit: usize,
}

impl<'a> Command<'a> for Combine<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let name = p.command_name();
        let store = name.ends_with("store");
        let op = name[1..if store { name.len() - 5 } else { name.len() }].to_string();
        let destination = if store { Some(p.arg()?) } else { None };
        let numkeys = p.next_i64()?;
        if numkeys <= 0 {
            return Err(CommandError::err(format!(
                "at least 1 input key is needed for '{name}' command"
            )));
        }
        if numkeys as usize > p.remaining() {
            return Err(CommandError::Syntax);
        }
        let keys: Vec<&[u8]> = (0..numkeys).map(|_| p.arg()).collect::<Result<_, _>>()?;
        let scored = op == "union" || op == "inter";
        let mut c = Combine {
            weights: vec![1.0; keys.len()],
            op,
            destination,
            keys,
            aggregate: Aggregate::Sum,
            with_scores: false,
            limit: 0,
        };
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "WEIGHTS" if scored => {
                    for w in c.weights.iter_mut() {
                        *w = parse_double(p.arg()?)
                            .ok_or_else(|| CommandError::err("weight value is not a float"))?;
                    }
                }
                "AGGREGATE" if scored => {
                    c.aggregate = match p.next_keyword().as_ref().map(|k| k.as_str()) {
                        Some("SUM") => Aggregate::Sum,
                        Some("MIN") => Aggregate::Min,
                        Some("MAX") => Aggregate::Max,
                        _ => return Err(CommandError::Syntax),
                    };
                }
                "WITHSCORES" if !store && c.op != "intercard" => c.with_scores = true,
                "LIMIT" if c.op == "intercard" => {
                    const NEGATIVE: &str = "LIMIT can't be negative";
                    let n = p.next_i64_or(NEGATIVE)?;
                    if n < 0 {
                        return Err(CommandError::err(NEGATIVE));
                    }
                    c.limit = n as usize;
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(c)
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        // Inputs may be sorted sets or plain sets (each member scoring 1),
        // read in place.
        let inputs: Vec<Option<Scored<'_>>> = ctx
            .locks
            .values(&self.keys, ctx.now)
            .into_iter()
            .map(|value| match value {
                None => Ok(None),
                Some(Value::ZSet(z)) => Ok(Some(Scored::Sorted(z))),
                Some(Value::Set(s)) => Ok(Some(Scored::Plain(s))),
                Some(_) => Err(CommandError::WrongType),
            })
            .collect::<Result<_, _>>()?;
        if self.op == "intercard" {
            let limit = if self.limit == 0 {
                usize::MAX
            } else {
                self.limit
            };
            let count = intersection(&inputs, &self.weights, self.aggregate)
                .take(limit)
                .count();
            ctx.out.int(count as i64);
            return Ok(());
        }
        let result = combine_scores(&self.op, &inputs, &self.weights, self.aggregate);
        match self.destination {
            Some(destination) => {
                store(ctx, destination, &result);
                ctx.out.int(result.len() as i64);
            }
            None => write_scored(ctx.out, &result, self.with_scores),
        }
        Ok(())
    }
}

/// An input of ZUNION, ZINTER or ZDIFF, read in place.
#[derive(Clone, Copy)]
enum Scored<'s> {
    /// A sorted set.
    Sorted(&'s ZSet),
    /// A plain set: every member scores 1.
    Plain(&'s Set),
}

impl<'s> Scored<'s> {
    fn len(self) -> usize {
        match self {
            Scored::Sorted(z) => z.len(),
            Scored::Plain(s) => s.len(),
        }
    }

    /// `member`'s score, if it is there: O(1) for large sets.
    fn score(self, member: &[u8]) -> Option<f64> {
        match self {
            Scored::Sorted(z) => z.score(member),
            Scored::Plain(s) => s.contains(member).then_some(1.0),
        }
    }

    /// Every member with its score.
    fn for_each(self, mut f: impl FnMut(&[u8], f64)) {
        match self {
            Scored::Sorted(z) => z.iter_from(0, false).for_each(|(m, s)| f(m, s)),
            Scored::Plain(s) => s.iter().for_each(|m| match m {
                Member::Bytes(b) => f(b, 1.0),
                Member::Int(n) => f(itoa::Buffer::new().format(n).as_bytes(), 1.0),
            }),
        }
    }
}

/// A score times its weight, NaN (0 times infinity) counting as 0 as in Redis.
fn weigh(score: f64, weight: f64) -> f64 {
    Some(score * weight).filter(|x| !x.is_nan()).unwrap_or(0.0)
}

/// The members in every input with their aggregated weighted scores, unsorted:
/// the smallest input's members, each looked up in the others (in order of
/// size, as Redis does), so O(N*K) for N members of the smallest of K inputs.
fn intersection<'s>(
    inputs: &[Option<Scored<'s>>],
    weights: &[f64],
    aggregate: Aggregate,
) -> impl Iterator<Item = (Vec<u8>, f64)> + 's {
    // A missing key is empty, and so is then the intersection.
    let mut order: Vec<(Scored<'s>, f64)> = match inputs.iter().copied().collect::<Option<Vec<_>>>()
    {
        Some(all) => all.into_iter().zip(weights.iter().copied()).collect(),
        None => Vec::new(),
    };
    order.sort_by_key(|(input, _)| input.len());
    let mut base = Vec::new();
    if let Some(&(smallest, weight)) = order.first() {
        base.reserve(smallest.len());
        smallest.for_each(|m, s| base.push((m.to_vec(), weigh(s, weight))));
    }
    base.into_iter().filter_map(move |(member, mut score)| {
        for &(input, weight) in &order[1..] {
            score = aggregate.apply(score, weigh(input.score(&member)?, weight));
        }
        Some((member, score))
    })
}

/// Unions, intersects or subtracts the inputs; the result is ordered by score
/// then member.
fn combine_scores(
    op: &str,
    inputs: &[Option<Scored<'_>>],
    weights: &[f64],
    aggregate: Aggregate,
) -> Vec<(Vec<u8>, f64)> {
    let mut result: Vec<(Vec<u8>, f64)> = match op {
        "union" => {
            let mut acc: IndexMap<Vec<u8>, f64, KeyHasher> = IndexMap::default();
            for (input, &weight) in inputs.iter().zip(weights) {
                let Some(input) = input else { continue };
                input.for_each(|m, s| {
                    let s = weigh(s, weight);
                    match acc.get_mut(m) {
                        Some(a) => *a = aggregate.apply(*a, s),
                        None => {
                            acc.insert(m.to_vec(), s);
                        }
                    }
                });
            }
            acc.into_iter().collect()
        }
        "inter" => intersection(inputs, weights, aggregate).collect(),
        _ => difference(inputs),
    };
    result.sort_by(|a, b| crate::keyspace::types::compare_scored(a.1, &a.0, b.1, &b.0));
    result
}

/// The first input's members (with their own scores) in none of the others, by
/// whichever of Redis's two ways is less work: look each one up in the others
/// (N*K), or take the others' members out of a copy of the first (total size).
fn difference(inputs: &[Option<Scored<'_>>]) -> Vec<(Vec<u8>, f64)> {
    let Some(Some(first)) = inputs.first() else {
        return Vec::new();
    };
    let others: Vec<Scored<'_>> = inputs[1..].iter().flatten().copied().collect();
    let check_each = first.len() * others.len() / 2;
    let take_out = first.len() + others.iter().map(|o| o.len()).sum::<usize>();
    let mut left: IndexMap<Vec<u8>, f64, KeyHasher> = IndexMap::default();
    if check_each <= take_out {
        first.for_each(|m, s| {
            if others.iter().all(|o| o.score(m).is_none()) {
                left.insert(m.to_vec(), s);
            }
        });
    } else {
        first.for_each(|m, s| {
            left.insert(m.to_vec(), s);
        });
        for other in others {
            other.for_each(|m, _| {
                left.swap_remove(m);
            });
        }
    }
    left.into_iter().collect()
}

/// `ZRANDMEMBER key [count [WITHSCORES]]`.
struct ZRandMember<'a> {
    key: &'a [u8],
    count: Option<i64>,
    with_scores: bool,
}

impl<'a> Command<'a> for ZRandMember<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let (count, with_scores) = super::random::parse_count(p, Some("WITHSCORES"))?;
        Ok(ZRandMember {
            key,
            count,
            with_scores,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let picks = Picks::new(zset.map_or(0, ZSet::len), self.count);
        let with_scores = self.with_scores;
        picks.reply(ctx.out, self.count.is_some(), with_scores, |out, i| {
            if let Some((member, score)) = zset.and_then(|z| z.entry_at(i)) {
                out.bulk(member);
                if with_scores {
                    out.double(score);
                }
            }
        });
        Ok(())
    }
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`.
struct ZScan<'a> {
    key: &'a [u8],
    args: CursorArgs<'a>,
}

impl<'a> Command<'a> for ZScan<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let (args, _) = CursorArgs::parse(p, &[])?;
        Ok(ZScan { key, args })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let mut reply = ScanReply::default();
        if let Some(z) = zset {
            reply.cursor = self.args.walk(z.len(), z.is_compact(), |i| {
                if let Some((member, score)) = z.entry_at(i) {
                    if self.args.matches(member) {
                        let mut text = Vec::new();
                        crate::protocol::number::format_score(score, &mut text);
                        reply.items.push(member.to_vec());
                        reply.items.push(text);
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
    use crate::keyspace::types::EncodingLimits;

    fn scored(v: &[(&str, f64)]) -> Vec<(Vec<u8>, f64)> {
        v.iter().map(|(m, s)| (m.as_bytes().to_vec(), *s)).collect()
    }

    fn zset(v: &[(&str, f64)]) -> ZSet {
        let mut z = ZSet::default();
        for (m, s) in v {
            z.insert(m.as_bytes(), *s, &EncodingLimits::default());
        }
        z
    }

    #[test]
    fn union_inter_diff_with_weights_and_aggregates() {
        let a = zset(&[("x", 1.0), ("y", 2.0)]);
        let b = zset(&[("y", 10.0), ("z", 3.0)]);
        let both = [Some(Scored::Sorted(&a)), Some(Scored::Sorted(&b))];
        assert_eq!(
            combine_scores("union", &both, &[1.0, 2.0], Aggregate::Sum),
            scored(&[("x", 1.0), ("z", 6.0), ("y", 22.0)])
        );
        assert_eq!(
            combine_scores("inter", &both, &[1.0, 1.0], Aggregate::Max),
            scored(&[("y", 10.0)])
        );
        assert_eq!(
            combine_scores("diff", &both, &[1.0, 1.0], Aggregate::Sum),
            scored(&[("x", 1.0)])
        );
        let with_missing = [Some(Scored::Sorted(&a)), None];
        assert!(combine_scores("inter", &with_missing, &[1.0, 1.0], Aggregate::Sum).is_empty());
        assert_eq!(
            combine_scores("union", &with_missing, &[3.0, 1.0], Aggregate::Sum),
            scored(&[("x", 3.0), ("y", 6.0)])
        );
    }

    #[test]
    fn plain_sets_score_one_and_both_ways_of_subtracting_agree() {
        let limits = EncodingLimits::default();
        let mut plain = Set::for_member(b"7", &limits);
        for m in ["7", "y"] {
            plain.add(m.as_bytes(), &limits);
        }
        let many: Vec<(String, f64)> = (0..50).map(|i| (i.to_string(), f64::from(i))).collect();
        let many: Vec<(&str, f64)> = many.iter().map(|(m, s)| (m.as_str(), *s)).collect();
        let big = zset(&many);
        let inputs = [Some(Scored::Plain(&plain)), Some(Scored::Sorted(&big))];
        assert_eq!(
            combine_scores("inter", &inputs, &[1.0, 1.0], Aggregate::Sum),
            scored(&[("7", 8.0)])
        );
        // Small first: each member looked up. Big first: the small one taken out.
        assert_eq!(
            combine_scores("diff", &inputs, &[1.0, 1.0], Aggregate::Sum),
            scored(&[("y", 1.0)])
        );
        let reversed = [Some(Scored::Sorted(&big)), Some(Scored::Plain(&plain))];
        let rest = combine_scores("diff", &reversed, &[1.0, 1.0], Aggregate::Sum);
        assert_eq!(rest.len(), 49);
        assert!(rest.iter().all(|(m, _)| m != b"7"));
    }

    #[test]
    fn infinite_sums_count_as_zero() {
        assert_eq!(Aggregate::Sum.apply(f64::INFINITY, f64::NEG_INFINITY), 0.0);
    }
}
