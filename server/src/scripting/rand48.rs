//! The generator behind scripts' `math.random`: POSIX `lrand48`, as Redis
//! ships it, so that a seed gives the same numbers as on Redis on every
//! machine.

/// A 48-bit linear congruential generator (`x = a * x + c mod 2^48`).
#[derive(Debug, Clone)]
pub struct Rand48 {
    x: u64,
}

const A: u64 = 0x5_DEEC_E66D;
const C: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;
/// The largest value [`Rand48::next`] returns, plus one.
pub const RAND48_MAX: i32 = i32::MAX;

impl Default for Rand48 {
    /// The state before any seed (`lrand48`'s own start).
    fn default() -> Self {
        Rand48 {
            x: 0x1234_ABCD_330E,
        }
    }
}

impl Rand48 {
    /// `srand48(seed)`: the seed's low 32 bits above `0x330E`.
    pub fn seed(&mut self, seed: i32) {
        self.x = ((u64::from(seed as u32)) << 16) | 0x330E;
    }

    /// `lrand48()`: the next 31 random bits.
    pub fn next(&mut self) -> i32 {
        self.x = (A.wrapping_mul(self.x).wrapping_add(C)) & MASK;
        (self.x >> 17) as i32
    }

    /// A number in `[0, 1)`, as Redis's `math.random()` makes it.
    pub fn unit(&mut self) -> f64 {
        f64::from(self.next() % RAND48_MAX) / f64::from(RAND48_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_posix_lrand48() {
        // glibc: srand48(0); lrand48() three times.
        let mut r = Rand48::default();
        r.seed(0);
        assert_eq!(
            [r.next(), r.next(), r.next()],
            [366850414, 1610402240, 206956554]
        );
        // Unseeded, the first value (Redis starts from POSIX's initial state).
        assert_eq!(Rand48::default().next(), 851401618);
    }
}
