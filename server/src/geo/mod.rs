//! Geospatial math as Redis 7 does it, to the last bit: a position is a
//! 52-bit geohash (26 bits of latitude and 26 of longitude, interleaved) kept
//! as a sorted-set score; a search walks the sorted-set ranges of at most nine
//! geohash cells around its centre and keeps the positions inside its circle
//! or box, measured with Redis's haversine distance.
//!
//! ```text
//! Position ─ score() ─▶ 52-bit score ─ hash::decode_score ─▶ its cell's centre
//! area::Shape (centre, radius or box) ─ cells() ─▶ ≤ 9 cells ─ score_range() ─▶ [min, max)
//!                                     └ contains(position) ─▶ distance if inside
//! order::partial_sort: the first results ordered by distance, as Redis picks them
//! ```
//!
//! Pure functions only: the commands (`commands/geo.rs`) read and write the
//! sorted sets. The floating-point steps are those of Redis's C code (same
//! operations in the same order, the same libm functions), so positions,
//! distances and the cells searched come out identical.

pub mod area;
pub mod hash;
pub mod order;

pub use area::{distance, Extent, Shape};
pub use hash::{decode_score, geohash_string, Cell, Position};
