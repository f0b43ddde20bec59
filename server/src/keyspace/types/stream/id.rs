//! Stream entry ids: `<ms>-<seq>`, two unsigned 64-bit numbers ordered as one
//! 128-bit number, and the ways clients write them.

use std::fmt;

/// A stream entry id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Milliseconds part (by default, the Unix time the entry was added).
    pub ms: u64,
    /// Sequence number within the millisecond.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`, below every entry's id (`-` in a range).
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest id (`+` in a range).
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An id from its parts.
    pub const fn new(ms: u64, seq: u64) -> Self {
        StreamId { ms, seq }
    }

    /// The id right after this one; `None` after [`StreamId::MAX`].
    pub fn next(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (u64::MAX, u64::MAX) => None,
            (ms, u64::MAX) => Some(StreamId::new(ms + 1, 0)),
            (ms, seq) => Some(StreamId::new(ms, seq + 1)),
        }
    }

    /// The id right before this one; `None` before [`StreamId::MIN`].
    pub fn prev(self) -> Option<StreamId> {
        match (self.ms, self.seq) {
            (0, 0) => None,
            (ms, 0) => Some(StreamId::new(ms - 1, u64::MAX)),
            (ms, seq) => Some(StreamId::new(ms, seq - 1)),
        }
    }

    /// True for `0-0`.
    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The id as Redis prints it.
    pub fn to_bytes(self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An id as a command names it, before the stream it applies to is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdArg {
    /// A complete id (or `-`/`+`, or `<ms>` with the sequence the command
    /// supplies).
    Id(StreamId),
    /// `<ms>-*`: the sequence is chosen by XADD.
    Ms(u64),
}

/// Parses an id as Redis does: `-`, `+` (unless `strict`), `<ms>-<seq>`,
/// `<ms>` (with `missing_seq` as the sequence), and `<ms>-*` when `auto_seq`.
/// Numbers are read as C's `strtoull` reads them, as Redis reads them.
pub fn parse(arg: &[u8], missing_seq: u64, strict: bool, auto_seq: bool) -> Option<IdArg> {
    // Redis copies the argument to a 128-byte buffer first.
    if arg.len() > 127 {
        return None;
    }
    match arg {
        b"-" | b"+" if strict => None,
        b"-" => Some(IdArg::Id(StreamId::MIN)),
        b"+" => Some(IdArg::Id(StreamId::MAX)),
        _ => {
            let (ms, seq) = match arg.iter().position(|&b| b == b'-') {
                Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
                None => (arg, None),
            };
            let ms = parse_u64(ms)?;
            match seq {
                Some(b"*") if auto_seq => Some(IdArg::Ms(ms)),
                Some(seq) => Some(IdArg::Id(StreamId::new(ms, parse_u64(seq)?))),
                None => Some(IdArg::Id(StreamId::new(ms, missing_seq))),
            }
        }
    }
}

/// A complete id (`strict`: `-` and `+` refused), `<ms>` completed with
/// `missing_seq`.
pub fn parse_id(arg: &[u8], missing_seq: u64, strict: bool) -> Option<StreamId> {
    match parse(arg, missing_seq, strict, false)? {
        IdArg::Id(id) => Some(id),
        IdArg::Ms(_) => None,
    }
}

/// Redis's `string2ull`: a canonical non-negative integer, or what `strtoull`
/// accepts whole (leading spaces, a sign, which for `-` wraps around).
fn parse_u64(s: &[u8]) -> Option<u64> {
    let start = s.iter().position(|b| !b.is_ascii_whitespace())?;
    let s = &s[start..];
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    match (negative, start) {
        // A canonical negative number is refused; strtoull's wrap-around is
        // reached only past what a signed 64-bit number holds, or after spaces.
        (true, 0) if digits[0] != b'0' && n <= i64::MAX as u64 + 1 => None,
        (true, _) => Some(n.wrapping_neg()),
        (false, _) => Some(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Option<StreamId> {
        parse_id(s.as_bytes(), 0, false)
    }

    #[test]
    fn ids_parse_as_redis_reads_them() {
        assert_eq!(id("5-3"), Some(StreamId::new(5, 3)));
        assert_eq!(id("5"), Some(StreamId::new(5, 0)));
        assert_eq!(
            parse_id(b"5", u64::MAX, false),
            Some(StreamId::new(5, u64::MAX))
        );
        assert_eq!(id("-"), Some(StreamId::MIN));
        assert_eq!(id("+"), Some(StreamId::MAX));
        assert_eq!(parse_id(b"+", 0, true), None);
        assert_eq!(
            id("18446744073709551615-18446744073709551615"),
            Some(StreamId::MAX)
        );
        assert_eq!(id("18446744073709551616"), None);
        assert_eq!(id("+7-1"), Some(StreamId::new(7, 1)));
        assert_eq!(id(" 7"), Some(StreamId::new(7, 0)));
        assert_eq!(id("1--05"), Some(StreamId::new(1, u64::MAX - 4)));
        assert_eq!(id("1--5"), None);
        for bad in ["", "x", "1-", "-1", "1-2-3", "1.5", "1-x", "0x10", "1 "] {
            assert_eq!(id(bad), None, "{bad}");
        }
        assert_eq!(parse(b"5-*", 0, true, true), Some(IdArg::Ms(5)));
        assert_eq!(parse(b"5-*", 0, true, false), None);
        assert_eq!(id(&"1".repeat(128)), None);
    }

    #[test]
    fn next_and_prev_carry_and_stop_at_the_ends() {
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::new(2, 0).prev(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.prev(), None);
        assert_eq!(StreamId::new(3, 4).to_string(), "3-4");
    }
}
