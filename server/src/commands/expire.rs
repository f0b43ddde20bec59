//! Expiry commands: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL, EXPIRETIME,
//! PEXPIRETIME, PERSIST; and the expire-time arithmetic `SET`/`GETEX` share.

use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::clock::Millis;
use crate::notify;

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "generic", summary, handler)
        .keys(KeySpec::ONE)
        .since(since)
}

/// The expiry family.
pub const COMMANDS: &[CommandSpec] = &[
    spec(
        "expire",
        -3,
        WRITE | FAST,
        "1.0.0",
        "Sets the expiration time of a key in seconds.",
        handler!(Expire<'_>),
    ),
    spec(
        "pexpire",
        -3,
        WRITE | FAST,
        "2.6.0",
        "Sets the expiration time of a key in milliseconds.",
        handler!(Expire<'_>),
    ),
    spec(
        "expireat",
        -3,
        WRITE | FAST,
        "1.2.0",
        "Sets the expiration time of a key to a Unix timestamp.",
        handler!(Expire<'_>),
    ),
    spec(
        "pexpireat",
        -3,
        WRITE | FAST,
        "2.6.0",
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        handler!(Expire<'_>),
    ),
    spec(
        "ttl",
        2,
        READONLY | FAST,
        "1.0.0",
        "Returns the expiration time in seconds of a key.",
        handler!(Ttl<'_>),
    ),
    spec(
        "pttl",
        2,
        READONLY | FAST,
        "2.6.0",
        "Returns the expiration time in milliseconds of a key.",
        handler!(Ttl<'_>),
    ),
    spec(
        "expiretime",
        2,
        READONLY | FAST,
        "7.0.0",
        "Returns the expiration time of a key as a Unix timestamp.",
        handler!(Ttl<'_>),
    ),
    spec(
        "pexpiretime",
        2,
        READONLY | FAST,
        "7.0.0",
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        handler!(Ttl<'_>),
    ),
    spec(
        "persist",
        2,
        WRITE | FAST,
        "2.2.0",
        "Removes the expiration time of a key.",
        handler!(Persist<'_>),
    ),
];

/// The unit an expire argument is given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Seconds (`EX`, `EXPIRE`, `EXAT`).
    Seconds,
    /// Milliseconds (`PX`, `PEXPIRE`, `PXAT`).
    Millis,
}

/// An expire time as a client wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpireArg {
    /// The number given.
    pub value: i64,
    /// Its unit.
    pub unit: Unit,
    /// Relative to now (`EX`, `PX`) or an absolute Unix time (`EXAT`, `PXAT`).
    pub relative: bool,
}

impl ExpireArg {
    /// The absolute time in Unix milliseconds, or the invalid-expire error of
    /// `command`. `SET`-style options refuse values that are not positive; `EXPIRE`
    /// accepts them (the key is deleted).
    pub fn resolve(
        self,
        now: Millis,
        command: &str,
        positive_only: bool,
    ) -> Result<i64, CommandError> {
        let invalid = || CommandError::InvalidExpire(command.to_string());
        if positive_only && self.value <= 0 {
            return Err(invalid());
        }
        let ms = match self.unit {
            Unit::Seconds => self.value.checked_mul(1000).ok_or_else(invalid)?,
            Unit::Millis => self.value,
        };
        let at = if self.relative {
            ms.checked_add(now as i64).ok_or_else(invalid)?
        } else {
            ms
        };
        if positive_only && at <= 0 {
            return Err(invalid());
        }
        Ok(at)
    }
}

/// The `NX|XX|GT|LT` options of `EXPIRE`; each one given must hold.
#[derive(Debug, Clone, Copy, Default)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

impl Conditions {
    /// Whether a new expiry `at` may replace `current` (`None`: no TTL, which counts
    /// as expiring never, so GT cannot beat it and LT always can).
    fn allow(self, current: Option<i64>, at: i64) -> bool {
        let exists_ok = match current {
            Some(_) => !self.nx,
            None => !self.xx,
        };
        exists_ok
            && !(self.gt && current.is_none_or(|c| at <= c))
            && !(self.lt && current.is_some_and(|c| at >= c))
    }
}

/// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT key time [NX|XX|GT|LT]`.
struct Expire<'a> {
    key: &'a [u8],
    time: i64,
    conditions: Conditions,
}

impl<'a> Command<'a> for Expire<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let time = p.next_i64()?;
        let mut c = Conditions::default();
        while let Some(arg) = p.try_arg() {
            match arg.to_ascii_uppercase().as_slice() {
                b"NX" => c.nx = true,
                b"XX" => c.xx = true,
                b"GT" => c.gt = true,
                b"LT" => c.lt = true,
                _ => {
                    return Err(CommandError::err(format!(
                        "Unsupported option {}",
                        String::from_utf8_lossy(arg)
                    )))
                }
            }
        }
        if c.nx && (c.xx || c.gt || c.lt) {
            return Err(CommandError::err(
                "NX and XX, GT or LT options at the same time are not compatible",
            ));
        }
        if c.gt && c.lt {
            return Err(CommandError::err(
                "GT and LT options at the same time are not compatible",
            ));
        }
        Ok(Expire {
            key,
            time,
            conditions: c,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let name = ctx.name();
        let (unit, relative) = match name {
            "expire" => (Unit::Seconds, true),
            "pexpire" => (Unit::Millis, true),
            "expireat" => (Unit::Seconds, false),
            _ => (Unit::Millis, false),
        };
        let at = ExpireArg {
            value: self.time,
            unit,
            relative,
        }
        .resolve(ctx.now, name, false)?;
        let table = ctx.locks.table(self.key);
        let Some(entry) = table.peek(self.key, ctx.now) else {
            ctx.out.int(0);
            return Ok(());
        };
        let current = entry.expire_at().map(|e| e as i64);
        let allowed = self.conditions.allow(current, at);
        if !allowed {
            ctx.out.int(0);
            return Ok(());
        }
        let event = if at <= ctx.now as i64 {
            table.remove(self.key, ctx.now);
            "del"
        } else {
            table.set_expire(self.key, Some(at as Millis), ctx.now);
            "expire"
        };
        ctx.changed(notify::GENERIC, event, self.key);
        // Recorded as the absolute time it resolved to, or the deletion.
        if event == "del" {
            ctx.propagate(&[b"DEL", self.key]);
        } else {
            let mut at_text = itoa::Buffer::new();
            ctx.propagate(&[b"PEXPIREAT", self.key, at_text.format(at).as_bytes()]);
        }
        ctx.out.int(1);
        Ok(())
    }
}

/// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME key`.
struct Ttl<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for Ttl<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Ttl { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let name = ctx.name();
        let now = ctx.now;
        let expire = {
            let table = ctx.locks.table(self.key);
            match table.peek(self.key, now) {
                None => {
                    ctx.out.int(-2);
                    return Ok(());
                }
                Some(entry) => entry.expire_at(),
            }
        };
        let Some(at) = expire else {
            ctx.out.int(-1);
            return Ok(());
        };
        let left = at.saturating_sub(now) as i64;
        ctx.out.int(match name {
            "ttl" => (left + 500) / 1000,
            "pttl" => left,
            "expiretime" => (at / 1000) as i64,
            _ => at as i64,
        });
        Ok(())
    }
}

/// `PERSIST key`.
struct Persist<'a> {
    key: &'a [u8],
}

impl<'a> Command<'a> for Persist<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(Persist { key: p.arg()? })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let table = ctx.locks.table(self.key);
        let had_ttl = table
            .peek(self.key, ctx.now)
            .is_some_and(|e| e.expire_at().is_some());
        if had_ttl {
            table.set_expire(self.key, None, ctx.now);
            ctx.changed(notify::GENERIC, "persist", self.key);
        }
        ctx.out.int(i64::from(had_ttl));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times_resolve() {
        let ex = ExpireArg {
            value: 10,
            unit: Unit::Seconds,
            relative: true,
        };
        assert_eq!(ex.resolve(1_000, "set", true), Ok(11_000));
        let pxat = ExpireArg {
            value: 5,
            unit: Unit::Millis,
            relative: false,
        };
        assert_eq!(pxat.resolve(1_000, "set", true), Ok(5));
    }

    #[test]
    fn invalid_times_name_the_command() {
        let zero = ExpireArg {
            value: 0,
            unit: Unit::Seconds,
            relative: true,
        };
        assert_eq!(
            zero.resolve(0, "set", true).unwrap_err().to_string(),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(zero.resolve(7, "expire", false), Ok(7));
        let huge = ExpireArg {
            value: i64::MAX / 10,
            unit: Unit::Seconds,
            relative: true,
        };
        assert!(huge.resolve(0, "expire", false).is_err());
        let edge = ExpireArg {
            value: i64::MAX,
            unit: Unit::Millis,
            relative: true,
        };
        assert!(edge.resolve(1, "pexpire", false).is_err());
    }
}
