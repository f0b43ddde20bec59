//! Node and shard ids: 20 random bytes, written as 40 lowercase hex digits.

use std::fmt;

/// A node's or a shard's id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Id(pub [u8; 20]);

impl Id {
    /// A fresh random id from `rng`.
    pub fn random(rng: &mut impl rand::Rng) -> Id {
        let mut bytes = [0; 20];
        rng.fill_bytes(&mut bytes);
        Id(bytes)
    }

    /// Parses 40 hex digits (either case).
    pub fn parse(text: &str) -> Option<Id> {
        let text = text.as_bytes();
        if text.len() != 40 {
            return None;
        }
        let mut bytes = [0; 20];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks(2)) {
            let digit = |c: u8| (c as char).to_digit(16);
            *byte = (digit(pair[0])? << 4 | digit(pair[1])?) as u8;
        }
        Some(Id(bytes))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Eight digits tell ids apart in logs and test failures.
        write!(f, "{}", &self.to_string()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_as_forty_hex_digits_and_parse_back() {
        let id = Id([0xab; 20]);
        assert_eq!(id.to_string(), "ab".repeat(20));
        assert_eq!(Id::parse(&id.to_string()), Some(id));
        assert_eq!(Id::parse(&"AB".repeat(20)), Some(id));
        assert_eq!(Id::parse(&"ab".repeat(19)), None);
        assert_eq!(Id::parse(&format!("{}zz", "ab".repeat(19))), None);
        assert_eq!(Id::parse(&format!("{}é", "ab".repeat(19))), None);
    }
}
