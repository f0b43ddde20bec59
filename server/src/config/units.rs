//! Memory sizes written the Redis way: `512mb`, `1gb`, `100k`, or plain bytes.

use std::fmt;
use std::str::FromStr;

/// A size in bytes that parses Redis unit suffixes (`k`=1000, `kb`=1024, ... `gb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemSize(pub u64);

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid memory size '{0}' (use e.g. 1048576, 100mb, 1gb)")]
pub struct BadSize(String);

/// The binary units, largest first, as [`MemSize::with_unit`] writes them.
const UNITS: [(u64, &str); 3] = [(1 << 30, "gb"), (1 << 20, "mb"), (1 << 10, "kb")];

impl MemSize {
    /// The size in the largest binary unit that holds it exactly (`512mb`), or
    /// in bytes: how the example file writes sizes.
    pub fn with_unit(self) -> String {
        match UNITS
            .iter()
            .find(|(unit, _)| self.0 != 0 && self.0.is_multiple_of(*unit))
        {
            Some((unit, name)) => format!("{}{name}", self.0 / unit),
            None => self.0.to_string(),
        }
    }
}

impl FromStr for MemSize {
    type Err = BadSize;

    /// Parses as Redis's `memtoull`: digits, then an optional unit; no sign, no
    /// spaces.
    fn from_str(s: &str) -> Result<Self, BadSize> {
        let lower = s.to_ascii_lowercase();
        let split = lower
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(lower.len());
        let (digits, unit) = lower.split_at(split);
        let mul: u64 = match unit {
            "" | "b" => 1,
            "k" => 1_000,
            "kb" => 1 << 10,
            "m" => 1_000_000,
            "mb" => 1 << 20,
            "g" => 1_000_000_000,
            "gb" => 1 << 30,
            _ => return Err(BadSize(s.to_string())),
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mul))
            .map(MemSize)
            .ok_or_else(|| BadSize(s.to_string()))
    }
}

impl fmt::Display for MemSize {
    /// Plain bytes, as `CONFIG GET` shows sizes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_units() {
        assert_eq!("512mb".parse(), Ok(MemSize(512 << 20)));
        assert_eq!("1GB".parse(), Ok(MemSize(1 << 30)));
        assert_eq!("100k".parse(), Ok(MemSize(100_000)));
        assert_eq!("42".parse(), Ok(MemSize(42)));
        assert!("12xb".parse::<MemSize>().is_err());
        assert!("".parse::<MemSize>().is_err());
        assert!("99999999999999999999gb".parse::<MemSize>().is_err());
    }

    #[test]
    fn refuses_what_redis_refuses() {
        for bad in [" 1mb", "1mb ", "+1", "-1", "1.5gb", "0x10", "mb"] {
            assert!(bad.parse::<MemSize>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn writes_the_largest_exact_unit() {
        assert_eq!(MemSize(512 << 20).with_unit(), "512mb");
        assert_eq!(MemSize(1 << 30).with_unit(), "1gb");
        assert_eq!(MemSize(3 << 10).with_unit(), "3kb");
        assert_eq!(MemSize(1000).with_unit(), "1000");
        assert_eq!(MemSize(0).with_unit(), "0");
        for n in [0, 1, 1023, 1024, 1 << 20, 5 << 30, u64::MAX] {
            assert_eq!(MemSize(n).with_unit().parse(), Ok(MemSize(n)));
        }
    }
}
