//! HyperLogLog values in Redis's own bytes, so that `GET`, `SET` and the
//! replication of a HyperLogLog interoperate with Redis 7: a 16-byte header
//! (`HYLL`, the encoding, three reserved bytes, the cached cardinality), then
//! 16384 six-bit registers, sparse or dense.
//!
//! ```text
//! header  "HYLL" | encoding (0 dense, 1 sparse) | 3 reserved | cached count (u64 LE,
//!         top bit set: stale)
//! dense   12288 bytes: register i in bits 6i..6i+6, least significant first
//! sparse  run-length opcodes: 00xxxxxx ZERO (1..64 zero registers)
//!                             01xxxxxx xxxxxxxx XZERO (1..16384 zero registers)
//!                             1vvvvvxx VAL (1..4 registers of value 1..32)
//! ```
//!
//! An element hashes (MurmurHash64A, Redis's seed) to a register, the low 14
//! bits, and a count, one plus the trailing zeros of the other 50: the
//! register keeps the largest count seen. A sparse value becomes dense once a
//! count passes 32 or its size would pass `hll-sparse-max-bytes`, edited as
//! Redis edits it so the bytes stay the same. The count is Ertl's improved
//! estimator ("New cardinality estimation algorithms for HyperLogLog
//! sketches", 2017), which Redis uses since 5.0.
//!
//! Any string may claim to be a HyperLogLog (`SET` takes Redis's bytes): only
//! the header is checked up front, as Redis does, and every reader treats
//! the rest as untrusted, answering [`HllError::Corrupted`] where Redis does
//! and never reading past the value. Counting, merging and converting want
//! opcodes covering exactly 16384 registers, as Redis 7.0.15 with the fix
//! for CVE-2025-32023 does (older builds let a merge stop at a VAL run past
//! the end).

/// Registers in every HyperLogLog (Redis's `HLL_P` = 14).
pub const REGISTERS: usize = 1 << P;
/// Bytes of the header.
pub const HEADER_LEN: usize = 16;
/// Bytes of a dense HyperLogLog: the header and 16384 six-bit registers.
pub const DENSE_LEN: usize = HEADER_LEN + REGISTERS * BITS / 8;

const P: u32 = 14;
/// Hash bits left for the count after the register index.
const Q: usize = 64 - P as usize;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
const MAGIC: &[u8; 4] = b"HYLL";
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
/// The header byte whose top bit marks the cached count stale.
const CACHE_FLAG_BYTE: usize = 15;
const SEED: u64 = 0xadc8_3b19;
/// Largest value a sparse VAL opcode holds.
const SPARSE_VAL_MAX: u8 = 32;
/// Longest run of a VAL opcode.
const SPARSE_VAL_MAX_LEN: usize = 4;
/// Longest run of a ZERO opcode.
const SPARSE_ZERO_MAX_LEN: usize = 64;
/// `0.5 / ln 2`, the estimator's constant for an infinite number of registers.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// Why a string is not a usable HyperLogLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HllError {
    /// Not a HyperLogLog: too short, no `HYLL` magic, an unknown encoding, or
    /// a dense one of the wrong length.
    #[error("WRONGTYPE Key is not a valid HyperLogLog string value.")]
    NotHll,
    /// The header is right but the registers do not add up (a sparse
    /// encoding that does not cover exactly 16384 registers).
    #[error("INVALIDOBJ Corrupted HLL object detected")]
    Corrupted,
}

impl HllError {
    /// The error code: the first word of the reply text.
    pub fn code(self) -> &'static str {
        match self {
            HllError::NotHll => "WRONGTYPE",
            HllError::Corrupted => "INVALIDOBJ",
        }
    }
}

/// How the registers are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 12288 bytes of packed six-bit registers.
    Dense,
    /// Run-length opcodes.
    Sparse,
}

impl Encoding {
    /// The name `PFDEBUG ENCODING` answers.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Dense => "dense",
            Encoding::Sparse => "sparse",
        }
    }
}

/// Checks `value`'s header as Redis does before any HyperLogLog command: the
/// magic, a known encoding, and the exact length of a dense one.
pub fn encoding(value: &[u8]) -> Result<Encoding, HllError> {
    if value.len() < HEADER_LEN || !value.starts_with(MAGIC) {
        return Err(HllError::NotHll);
    }
    match value[4] {
        DENSE if value.len() == DENSE_LEN => Ok(Encoding::Dense),
        SPARSE => Ok(Encoding::Sparse),
        _ => Err(HllError::NotHll),
    }
}

/// A new, empty HyperLogLog: sparse, every register in one XZERO opcode,
/// its cached count a valid 0.
pub fn empty() -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER_LEN + 2);
    value.extend_from_slice(MAGIC);
    value.push(SPARSE);
    value.extend_from_slice(&[0; HEADER_LEN - 5]);
    push_zeros(&mut value, REGISTERS);
    value
}

/// Redis's MurmurHash64A: 64-bit MurmurHash2, reading words little-endian
/// on any machine.
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        let mut k = u64::from_le_bytes(word.try_into().expect("8-byte chunk"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register `element` falls in and its count there: one plus the
/// trailing zeros of the hash bits above the register index (1 to 51).
pub fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    // The bit above the 50 used stops the count at 51.
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Adds `element` to a HyperLogLog that passed [`encoding`]: true if a
/// register grew. A sparse one may become dense (see the module doc).
/// Corrupted, before any change, if the opcodes stop short of the
/// element's register or a needed conversion finds them corrupted.
pub fn add(value: &mut Vec<u8>, element: &[u8], sparse_max: usize) -> Result<bool, HllError> {
    let (index, count) = pattern(element);
    set(value, index, count, sparse_max)
}

/// Raises register `index` to `count` if it is lower, in whichever
/// encoding `value` has now: true if it changed.
fn set(value: &mut Vec<u8>, index: usize, count: u8, sparse_max: usize) -> Result<bool, HllError> {
    match value[4] {
        SPARSE => sparse_set(value, index, count, sparse_max),
        _ => Ok(dense_set(&mut value[HEADER_LEN..], index, count)),
    }
}

/// The cached count, unless it is marked stale.
pub fn cached_count(value: &[u8]) -> Option<u64> {
    let card: [u8; 8] = value.get(8..HEADER_LEN)?.try_into().ok()?;
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// Caches `count` in the header, marked valid.
pub fn store_count(value: &mut [u8], count: u64) {
    value[8..HEADER_LEN].copy_from_slice(&count.to_le_bytes());
}

/// Marks the cached count stale, leaving its other bits as they were (as
/// Redis does: they show in `GET`).
pub fn invalidate_count(value: &mut [u8]) {
    value[CACHE_FLAG_BYTE] |= 0x80;
}

/// Estimates the cardinality of a HyperLogLog that passed [`encoding`]
/// (ignoring the cached count).
pub fn count(value: &[u8]) -> Result<u64, HllError> {
    let mut histogram = [0u64; 64];
    let registers = &value[HEADER_LEN..];
    match value[4] {
        SPARSE => {
            let mut covered = 0;
            for op in ops(registers) {
                match op {
                    Op::Zeros(len) => histogram[0] += len as u64,
                    Op::Val { value, len } => histogram[usize::from(value)] += len as u64,
                }
                covered += op.len();
            }
            if covered != REGISTERS {
                return Err(HllError::Corrupted);
            }
        }
        _ => {
            for register in dense_values(registers) {
                histogram[usize::from(register)] += 1;
            }
        }
    }
    Ok(estimate(&histogram))
}

/// Converts a sparse HyperLogLog to dense, keeping its header (the cached
/// count included): true if it was sparse. Corrupted if the opcodes do not
/// cover exactly 16384 registers, `value` then unchanged.
pub fn to_dense(value: &mut Vec<u8>) -> Result<bool, HllError> {
    if value[4] != SPARSE {
        return Ok(false);
    }
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..HEADER_LEN].copy_from_slice(&value[..HEADER_LEN]);
    dense[4] = DENSE;
    let mut index = 0;
    for op in ops(&value[HEADER_LEN..]) {
        let run = index..index + op.len();
        if run.end > REGISTERS {
            return Err(HllError::Corrupted);
        }
        if let Op::Val { value, .. } = op {
            for i in run.clone() {
                dense_write(&mut dense[HEADER_LEN..], i, value);
            }
        }
        index = run.end;
    }
    if index != REGISTERS {
        return Err(HllError::Corrupted);
    }
    *value = dense;
    Ok(true)
}

/// The registers of a dense HyperLogLog, in order.
pub fn dense_registers(value: &[u8]) -> impl Iterator<Item = u8> + '_ {
    dense_values(&value[HEADER_LEN..])
}

/// A sparse HyperLogLog's opcodes as `PFDEBUG DECODE` shows them
/// (`Z:16384`, `z:3`, `v:2,1`, space separated); `None` for a dense one.
pub fn decode(value: &[u8]) -> Option<String> {
    if value[4] != SPARSE {
        return None;
    }
    let mut text = String::new();
    let mut at = HEADER_LEN;
    while at < value.len() {
        let (op, op_len) = op_at(value, at);
        if !text.is_empty() {
            text.push(' ');
        }
        match op {
            Op::Zeros(run) if op_len == 2 => text.push_str(&format!("Z:{run}")),
            Op::Zeros(run) => text.push_str(&format!("z:{run}")),
            Op::Val { value, len } => text.push_str(&format!("v:{value},{len}")),
        }
        at += op_len;
    }
    Some(text)
}

/// 16384 registers as plain bytes: the union that `PFCOUNT` of several keys
/// and `PFMERGE` build.
#[derive(Debug, Clone)]
pub struct Registers {
    max: Box<[u8]>,
    /// A dense HyperLogLog was merged: the union is stored dense.
    dense: bool,
}

impl Default for Registers {
    fn default() -> Self {
        Registers {
            max: vec![0; REGISTERS].into_boxed_slice(),
            dense: false,
        }
    }
}

impl Registers {
    /// Raises each register to its value in `value`, a HyperLogLog that
    /// passed [`encoding`]. Corrupted if `value`'s opcodes do not cover
    /// exactly 16384 registers.
    pub fn merge(&mut self, value: &[u8]) -> Result<(), HllError> {
        let registers = &value[HEADER_LEN..];
        if value[4] != SPARSE {
            self.dense = true;
            for (max, register) in self.max.iter_mut().zip(dense_values(registers)) {
                *max = (*max).max(register);
            }
            return Ok(());
        }
        let mut index = 0;
        for op in ops(registers) {
            let run = index..index + op.len();
            let Some(maxes) = self.max.get_mut(run.clone()) else {
                return Err(HllError::Corrupted);
            };
            if let Op::Val { value, .. } = op {
                for max in maxes {
                    *max = (*max).max(value);
                }
            }
            index = run.end;
        }
        match index == REGISTERS {
            true => Ok(()),
            false => Err(HllError::Corrupted),
        }
    }

    /// The estimated cardinality of the union.
    pub fn count(&self) -> u64 {
        let mut histogram = [0u64; 64];
        for &register in self.max.iter() {
            histogram[usize::from(register & REGISTER_MAX)] += 1;
        }
        estimate(&histogram)
    }

    /// `PFMERGE`'s write: raises `value`'s registers to these, where `value`
    /// is a HyperLogLog that passed [`encoding`] and, if it existed, was
    /// merged first (so its opcodes are known to cover every register).
    /// Converted to dense first if a dense one was merged, then raised one
    /// register after another as Redis does, so a sparse target comes out
    /// byte for byte the same; its cached count ends stale.
    pub fn store(&self, value: &mut Vec<u8>, sparse_max: usize) -> Result<(), HllError> {
        if self.dense {
            to_dense(value)?;
        }
        for (index, &register) in self.max.iter().enumerate() {
            if register != 0 {
                set(value, index, register, sparse_max)?;
            }
        }
        invalidate_count(value);
        Ok(())
    }
}

/// The estimate from the histogram of register values (Ertl's, as Redis 5+).
fn estimate(histogram: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histogram[Q + 1] as f64) / m);
    for &n in histogram[1..=Q].iter().rev() {
        z += n as f64;
        z *= 0.5;
    }
    z += m * sigma(histogram[0] as f64 / m);
    // All registers zero: z is infinite and the estimate 0.
    (ALPHA_INF * m * m / z).round() as u64
}

/// Ertl's σ, summed until it stops changing.
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

/// Ertl's τ, summed until it stops changing.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

/// Every register of packed dense registers, in order: four in each three
/// bytes.
fn dense_values(registers: &[u8]) -> impl Iterator<Item = u8> + '_ {
    registers.chunks_exact(3).flat_map(|b| {
        [
            b[0] & REGISTER_MAX,
            (b[0] >> 6 | b[1] << 2) & REGISTER_MAX,
            (b[1] >> 4 | b[2] << 4) & REGISTER_MAX,
            b[2] >> 2,
        ]
    })
}

/// Redis's `PFSELFTEST`: random values written to every dense register read
/// back unchanged, and 1 to 10,000,000 distinct elements counted by a dense
/// and a sparse HyperLogLog (sparse while under `sparse_max`) agree and stay
/// within six standard errors at every power of ten. `seed` picks the values
/// and elements. Returns what failed, as Redis words it.
pub fn self_test(sparse_max: usize, seed: u64) -> Result<(), String> {
    let mut state = seed | 1;
    let mut random = move || {
        // xorshift64*: any spread of register values does.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut registers = vec![0u8; REGISTERS * BITS / 8];
    let mut expected = vec![0u8; REGISTERS];
    for _ in 0..1000 {
        for (i, want) in expected.iter_mut().enumerate() {
            *want = (random() as u8) & REGISTER_MAX;
            dense_write(&mut registers, i, *want);
        }
        for (i, &want) in expected.iter().enumerate() {
            let got = dense_get(&registers, i);
            if got != want {
                return Err(format!("Register {i} should be {want} but is {got}"));
            }
        }
    }
    let mut dense = empty();
    to_dense(&mut dense).map_err(|e| e.to_string())?;
    let mut sparse = empty();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let salt = random();
    let mut checkpoint = 1u64;
    for j in 1..=10_000_000u64 {
        let element = (j ^ salt).to_le_bytes();
        for value in [&mut dense, &mut sparse] {
            add(value, &element, sparse_max).map_err(|e| e.to_string())?;
        }
        if j != checkpoint {
            continue;
        }
        if j < sparse_max as u64 / 2 && encoding(&sparse) != Ok(Encoding::Sparse) {
            return Err("sparse encoding not used".into());
        }
        let estimate = count(&dense).map_err(|e| e.to_string())?;
        if count(&sparse).map_err(|e| e.to_string())? != estimate {
            return Err("dense/sparse disagree".into());
        }
        let error = checkpoint.abs_diff(estimate);
        let allowed = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if error > allowed {
            return Err(format!("Too big error. card:{checkpoint} abserr:{error}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}

/// Register `index` of packed dense registers; a register in the last byte
/// reads no further.
fn dense_get(registers: &[u8], index: usize) -> u8 {
    let byte = index * BITS / 8;
    let shift = index * BITS % 8;
    let low = u16::from(registers[byte]);
    let high = u16::from(registers.get(byte + 1).copied().unwrap_or(0));
    (((low | high << 8) >> shift) as u8) & REGISTER_MAX
}

/// Writes `value` into register `index` of packed dense registers.
fn dense_write(registers: &mut [u8], index: usize, value: u8) {
    let byte = index * BITS / 8;
    let shift = index * BITS % 8;
    let value = u16::from(value & REGISTER_MAX) << shift;
    let mask = u16::from(REGISTER_MAX) << shift;
    registers[byte] = (registers[byte] & !(mask as u8)) | value as u8;
    // A register starting in the top two bits of a byte spills into the next.
    if shift > 8 - BITS {
        let next = &mut registers[byte + 1];
        *next = (*next & !((mask >> 8) as u8)) | (value >> 8) as u8;
    }
}

/// Raises dense register `index` to `count`: true if it grew.
fn dense_set(registers: &mut [u8], index: usize, count: u8) -> bool {
    if count > dense_get(registers, index) {
        dense_write(registers, index, count);
        true
    } else {
        false
    }
}

/// A sparse opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// A run of zero registers (ZERO or XZERO).
    Zeros(usize),
    /// A run of `len` registers holding `value`.
    Val { value: u8, len: usize },
}

impl Op {
    /// Registers the opcode covers.
    fn len(self) -> usize {
        match self {
            Op::Zeros(len) | Op::Val { len, .. } => len,
        }
    }
}

/// The opcode at `at` (within `bytes`) and its length in bytes. An XZERO
/// cut off by the end reads its missing byte as 0, as Redis reads the
/// terminator its strings carry.
fn op_at(bytes: &[u8], at: usize) -> (Op, usize) {
    let b = bytes[at];
    match b & 0xc0 {
        0x00 => (Op::Zeros(usize::from(b & 0x3f) + 1), 1),
        0x40 => {
            let low = bytes.get(at + 1).copied().unwrap_or(0);
            let run = (usize::from(b & 0x3f) << 8 | usize::from(low)) + 1;
            (Op::Zeros(run), 2)
        }
        _ => {
            let (value, len) = val_fields(b);
            (Op::Val { value, len }, 1)
        }
    }
}

/// The opcodes of sparse registers, in order.
fn ops(registers: &[u8]) -> impl Iterator<Item = Op> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        (at < registers.len()).then(|| {
            let (op, len) = op_at(registers, at);
            at += len;
            op
        })
    })
}

/// The value and run length of a VAL opcode.
fn val_fields(op: u8) -> (u8, usize) {
    ((op >> 2 & 0x1f) + 1, usize::from(op & 3) + 1)
}

/// The VAL opcode for `len` registers holding `value`.
fn val_op(value: u8, len: usize) -> u8 {
    0x80 | (value - 1) << 2 | (len - 1) as u8
}

/// Appends the opcode for `len` zero registers: ZERO up to 64, else XZERO.
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > SPARSE_ZERO_MAX_LEN {
        let run = len - 1;
        out.extend_from_slice(&[0x40 | (run >> 8) as u8, run as u8]);
    } else {
        out.push((len - 1) as u8);
    }
}

/// Redis's `hllSparseSet`: raises register `index` to `count` in place,
/// splitting the opcode that covers it, then merging equal neighbours; or
/// converts to dense first when `count` does not fit a VAL opcode or the
/// value would grow past `sparse_max` bytes.
fn sparse_set(
    value: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max: usize,
) -> Result<bool, HllError> {
    if count > SPARSE_VAL_MAX {
        return promote(value, index, count);
    }
    // Find the opcode covering the register, and the one before it.
    let end = value.len();
    let (mut at, mut first, mut previous) = (HEADER_LEN, 0, None);
    let (op, op_len) = loop {
        if at >= end {
            // The opcodes stop short of the register.
            return Err(HllError::Corrupted);
        }
        let (op, op_len) = op_at(value, at);
        if index < first + op.len() {
            break (op, op_len);
        }
        previous = Some(at);
        at += op_len;
        first += op.len();
    };
    let last = first + op.len() - 1;
    // What replaces the opcode: at most XZERO, VAL, XZERO.
    let mut run = Vec::with_capacity(5);
    match op {
        Op::Val { value: old, .. } if old >= count => return Ok(false),
        // The register alone: rewritten in place.
        Op::Val { len: 1, .. } | Op::Zeros(1) if op_len == 1 => {
            value[at] = val_op(count, 1);
            merge_neighbours(value, previous.unwrap_or(HEADER_LEN));
            return Ok(true);
        }
        Op::Val { value: old, .. } => {
            if index != first {
                run.push(val_op(old, index - first));
            }
            run.push(val_op(count, 1));
            if index != last {
                run.push(val_op(old, last - index));
            }
        }
        Op::Zeros(_) => {
            if index != first {
                push_zeros(&mut run, index - first);
            }
            run.push(val_op(count, 1));
            if index != last {
                push_zeros(&mut run, last - index);
            }
        }
    }
    let new_len = end + run.len() - op_len;
    if new_len > end && new_len > sparse_max {
        return promote(value, index, count);
    }
    // An XZERO cut off by the end overhangs it by one byte: Redis's length
    // arithmetic drops the last byte of its replacement, and so does this.
    let tail = (at + op_len).min(end);
    value.splice(at..tail, run);
    value.truncate(new_len);
    merge_neighbours(value, previous.unwrap_or(HEADER_LEN));
    Ok(true)
}

/// Converts to dense, then raises the register there (it grows: a sparse
/// register never holds a value this needs to promote for).
fn promote(value: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    to_dense(value)?;
    Ok(dense_set(&mut value[HEADER_LEN..], index, count))
}

/// Merges adjacent VAL opcodes of equal value whose runs fit one opcode,
/// looking at up to five opcodes from `from`, as Redis does after a change.
fn merge_neighbours(value: &mut Vec<u8>, from: usize) {
    let mut at = from;
    let mut steps = 5;
    while at < value.len() && steps > 0 {
        steps -= 1;
        let (op, op_len) = op_at(value, at);
        let Op::Val { value: v1, len: l1 } = op else {
            at += op_len;
            continue;
        };
        if let Some(&next) = value.get(at + 1) {
            let (v2, l2) = val_fields(next);
            if next & 0x80 != 0 && v1 == v2 && l1 + l2 <= SPARSE_VAL_MAX_LEN {
                value[at + 1] = val_op(v1, l1 + l2);
                value.remove(at);
                // Try the merged opcode with the one after it.
                continue;
            }
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    //! Expected bytes and counts were captured from Redis 7.0.15 running the
    //! same commands (`GET` of the key, `PFCOUNT`); large values by SHA-256.

    use sha2::{Digest, Sha256};

    use super::*;

    const MAX: usize = 3000;

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn sha256(bytes: &[u8]) -> String {
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `PFADD` of `elements` to `value` (a new HyperLogLog if `None`), as the
    /// command does it: the count goes stale if anything changed.
    fn pfadd<'e>(
        value: Option<Vec<u8>>,
        elements: impl IntoIterator<Item = &'e [u8]>,
        sparse_max: usize,
    ) -> Vec<u8> {
        let (mut value, mut updated) = match value {
            Some(value) => (value, false),
            None => (empty(), true),
        };
        for element in elements {
            updated |= add(&mut value, element, sparse_max).unwrap();
        }
        if updated {
            invalidate_count(&mut value);
        }
        value
    }

    fn named(prefix: &str, range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
        range.map(|i| format!("{prefix}{i}").into_bytes()).collect()
    }

    fn pfadd_named(value: Option<Vec<u8>>, names: &[Vec<u8>]) -> Vec<u8> {
        pfadd(value, names.iter().map(Vec::as_slice), MAX)
    }

    /// `PFMERGE` of `sources` into `target` (absent: `None`), as the command.
    fn pfmerge(target: Option<Vec<u8>>, sources: &[&[u8]]) -> Vec<u8> {
        let mut union = Registers::default();
        for source in target
            .iter()
            .map(Vec::as_slice)
            .chain(sources.iter().copied())
        {
            union.merge(source).unwrap();
        }
        let mut target = target.unwrap_or_else(empty);
        union.store(&mut target, MAX).unwrap();
        target
    }

    #[test]
    fn new_and_small_hyperloglogs_are_redis_bytes() {
        let new = pfadd(None, [], MAX);
        assert_eq!(new, unhex("48594c4c0100000000000000000000807fff"));
        assert_eq!(encoding(&new), Ok(Encoding::Sparse));
        assert_eq!(count(&new), Ok(0));
        let mut abc = pfadd(None, [&b"a"[..], b"b", b"c"], MAX);
        assert_eq!(
            abc,
            unhex("48594c4c01000000000000000000008060f38050b1844bfb80425a")
        );
        assert_eq!(cached_count(&abc), None);
        assert_eq!(count(&abc), Ok(3));
        store_count(&mut abc, 3);
        assert_eq!(
            abc,
            unhex("48594c4c01000000030000000000000060f38050b1844bfb80425a")
        );
        assert_eq!(cached_count(&abc), Some(3));
        assert_eq!(
            decode(&abc).unwrap(),
            "Z:8436 v:1,1 Z:4274 v:2,1 Z:3068 v:1,1 Z:603"
        );
        let twenty = pfadd_named(None, &named("e", 0..20));
        assert_eq!(
            twenty,
            unhex(
                "48594c4c0100000000000000000000804235884\
                 2ee8044528042da844bd08c406f8043868042ac8041648441b884453d90435884430d8441038446d1\
                 8047e684408880406a8440488013804152"
            )
        );
        assert_eq!(count(&twenty), Ok(20));
    }

    #[test]
    fn one_element_at_a_time_gives_redis_bytes() {
        let mut value = None;
        for name in named("s", 0..200) {
            value = Some(pfadd(value, [name.as_slice()], MAX));
        }
        let value = value.unwrap();
        assert_eq!(value.len(), 506);
        assert_eq!(
            sha256(&value),
            "6bef286047446b97c0018ea80a70851728e89d113e8fe235df554a63ec7426fc"
        );
        assert_eq!(count(&value), Ok(201));
    }

    #[test]
    fn sparse_becomes_dense_where_redis_promotes_it_for_size() {
        let names = named("g", 0..1701);
        let mut value = None;
        for name in &names[..1700] {
            value = Some(pfadd(value, [name.as_slice()], MAX));
        }
        let sparse = value.unwrap();
        assert_eq!(encoding(&sparse), Ok(Encoding::Sparse));
        assert_eq!(sparse.len(), 2999);
        assert_eq!(
            sha256(&sparse),
            "d5fee59d9871fdd0b6e29d1122adfee205c445ca45f4c9a8af977c063368031f"
        );
        let dense = pfadd(Some(sparse), [names[1700].as_slice()], MAX);
        assert_eq!(encoding(&dense), Ok(Encoding::Dense));
        assert_eq!(
            sha256(&dense),
            "6eda57dd68294b5c9009348c9c1c1c39696d4472c5bbb13ef9e4ba8e9e83a087"
        );
        assert_eq!(count(&dense), Ok(1688));
    }

    #[test]
    fn a_lower_sparse_limit_promotes_sooner() {
        let names = named("q", 0..15);
        let mut value = None;
        for name in &names[..14] {
            value = Some(pfadd(value, [name.as_slice()], 60));
        }
        let sparse = value.unwrap();
        assert_eq!(
            sparse,
            unhex(
                "48594c4c0100000000000000000000804df78040ef8841688443158440dc8041d18040e4804\
                 45c80423a84413a844a9980424f8047008848828044b5"
            )
        );
        let dense = pfadd(Some(sparse), [names[14].as_slice()], 60);
        assert_eq!(
            sha256(&dense),
            "c9021bc97f9d5257ff343d9932399cd006f2700aebb68e28ff413f4970584259"
        );
    }

    #[test]
    fn a_count_over_32_promotes_at_once() {
        // An element Redis counts 33 (found by search), in register 2711.
        assert_eq!(pattern(b"big6209776902"), (2711, 33));
        let value = pfadd(None, [&b"a"[..], b"b", b"c", b"big6209776902"], MAX);
        assert_eq!(encoding(&value), Ok(Encoding::Dense));
        assert_eq!(
            sha256(&value),
            "e5a02b15e3d8e2fa4c4bc2d15284c38d841a1fd4dd95043c2e1e24d1aa39f2c7"
        );
        assert_eq!(count(&value), Ok(4));
    }

    #[test]
    fn merges_of_sparse_and_dense_are_redis_bytes() {
        let m1 = pfadd_named(None, &named("x", 0..30));
        let m2 = pfadd_named(None, &named("y", 0..30));
        let sparse = pfmerge(None, &[&m1, &m2]);
        assert_eq!(
            sparse,
            unhex(
                "48594c4c010000000000000000000080436a80069440928841e7802684405d80416d8441a2\
                 9040a8801a8440618041d48441ba844295b4308811901a80308840dd8040ee8441b0801\
                 08c41488040ec80328042ea801184407480417584405984412f8c40c88442628c41888841\
                 bd8040a988407f80248042628442a998417f8c41e580432788409d8841698024842d88425a\
                 84406f9840e18041228c41088442fe80410f802b8440d4a4407480338040458809884061"
            )
        );
        assert_eq!(count(&sparse), Ok(60));
        let mut union = Registers::default();
        union.merge(&m1).unwrap();
        union.merge(&m2).unwrap();
        assert_eq!(union.count(), 60);

        let mut d1 = pfadd_named(None, &named("z", 0..5000));
        assert_eq!(encoding(&d1), Ok(Encoding::Dense));
        assert_eq!(count(&d1), Ok(4978));
        // As PFCOUNT leaves it, its count cached.
        store_count(&mut d1, 4978);
        assert_eq!(
            sha256(&d1),
            "175cf37583bfb62c9fa9c32047830599e1a13c87c23c6e39f1b2e027e6b2bb51"
        );
        let dense = pfmerge(None, &[&m1, &d1]);
        assert_eq!(
            sha256(&dense),
            "9511bd915c4b264195cf975f676d7387da634e7152bf7cc3e4bf80e048f7c19c"
        );
        assert_eq!(count(&dense), Ok(5005));
        let mut union = Registers::default();
        union.merge(&m1).unwrap();
        union.merge(&d1).unwrap();
        assert_eq!(union.count(), 5005);
        // A sparse target turns dense, keeping its header.
        let target = pfadd_named(None, &named("w", 0..10));
        let merged = pfmerge(Some(target), &[&d1]);
        assert_eq!(
            sha256(&merged),
            "8e8b8fa986fd76087425a4cc32bce308f520c25a62e599b58d0b0512f147e109"
        );
    }

    #[test]
    fn counts_match_redis_from_one_to_a_million() {
        let redis = [
            (1, 1),
            (10, 10),
            (100, 100),
            (1000, 999),
            (10_000, 10_092),
            (100_000, 101_048),
            (1_000_000, 996_754),
        ];
        let mut value = empty();
        let mut added = 0;
        for (n, expected) in redis {
            for i in added..n {
                add(&mut value, format!("c{i}").as_bytes(), MAX).unwrap();
            }
            added = n;
            assert_eq!(count(&value), Ok(expected), "{n} elements");
        }
        store_count(&mut value, 996_754);
        assert_eq!(
            sha256(&value),
            "18ea18825408a5ca1b2018fb4101125071b002e4ae908843c7689483f58c3945"
        );
    }

    /// A fast deterministic generator (SplitMix64): distinct states give
    /// distinct outputs, so a run of it is a set.
    struct SplitMix(u64);

    impl SplitMix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn estimates_stay_within_three_standard_errors_from_ten_to_ten_million() {
        let sizes = [
            10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000, 300_000, 1_000_000, 3_000_000,
            10_000_000,
        ];
        // Redis's standard error: 1.04 / sqrt(16384), about 0.81%.
        let error = 1.04 / (REGISTERS as f64).sqrt();
        // Many sets up to 100,000 elements, a few up to ten million.
        for seed in 0..24u64 {
            let largest = if seed < 3 { 10_000_000 } else { 100_000 };
            let mut rng = SplitMix(seed << 32);
            // One starts sparse (and turns dense on the way), one dense, to
            // compare the two encodings while the first is sparse.
            let mut value = empty();
            let mut dense = empty();
            to_dense(&mut dense).unwrap();
            let mut added = 0;
            for &n in sizes.iter().filter(|&&n| n <= largest) {
                let compare = encoding(&value) == Ok(Encoding::Sparse);
                for _ in added..n {
                    let element = rng.next().to_le_bytes();
                    add(&mut value, &element, MAX).unwrap();
                    if compare {
                        add(&mut dense, &element, MAX).unwrap();
                    }
                }
                added = n;
                let estimate = count(&value).unwrap();
                if compare {
                    assert_eq!(count(&dense), Ok(estimate), "seed {seed}, {n} elements");
                }
                let allowed = (3.0 * error * n as f64).ceil();
                let off = (estimate as f64 - n as f64).abs();
                assert!(
                    off <= allowed,
                    "seed {seed}: {estimate} for {n} elements, more than {allowed} off"
                );
            }
        }
    }

    #[test]
    fn the_self_test_passes() {
        assert_eq!(self_test(3000, 7), Ok(()));
    }

    #[test]
    fn dense_registers_hold_six_bits_each_without_touching_neighbours() {
        let mut rng = SplitMix(1);
        let mut value = empty();
        to_dense(&mut value).unwrap();
        let expected: Vec<u8> = (0..REGISTERS).map(|_| rng.next() as u8 & 63).collect();
        for (index, &register) in expected.iter().enumerate() {
            dense_write(&mut value[HEADER_LEN..], index, register);
        }
        assert!(dense_registers(&value).eq(expected.iter().copied()));
        for (index, &register) in expected.iter().enumerate() {
            assert_eq!(dense_get(&value[HEADER_LEN..], index), register);
        }
        assert_eq!(value.len(), DENSE_LEN);
    }

    #[test]
    fn headers_that_are_not_hyperloglogs_are_refused() {
        let mut dense = empty();
        to_dense(&mut dense).unwrap();
        assert_eq!(encoding(&dense), Ok(Encoding::Dense));
        let mut bad_magic = empty();
        bad_magic[0] = b'h';
        let mut bad_encoding = empty();
        bad_encoding[4] = 2;
        for value in [
            &b""[..],
            b"HYLL",
            &empty()[..15],
            &bad_magic,
            &bad_encoding,
            &dense[..DENSE_LEN - 1],
            &[dense.as_slice(), b"x"].concat(),
        ] {
            assert_eq!(encoding(value), Err(HllError::NotHll), "{value:?}");
        }
    }

    /// A sparse value with these opcodes.
    fn sparse_of(opcodes: &[u8]) -> Vec<u8> {
        [&empty()[..HEADER_LEN], opcodes].concat()
    }

    #[test]
    fn sparse_runs_that_miss_16384_registers_are_corrupted() {
        // Past the end: 16384 + 1, a VAL run overflowing it, and one after it.
        let long = sparse_of(&[0x7f, 0xff, 0x00]);
        let overflow = sparse_of(&[0x7f, 0xfe, 0x83]);
        let trailing = sparse_of(&[0x7f, 0xff, 0x80]);
        // Short of it: 8000 registers, and none.
        let short = sparse_of(&[0x5f, 0x3f]);
        let none = sparse_of(&[]);
        for value in [&long, &overflow, &trailing, &short, &none] {
            assert_eq!(count(value), Err(HllError::Corrupted));
            assert_eq!(Registers::default().merge(value), Err(HllError::Corrupted));
            let mut copy = value.clone();
            assert_eq!(to_dense(&mut copy), Err(HllError::Corrupted));
            assert_eq!(&copy, value, "left as it was");
        }
        // As in Redis, a register the opcodes reach can still be set; one
        // past them cannot.
        let names = named("r", 0..100);
        let reaching = |reached: bool| {
            let found = names.iter().find(|n| (pattern(n).0 < 8000) == reached);
            found.unwrap().as_slice()
        };
        let mut copy = short.clone();
        assert_eq!(add(&mut copy, reaching(true), MAX), Ok(true));
        assert_eq!(
            add(&mut copy, reaching(false), MAX),
            Err(HllError::Corrupted)
        );
        // An XZERO cut short reads its missing byte as 0, as Redis does.
        let cut = sparse_of(&[0x7f, 0xfe, 0x40]);
        assert_eq!(count(&cut), Ok(0));
        assert_eq!(decode(&cut).unwrap(), "Z:16383 Z:1");
    }

    /// Runs every reader and writer over `value`: each answers a number or
    /// Redis's error, and nothing grows past what Redis would make of it.
    fn exercise(value: &[u8], rng: &mut SplitMix) {
        let Ok(kind) = encoding(value) else {
            return;
        };
        let counted = count(value);
        assert!(matches!(counted, Ok(_) | Err(HllError::Corrupted)));
        let mut union = Registers::default();
        let merged = union.merge(value);
        assert_eq!(merged.is_ok(), counted.is_ok());
        let mut dense = value.to_vec();
        let converted = to_dense(&mut dense);
        assert_eq!(converted.is_ok(), counted.is_ok());
        if let Ok(n) = counted {
            assert_eq!(encoding(&dense), Ok(Encoding::Dense));
            assert_eq!(count(&dense), Ok(n));
            assert_eq!(union.count(), n);
            let mut target = value.to_vec();
            union.store(&mut target, MAX).unwrap();
            assert!(target.len() <= value.len().max(DENSE_LEN));
        }
        match kind {
            Encoding::Sparse => {
                let text = decode(value).unwrap();
                assert!(text.len() <= 12 * value.len());
            }
            Encoding::Dense => assert_eq!(dense_registers(value).count(), REGISTERS),
        }
        let mut changed = value.to_vec();
        for _ in 0..8 {
            let element = rng.next().to_le_bytes();
            let before = changed.len();
            match add(&mut changed, &element, MAX) {
                Ok(_) => assert!(changed.len() <= (before + 3).max(DENSE_LEN)),
                Err(err) => {
                    assert_eq!(err, HllError::Corrupted);
                    break;
                }
            }
        }
    }

    #[test]
    fn corrupted_values_answer_numbers_or_errors_and_never_panic() {
        let mut valid = vec![
            empty(),
            pfadd_named(None, &named("e", 0..20)),
            pfadd_named(None, &named("s", 0..300)),
            pfadd_named(None, &named("g", 0..1600)),
        ];
        let mut few = valid[1].clone();
        to_dense(&mut few).unwrap();
        valid.push(few);
        let mut dense = pfadd_named(None, &named("z", 0..5000));
        valid.push(dense.clone());
        // Every register 63, more than any hash gives.
        dense[HEADER_LEN..].fill(0xff);
        valid.push(dense);
        let mut rng = SplitMix(42);
        for _ in 0..20_000 {
            let mut value = valid[rng.below(valid.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let at = HEADER_LEN + rng.below(value.len() - HEADER_LEN + 1);
                match rng.below(6) {
                    0 => value.truncate(at),
                    1 => value.insert(at, rng.next() as u8),
                    2 => value.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
                    _ if at < value.len() => value[at] = rng.next() as u8,
                    _ => value.push(rng.next() as u8),
                }
            }
            // A header byte too, now and then: the encoding or the cache.
            if rng.below(8) == 0 {
                let at = 4 + rng.below(12);
                value[at] = rng.next() as u8;
            }
            exercise(&value, &mut rng);
        }
    }
}
