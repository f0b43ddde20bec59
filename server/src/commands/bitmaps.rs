//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP,
//! BITFIELD and BITFIELD_RO. The bit arithmetic is in [`crate::bitmap`].

use std::borrow::Cow;

use super::strings::as_str;
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::bitmap::{self, FieldType, Op, Overflow, Range};
use crate::keyspace::types::Str;
use crate::keyspace::{Expiry, Value};
use crate::notify;
use crate::protocol::number::parse_i64;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "bitmap", summary, handler)
        .keys(keys)
        .since(since)
}

const ONE: KeySpec = KeySpec::ONE;

/// The bitmap family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("setbit", 4, WRITE | DENYOOM, ONE, "2.2.0", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", handler!(SetBit<'_>)),
    spec("getbit", 3, READONLY | FAST, ONE, "2.2.0", "Returns a bit value by offset.", handler!(GetBit<'_>)),
    spec("bitcount", -2, READONLY, ONE, "2.6.0", "Counts the number of set bits (population counting) in a string.", handler!(BitCount<'_>)),
    spec("bitpos", -3, READONLY, ONE, "2.8.7", "Finds the first set (1) or clear (0) bit in a string.", handler!(BitPos<'_>)),
    spec("bitop", -4, WRITE | DENYOOM, KeySpec::range(2, -1, 1), "2.6.0", "Performs bitwise operations on multiple strings, and stores the result.", handler!(BitOp<'_>)),
    spec("bitfield", -2, WRITE | DENYOOM, ONE, "3.2.0", "Performs arbitrary bitfield integer operations on strings.", handler!(BitField<'_>)),
    spec("bitfield_ro", -2, READONLY | FAST, ONE, "6.0.0", "Performs arbitrary read-only bitfield integer operations on strings.", handler!(BitField<'_>)),
];

const BAD_OFFSET: &str = "bit offset is not an integer or out of range";

/// A bit offset as given: a non-negative integer, or `#n` (the n-th field of
/// a `BITFIELD` type's width) where allowed. Its limit, `proto-max-bulk-len`
/// bytes, is a setting, checked when the command runs.
fn parse_offset(arg: &[u8], width: Option<u32>) -> Result<u64, CommandError> {
    let (digits, scale) = match (arg.strip_prefix(b"#"), width) {
        (Some(rest), Some(bits)) => (rest, i64::from(bits)),
        _ => (arg, 1),
    };
    parse_i64(digits)
        .and_then(|n| n.checked_mul(scale))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| CommandError::err(BAD_OFFSET))
}

/// Fails for an offset whose byte lies at or past `proto-max-bulk-len`.
fn check_offset(ctx: &Ctx<'_, '_>, offset: u64) -> CommandResult {
    if offset >> 3 >= ctx.max_string() {
        return Err(CommandError::err(BAD_OFFSET));
    }
    Ok(())
}

/// The bytes of a string value (an integer as its digits); WRONGTYPE for other
/// types.
fn bytes_of(value: &Value) -> Result<Cow<'_, [u8]>, CommandError> {
    value.string_bytes().ok_or(CommandError::WrongType)
}

/// The string at `key` zero-padded to at least `len` bytes, created if missing,
/// to edit in place; and whether that created or grew it.
fn grown<'t>(
    ctx: &'t mut Ctx<'_, '_>,
    key: &[u8],
    len: usize,
) -> Result<(&'t mut [u8], bool), CommandError> {
    let now = ctx.now;
    let table = ctx.locks.table(key);
    if table.get(key, now).is_none() {
        table.insert(key, Value::Str(Str::padded(len, &[])), Expiry::Keep, now);
        let entry = table.get(key, now).ok_or(CommandError::NoSuchKey)?;
        return Ok((as_str(entry.value)?.grow_zeroed(len), true));
    }
    let entry = table.get(key, now).ok_or(CommandError::NoSuchKey)?;
    let s = as_str(entry.value)?;
    let grew = s.len() < len;
    Ok((s.grow_zeroed(len), grew))
}

/// `SETBIT key offset value`.
struct SetBit<'a> {
    key: &'a [u8],
    offset: u64,
    /// The bit to write; `None` for anything but 0 or 1, refused after the
    /// offset's limit is checked, in Redis's order.
    on: Option<bool>,
}

impl<'a> Command<'a> for SetBit<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let offset = parse_offset(p.arg()?, None)?;
        let on = match parse_i64(p.arg()?) {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        };
        Ok(SetBit { key, offset, on })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        check_offset(ctx, self.offset)?;
        let on = self
            .on
            .ok_or_else(|| CommandError::err("bit is not an integer or out of range"))?;
        let byte = (self.offset >> 3) as usize;
        let mask = 0x80u8 >> (self.offset & 7);
        let (bytes, grew) = grown(ctx, self.key, byte + 1)?;
        let was = bytes[byte] & mask != 0;
        if on {
            bytes[byte] |= mask;
        } else {
            bytes[byte] &= !mask;
        }
        // As Redis: a write that changes nothing is no change (no event, not
        // replicated, WATCH untouched).
        if grew || was != on {
            ctx.changed(notify::STRING, "setbit", self.key);
        }
        ctx.out.int(i64::from(was));
        Ok(())
    }
}

/// `GETBIT key offset`.
struct GetBit<'a> {
    key: &'a [u8],
    offset: u64,
}

impl<'a> Command<'a> for GetBit<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(GetBit {
            key: p.arg()?,
            offset: parse_offset(p.arg()?, None)?,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        check_offset(ctx, self.offset)?;
        let bit = match ctx.locks.table(self.key).get(self.key, ctx.now) {
            Some(entry) => {
                let bytes = bytes_of(entry.value)?;
                let byte = (self.offset >> 3) as usize;
                bytes
                    .get(byte)
                    .is_some_and(|b| b & (0x80 >> (self.offset & 7)) != 0)
            }
            None => false,
        };
        ctx.out.int(i64::from(bit));
        Ok(())
    }
}

/// Parses `BYTE` or `BIT` (whether the range counts bits).
fn parse_unit(p: &mut Parser<'_>) -> Result<bool, CommandError> {
    match p.try_arg() {
        None => Ok(false),
        Some(unit) if unit.eq_ignore_ascii_case(b"byte") => Ok(false),
        Some(unit) if unit.eq_ignore_ascii_case(b"bit") => Ok(true),
        Some(_) => Err(CommandError::Syntax),
    }
}

/// `BITCOUNT key [start end [BYTE | BIT]]`.
struct BitCount<'a> {
    key: &'a [u8],
    range: Option<Range>,
}

impl<'a> Command<'a> for BitCount<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let range = match p.remaining() {
            0 => None,
            2 | 3 => Some(Range {
                start: p.next_i64()?,
                end: p.next_i64()?,
                bits: parse_unit(p)?,
            }),
            _ => return Err(CommandError::Syntax),
        };
        Ok(BitCount { key, range })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let n = match ctx.locks.table(self.key).get(self.key, ctx.now) {
            Some(entry) => bitmap::count(&bytes_of(entry.value)?, self.range),
            None => 0,
        };
        ctx.out.int(n as i64);
        Ok(())
    }
}

/// `BITPOS key bit [start [end [BYTE | BIT]]]`.
struct BitPos<'a> {
    key: &'a [u8],
    bit: bool,
    range: Option<Range>,
    end_given: bool,
}

impl<'a> Command<'a> for BitPos<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let bit = match p.next_i64()? {
            0 => false,
            1 => true,
            _ => return Err(CommandError::err("The bit argument must be 1 or 0.")),
        };
        let (range, end_given) = match p.remaining() {
            0 => (None, false),
            1 => {
                let start = p.next_i64()?;
                let range = Range {
                    start,
                    end: -1,
                    bits: false,
                };
                (Some(range), false)
            }
            2 | 3 => {
                // Redis reads the unit before the end.
                let start = p.next_i64()?;
                let end = p.arg()?;
                let bits = parse_unit(p)?;
                let end = parse_i64(end).ok_or(CommandError::NotInteger)?;
                (Some(Range { start, end, bits }), true)
            }
            _ => return Err(CommandError::Syntax),
        };
        Ok(BitPos {
            key,
            bit,
            range,
            end_given,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let pos = match ctx.locks.table(self.key).get(self.key, ctx.now) {
            Some(entry) => bitmap::position(
                &bytes_of(entry.value)?,
                self.bit,
                self.range,
                self.end_given,
            ),
            // A missing key is all clear bits.
            None if self.bit => -1,
            None => 0,
        };
        ctx.out.int(pos);
        Ok(())
    }
}

/// `BITOP AND | OR | XOR | NOT destkey key [key ...]`.
struct BitOp<'a> {
    op: Op,
    destination: &'a [u8],
    sources: super::Args<'a>,
}

impl<'a> Command<'a> for BitOp<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let op = match p.next_keyword().as_ref().map(|k| k.as_str()) {
            Some("AND") => Op::And,
            Some("OR") => Op::Or,
            Some("XOR") => Op::Xor,
            Some("NOT") => Op::Not,
            _ => return Err(CommandError::Syntax),
        };
        let destination = p.arg()?;
        let sources = p.rest();
        if op == Op::Not && sources.len() != 1 {
            return Err(CommandError::err(
                "BITOP NOT must be called with a single source key.",
            ));
        }
        Ok(BitOp {
            op,
            destination,
            sources,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let mut sources: Vec<Vec<u8>> = Vec::with_capacity(self.sources.len());
        for key in self.sources.iter() {
            let bytes = match ctx.locks.table(key).get(key, ctx.now) {
                Some(entry) => bytes_of(entry.value)?.into_owned(),
                None => Vec::new(),
            };
            sources.push(bytes);
        }
        let refs: Vec<&[u8]> = sources.iter().map(Vec::as_slice).collect();
        let result = bitmap::combine(self.op, &refs);
        let len = result.len();
        let table = ctx.locks.table(self.destination);
        if len > 0 {
            table.insert(
                self.destination,
                Value::Str(Str::new(&result)),
                Expiry::Persist,
                ctx.now,
            );
            ctx.changed(notify::STRING, "set", self.destination);
        } else if table.remove(self.destination, ctx.now).is_some() {
            // As Redis: an empty result deletes the destination.
            ctx.changed(notify::GENERIC, "del", self.destination);
        }
        ctx.out.int(len as i64);
        Ok(())
    }
}

/// One operation of `BITFIELD`.
#[derive(Debug, Clone, Copy)]
enum FieldOp {
    /// `GET type offset`.
    Get,
    /// `SET type offset value`.
    Set(i64),
    /// `INCRBY type offset increment`.
    IncrBy(i64),
}

/// One step of `BITFIELD`, with the overflow policy in force at it.
#[derive(Debug, Clone, Copy)]
struct Step {
    op: FieldOp,
    ty: FieldType,
    offset: u64,
    overflow: Overflow,
}

/// `BITFIELD key [GET type offset | SET type offset value | INCRBY type offset
/// increment | OVERFLOW WRAP|SAT|FAIL] ...` and `BITFIELD_RO key [GET type
/// offset ...]`.
struct BitField<'a> {
    key: &'a [u8],
    /// The steps before the first malformed one.
    steps: Vec<Step>,
    /// What was wrong with the first malformed step, if any. Redis checks the
    /// steps in order, each offset against `proto-max-bulk-len` too, a setting
    /// only known when the command runs: so an earlier step's offset out of
    /// range, or this step's own, is the error reported, not this.
    malformed: Option<Malformed>,
}

impl<'a> Command<'a> for BitField<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let mut steps = Vec::new();
        let mut overflow = Overflow::Wrap;
        let malformed = loop {
            match parse_step(p, &mut overflow) {
                Ok(Some(step)) => steps.push(step),
                Ok(None) => break None,
                Err(malformed) => {
                    // Nothing after a malformed step is read.
                    p.rest();
                    break Some(malformed);
                }
            }
        };
        Ok(BitField {
            key,
            steps,
            malformed,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        for step in &self.steps {
            check_offset(ctx, step.offset)?;
        }
        if let Some(malformed) = self.malformed {
            if let Some(offset) = malformed.offset {
                check_offset(ctx, offset)?;
            }
            return Err(malformed.error);
        }
        let writes = self.steps.iter().filter(|s| !matches!(s.op, FieldOp::Get));
        let Some(end) = writes.map(|s| s.offset + u64::from(s.ty.bits) - 1).max() else {
            return self.read_only(ctx);
        };
        if ctx.name() == "bitfield_ro" {
            return Err(CommandError::err(
                "BITFIELD_RO only supports the GET subcommand",
            ));
        }
        let key = self.key;
        let (bytes, grew) = grown(ctx, key, (end >> 3) as usize + 1)?;
        // The replies are built apart while the value is borrowed for writing.
        let mut replies: Vec<Option<i64>> = Vec::with_capacity(self.steps.len());
        let mut changed = grew;
        for step in &self.steps {
            let old = bitmap::read_field(bytes, step.offset, step.ty);
            let (value, incr) = match step.op {
                FieldOp::Get => {
                    replies.push(Some(old));
                    continue;
                }
                FieldOp::Set(v) => (v, 0),
                FieldOp::IncrBy(by) => (old, by),
            };
            let new = match bitmap::fit(value, incr, step.ty, step.overflow) {
                Ok(v) | Err(Some(v)) => v,
                Err(None) => {
                    replies.push(None);
                    continue;
                }
            };
            bitmap::write_field(bytes, step.offset, step.ty, new);
            changed |= new != old;
            replies.push(Some(match step.op {
                FieldOp::Set(_) => old,
                _ => new,
            }));
        }
        if changed {
            ctx.changed(notify::STRING, "setbit", key);
        }
        ctx.out.array(replies.len());
        for reply in replies {
            match reply {
                Some(n) => ctx.out.int(n),
                None => ctx.out.null(),
            }
        }
        Ok(())
    }
}

/// A `BITFIELD` step that could not be parsed.
struct Malformed {
    /// Its offset, when that was read before the error.
    offset: Option<u64>,
    error: CommandError,
}

impl From<CommandError> for Malformed {
    fn from(error: CommandError) -> Self {
        Malformed {
            offset: None,
            error,
        }
    }
}

/// The next step of a `BITFIELD` (`None` at the end), updating the overflow
/// policy when the step sets it.
fn parse_step(p: &mut Parser<'_>, overflow: &mut Overflow) -> Result<Option<Step>, Malformed> {
    loop {
        let Some(word) = p.next_keyword() else {
            return Ok(None);
        };
        // Each subcommand needs its arguments there, or it is a syntax error.
        let is_get = match word.as_str() {
            "GET" if p.remaining() >= 2 => true,
            "SET" | "INCRBY" if p.remaining() >= 3 => false,
            "OVERFLOW" if p.remaining() >= 1 => {
                *overflow = match p.next_keyword().as_ref().map(|k| k.as_str()) {
                    Some("WRAP") => Overflow::Wrap,
                    Some("SAT") => Overflow::Sat,
                    Some("FAIL") => Overflow::Fail,
                    _ => return Err(CommandError::err("Invalid OVERFLOW type specified").into()),
                };
                continue;
            }
            _ => return Err(CommandError::Syntax.into()),
        };
        let ty = FieldType::parse(p.arg()?).ok_or_else(|| {
            CommandError::err(
                "Invalid bitfield type. Use something like i16 u8. Note that u64 is not \
                 supported but i64 is.",
            )
        })?;
        let offset = parse_offset(p.arg()?, Some(ty.bits))?;
        let value = |p: &mut Parser<'_>| {
            p.next_i64().map_err(|error| Malformed {
                offset: Some(offset),
                error,
            })
        };
        let op = match (is_get, word.as_str()) {
            (true, _) => FieldOp::Get,
            (false, "SET") => FieldOp::Set(value(p)?),
            _ => FieldOp::IncrBy(value(p)?),
        };
        return Ok(Some(Step {
            op,
            ty,
            offset,
            overflow: *overflow,
        }));
    }
}

impl BitField<'_> {
    /// A `BITFIELD` of `GET`s only: reads without creating the key.
    fn read_only(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let entry = ctx.locks.table(self.key).get(self.key, ctx.now);
        let bytes = match &entry {
            Some(entry) => bytes_of(&*entry.value)?,
            None => Cow::Borrowed(&[][..]),
        };
        ctx.out.array(self.steps.len());
        for step in &self.steps {
            ctx.out
                .int(bitmap::read_field(&bytes, step.offset, step.ty));
        }
        Ok(())
    }
}
