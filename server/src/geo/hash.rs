//! Geohash cells: a longitude and a latitude range each cut in two `step`
//! times, the bits interleaved (latitude in the even bits, longitude in the
//! odd ones). A stored position is a cell of 26 steps whose 52 bits are its
//! sorted-set score; a cell of fewer steps covers the scores that share its
//! bits as a prefix.

/// The westmost longitude of a position.
pub const LON_MIN: f64 = -180.0;
/// The eastmost longitude of a position.
pub const LON_MAX: f64 = 180.0;
/// The southmost latitude of a position: Web Mercator's limit (EPSG:3857).
pub const LAT_MIN: f64 = -85.05112878;
/// The northmost latitude of a position.
pub const LAT_MAX: f64 = 85.05112878;
/// Bits per coordinate of a stored position (52 in all).
pub const STEP_MAX: u8 = 26;

/// A coordinate interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// The low end.
    pub min: f64,
    /// The high end.
    pub max: f64,
}

/// The longitudes positions are encoded in.
const LON_RANGE: Range = Range {
    min: LON_MIN,
    max: LON_MAX,
};
/// The latitudes positions are encoded in.
const LAT_RANGE: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};
/// The latitudes of standard geohash strings, which Redis re-encodes
/// positions in for `GEOHASH`.
const STANDARD_LAT_RANGE: Range = Range {
    min: -90.0,
    max: 90.0,
};

/// The bounds of a cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    /// Its longitudes.
    pub lon: Range,
    /// Its latitudes.
    pub lat: Range,
}

/// A geohash cell of the position ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// Latitude bits in the even positions, longitude bits in the odd ones
    /// (a coordinate at the top of its range carries into bit `2 * step`, as
    /// in Redis).
    pub bits: u64,
    /// Bits per coordinate, 1 to 26.
    pub step: u8,
}

/// The eight cells around one, in the order Redis searches them after the
/// cell itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbours {
    /// Above.
    pub north: Cell,
    /// Below.
    pub south: Cell,
    /// Right.
    pub east: Cell,
    /// Left.
    pub west: Cell,
    /// Above right.
    pub north_east: Cell,
    /// Above left.
    pub north_west: Cell,
    /// Below right.
    pub south_east: Cell,
    /// Below left.
    pub south_west: Cell,
}

/// Latitude bits in the even positions, longitude bits in the odd ones.
const EVEN: u64 = 0x5555_5555_5555_5555;
const ODD: u64 = 0xaaaa_aaaa_aaaa_aaaa;

/// The 32 bits of `v` moved to the even positions of a 64-bit word.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & EVEN
}

/// The even bits of `x`, gathered into 32 bits ([`spread`] undone).
fn gather(x: u64) -> u32 {
    let mut x = x & EVEN;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0f0f_0f0f_0f0f_0f0f;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    (x | (x >> 16)) as u32
}

/// The cell bits of (`lon`, `lat`) in the given ranges, which hold it: each
/// offset scaled to `2^step` and truncated, as C converts it to an integer.
fn interleave(lon: f64, lat: f64, step: u8, lon_range: Range, lat_range: Range) -> u64 {
    let cells = (1u64 << step) as f64;
    let lat_offset = (lat - lat_range.min) / (lat_range.max - lat_range.min) * cells;
    let lon_offset = (lon - lon_range.min) / (lon_range.max - lon_range.min) * cells;
    spread(lat_offset as u32) | (spread(lon_offset as u32) << 1)
}

/// One coordinate's interval in cell `index` of `2^step` cells of `range`
/// (the index one past the last wraps as a 32-bit C integer does).
fn interval(range: Range, index: u32, step: u8) -> Range {
    let cells = (1u64 << step) as f64;
    let scale = range.max - range.min;
    Range {
        min: range.min + (f64::from(index) / cells) * scale,
        max: range.min + (f64::from(index.wrapping_add(1)) / cells) * scale,
    }
}

/// A longitude and a latitude within the limits of a stored position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    lon: f64,
    lat: f64,
}

impl Position {
    /// The position at (`lon`, `lat`); `None` outside the limits.
    pub fn new(lon: f64, lat: f64) -> Option<Position> {
        let inside = (LON_MIN..=LON_MAX).contains(&lon) && (LAT_MIN..=LAT_MAX).contains(&lat);
        inside.then_some(Position { lon, lat })
    }

    /// Its longitude.
    pub fn lon(self) -> f64 {
        self.lon
    }

    /// Its latitude.
    pub fn lat(self) -> f64 {
        self.lat
    }

    /// The sorted-set score `GEOADD` stores for it: its 52-bit cell.
    pub fn score(self) -> u64 {
        Cell::of(self, STEP_MAX).aligned()
    }
}

impl Cell {
    /// The cell of `step` bits holding `at`.
    pub fn of(at: Position, step: u8) -> Cell {
        Cell {
            bits: interleave(at.lon, at.lat, step, LON_RANGE, LAT_RANGE),
            step,
        }
    }

    /// The cell's bounds.
    pub fn area(self) -> Area {
        let (lat, lon) = (gather(self.bits), gather(self.bits >> 1));
        Area {
            lon: interval(LON_RANGE, lon, self.step),
            lat: interval(LAT_RANGE, lat, self.step),
        }
    }

    /// The cell's centre, pulled inside the position limits.
    pub fn centre(self) -> Position {
        let area = self.area();
        Position {
            lon: ((area.lon.min + area.lon.max) / 2.0).clamp(LON_MIN, LON_MAX),
            lat: ((area.lat.min + area.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX),
        }
    }

    /// The 52-bit score of the cell's first position (its bits shifted to
    /// the top of 52).
    pub fn aligned(self) -> u64 {
        self.bits << (2 * (STEP_MAX - self.step))
    }

    /// The scores of the positions inside the cell: from the first (included)
    /// to the next cell's first (excluded), as the doubles Redis compares
    /// sorted-set scores with.
    pub fn score_range(self) -> (f64, f64) {
        let next = Cell {
            bits: self.bits.wrapping_add(1),
            step: self.step,
        };
        (self.aligned() as f64, next.aligned() as f64)
    }

    /// The cell `east` cells to the east (negative: west), wrapping around
    /// the world; the latitude bits are left as they are.
    fn moved_east(self, east: i8) -> Cell {
        self.moved(east, ODD)
    }

    /// The cell `north` cells to the north (negative: south), wrapping around.
    fn moved_north(self, north: i8) -> Cell {
        self.moved(north, EVEN)
    }

    /// Moves the coordinate in the bits of `mask` by one cell either way: an
    /// add or subtract carried through the other coordinate's bits, which
    /// are filled with ones (or left as zeros) so the carry jumps them.
    fn moved(self, by: i8, mask: u64) -> Cell {
        let width = 64 - 2 * u32::from(self.step);
        let own = self.bits & mask;
        let other = self.bits & !mask;
        let gaps = !mask >> width;
        let moved = match by.signum() {
            0 => return self,
            1 => own.wrapping_add(gaps.wrapping_add(1)),
            _ => (own | gaps).wrapping_sub(gaps.wrapping_add(1)),
        };
        Cell {
            bits: (moved & (mask >> width)) | other,
            step: self.step,
        }
    }

    /// The eight cells around this one.
    pub fn neighbours(self) -> Neighbours {
        let at = |east: i8, north: i8| self.moved_east(east).moved_north(north);
        Neighbours {
            north: at(0, 1),
            south: at(0, -1),
            east: at(1, 0),
            west: at(-1, 0),
            north_east: at(1, 1),
            north_west: at(-1, 1),
            south_east: at(1, -1),
            south_west: at(-1, -1),
        }
    }
}

/// The bits of a sorted-set score as Redis reads them, through C's
/// `(uint64_t)` conversion as x86-64 compilers emit it: truncation below
/// 2^63, the 2^63 offset added back above, and the CPU's "indefinite"
/// integer (`i64::MIN`) for what fits neither. A score no `GEOADD` wrote
/// (negative, fractional, huge) still decodes to some position, the same one
/// as in Redis.
fn score_bits(score: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    // x86-64's cvttsd2si: truncated, or i64::MIN when out of range or NaN.
    let truncate = |x: f64| -> u64 {
        if (-TWO_63..TWO_63).contains(&x) {
            x as i64 as u64
        } else {
            i64::MIN as u64
        }
    };
    if score >= TWO_63 {
        truncate(score - TWO_63) ^ (1 << 63)
    } else {
        truncate(score)
    }
}

/// The position a sorted-set score stands for: its 52-bit cell's centre,
/// pulled inside the position limits.
pub fn decode_score(score: f64) -> Position {
    let cell = Cell {
        bits: score_bits(score),
        step: STEP_MAX,
    };
    cell.centre()
}

/// The base-32 digits of standard geohash strings.
const BASE32: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// The 11-character geohash string `GEOHASH` gives for a score: its position
/// encoded again on the standard -90..90 latitude range, ten digits of five
/// bits, and a final `0` (52 bits do not fill the eleventh digit).
pub fn geohash_string(score: f64) -> [u8; 11] {
    let at = decode_score(score);
    let bits = interleave(at.lon, at.lat, STEP_MAX, LON_RANGE, STANDARD_LAT_RANGE);
    let mut text = [b'0'; 11];
    for (i, digit) in text.iter_mut().take(10).enumerate() {
        *digit = BASE32[((bits >> (47 - 5 * i)) & 0x1f) as usize];
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lon: f64, lat: f64) -> Position {
        Position::new(lon, lat).expect("within the limits")
    }

    /// A coordinate as Redis prints it (17 decimals, trailing zeros cut).
    fn printed(value: f64) -> String {
        let text = format!("{value:.17}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }

    #[test]
    fn positions_encode_to_the_scores_redis_stores() {
        // GEOADD, then ZRANGE ... WITHSCORES, on Redis 7.0.15.
        let cases = [
            (13.361389, 38.115556, 3479099956230698),
            (15.087269, 37.502669, 3479447370796909),
            (-0.1275, 51.507222, 2163557714840001),
            (0.0, 0.0, 3377699720527872),
            (-180.0, -85.05112878, 0),
            // A coordinate at its upper limit carries past its 26 bits.
            (-180.0, 85.05112878, 4503599627370496),
            (180.0, -85.05112878, 9007199254740992),
            (180.0, 85.05112878, 13510798882111488),
        ];
        for (lon, lat, score) in cases {
            assert_eq!(at(lon, lat).score(), score, "{lon} {lat}");
        }
    }

    #[test]
    fn scores_decode_to_the_positions_redis_prints() {
        // GEOPOS on Redis 7.0.15, for the positions above and for scores
        // ZADD stored that no GEOADD makes (C's conversion to 64 bits,
        // then the clamp to the limits).
        let cases: [(f64, &str, &str); 12] = [
            (
                3479099956230698.0,
                "13.36138933897018433",
                "38.11555639549629859",
            ),
            (
                3479447370796909.0,
                "15.08726745843887329",
                "37.50266842333162032",
            ),
            (
                2163557714840001.0,
                "-0.1274988055229187",
                "51.50722081469902491",
            ),
            (
                3377699720527872.0,
                "0.00000268220901489",
                "0.00000126736058093",
            ),
            (0.0, "-179.99999731779098511", "-85.05112751263942528"),
            (13510798882111488.0, "180", "85.0511287799999991"),
            (-1.0, "180", "85.0511287799999991"),
            (-0.5, "-179.99999731779098511", "-85.05112751263942528"),
            (-1e300, "180", "-85.05112751263942528"),
            (9223372036854775808.0, "180", "-85.05112751263942528"),
            (
                f64::INFINITY,
                "-179.99999731779098511",
                "-85.05112751263942528",
            ),
            (12345.75, "-179.99962180852890015", "-85.05095261687941388"),
        ];
        for (score, lon, lat) in cases {
            let position = decode_score(score);
            assert_eq!(printed(position.lon()), lon, "{score}");
            assert_eq!(printed(position.lat()), lat, "{score}");
        }
    }

    #[test]
    fn positions_outside_the_limits_are_refused() {
        assert!(Position::new(180.0, 85.05112878).is_some());
        assert!(Position::new(-180.0000001, 0.0).is_none());
        assert!(Position::new(0.0, 85.05112879).is_none());
        assert!(Position::new(0.0, -90.0).is_none());
        assert!(Position::new(f64::NAN, 0.0).is_none());
    }

    #[test]
    fn cells_and_their_areas_match_redis() {
        // Captured from Redis 7.0.15's geohash.c (geohashEncode, geohashDecode).
        let palermo = at(13.361389, 38.115556);
        assert_eq!(Cell::of(palermo, 26).bits, 3479099956230698);
        assert_eq!(Cell::of(palermo, 1).bits, 3);
        let cell = Cell::of(palermo, 10);
        assert_eq!(cell.bits, 810041);
        let area = cell.area();
        assert_eq!((area.lon.min, area.lon.max), (13.359375, 13.7109375));
        assert_eq!(
            (area.lat.min, area.lat.max),
            (38.040446270742194, 38.206561756640625)
        );
        assert_eq!(Cell::of(at(180.0, 85.05112878), 5).bits, 3072);
        let whole = Cell { bits: 3, step: 1 }.area();
        assert_eq!((whole.lon.min, whole.lon.max), (0.0, 180.0));
        assert_eq!((whole.lat.min, whole.lat.max), (0.0, 85.05112878));
    }

    #[test]
    fn score_ranges_hold_the_cells_positions() {
        let palermo = at(13.361389, 38.115556);
        let (min, max) = Cell::of(palermo, 10).score_range();
        assert_eq!(
            (min, max),
            ((810041u64 << 32) as f64, (810042u64 << 32) as f64)
        );
        let score = palermo.score() as f64;
        assert!(min <= score && score < max);
    }

    #[test]
    fn neighbours_match_redis_and_wrap_around_the_world() {
        // geohashNeighbors of Redis 7.0.15: north, south, east, west,
        // north-east, north-west, south-east, south-west.
        let cases: [(u64, u8, [u64; 8]); 5] = [
            (
                3479099956230698,
                26,
                [
                    3479099956230699,
                    3479099956227967,
                    3479099956230784,
                    3479099956230696,
                    3479099956230785,
                    3479099956230697,
                    3479099956228053,
                    3479099956227965,
                ],
            ),
            (
                810041,
                10,
                [
                    810044, 810040, 810043, 810035, 810046, 810038, 810042, 810034,
                ],
            ),
            // The four cells of step 1: each side's neighbour is the same cell.
            (3, 1, [2, 2, 1, 1, 0, 0, 0, 0]),
            (0, 1, [1, 1, 2, 2, 3, 3, 3, 3]),
            // The north-east corner, whose bits carried past the top.
            (
                13510798882111488,
                26,
                [
                    9007199254740993,
                    10508399130531157,
                    4503599627370498,
                    7505999378950826,
                    3,
                    3002399751580331,
                    1501199875790167,
                    4503599627370495,
                ],
            ),
        ];
        for (bits, step, expected) in cases {
            let n = Cell { bits, step }.neighbours();
            let got = [
                n.north,
                n.south,
                n.east,
                n.west,
                n.north_east,
                n.north_west,
                n.south_east,
                n.south_west,
            ]
            .map(|c| c.bits);
            assert_eq!(got, expected, "{bits}/{step}");
        }
    }

    #[test]
    fn geohash_strings_match_redis() {
        // GEOHASH on Redis 7.0.15: positions re-encoded on -90..90.
        let cases = [
            (3479099956230698.0, "sqc8b49rny0"),
            (3479447370796909.0, "sqdtr74hyu0"),
            (2163557714840001.0, "gcpvj0e5m10"),
            (3377699720527872.0, "s0000000000"),
            (13510798882111488.0, "bp05b5048p0"),
            (0.0, "00bh0hbj200"),
            (12345.75, "00bh0hbq2c0"),
        ];
        for (score, text) in cases {
            assert_eq!(&geohash_string(score), text.as_bytes(), "{score}");
        }
    }

    #[test]
    fn positions_survive_a_round_trip_through_their_score() {
        // A decoded position encodes to the same score (the cell's centre
        // lies inside it), over the whole range.
        for i in 0..=100 {
            let lon = -180.0 + 3.6 * f64::from(i);
            let lat = LAT_MIN + (LAT_MAX - LAT_MIN) * f64::from(i) / 100.0;
            let score = at(lon, lat).score();
            if lon < LON_MAX && lat < LAT_MAX {
                assert_eq!(decode_score(score as f64).score(), score, "{lon} {lat}");
            }
            let back = decode_score(score as f64);
            assert!((back.lon() - lon).abs() < 1e-5 && (back.lat() - lat).abs() < 1e-5);
        }
    }
}
