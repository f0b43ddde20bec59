//! Bits of a byte string, numbered as Redis numbers them: bit 0 is the most
//! significant bit of the first byte. Counting, searching and the integer
//! fields of `BITFIELD` with Redis's overflow rules. Uses nothing else of the
//! crate.

/// A range of a string in bytes or in bits, as `BITCOUNT` and `BITPOS` take it:
/// inclusive ends, negative ones counted from the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First index.
    pub start: i64,
    /// Last index.
    pub end: i64,
    /// Whether the indexes count bits (`BIT`) rather than bytes (`BYTE`).
    pub bits: bool,
}

impl Range {
    /// The range as the first and last bit it covers in a string of `len`
    /// bytes; `None` when it covers nothing.
    fn resolve(self, len: usize) -> Option<(u64, u64)> {
        let total = if self.bits {
            len as i64 * 8
        } else {
            len as i64
        };
        let from_end = |i: i64| if i < 0 { (total + i).max(0) } else { i };
        let start = from_end(self.start);
        let end = from_end(self.end).min(total - 1);
        if start > end {
            return None;
        }
        let (start, end) = (start as u64, end as u64);
        Some(if self.bits {
            (start, end)
        } else {
            (start * 8, end * 8 + 7)
        })
    }
}

/// The set bits of `bytes` in `range` (all of them for `None`), as `BITCOUNT`.
pub fn count(bytes: &[u8], range: Option<Range>) -> u64 {
    let (first, last) = match range {
        None if bytes.is_empty() => return 0,
        None => (0, bytes.len() as u64 * 8 - 1),
        // Redis answers 0 for two negative ends in the wrong order before
        // clamping them (clamped, they could both land on 0).
        Some(r) if r.start < 0 && r.end < 0 && r.start > r.end => return 0,
        Some(r) => match r.resolve(bytes.len()) {
            Some(bits) => bits,
            None => return 0,
        },
    };
    let (a, b) = ((first / 8) as usize, (last / 8) as usize);
    let mut n = popcount(&bytes[a..=b]);
    // Take off the bits of the edge bytes outside the range.
    n -= u64::from((bytes[a] & !(0xffu8 >> (first % 8))).count_ones());
    n -= u64::from((bytes[b] & (0x7fu8 >> (last % 8))).count_ones());
    n
}

/// The set bits in `bytes`.
fn popcount(bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    let mut n: u64 = words
        .by_ref()
        .map(|w| u64::from(u64::from_ne_bytes(w.try_into().unwrap_or_default()).count_ones()))
        .sum();
    n += words
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum::<u64>();
    n
}

/// The position of the first bit equal to `bit` in `range` of `bytes`, as
/// `BITPOS`: -1 when there is none. Looking for a clear bit with no end
/// given, the string counts as followed by clear bits, as in Redis: the
/// answer is then the first bit past the string.
pub fn position(bytes: &[u8], bit: bool, range: Option<Range>, end_given: bool) -> i64 {
    let whole = Range {
        start: 0,
        end: -1,
        bits: false,
    };
    let Some((first, last)) = range.unwrap_or(whole).resolve(bytes.len()) else {
        return -1;
    };
    let (a, b) = ((first / 8) as usize, (last / 8) as usize);
    for (i, &byte) in bytes[a..=b].iter().enumerate() {
        let index = a + i;
        // Look for set bits: invert the byte when looking for clear ones, and
        // mask off the bits outside the range.
        let mut x = if bit { byte } else { !byte };
        if index == a {
            x &= 0xff >> (first % 8);
        }
        if index == b {
            x &= !(0x7fu8 >> (last % 8));
        }
        if x != 0 {
            return (index as i64) * 8 + i64::from(x.leading_zeros());
        }
    }
    if !bit && !end_given {
        (last + 1) as i64
    } else {
        -1
    }
}

/// The width and signedness of a `BITFIELD` integer (`i1`..`i64`, `u1`..`u63`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldType {
    /// Whether the field holds a two's complement signed integer.
    pub signed: bool,
    /// Its width in bits.
    pub bits: u32,
}

impl FieldType {
    /// Parses `i<bits>` or `u<bits>`; `None` for anything else (`u64` too: an
    /// unsigned 64-bit value could not be replied as a RESP integer).
    pub fn parse(text: &[u8]) -> Option<FieldType> {
        let (&sign, digits) = text.split_first()?;
        let signed = match sign {
            b'i' => true,
            b'u' => false,
            _ => return None,
        };
        let bits: i64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        let max = if signed { 64 } else { 63 };
        (1..=max).contains(&bits).then_some(FieldType {
            signed,
            bits: bits as u32,
        })
    }

    /// All ones in the field's low bits.
    fn mask(self) -> u64 {
        u64::MAX >> (64 - self.bits)
    }
}

/// What `BITFIELD` does when a value does not fit its field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Keep the low bits (modular arithmetic).
    Wrap,
    /// Clamp to the field's minimum or maximum.
    Sat,
    /// Change nothing and reply nil.
    Fail,
}

/// Reads the field of type `ty` at bit `offset` of `bytes`; bits past the end
/// read as zero. Signed fields come back sign-extended.
pub fn read_field(bytes: &[u8], offset: u64, ty: FieldType) -> i64 {
    let first = (offset / 8) as usize;
    // A field spans at most 9 bytes: read them into one 128-bit word.
    let mut window = [0u8; 16];
    if let Some(tail) = bytes.get(first..) {
        let n = tail.len().min(9);
        window[..n].copy_from_slice(&tail[..n]);
    }
    let word = u128::from_be_bytes(window);
    let shift = 128 - (offset % 8) as u32 - ty.bits;
    let raw = (word >> shift) as u64 & ty.mask();
    if ty.signed && ty.bits < 64 && raw >> (ty.bits - 1) & 1 == 1 {
        (raw | !ty.mask()) as i64
    } else {
        raw as i64
    }
}

/// Writes the low bits of `value` into the field of type `ty` at bit
/// `offset`; `bytes` must already reach the field's last bit.
pub fn write_field(bytes: &mut [u8], offset: u64, ty: FieldType, value: i64) {
    let first = (offset / 8) as usize;
    let last = ((offset + u64::from(ty.bits) - 1) / 8) as usize;
    let span = &mut bytes[first..=last];
    let mut window = [0u8; 16];
    window[..span.len()].copy_from_slice(span);
    let shift = 128 - (offset % 8) as u32 - ty.bits;
    let mask = u128::from(ty.mask()) << shift;
    let word = (u128::from_be_bytes(window) & !mask) | ((u128::from(value as u64) << shift) & mask);
    let len = span.len();
    span.copy_from_slice(&word.to_be_bytes()[..len]);
}

/// The value to store when `value + incr` (a `SET` passes its value and 0) is
/// put in a field of type `ty`, by Redis's rules: `Ok` when it fits,
/// `Err(Some(v))` when it does not and the policy gives `v`, `Err(None)` when
/// the policy is [`Overflow::Fail`].
pub fn fit(value: i64, incr: i64, ty: FieldType, policy: Overflow) -> Result<i64, Option<i64>> {
    let (too_big, too_small, max, min) = if ty.signed {
        signed_limits(value, incr, ty)
    } else {
        unsigned_limits(value as u64, incr, ty)
    };
    if !too_big && !too_small {
        return Ok(value.wrapping_add(incr));
    }
    Err(match policy {
        Overflow::Fail => None,
        Overflow::Sat if too_big => Some(max),
        Overflow::Sat => Some(min),
        Overflow::Wrap => Some(wrap(value.wrapping_add(incr), ty)),
    })
}

/// Whether `value + incr` overflows or underflows a signed field, with its
/// maximum and minimum.
fn signed_limits(value: i64, incr: i64, ty: FieldType) -> (bool, bool, i64, i64) {
    let max = if ty.bits == 64 {
        i64::MAX
    } else {
        (1i64 << (ty.bits - 1)) - 1
    };
    let min = -max - 1;
    // As Redis computes them: in a narrow field the distances to the limits
    // cannot leave the 64-bit range for values the field holds; a 64-bit field
    // only compares them where they cannot.
    let up = max.wrapping_sub(value);
    let down = min.wrapping_sub(value);
    let narrow = ty.bits != 64;
    let too_big = value > max || (narrow && incr > up) || (value >= 0 && incr > 0 && incr > up);
    let too_small = !too_big
        && (value < min || (narrow && incr < down) || (value < 0 && incr < 0 && incr < down));
    (too_big, too_small, max, min)
}

/// Whether `value + incr` overflows or underflows an unsigned field, with its
/// maximum and minimum.
fn unsigned_limits(value: u64, incr: i64, ty: FieldType) -> (bool, bool, i64, i64) {
    let max = ty.mask();
    let up = max.wrapping_sub(value);
    let down = value.wrapping_neg() as i64;
    let too_big = value > max || (incr > 0 && incr as u64 > up);
    let too_small = !too_big && incr < 0 && incr < down;
    (too_big, too_small, max as i64, 0)
}

/// `v` cut to the field's width, sign-extended for signed fields.
fn wrap(v: i64, ty: FieldType) -> i64 {
    if ty.bits == 64 {
        return v;
    }
    let low = v as u64 & ty.mask();
    if ty.signed && low >> (ty.bits - 1) & 1 == 1 {
        (low | !ty.mask()) as i64
    } else {
        low as i64
    }
}

/// The bitwise operation of `BITOP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Bits set in every source.
    And,
    /// Bits set in any source.
    Or,
    /// Bits set in an odd number of sources.
    Xor,
    /// The one source's bits inverted.
    Not,
}

/// `op` over `sources`, shorter ones padded with zero bytes: as long as the
/// longest source.
pub fn combine(op: Op, sources: &[&[u8]]) -> Vec<u8> {
    let len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![0u8; len];
    let Some((first, rest)) = sources.split_first() else {
        return out;
    };
    out[..first.len()].copy_from_slice(first);
    match op {
        Op::Not => out.iter_mut().for_each(|b| *b = !*b),
        Op::And => {
            for s in rest {
                out[..s.len()].iter_mut().zip(*s).for_each(|(o, b)| *o &= b);
                // Missing bytes of a shorter source are zeros.
                out[s.len()..].fill(0);
            }
        }
        Op::Or => {
            for s in rest {
                out.iter_mut().zip(*s).for_each(|(o, b)| *o |= b);
            }
        }
        Op::Xor => {
            for s in rest {
                out.iter_mut().zip(*s).for_each(|(o, b)| *o ^= b);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The model: one bool per bit.
    fn model(bytes: &[u8]) -> Vec<bool> {
        (0..bytes.len() * 8)
            .map(|i| bytes[i / 8] >> (7 - i % 8) & 1 == 1)
            .collect()
    }

    /// The bit indexes a range covers, by the documented rules, on the model.
    fn model_range(len: usize, r: Range) -> Option<(usize, usize)> {
        let total = if r.bits { len * 8 } else { len } as i64;
        let norm = |i: i64| if i < 0 { (total + i).max(0) } else { i };
        let (s, e) = (norm(r.start), norm(r.end).min(total - 1));
        if s > e {
            return None;
        }
        let scale = if r.bits { 1 } else { 8 };
        Some((s as usize * scale, e as usize * scale + scale - 1))
    }

    fn range() -> impl Strategy<Value = Range> {
        (-40i64..40, -40i64..40, any::<bool>()).prop_map(|(start, end, bits)| Range {
            start,
            end,
            bits,
        })
    }

    proptest! {
        #[test]
        fn count_matches_the_model(bytes in prop::collection::vec(any::<u8>(), 0..40), r in prop::option::of(range())) {
            let bits = model(&bytes);
            let expected = match r {
                None => bits.iter().filter(|b| **b).count(),
                Some(r) if r.start < 0 && r.end < 0 && r.start > r.end => 0,
                Some(r) => match model_range(bytes.len(), r) {
                    Some((s, e)) => bits[s..=e].iter().filter(|b| **b).count(),
                    None => 0,
                },
            };
            prop_assert_eq!(count(&bytes, r), expected as u64);
        }

        #[test]
        fn position_matches_the_model(bytes in prop::collection::vec(any::<u8>(), 0..24), bit: bool, r in prop::option::of(range()), end_given: bool) {
            let bits = model(&bytes);
            let span = match r {
                None if bytes.is_empty() => None,
                None => Some((0, bits.len() - 1)),
                Some(r) => model_range(bytes.len(), r),
            };
            let expected = match span {
                None => -1,
                Some((s, e)) => match (s..=e).find(|&i| bits[i] == bit) {
                    Some(i) => i as i64,
                    None if !bit && !end_given => e as i64 + 1,
                    None => -1,
                },
            };
            prop_assert_eq!(position(&bytes, bit, r, end_given), expected);
        }

        #[test]
        fn fields_read_and_write_only_their_bits(bytes in prop::collection::vec(any::<u8>(), 17..24), offset in 0u64..64, signed: bool, width in 1u32..=64, value: i64) {
            let ty = FieldType { signed, bits: if signed { width } else { width.min(63) } };
            let mut after = bytes.clone();
            write_field(&mut after, offset, ty, value);
            let (before_bits, after_bits) = (model(&bytes), model(&after));
            let field = offset as usize..offset as usize + ty.bits as usize;
            for i in 0..before_bits.len() {
                if !field.contains(&i) {
                    prop_assert_eq!(before_bits[i], after_bits[i], "bit {} outside the field changed", i);
                }
            }
            // The field holds the value's low bits, most significant first.
            let low: Vec<bool> = (0..ty.bits).rev().map(|k| (value as u64) >> k & 1 == 1).collect();
            prop_assert_eq!(&after_bits[field], &low[..]);
            prop_assert_eq!(read_field(&after, offset, ty), wrap(value, ty));
        }

        #[test]
        fn fit_agrees_with_wide_arithmetic(value: i64, incr in prop_oneof![any::<i64>(), -300i64..300], signed: bool, width in 1u32..=64) {
            let ty = FieldType { signed, bits: if signed { width } else { width.min(63) } };
            // Only values a field of this type can hold; SET's arbitrary values are
            // checked against Redis side by side (tests/tests/bitmaps.rs).
            let value = wrap(value, ty);
            let exact = i128::from(value) + i128::from(incr);
            let (min, max) = if signed {
                (-(1i128 << (ty.bits - 1)), (1i128 << (ty.bits - 1)) - 1)
            } else {
                (0, (1i128 << ty.bits) - 1)
            };
            let wrapped = if signed { wrap(exact as i64, ty) } else { (exact.rem_euclid(1i128 << ty.bits)) as i64 };
            if (min..=max).contains(&exact) {
                prop_assert_eq!(fit(value, incr, ty, Overflow::Wrap), Ok(exact as i64));
            } else {
                prop_assert_eq!(fit(value, incr, ty, Overflow::Wrap), Err(Some(wrapped)));
                let clamp = if exact > max { max } else { min } as i64;
                prop_assert_eq!(fit(value, incr, ty, Overflow::Sat), Err(Some(clamp)));
                prop_assert_eq!(fit(value, incr, ty, Overflow::Fail), Err(None));
            }
        }

        #[test]
        fn combine_matches_the_model(sources in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 1..5), op in prop_oneof![Just(Op::And), Just(Op::Or), Just(Op::Xor), Just(Op::Not)]) {
            let sources = if op == Op::Not { sources[..1].to_vec() } else { sources };
            let refs: Vec<&[u8]> = sources.iter().map(Vec::as_slice).collect();
            let len = sources.iter().map(Vec::len).max().unwrap_or(0);
            let out = combine(op, &refs);
            prop_assert_eq!(out.len(), len);
            for i in 0..len * 8 {
                let bit = |s: &Vec<u8>| s.get(i / 8).is_some_and(|b| b >> (7 - i % 8) & 1 == 1);
                let expected = match op {
                    Op::And => sources.iter().all(bit),
                    Op::Or => sources.iter().any(bit),
                    Op::Xor => sources.iter().filter(|s| bit(s)).count() % 2 == 1,
                    Op::Not => !bit(&sources[0]),
                };
                prop_assert_eq!(out[i / 8] >> (7 - i % 8) & 1 == 1, expected);
            }
        }
    }

    #[test]
    fn field_types_parse_as_redis_allows() {
        assert_eq!(
            FieldType::parse(b"i64"),
            Some(FieldType {
                signed: true,
                bits: 64
            })
        );
        assert_eq!(
            FieldType::parse(b"u63"),
            Some(FieldType {
                signed: false,
                bits: 63
            })
        );
        for bad in [&b"u64"[..], b"i65", b"i0", b"u", b"x8", b"", b"i-1", b"I8"] {
            assert_eq!(FieldType::parse(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn reads_past_the_end_are_zeros() {
        let ty = FieldType {
            signed: false,
            bits: 16,
        };
        assert_eq!(read_field(b"\xff", 4, ty), 0xf000);
        assert_eq!(read_field(b"", 1000, ty), 0);
    }
}
