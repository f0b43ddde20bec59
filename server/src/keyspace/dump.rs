//! The serialized form of a value used by `DUMP`/`RESTORE` (and later by slot
//! migration).
//!
//! ```text
//! [type tag: u8][body][format version: u16 LE][CRC-64/Jones of all before: u64 LE]
//! ```
//! Like Redis's RDB-based payload, it is opaque to clients, carries its own version so
//! an older server refuses what it cannot read, and a checksum so a corrupted or
//! forged payload is refused instead of producing a broken value.

use super::types::stream::{Group, IdArg, StreamId};
use super::types::{EncodingLimits, End, Hash, List, Lock, Set, Stream, ZSet};
use super::value::{Blob, Value};

/// Version written into every payload; bumped whenever the layout changes.
const FORMAT_VERSION: u16 = 1;
const FOOTER: usize = 2 + 8;
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

const TAG_STRING: u8 = 0;
const TAG_INT: u8 = 1;
const TAG_LIST: u8 = 2;
const TAG_HASH: u8 = 3;
const TAG_SET: u8 = 4;
const TAG_ZSET: u8 = 5;
const TAG_LOCK: u8 = 6;
const TAG_ABSENT: u8 = 7;
const TAG_LEASE: u8 = 8;
const TAG_STREAM: u8 = 9;

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

/// Appends `bytes` with their length before them.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Takes bytes written by [`put_bytes`] from the front of `input`.
pub fn take_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_varint(input)?).ok()?;
    if len > input.len() {
        return None;
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    Some(bytes)
}

/// Serializes `value`.
pub fn dump_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Str(s) => {
            out.push(TAG_STRING);
            put_bytes(&mut out, s.as_bytes());
        }
        Value::Int(n) => {
            out.push(TAG_INT);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::List(l) => {
            out.push(TAG_LIST);
            put_varint(&mut out, l.len() as u64);
            for item in l.iter() {
                put_bytes(&mut out, item);
            }
        }
        Value::Hash(h) => {
            out.push(TAG_HASH);
            put_varint(&mut out, h.len() as u64);
            for (field, value) in h.iter() {
                put_bytes(&mut out, field);
                put_bytes(&mut out, value);
            }
        }
        Value::Set(s) => {
            out.push(TAG_SET);
            put_varint(&mut out, s.len() as u64);
            for member in s.iter() {
                put_bytes(&mut out, &member.to_vec());
            }
        }
        Value::ZSet(z) => {
            out.push(TAG_ZSET);
            put_varint(&mut out, z.len() as u64);
            for (member, score) in z.iter_from(0, false) {
                put_bytes(&mut out, member);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        Value::Lock(lock) => {
            out.push(TAG_LOCK);
            put_bytes(&mut out, lock.owner());
            put_varint(&mut out, u64::from(lock.holds()));
            out.extend_from_slice(&lock.token().to_le_bytes());
        }
        Value::Stream(stream) => {
            out.push(TAG_STREAM);
            dump_stream(&mut out, stream);
        }
        Value::Absent => out.push(TAG_ABSENT),
        Value::Lease(token) => {
            out.push(TAG_LEASE);
            out.extend_from_slice(&token.to_le_bytes());
        }
    }
    seal(&mut out);
    out
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_varint(out, id.ms);
    put_varint(out, id.seq);
}

fn take_id(input: &mut &[u8]) -> Option<StreamId> {
    Some(StreamId::new(take_varint(input)?, take_varint(input)?))
}

/// A stream as its entries, counters and groups (not its node layout, which
/// the restoring side's limits decide).
fn dump_stream(out: &mut Vec<u8>, stream: &Stream) {
    put_varint(out, stream.len());
    for entry in stream.range(StreamId::MIN, StreamId::MAX) {
        put_id(out, entry.id);
        put_varint(out, entry.len() as u64);
        for (field, value) in entry.fields() {
            put_bytes(out, field);
            put_bytes(out, value);
        }
    }
    put_id(out, stream.last_id());
    put_id(out, stream.max_deleted());
    put_varint(out, stream.entries_added());
    put_varint(out, stream.groups().len() as u64);
    for (name, group) in stream.groups() {
        put_bytes(out, name.as_bytes());
        put_id(out, group.last_id);
        put_varint(out, group.entries_read.map_or(0, |n| n + 1));
        put_varint(out, group.consumers().len() as u64);
        for (name, consumer) in group.consumers() {
            put_bytes(out, name.as_bytes());
            put_varint(out, consumer.seen_time);
            put_varint(out, consumer.active_time.map_or(0, |t| t + 1));
        }
        put_varint(out, group.pending().len() as u64);
        for (&id, pending) in group.pending() {
            put_id(out, id);
            put_bytes(out, pending.consumer.as_bytes());
            put_varint(out, pending.delivery_time);
            put_varint(out, pending.delivery_count);
        }
    }
}

/// Rebuilds a stream written by [`dump_stream`]; `None` if it is not one
/// a stream could have been (ids not increasing, counters behind the
/// entries, pending entries of unknown consumers).
fn restore_stream(rest: &mut &[u8], limits: &EncodingLimits) -> Option<Stream> {
    let mut stream = Stream::default();
    let mut fields: Vec<&[u8]> = Vec::new();
    for _ in 0..take_varint(rest)? {
        let id = take_id(rest)?;
        fields.clear();
        for _ in 0..take_varint(rest)? {
            fields.push(take_bytes(rest)?);
            fields.push(take_bytes(rest)?);
        }
        if fields.is_empty() {
            return None;
        }
        stream
            .append(Some(IdArg::Id(id)), &fields, limits.stream_nodes(), 0)
            .ok()?;
    }
    let last_id = take_id(rest)?;
    let max_deleted = take_id(rest)?;
    let entries_added = take_varint(rest)?;
    if last_id < stream.last_id() || entries_added < stream.len() {
        return None;
    }
    stream.set_last_id(last_id, Some(entries_added), Some(max_deleted));
    for _ in 0..take_varint(rest)? {
        let name = Blob::new(take_bytes(rest)?);
        let last_id = take_id(rest)?;
        let entries_read = take_varint(rest)?.checked_sub(1);
        let mut group = Group::new(last_id, entries_read);
        for _ in 0..take_varint(rest)? {
            let consumer = take_bytes(rest)?;
            let seen = take_varint(rest)?;
            if !group.create_consumer(consumer, seen) {
                return None;
            }
            if let Some(active) = take_varint(rest)?.checked_sub(1) {
                group.active(consumer, active);
            }
        }
        for _ in 0..take_varint(rest)? {
            let id = take_id(rest)?;
            let consumer = take_bytes(rest)?;
            let (time, count) = (take_varint(rest)?, take_varint(rest)?);
            if group.consumer(consumer).is_none() || group.pending().contains_key(&id) {
                return None;
            }
            group.assign(id, consumer, time, count);
        }
        if stream.groups_mut().insert(name, group).is_some() {
            return None;
        }
    }
    Some(stream)
}

/// Ends a payload whose body is `out`: the format version, then the
/// checksum of everything before.
pub fn seal(out: &mut Vec<u8>) {
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = CRC64.checksum(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// The body of a payload made by [`seal`], if its version is known and its
/// checksum right.
pub fn unseal(payload: &[u8]) -> Result<&[u8], DumpError> {
    if payload.len() < FOOTER {
        return Err(DumpError::VersionOrChecksum);
    }
    let (signed, crc) = payload.split_at(payload.len() - 8);
    let crc = u64::from_le_bytes(crc.try_into().expect("8 bytes"));
    let (body, version) = signed.split_at(signed.len() - 2);
    let version = u16::from_le_bytes(version.try_into().expect("2 bytes"));
    if version > FORMAT_VERSION || CRC64.checksum(signed) != crc {
        return Err(DumpError::VersionOrChecksum);
    }
    Ok(body)
}

/// Checks and decodes a payload made by [`dump_value`]; collections take the
/// encodings `limits` call for.
pub fn restore_value(payload: &[u8], limits: &EncodingLimits) -> Result<Value, DumpError> {
    let body = unseal(payload)?;
    let (&tag, mut rest) = body.split_first().ok_or(DumpError::BadFormat)?;
    let value = decode(tag, &mut rest, limits).ok_or(DumpError::BadFormat)?;
    if !rest.is_empty() || value.is_empty_collection() {
        return Err(DumpError::BadFormat);
    }
    Ok(value)
}

fn decode(tag: u8, rest: &mut &[u8], limits: &EncodingLimits) -> Option<Value> {
    let value = match tag {
        TAG_STRING => Value::string(take_bytes(rest)?),
        TAG_INT => {
            let (bytes, tail) = rest.split_first_chunk::<8>()?;
            *rest = tail;
            Value::Int(i64::from_le_bytes(*bytes))
        }
        TAG_LIST => {
            let mut list = List::new(limits);
            for _ in 0..take_varint(rest)? {
                list.push(End::Right, take_bytes(rest)?);
            }
            Value::List(Box::new(list))
        }
        TAG_HASH => {
            let mut hash = Hash::default();
            for _ in 0..take_varint(rest)? {
                let field = take_bytes(rest)?;
                hash.set(field, take_bytes(rest)?, limits);
            }
            Value::Hash(Box::new(hash))
        }
        TAG_SET => {
            let count = take_varint(rest)?;
            let mut set: Option<Set> = None;
            for _ in 0..count {
                let member = take_bytes(rest)?;
                set.get_or_insert_with(|| Set::for_member(member, limits))
                    .add(member, limits);
            }
            Value::Set(Box::new(set.unwrap_or_default()))
        }
        TAG_ZSET => {
            let mut zset = ZSet::default();
            for _ in 0..take_varint(rest)? {
                let member = take_bytes(rest)?;
                let (score, tail) = rest.split_first_chunk::<8>()?;
                *rest = tail;
                let score = f64::from_le_bytes(*score);
                if score.is_nan() {
                    return None;
                }
                zset.insert(member, score, limits);
            }
            Value::ZSet(Box::new(zset))
        }
        TAG_LOCK => {
            let owner = take_bytes(rest)?;
            let holds = u32::try_from(take_varint(rest)?).ok()?;
            let (token, tail) = rest.split_first_chunk::<8>()?;
            *rest = tail;
            Value::Lock(Box::new(Lock::restored(
                owner,
                holds,
                u64::from_le_bytes(*token),
            )))
        }
        TAG_STREAM => Value::Stream(Box::new(restore_stream(rest, limits)?)),
        TAG_ABSENT => Value::Absent,
        TAG_LEASE => {
            let (token, tail) = rest.split_first_chunk::<8>()?;
            *rest = tail;
            Value::Lease(u64::from_le_bytes(*token))
        }
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> EncodingLimits {
        EncodingLimits::default()
    }

    #[test]
    fn values_round_trip() {
        let l = limits();
        let mut list = List::default();
        let mut hash = Hash::default();
        let mut set = Set::for_member(b"1", &l);
        let mut zset = ZSet::default();
        for i in 0..300 {
            let item = format!("item{i}");
            list.push(End::Right, item.as_bytes());
            hash.set(item.as_bytes(), b"v", &l);
            set.add(i.to_string().as_bytes(), &l);
            zset.insert(item.as_bytes(), f64::from(i) / 3.0, &l);
        }
        for value in [
            Value::string(b"hello"),
            Value::Int(-7),
            Value::string(&[0xff; 300]),
            Value::List(Box::new(list)),
            Value::Hash(Box::new(hash)),
            Value::Set(Box::new(set)),
            Value::ZSet(Box::new(zset)),
            Value::Lock(Box::new(Lock::restored(b"owner", 3, 1_234_567))),
            Value::Absent,
            Value::Lease(42),
            Value::Stream(Box::new(stream())),
            Value::Stream(Box::default()),
        ] {
            assert_eq!(restore_value(&dump_value(&value), &l), Ok(value));
        }
    }

    /// A stream with deletions, moved counters, and a group with a consumer
    /// holding pending entries.
    fn stream() -> Stream {
        let mut stream = Stream::default();
        for i in 0..250u64 {
            let value = i.to_string();
            let fields: &[&[u8]] = match i % 3 {
                0 => &[b"f", value.as_bytes()],
                _ => &[b"f", value.as_bytes(), b"g", b"x"],
            };
            stream
                .append(None, fields, limits().stream_nodes(), 1_000 + i / 7)
                .unwrap();
        }
        stream.delete(StreamId::new(1_001, 3));
        stream.set_last_id(StreamId::new(5_000, 0), Some(300), None);
        let mut group = Group::new(StreamId::new(1_002, 0), Some(14));
        group.create_consumer(b"alice", 7);
        group.create_consumer(b"bob", 8);
        group.deliver(StreamId::new(1_000, 2), b"alice", 9);
        group.deliver(StreamId::new(1_001, 1), b"bob", 10);
        group.active(b"bob", 10);
        stream.groups_mut().insert(Blob::new(b"g1"), group);
        stream
            .groups_mut()
            .insert(Blob::new(b"g2"), Group::new(StreamId::MIN, None));
        stream
    }

    #[test]
    fn newer_versions_are_refused() {
        let mut payload = dump_value(&Value::Int(1));
        let n = payload.len();
        payload[n - 10..n - 8].copy_from_slice(&2u16.to_le_bytes());
        let crc = CRC64.checksum(&payload[..n - 8]);
        payload[n - 8..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            restore_value(&payload, &limits()),
            Err(DumpError::VersionOrChecksum)
        );
    }

    proptest! {
        #[test]
        fn any_corruption_is_detected(data in proptest::collection::vec(any::<u8>(), 0..64),
                                      flip in any::<usize>(), bit in 0u8..8) {
            let mut payload = dump_value(&Value::string(&data));
            let at = flip % payload.len();
            payload[at] ^= 1 << bit;
            prop_assert!(restore_value(&payload, &limits()).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = restore_value(&data, &limits());
        }

        /// A correctly signed but malformed body is refused, never panics.
        #[test]
        fn signed_garbage_is_refused_cleanly(tag in 0u8..8, body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut payload = vec![tag];
            payload.extend(body);
            payload.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            let crc = CRC64.checksum(&payload);
            payload.extend_from_slice(&crc.to_le_bytes());
            let _ = restore_value(&payload, &limits());
        }
    }
}
