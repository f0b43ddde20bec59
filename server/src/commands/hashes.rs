//! Hash commands.

use super::access::{create, modify, read};
use super::random::Picks;
use super::scan::{CursorArgs, ScanReply};
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::keyspace::types::Hash;
use crate::notify;
use crate::protocol::number::{format_f64_human, parse_f64, parse_i64};
use crate::protocol::Args;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "hash", summary, handler)
        .keys(KeySpec::ONE)
        .since(since)
}

/// The hash family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("hset", -4, WRITE | DENYOOM | FAST, "2.0.0", "Creates or modifies the value of a field in a hash.", handler!(HSet<'_>)),
    spec("hmset", -4, WRITE | DENYOOM | FAST, "2.0.0", "Sets the values of multiple fields.", handler!(HSet<'_>)),
    spec("hsetnx", 4, WRITE | DENYOOM | FAST, "2.0.0", "Sets the value of a field in a hash only when the field doesn't exist.", handler!(HSetNx<'_>)),
    spec("hget", 3, READONLY | FAST, "2.0.0", "Returns the value of a field in a hash.", handler!(HGet<'_>)),
    spec("hmget", -3, READONLY | FAST, "2.0.0", "Returns the values of all fields in a hash.", handler!(HMGet<'_>)),
    spec("hgetall", 2, READONLY, "2.0.0", "Returns all fields and values in a hash.", handler!(HGetAll<'_>)),
    spec("hkeys", 2, READONLY, "2.0.0", "Returns all fields in a hash.", handler!(HGetAll<'_>)),
    spec("hvals", 2, READONLY, "2.0.0", "Returns all values in a hash.", handler!(HGetAll<'_>)),
    spec("hdel", -3, WRITE | FAST, "2.0.0", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", handler!(HDel<'_>)),
    spec("hexists", 3, READONLY | FAST, "2.0.0", "Determines whether a field exists in a hash.", handler!(HExists<'_>)),
    spec("hlen", 2, READONLY | FAST, "2.0.0", "Returns the number of fields in a hash.", handler!(HLen<'_>)),
    spec("hstrlen", 3, READONLY | FAST, "3.2.0", "Returns the length of the value of a field.", handler!(HStrLen<'_>)),
    spec("hincrby", 4, WRITE | DENYOOM | FAST, "2.0.0", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", handler!(HIncrBy<'_>)),
    spec("hincrbyfloat", 4, WRITE | DENYOOM | FAST, "2.6.0", "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.", handler!(HIncrByFloat<'_>)),
    spec("hrandfield", -2, READONLY, "6.2.0", "Returns one or more random fields from a hash.", handler!(HRandField<'_>)),
    spec("hscan", -3, READONLY, "2.8.0", "Iterates over fields and values of a hash.", handler!(HScan<'_>)),
];

/// `HSET key field value [field value ...]` and `HMSET`.
struct HSet<'a> {
    key: &'a [u8],
    pairs: Vec<(&'a [u8], &'a [u8])>,
}

impl<'a> Command<'a> for HSet<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        if !p.remaining().is_multiple_of(2) {
            return Err(p.arity_error());
        }
        let mut pairs = Vec::with_capacity(p.remaining() / 2);
        while let Some(field) = p.try_arg() {
            pairs.push((field, p.arg()?));
        }
        Ok(HSet { key, pairs })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let hash = create(ctx.locks.table(self.key), self.key, ctx.now, Hash::default)?;
        let added = self
            .pairs
            .iter()
            .filter(|(f, v)| hash.set(f, v, &limits))
            .count();
        ctx.changed_by(self.pairs.len() as u64, notify::HASH, "hset", self.key);
        if ctx.name() == "hmset" {
            ctx.out.ok();
        } else {
            ctx.out.int(added as i64);
        }
        Ok(())
    }
}

/// `HSETNX key field value`.
struct HSetNx<'a> {
    key: &'a [u8],
    field: &'a [u8],
    value: &'a [u8],
}

impl<'a> Command<'a> for HSetNx<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HSetNx {
            key: p.arg()?,
            field: p.arg()?,
            value: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let hash = create(ctx.locks.table(self.key), self.key, ctx.now, Hash::default)?;
        let set = !hash.contains(self.field) && hash.set(self.field, self.value, &limits);
        if set {
            ctx.changed(notify::HASH, "hset", self.key);
        }
        ctx.out.int(i64::from(set));
        Ok(())
    }
}

/// `HGET key field`.
struct HGet<'a> {
    key: &'a [u8],
    field: &'a [u8],
}

impl<'a> Command<'a> for HGet<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HGet {
            key: p.arg()?,
            field: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let hash = read::<Hash>(ctx.locks.table(self.key), self.key, ctx.now)?;
        match ctx
            .session
            .stats
            .lookup(hash)
            .and_then(|h| h.get(self.field))
        {
            Some(value) => ctx.out.bulk(value),
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// `HMGET key field [field ...]`.
struct HMGet<'a> {
    key: &'a [u8],
    fields: Args<'a>,
}

impl<'a> Command<'a> for HMGet<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HMGet {
            key: p.arg()?,
            fields: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let hash = read::<Hash>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out.array(self.fields.len());
        for field in self.fields.iter() {
            match hash.and_then(|h| h.get(field)) {
                Some(value) => ctx.out.bulk(value),
                None => ctx.out.null(),
            }
        }
        Ok(())
    }
}

/// `HGETALL`, `HKEYS`, `HVALS key`.
struct HGetAll<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for HGetAll<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HGetAll { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let name = ctx.name();
        let hash = read::<Hash>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let len = hash.map_or(0, Hash::len);
        match name {
            "hgetall" => ctx.out.map(len),
            _ => ctx.out.array(len),
        }
        for (field, value) in hash.into_iter().flat_map(Hash::iter) {
            if name != "hvals" {
                ctx.out.bulk(field);
            }
            if name != "hkeys" {
                ctx.out.bulk(value);
            }
        }
        Ok(())
    }
}

/// `HDEL key field [field ...]`.
struct HDel<'a> {
    key: &'a [u8],
    fields: Args<'a>,
}

impl<'a> Command<'a> for HDel<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HDel {
            key: p.arg()?,
            fields: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let removed = match modify::<Hash>(table, self.key, ctx.now)? {
            Some(hash) => self.fields.iter().filter(|f| hash.remove(f)).count(),
            None => 0,
        };
        let emptied = table.remove_if_empty(self.key, ctx.now);
        if removed > 0 {
            ctx.changed_by(removed as u64, notify::HASH, "hdel", self.key);
        }
        if emptied {
            ctx.emptied(self.key);
        }
        ctx.out.int(removed as i64);
        Ok(())
    }
}

/// `HEXISTS key field`.
struct HExists<'a> {
    key: &'a [u8],
    field: &'a [u8],
}

impl<'a> Command<'a> for HExists<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HExists {
            key: p.arg()?,
            field: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let hash = read::<Hash>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out
            .int(i64::from(hash.is_some_and(|h| h.contains(self.field))));
        Ok(())
    }
}

/// `HLEN key`.
struct HLen<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for HLen<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HLen { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let hash = read::<Hash>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out.int(hash.map_or(0, Hash::len) as i64);
        Ok(())
    }
}

/// `HSTRLEN key field`.
struct HStrLen<'a> {
    key: &'a [u8],
    field: &'a [u8],
}

impl<'a> Command<'a> for HStrLen<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HStrLen {
            key: p.arg()?,
            field: p.arg()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let hash = read::<Hash>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out
            .int(hash.and_then(|h| h.get(self.field)).map_or(0, <[u8]>::len) as i64);
        Ok(())
    }
}

/// `HINCRBY key field increment`.
struct HIncrBy<'a> {
    key: &'a [u8],
    field: &'a [u8],
    by: i64,
}

impl<'a> Command<'a> for HIncrBy<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(HIncrBy {
            key: p.arg()?,
            field: p.arg()?,
            by: p.next_i64()?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let table = ctx.locks.table(self.key);
        let hash = create(table, self.key, ctx.now, Hash::default)?;
        let current = match hash.get(self.field) {
            Some(v) => {
                parse_i64(v).ok_or_else(|| CommandError::err("hash value is not an integer"))?
            }
            None => 0,
        };
        let next = current.checked_add(self.by).ok_or(CommandError::Overflow);
        match next {
            Ok(next) => {
                hash.set(
                    self.field,
                    itoa::Buffer::new().format(next).as_bytes(),
                    &limits,
                );
                ctx.changed(notify::HASH, "hincrby", self.key);
                ctx.out.int(next);
                Ok(())
            }
            Err(e) => {
                table.remove_if_empty(self.key, ctx.now);
                Err(e)
            }
        }
    }
}

/// `HINCRBYFLOAT key field increment`.
struct HIncrByFloat<'a> {
    key: &'a [u8],
    field: &'a [u8],
    by: f64,
}

impl<'a> Command<'a> for HIncrByFloat<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let (key, field, by) = (p.arg()?, p.arg()?, p.next_f64()?);
        if !by.is_finite() {
            return Err(CommandError::err("value is NaN or Infinity"));
        }
        Ok(HIncrByFloat { key, field, by })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let table = ctx.locks.table(self.key);
        let hash = create(table, self.key, ctx.now, Hash::default)?;
        let current = match hash.get(self.field) {
            Some(v) => {
                parse_f64(v).ok_or_else(|| CommandError::err("hash value is not a float"))?
            }
            None => 0.0,
        };
        let next = current + self.by;
        if !next.is_finite() {
            table.remove_if_empty(self.key, ctx.now);
            return Err(CommandError::err("increment would produce NaN or Infinity"));
        }
        let mut text = Vec::with_capacity(24);
        format_f64_human(next, &mut text);
        hash.set(self.field, &text, &limits);
        ctx.changed(notify::HASH, "hincrbyfloat", self.key);
        ctx.propagate(&[b"HSET", self.key, self.field, &text]);
        ctx.out.bulk(&text);
        Ok(())
    }
}

/// `HRANDFIELD key [count [WITHVALUES]]`.
struct HRandField<'a> {
    key: &'a [u8],
    count: Option<i64>,
    with_values: bool,
}

impl<'a> Command<'a> for HRandField<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let (count, with_values) = super::random::parse_count(p, Some("WITHVALUES"))?;
        Ok(HRandField {
            key,
            count,
            with_values,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let hash = read::<Hash>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let picks = Picks::new(hash.map_or(0, Hash::len), self.count);
        let with_values = self.with_values;
        picks.reply(ctx.out, self.count.is_some(), with_values, |out, i| {
            if let Some((field, value)) = hash.and_then(|h| h.entry_at(i)) {
                out.bulk(field);
                if with_values {
                    out.bulk(value);
                }
            }
        });
        Ok(())
    }
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]`.
struct HScan<'a> {
    key: &'a [u8],
    args: CursorArgs<'a>,
    no_values: bool,
}

impl<'a> Command<'a> for HScan<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let (args, extra) = CursorArgs::parse(p, &["NOVALUES"])?;
        Ok(HScan {
            key,
            args,
            no_values: extra.contains(&"NOVALUES"),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let hash = read::<Hash>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let mut reply = ScanReply::default();
        if let Some(hash) = hash {
            let len = hash.len();
            reply.cursor = self.args.walk(len, hash.is_compact(), |i| {
                if let Some((field, value)) = hash.entry_at(i) {
                    if self.args.matches(field) {
                        reply.items.push(field.to_vec());
                        if !self.no_values {
                            reply.items.push(value.to_vec());
                        }
                    }
                }
            });
        }
        reply.write(ctx.out);
        Ok(())
    }
}
