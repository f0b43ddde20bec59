//! Distances on Redis's spherical earth, the shapes a search covers, and the
//! cells whose sorted-set ranges it walks: the centre's cell at a step (cell
//! size) estimated from the shape's reach, and its eight neighbours, less
//! those that cannot hold anything inside the shape.

use smallvec::SmallVec;

use super::hash::{Cell, Position, STEP_MAX};

/// Earth's quadratic mean radius for WGS-84, in meters, as Redis uses it.
pub const EARTH_RADIUS: f64 = 6_372_797.560_856;
/// Half the Web Mercator world's width in meters: the step estimate doubles
/// a search's reach until it passes this.
const MERCATOR_MAX: f64 = 20_037_726.37;
/// Radians per degree, computed as C's `M_PI / 180.0`.
const RADIANS_PER_DEGREE: f64 = std::f64::consts::PI / 180.0;

fn radians(degrees: f64) -> f64 {
    degrees * RADIANS_PER_DEGREE
}

fn degrees(radians: f64) -> f64 {
    radians / RADIANS_PER_DEGREE
}

/// Meters along a meridian between two latitudes.
fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS * (radians(lat2) - radians(lat1)).abs()
}

/// Meters between two positions on the great circle through them
/// (haversine), with Redis's shortcut for equal longitudes.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lon1, lon2) = (radians(lon1), radians(lon2));
    let v = ((lon2 - lon1) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1, lat2) = (radians(lat1), radians(lat2));
    let u = ((lat2 - lat1) / 2.0).sin();
    let a = u * u + lat1.cos() * lat2.cos() * v * v;
    2.0 * EARTH_RADIUS * a.sqrt().asin()
}

/// How far a search reaches from its centre, in its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extent {
    /// A circle of this radius.
    Radius(f64),
    /// A box this wide (east to west) and high (north to south).
    Box {
        /// East to west.
        width: f64,
        /// North to south.
        height: f64,
    },
}

/// A search area: a circle or a box around a centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// The centre.
    pub centre: Position,
    /// The circle or box, in the search's unit.
    pub extent: Extent,
    /// Meters per unit.
    pub to_meters: f64,
}

/// The bounds of a shape: it lies within these longitudes and latitudes
/// (for a box, the east and west edges bend towards the pole).
struct Bounds {
    min_lon: f64,
    min_lat: f64,
    max_lon: f64,
    max_lat: f64,
}

impl Shape {
    /// The distance in meters from the centre to `at` when that position is
    /// inside the shape. A box's edges are measured at the position's own
    /// latitude, as Redis does.
    pub fn contains(&self, at: Position) -> Option<f64> {
        let (lon, lat) = (at.lon(), at.lat());
        let (x, y) = (self.centre.lon(), self.centre.lat());
        match self.extent {
            Extent::Radius(radius) => {
                let d = distance(x, y, lon, lat);
                if d > radius * self.to_meters {
                    return None;
                }
                Some(d)
            }
            Extent::Box { width, height } => {
                let (width, height) = (width * self.to_meters, height * self.to_meters);
                if lat_distance(lat, y) > height / 2.0 || distance(lon, lat, x, lat) > width / 2.0 {
                    return None;
                }
                Some(distance(x, y, lon, lat))
            }
        }
    }

    /// Meters from the centre to the farthest point: the radius, or half the
    /// box's diagonal.
    fn reach(&self) -> f64 {
        let reach = match self.extent {
            Extent::Radius(radius) => radius,
            Extent::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        };
        reach * self.to_meters
    }

    fn bounds(&self) -> Bounds {
        let (north_south, east_west) = match self.extent {
            Extent::Radius(radius) => (radius, radius),
            Extent::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let (north_south, east_west) = (self.to_meters * north_south, self.to_meters * east_west);
        let (lon, lat) = (self.centre.lon(), self.centre.lat());
        let lat_delta = degrees(north_south / EARTH_RADIUS);
        // A longitude degree is shortest on the edge nearer the pole.
        let lon_delta = |lat: f64| degrees(east_west / EARTH_RADIUS / radians(lat).cos());
        let lon_delta = match lat < 0.0 {
            true => lon_delta(lat - lat_delta),
            false => lon_delta(lat + lat_delta),
        };
        Bounds {
            min_lon: lon - lon_delta,
            min_lat: lat - lat_delta,
            max_lon: lon + lon_delta,
            max_lat: lat + lat_delta,
        }
    }

    /// The cells to search, in Redis's order: the centre's, then north,
    /// south, east, west, north-east, north-west, south-east, south-west,
    /// less those beyond a side of the centre's cell that covers the bounds
    /// there, and less one equal to the cell searched just before it (a
    /// neighbour of a huge cell wraps around the world onto another).
    pub fn cells(&self) -> SmallVec<[Cell; 9]> {
        let bounds = self.bounds();
        let mut step = estimate_step(self.reach(), self.centre.lat());
        let mut centre = Cell::of(self.centre, step);
        let mut around = centre.neighbours();
        // A centre near its cell's edge may need bigger cells to cover the
        // shape: one step less when a side neighbour ends short of the bounds.
        let short = around.north.area().lat.max < bounds.max_lat
            || around.south.area().lat.min > bounds.min_lat
            || around.east.area().lon.max < bounds.max_lon
            || around.west.area().lon.min > bounds.min_lon;
        if step > 1 && short {
            step -= 1;
            centre = Cell::of(self.centre, step);
            around = centre.neighbours();
        }
        let area = centre.area();
        let n = around;
        let mut cells = [
            Some(centre),
            Some(n.north),
            Some(n.south),
            Some(n.east),
            Some(n.west),
            Some(n.north_east),
            Some(n.north_west),
            Some(n.south_east),
            Some(n.south_west),
        ];
        // The neighbours beyond a side of the centre's cell that already
        // covers the bounds there.
        if step >= 2 {
            let mut drop = |sides: [usize; 3]| sides.iter().for_each(|&i| cells[i] = None);
            if area.lat.min < bounds.min_lat {
                drop([2, 8, 7]);
            }
            if area.lat.max > bounds.max_lat {
                drop([1, 5, 6]);
            }
            if area.lon.min < bounds.min_lon {
                drop([4, 8, 6]);
            }
            if area.lon.max > bounds.max_lon {
                drop([3, 7, 5]);
            }
        }
        // Redis compares with the last neighbour searched, never with the
        // centre's cell.
        let mut walk: SmallVec<[Cell; 9]> = SmallVec::new();
        let mut last_neighbour = None;
        for (i, cell) in cells.into_iter().enumerate() {
            let Some(cell) = cell else { continue };
            if last_neighbour == Some(cell) {
                continue;
            }
            walk.push(cell);
            if i > 0 {
                last_neighbour = Some(cell);
            }
        }
        walk
    }
}

/// The step (bits per coordinate) of the cells a search reaching `meters`
/// around latitude `lat` walks: about the largest whose cells still span the
/// reach, one or two less near the poles, where cells narrow.
pub fn estimate_step(meters: f64, lat: f64) -> u8 {
    if meters == 0.0 {
        return STEP_MAX;
    }
    let mut reach = meters;
    let mut step: i32 = 1;
    while reach < MERCATOR_MAX {
        reach *= 2.0;
        step += 1;
    }
    // Two less, so the reach falls inside the cells in most cases.
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, i32::from(STEP_MAX)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::decode_score;

    fn at(lon: f64, lat: f64) -> Position {
        Position::new(lon, lat).expect("within the limits")
    }

    #[test]
    fn distances_match_redis_to_the_bit() {
        // geohashGetDistance of Redis 7.0.15 between stored positions
        // (GEODIST Palermo Catania prints 166274.1516).
        let between = |a: f64, b: f64| {
            let (a, b) = (decode_score(a), decode_score(b));
            distance(a.lon(), a.lat(), b.lon(), b.lat())
        };
        assert_eq!(
            between(3479099956230698.0, 3479447370796909.0),
            166274.15156960033
        );
        // The north-east corner to the south-west one.
        assert_eq!(between(13510798882111488.0, 0.0), 18919844.58908216);
        // Equal longitudes: the distance along the meridian.
        assert_eq!(distance(10.0, 20.0, 10.0, -30.0), 5561315.000000044);
    }

    #[test]
    fn steps_grow_with_smaller_reaches_and_shrink_near_the_poles() {
        // geohashEstimateStepsByRadius of Redis 7.0.15.
        assert_eq!(estimate_step(0.0, 0.0), 26);
        assert_eq!(estimate_step(200_000.0, 38.0), 6);
        assert_eq!(estimate_step(200_000.0, 70.0), 5);
        assert_eq!(estimate_step(200_000.0, -85.0), 4);
        assert_eq!(estimate_step(1e9, 0.0), 1);
        assert_eq!(estimate_step(0.001, 0.0), 26);
        assert_eq!(estimate_step(f64::INFINITY, 0.0), 1);
    }

    /// `(bits, step)` of each cell a search walks.
    fn walked(centre: Position, extent: Extent, to_meters: f64) -> Vec<(u64, u8)> {
        let shape = Shape {
            centre,
            extent,
            to_meters,
        };
        shape.cells().iter().map(|c| (c.bits, c.step)).collect()
    }

    #[test]
    fn searches_walk_the_cells_redis_walks() {
        // geohashCalculateAreasByShapeWGS84 of Redis 7.0.15, less the
        // neighbours it zeroes and those equal to the one before.
        let palermo = at(13.361389, 38.115556);
        assert_eq!(
            walked(palermo, Extent::Radius(200.0), 1000.0),
            [
                (3164, 6),
                (3165, 6),
                (3161, 6),
                (3158, 6),
                (3159, 6),
                (3155, 6)
            ]
        );
        let square = Extent::Box {
            width: 400.0,
            height: 400.0,
        };
        assert_eq!(
            walked(at(15.0, 37.0), square, 1000.0),
            [(3161, 6), (3164, 6), (3163, 6), (3166, 6)]
        );
        // A search of nothing but its centre's position.
        assert_eq!(
            walked(at(0.0, 0.0), Extent::Radius(0.0), 1.0),
            [
                (3377699720527872, 26),
                (2627099782632789, 26),
                (1876499844737706, 26),
                (1125899906842623, 26)
            ]
        );
        // Near the antimeridian and the pole: one step less, neighbours wrap.
        assert_eq!(
            walked(at(179.99, 85.0), Extent::Radius(50.0), 1000.0),
            [(1023, 5), (682, 5), (341, 5), (0, 5)]
        );
        let small = Extent::Box {
            width: 10.0,
            height: 10.0,
        };
        assert_eq!(
            walked(at(-180.0, -85.05112878), small, 1609.34),
            [(0, 7), (5461, 7), (10922, 7), (16383, 7)]
        );
        let wide = Extent::Box {
            width: 3000.0,
            height: 10.0,
        };
        assert_eq!(walked(at(100.0, -40.0), wide, 1000.0), [(44, 3), (38, 3)]);
        // The whole world at step 1: each cell once.
        assert_eq!(
            walked(at(0.0, 0.0), Extent::Radius(1e300), 1.0),
            [(3, 1), (2, 1), (1, 1), (0, 1)]
        );
    }

    #[test]
    fn circles_and_boxes_contain_what_their_edges_enclose() {
        let centre = at(0.0, 0.0);
        let circle = Shape {
            centre,
            extent: Extent::Radius(100.0),
            to_meters: 1000.0,
        };
        let inside = circle.contains(at(0.5, 0.5)).expect("78 km away");
        assert_eq!(inside, distance(0.0, 0.0, 0.5, 0.5));
        assert!(circle.contains(at(1.0, 0.0)).is_none());
        // A box is measured along each axis: a corner beyond the circle's
        // radius is still inside it.
        let square = Shape {
            centre,
            extent: Extent::Box {
                width: 200.0,
                height: 200.0,
            },
            to_meters: 1000.0,
        };
        assert!(square.contains(at(0.8, 0.8)).is_some());
        assert!(circle.contains(at(0.8, 0.8)).is_none());
        // 100 km north is 0.899 degrees.
        assert!(square.contains(at(0.0, 0.89)).is_some());
        assert!(square.contains(at(0.0, 0.9)).is_none());
    }
}
