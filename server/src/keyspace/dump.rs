//! The serialized form of a value used by `DUMP`/`RESTORE` (and later by slot
//! migration).
//!
//! ```text
//! [type tag: u8][body][format version: u16 LE][CRC-64/Jones of all before: u64 LE]
//! ```
//! Like Redis's RDB-based payload, it is opaque to clients, carries its own version so
//! an older server refuses what it cannot read, and a checksum so a corrupted or
//! forged payload is refused instead of producing a broken value.

use super::value::Value;

/// Version written into every payload; bumped whenever the layout changes.
const FORMAT_VERSION: u16 = 1;
const FOOTER: usize = 2 + 8;
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

const TAG_STRING: u8 = 0;
const TAG_INT: u8 = 1;

/// Why a payload cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// Wrong checksum, or written by a newer format.
    #[error("DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    /// The checksum matched but the body does not decode.
    #[error("Bad data format")]
    BadFormat,
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        n |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Serializes `value`.
pub fn dump_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Str(s) => {
            out.push(TAG_STRING);
            put_varint(&mut out, s.len() as u64);
            out.extend_from_slice(s);
        }
        Value::Int(n) => {
            out.push(TAG_INT);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks and decodes a payload made by [`dump_value`].
pub fn restore_value(payload: &[u8]) -> Result<Value, DumpError> {
    if payload.len() < 1 + FOOTER {
        return Err(DumpError::VersionOrChecksum);
    }
    let (signed, crc) = payload.split_at(payload.len() - 8);
    let crc = u64::from_le_bytes(crc.try_into().expect("8 bytes"));
    let (body, version) = signed.split_at(signed.len() - 2);
    let version = u16::from_le_bytes(version.try_into().expect("2 bytes"));
    if version > FORMAT_VERSION || CRC64.checksum(signed) != crc {
        return Err(DumpError::VersionOrChecksum);
    }
    let (&tag, mut rest) = body.split_first().ok_or(DumpError::BadFormat)?;
    let value = match tag {
        TAG_STRING => {
            let len = take_varint(&mut rest).ok_or(DumpError::BadFormat)?;
            if len != rest.len() as u64 {
                return Err(DumpError::BadFormat);
            }
            Value::string(rest)
        }
        TAG_INT => {
            let bytes: [u8; 8] = rest.try_into().map_err(|_| DumpError::BadFormat)?;
            Value::Int(i64::from_le_bytes(bytes))
        }
        _ => return Err(DumpError::BadFormat),
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_round_trip() {
        for value in [
            Value::string(b"hello"),
            Value::Int(-7),
            Value::string(&[0xff; 300]),
        ] {
            assert_eq!(restore_value(&dump_value(&value)), Ok(value));
        }
    }

    #[test]
    fn newer_versions_are_refused() {
        let mut payload = dump_value(&Value::Int(1));
        let n = payload.len();
        payload[n - 10..n - 8].copy_from_slice(&2u16.to_le_bytes());
        let crc = CRC64.checksum(&payload[..n - 8]);
        payload[n - 8..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(restore_value(&payload), Err(DumpError::VersionOrChecksum));
    }

    proptest! {
        #[test]
        fn any_corruption_is_detected(data in proptest::collection::vec(any::<u8>(), 0..64),
                                      flip in any::<usize>(), bit in 0u8..8) {
            let mut payload = dump_value(&Value::string(&data));
            let at = flip % payload.len();
            payload[at] ^= 1 << bit;
            prop_assert!(restore_value(&payload).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = restore_value(&data);
        }
    }
}
