//! Memory sizes written the Redis way: `512mb`, `1gb`, `100k`, or plain bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes that parses Redis unit suffixes (`k`=1000, `kb`=1024, ... `gb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemSize(pub u64);

/// A size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid memory size '{0}' (use e.g. 1048576, 100mb, 1gb)")]
pub struct BadSize(String);

impl FromStr for MemSize {
    type Err = BadSize;

    fn from_str(s: &str) -> Result<Self, BadSize> {
        let lower = s.trim().to_ascii_lowercase();
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

impl Serialize for MemSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for MemSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(MemSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
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
}
