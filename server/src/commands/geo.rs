//! Geospatial commands. A geospatial index is a sorted set whose scores are
//! 52-bit geohashes (`crate::geo` does the math), so `ZRANGE`, `ZREM` and the
//! rest work on it as in Redis. `GEOADD` is recorded as the `ZADD` it amounts
//! to; the searches walk the score ranges of the cells around their centre.

use super::access::{create, read};
use super::table::{flag::*, CommandSpec, Handler, KeySpec};
use super::{handler, Command, CommandError, CommandResult, Ctx, Parser};
use crate::geo::{decode_score, distance, geohash_string, order, Extent, Position, Shape};
use crate::keyspace::types::ZSet;
use crate::keyspace::{Expiry, Value};
use crate::notify;
use crate::protocol::number::parse_double;
use crate::protocol::{Args, Reply};

const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: KeySpec,
    since: &'static str,
    summary: &'static str,
    handler: Option<Handler>,
) -> CommandSpec {
    CommandSpec::new(name, arity, flags, "geo", summary, handler)
        .keys(keys)
        .since(since)
}

const ONE: KeySpec = KeySpec::ONE;

/// The geospatial family.
pub const COMMANDS: &[CommandSpec] = &[
    spec("geoadd", -5, WRITE | DENYOOM, ONE, "3.2.0", "Adds one or more members to a geospatial index. The key is created if it doesn't exist.", handler!(GeoAdd<'_>)),
    spec("geodist", -4, READONLY, ONE, "3.2.0", "Returns the distance between two members of a geospatial index.", handler!(GeoDist<'_>)),
    spec("geohash", -2, READONLY, ONE, "3.2.0", "Returns members from a geospatial index as geohash strings.", handler!(GeoPos<'_>)),
    spec("geopos", -2, READONLY, ONE, "3.2.0", "Returns the longitude and latitude of members from a geospatial index.", handler!(GeoPos<'_>)),
    spec("georadius", -6, WRITE | DENYOOM, ONE.and_stores_from(6), "3.2.0", "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.", handler!(Search<'_>)),
    spec("georadius_ro", -6, READONLY, ONE, "3.2.10", "Returns members from a geospatial index that are within a distance from a coordinate.", handler!(Search<'_>)),
    spec("georadiusbymember", -5, WRITE | DENYOOM, ONE.and_stores_from(5), "3.2.0", "Queries a geospatial index for members within a distance from a member, optionally stores the result.", handler!(Search<'_>)),
    spec("georadiusbymember_ro", -5, READONLY, ONE, "3.2.10", "Returns members from a geospatial index that are within a distance from a member.", handler!(Search<'_>)),
    spec("geosearch", -7, READONLY, ONE, "6.2.0", "Queries a geospatial index for members inside an area of a box or a circle.", handler!(Search<'_>)),
    spec("geosearchstore", -8, WRITE | DENYOOM, KeySpec::range(1, 2, 1), "6.2.0", "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.", handler!(Search<'_>)),
];

/// A coordinate argument, as Redis reads doubles.
fn coordinate(arg: &[u8]) -> Result<f64, CommandError> {
    parse_double(arg).ok_or(CommandError::NotFloat)
}

/// A position from a longitude and a latitude argument.
fn position(lon: &[u8], lat: &[u8]) -> Result<Position, CommandError> {
    let (lon, lat) = (coordinate(lon)?, coordinate(lat)?);
    Position::new(lon, lat).ok_or_else(|| {
        CommandError::err(format!("invalid longitude,latitude pair {lon:.6},{lat:.6}"))
    })
}

/// Meters per unit (`M`, `KM`, `FT`, `MI`, in any case).
fn unit(arg: &[u8]) -> Result<f64, CommandError> {
    const UNITS: [(&[u8], f64); 4] = [
        (b"m", 1.0),
        (b"km", 1000.0),
        (b"ft", 0.3048),
        (b"mi", 1609.34),
    ];
    UNITS
        .iter()
        .find(|(name, _)| arg.eq_ignore_ascii_case(name))
        .map(|&(_, meters)| meters)
        .ok_or_else(|| CommandError::err("unsupported unit provided. please use M, KM, FT, MI"))
}

/// A circle from `radius unit` arguments, with meters per unit.
fn circle(radius: &[u8], unit_arg: &[u8]) -> Result<(Extent, f64), CommandError> {
    let radius = parse_double(radius).ok_or_else(|| CommandError::err("need numeric radius"))?;
    if radius < 0.0 {
        return Err(CommandError::err("radius cannot be negative"));
    }
    Ok((Extent::Radius(radius), unit(unit_arg)?))
}

/// A box from `width height unit` arguments, with meters per unit.
fn rectangle(width: &[u8], height: &[u8], unit_arg: &[u8]) -> Result<(Extent, f64), CommandError> {
    let width = parse_double(width).ok_or_else(|| CommandError::err("need numeric width"))?;
    let height = parse_double(height).ok_or_else(|| CommandError::err("need numeric height"))?;
    if height < 0.0 || width < 0.0 {
        return Err(CommandError::err("height or width cannot be negative"));
    }
    Ok((Extent::Box { width, height }, unit(unit_arg)?))
}

/// The position of `member`, which a search is centred on.
fn position_of(zset: &ZSet, member: &[u8]) -> Result<Position, CommandError> {
    zset.score(member)
        .map(decode_score)
        .ok_or_else(|| CommandError::err("could not decode requested zset member"))
}

/// Writes a distance with four decimals, rounded as C's `llrint` rounds
/// (halves to even), as a bulk string in both protocols.
fn write_distance(out: &mut Reply, meters: f64) {
    out.bulk(format_distance(meters).as_bytes());
}

/// The text of [`write_distance`].
fn format_distance(value: f64) -> String {
    let scaled = (value * 10_000.0).round_ties_even() as i64;
    let sign = if scaled < 0 { "-" } else { "" };
    let scaled = scaled.unsigned_abs();
    format!("{sign}{}.{:04}", scaled / 10_000, scaled % 10_000)
}

/// Writes a coordinate as Redis prints long doubles for people: 17 decimals
/// without the trailing zeros (a double in RESP3, a bulk string in RESP2).
fn write_coordinate(out: &mut Reply, value: f64) {
    out.double_text(format_coordinate(value).as_bytes());
}

/// The text of [`write_coordinate`].
fn format_coordinate(value: f64) -> String {
    let mut text = format!("{value:.17}");
    let kept = text.trim_end_matches('0').trim_end_matches('.').len();
    text.truncate(kept);
    if text == "-0" {
        text.remove(0);
    }
    text
}

/// `GEOADD key [NX|XX] [CH] longitude latitude member [...]`.
struct GeoAdd<'a> {
    key: &'a [u8],
    /// The options as sent, passed on to the `ZADD` recorded for it.
    options: Vec<&'a [u8]>,
    nx: bool,
    xx: bool,
    ch: bool,
    /// Each member with the score of its position.
    items: Vec<(u64, &'a [u8])>,
}

impl<'a> Command<'a> for GeoAdd<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let (mut nx, mut xx, mut ch) = (false, false, false);
        let mut options = Vec::new();
        loop {
            let mut probe = p.clone();
            let Some(arg) = probe.try_arg() else { break };
            let flag = match arg {
                _ if arg.eq_ignore_ascii_case(b"NX") => &mut nx,
                _ if arg.eq_ignore_ascii_case(b"XX") => &mut xx,
                _ if arg.eq_ignore_ascii_case(b"CH") => &mut ch,
                _ => break,
            };
            *flag = true;
            options.push(arg);
            *p = probe;
        }
        // No positions at all is ZADD's syntax error in Redis, which GEOADD
        // turns into.
        if !p.remaining().is_multiple_of(3) || p.remaining() == 0 || (nx && xx) {
            return Err(CommandError::Syntax);
        }
        let mut items = Vec::with_capacity(p.remaining() / 3);
        while p.remaining() > 0 {
            let at = position(p.arg()?, p.arg()?)?;
            items.push((at.score(), p.arg()?));
        }
        Ok(GeoAdd {
            key,
            options,
            nx,
            xx,
            ch,
            items,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let limits = ctx.limits();
        let table = ctx.locks.table(self.key);
        if self.xx && read::<ZSet>(table, self.key, ctx.now)?.is_none() {
            // Nothing to update and nothing may be added: no key made.
            ctx.out.int(0);
            return Ok(());
        }
        let zset = create(table, self.key, ctx.now, ZSet::default)?;
        let (mut added, mut updated) = (0, 0);
        for &(score, member) in &self.items {
            // ZADD parses the integer GEOADD gives it: above 2^53 (a
            // coordinate at its upper limit) the double rounds.
            let score = score as f64;
            let old = zset.score(member);
            let allowed = match old {
                None => !self.xx,
                Some(_) => !self.nx,
            };
            if !allowed {
                continue;
            }
            if zset.insert(member, score, &limits) {
                added += 1;
            } else if old != Some(score) {
                updated += 1;
            }
        }
        table.remove_if_empty(self.key, ctx.now);
        if added + updated > 0 {
            ctx.changed_by(added + updated, notify::ZSET, "zadd", self.key);
            if ctx.feeding() {
                self.record_as_zadd(ctx);
            }
        }
        ctx.out
            .int((added + if self.ch { updated } else { 0 }) as i64);
        Ok(())
    }
}

impl GeoAdd<'_> {
    /// Records the `ZADD` Redis turns `GEOADD` into: its key and options,
    /// then each score (an integer) and member.
    fn record_as_zadd(&self, ctx: &mut Ctx<'_, '_>) {
        let scores: Vec<String> = self.items.iter().map(|(s, _)| s.to_string()).collect();
        let mut args: Vec<&[u8]> = vec![b"zadd", self.key];
        args.extend(&self.options);
        for (score, (_, member)) in scores.iter().zip(&self.items) {
            args.push(score.as_bytes());
            args.push(member);
        }
        ctx.propagate(&args);
    }
}

/// `GEODIST key member1 member2 [M|KM|FT|MI]`.
struct GeoDist<'a> {
    key: &'a [u8],
    members: (&'a [u8], &'a [u8]),
    to_meters: f64,
}

impl<'a> Command<'a> for GeoDist<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let key = p.arg()?;
        let members = (p.arg()?, p.arg()?);
        let to_meters = match p.remaining() {
            0 => 1.0,
            1 => unit(p.arg()?)?,
            _ => return Err(CommandError::Syntax),
        };
        Ok(GeoDist {
            key,
            members,
            to_meters,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let scores = zset.and_then(|z| Some((z.score(self.members.0)?, z.score(self.members.1)?)));
        match scores {
            Some((a, b)) => {
                let (a, b) = (decode_score(a), decode_score(b));
                let meters = distance(a.lon(), a.lat(), b.lon(), b.lat());
                write_distance(ctx.out, meters / self.to_meters);
            }
            None => ctx.out.null(),
        }
        Ok(())
    }
}

/// `GEOPOS key [member ...]` and `GEOHASH key [member ...]`.
struct GeoPos<'a> {
    key: &'a [u8],
    members: Args<'a>,
}

impl<'a> Command<'a> for GeoPos<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        Ok(GeoPos {
            key: p.arg()?,
            members: p.rest(),
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let hashes = ctx.name() == "geohash";
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        ctx.out.array(self.members.len());
        for member in self.members.iter() {
            match (zset.and_then(|z| z.score(member)), hashes) {
                (Some(score), true) => ctx.out.bulk(&geohash_string(score)),
                (Some(score), false) => {
                    let at = decode_score(score);
                    ctx.out.array(2);
                    write_coordinate(ctx.out, at.lon());
                    write_coordinate(ctx.out, at.lat());
                }
                (None, true) => ctx.out.null(),
                (None, false) => ctx.out.null_array(),
            }
        }
        Ok(())
    }
}

/// Which search command runs, which decides its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `GEORADIUS[_RO] key longitude latitude radius unit [options]`.
    Radius,
    /// `GEORADIUSBYMEMBER[_RO] key member radius unit [options]`.
    RadiusByMember,
    /// `GEOSEARCH key FROM... BY... [options]`.
    Search,
    /// `GEOSEARCHSTORE destination key FROM... BY... [options]`.
    SearchStore,
}

/// How results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    /// As found.
    None,
    /// Nearest first.
    Ascending,
    /// Farthest first.
    Descending,
}

/// Where a search's results go instead of the reply.
#[derive(Debug, Clone, Copy)]
struct Store<'a> {
    key: &'a [u8],
    /// Scores are the distances (in the search's unit), not the positions.
    distances: bool,
}

/// Where a search is centred.
#[derive(Debug, Clone, Copy)]
enum Centre<'a> {
    /// A longitude and latitude given.
    Point(Position),
    /// A member's position.
    Member(&'a [u8]),
}

/// A search's options: `WITH...`, `COUNT`, `ASC`/`DESC`, `STORE...`, and
/// `GEOSEARCH`'s `FROM...` and `BY...`.
#[derive(Debug)]
struct Options<'a> {
    with_dist: bool,
    with_hash: bool,
    with_coord: bool,
    sort: Sort,
    count: Option<usize>,
    any: bool,
    store: Option<Store<'a>>,
    /// Every `FROMMEMBER` member, in order (the last one counts).
    from_members: Vec<&'a [u8]>,
    /// `FROMLONLAT`'s centre (the last one).
    from_point: Option<Position>,
    /// `BYRADIUS` or `BYBOX`, with meters per unit.
    by: Option<(Extent, f64)>,
}

/// What a search does once its key is found.
#[derive(Debug)]
struct Query<'a> {
    centre: Centre<'a>,
    extent: Extent,
    to_meters: f64,
    options: Options<'a>,
}

/// A search command.
///
/// Redis reads a search's arguments in order and looks up the members it
/// names where they come, so whether the key exists, and which members it
/// holds, decide which error comes first. The parse keeps what each case
/// needs; `apply` reports it in Redis's order.
struct Search<'a> {
    key: &'a [u8],
    /// The keyspace event of a stored result.
    event: &'static str,
    /// Members whose positions Redis looks up (when the key exists) before
    /// reading on: `GEORADIUSBYMEMBER`'s, and each `FROMMEMBER`'s read
    /// before a bad argument. A missing one is an error.
    members: Vec<&'a [u8]>,
    /// The search, or the first error in its arguments, when the key exists.
    query: Result<Query<'a>, CommandError>,
    /// When the key does not exist: the destination an empty result is
    /// stored at (deleting it), or the error Redis still reports (it reads
    /// no member then, and not `GEORADIUSBYMEMBER`'s radius).
    absent: Result<Option<&'a [u8]>, CommandError>,
}

impl<'a> Command<'a> for Search<'a> {
    fn parse(p: &mut Parser<'a>) -> Result<Self, CommandError> {
        let name = String::from_utf8_lossy(p.all().get(0).unwrap_or_default()).into_owned();
        let lower = name.to_ascii_lowercase();
        let (form, event) = match lower.as_str() {
            "georadius" | "georadius_ro" => (Form::Radius, "georadiusstore"),
            "georadiusbymember" | "georadiusbymember_ro" => {
                (Form::RadiusByMember, "georadiusstore")
            }
            "geosearch" => (Form::Search, "geosearchstore"),
            _ => (Form::SearchStore, "geosearchstore"),
        };
        let stores = !lower.ends_with("_ro");
        let destination = match form {
            Form::SearchStore => Some(p.arg()?),
            _ => None,
        };
        let key = p.arg()?;
        let mut options = Options {
            with_dist: false,
            with_hash: false,
            with_coord: false,
            sort: Sort::None,
            count: None,
            any: false,
            store: destination.map(|key| Store {
                key,
                distances: false,
            }),
            from_members: Vec::new(),
            from_point: None,
            by: None,
        };
        let (members, query, absent) = match form {
            Form::Radius => {
                let (lon, lat, radius, unit) = (p.arg()?, p.arg()?, p.arg()?, p.arg()?);
                // Checked before the options, whether the key exists or not.
                let fixed = position(lon, lat).and_then(|at| Ok((at, circle(radius, unit)?)));
                let outcome = fixed.and_then(|fixed| {
                    options.read(p, form, stores)?;
                    options.check_store(form)?;
                    options.check_any()?;
                    Ok(fixed)
                });
                let absent = outcome.as_ref().map(|_| options.store_key());
                let absent = absent.map_err(Clone::clone);
                let query = outcome.map(|(at, (extent, to_meters))| Query {
                    centre: Centre::Point(at),
                    extent,
                    to_meters,
                    options,
                });
                (Vec::new(), query, absent)
            }
            Form::RadiusByMember => {
                let (member, radius, unit) = (p.arg()?, p.arg()?, p.arg()?);
                let outcome = options
                    .read(p, form, stores)
                    .and_then(|()| options.check_store(form))
                    .and_then(|()| options.check_any());
                let absent = outcome.clone().map(|()| options.store_key());
                // The radius comes after the member, before the options.
                let query = circle(radius, unit).and_then(|(extent, to_meters)| {
                    outcome?;
                    Ok(Query {
                        centre: Centre::Member(member),
                        extent,
                        to_meters,
                        options,
                    })
                });
                (vec![member], query, absent)
            }
            Form::Search | Form::SearchStore => {
                let outcome = options
                    .read(p, form, stores)
                    .and_then(|()| options.check_search(form, &name));
                let members = options.from_members.clone();
                let absent = outcome.as_ref().map(|_| options.store_key());
                let absent = absent.map_err(Clone::clone);
                let query = outcome.map(|(centre, (extent, to_meters))| Query {
                    centre,
                    extent,
                    to_meters,
                    options,
                });
                (members, query, absent)
            }
        };
        // Arguments past an error are never read.
        p.rest();
        Ok(Search {
            key,
            event,
            members,
            query,
            absent,
        })
    }

    fn apply(self, ctx: &mut Ctx<'_, '_>) -> CommandResult {
        let zset = read::<ZSet>(ctx.locks.table(self.key), self.key, ctx.now)?;
        let Some(zset) = zset else {
            // Nothing found: an empty reply, or the destination deleted.
            match self.absent? {
                Some(destination) => {
                    save(ctx, destination, &[], self.event);
                    ctx.out.int(0);
                }
                None => ctx.out.array(0),
            }
            return Ok(());
        };
        for member in &self.members {
            position_of(zset, member)?;
        }
        let query = self.query?;
        let centre = match query.centre {
            Centre::Point(at) => at,
            Centre::Member(member) => position_of(zset, member)?,
        };
        let shape = Shape {
            centre,
            extent: query.extent,
            to_meters: query.to_meters,
        };
        let options = &query.options;
        let found = options.select(search(zset, &shape, options.any_limit()), query.to_meters);
        match options.store {
            Some(store) => {
                let items: Vec<(Vec<u8>, f64)> = found
                    .into_iter()
                    .map(|f| {
                        let score = if store.distances { f.distance } else { f.score };
                        (f.member, score)
                    })
                    .collect();
                save(ctx, store.key, &items, self.event);
                ctx.out.int(items.len() as i64);
            }
            None => options.reply(ctx.out, &found),
        }
        Ok(())
    }
}

impl<'a> Options<'a> {
    /// Reads the options as Redis does, stopping at the first bad one. An
    /// option that takes values is one only when they follow it (a lone
    /// `COUNT` at the end is a syntax error).
    fn read(&mut self, p: &mut Parser<'a>, form: Form, stores: bool) -> CommandResult {
        let geosearch = matches!(form, Form::Search | Form::SearchStore);
        let radius_store = stores && !geosearch;
        while let Some(option) = p.next_keyword() {
            let left = p.remaining();
            match option.as_str() {
                "WITHDIST" => self.with_dist = true,
                "WITHHASH" => self.with_hash = true,
                "WITHCOORD" => self.with_coord = true,
                "ANY" => self.any = true,
                "ASC" => self.sort = Sort::Ascending,
                "DESC" => self.sort = Sort::Descending,
                "COUNT" if left >= 1 => {
                    let count = p.next_i64()?;
                    if count <= 0 {
                        return Err(CommandError::err("COUNT must be > 0"));
                    }
                    self.count = Some(usize::try_from(count).unwrap_or(usize::MAX));
                }
                word @ ("STORE" | "STOREDIST") if left >= 1 && radius_store => {
                    self.store = Some(Store {
                        key: p.arg()?,
                        distances: word == "STOREDIST",
                    });
                }
                "STOREDIST" if form == Form::SearchStore => {
                    if let Some(store) = &mut self.store {
                        store.distances = true;
                    }
                }
                "FROMMEMBER" if left >= 1 && geosearch && self.from_point.is_none() => {
                    self.from_members.push(p.arg()?);
                }
                "FROMLONLAT" if left >= 2 && geosearch && self.from_members.is_empty() => {
                    self.from_point = Some(position(p.arg()?, p.arg()?)?);
                }
                "BYRADIUS" if left >= 2 && geosearch && !self.by_box() => {
                    self.by = Some(circle(p.arg()?, p.arg()?)?);
                }
                "BYBOX" if left >= 3 && geosearch && !self.by_radius() => {
                    self.by = Some(rectangle(p.arg()?, p.arg()?, p.arg()?)?);
                }
                _ => return Err(CommandError::Syntax),
            }
        }
        Ok(())
    }

    fn by_radius(&self) -> bool {
        matches!(self.by, Some((Extent::Radius(_), _)))
    }

    fn by_box(&self) -> bool {
        matches!(self.by, Some((Extent::Box { .. }, _)))
    }

    fn store_key(&self) -> Option<&'a [u8]> {
        self.store.map(|store| store.key)
    }

    /// Storing takes no `WITH...` option.
    fn check_store(&self, form: Form) -> CommandResult {
        if self.store.is_some() && (self.with_dist || self.with_hash || self.with_coord) {
            let what = match form {
                Form::SearchStore => "GEOSEARCHSTORE",
                _ => "STORE option in GEORADIUS",
            };
            return Err(CommandError::err(format!(
                "{what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
            )));
        }
        Ok(())
    }

    /// `ANY` needs a `COUNT`.
    fn check_any(&self) -> CommandResult {
        if self.any && self.count.is_none() {
            return Err(CommandError::err(
                "the ANY argument requires COUNT argument",
            ));
        }
        Ok(())
    }

    /// `GEOSEARCH`'s checks once its options are read, in Redis's order;
    /// its centre and area if they pass. `name` is the command as sent.
    fn check_search(
        &self,
        form: Form,
        name: &str,
    ) -> Result<(Centre<'a>, (Extent, f64)), CommandError> {
        self.check_store(form)?;
        let centre = match (self.from_members.last(), self.from_point) {
            (Some(member), _) => Centre::Member(member),
            (None, Some(at)) => Centre::Point(at),
            (None, None) => {
                return Err(CommandError::err(format!(
                    "exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
                )))
            }
        };
        let by = self.by.ok_or_else(|| {
            CommandError::err(format!(
                "exactly one of BYRADIUS and BYBOX can be specified for {name}"
            ))
        })?;
        self.check_any()?;
        Ok((centre, by))
    }

    /// With `ANY`, the search stops at `COUNT` results.
    fn any_limit(&self) -> Option<usize> {
        self.count.filter(|_| self.any)
    }

    /// The results to give, ordered as asked, distances in the search's
    /// unit. A `COUNT` keeps the nearest (`ASC` unless told), but with `ANY`
    /// the first found, in the order asked.
    fn select(&self, mut found: Vec<Found>, to_meters: f64) -> Vec<Found> {
        let keep = self.count.map_or(found.len(), |n| n.min(found.len()));
        let sort = match self.sort {
            Sort::None if self.count.is_some() && !self.any => Sort::Ascending,
            sort => sort,
        };
        if sort != Sort::None {
            order::by_distance(&mut found, keep, sort == Sort::Descending, |f| f.distance);
        }
        found.truncate(keep);
        for f in &mut found {
            f.distance /= to_meters;
        }
        found
    }

    /// Writes the results: members alone, or each with what the `WITH...`
    /// options ask for (distance, then geohash, then coordinates).
    fn reply(&self, out: &mut Reply, found: &[Found]) {
        let extras = [self.with_dist, self.with_hash, self.with_coord]
            .iter()
            .filter(|&&on| on)
            .count();
        out.array(found.len());
        for f in found {
            if extras > 0 {
                out.array(extras + 1);
            }
            out.bulk(&f.member);
            if self.with_dist {
                write_distance(out, f.distance);
            }
            if self.with_hash {
                // Scores found lie in cell ranges, below 2^63.
                out.int(f.score as i64);
            }
            if self.with_coord {
                out.array(2);
                write_coordinate(out, f.at.lon());
                write_coordinate(out, f.at.lat());
            }
        }
    }
}

/// A position found inside a search's shape.
#[derive(Debug)]
struct Found {
    member: Vec<u8>,
    score: f64,
    at: Position,
    /// From the centre: meters while searching, then in the search's unit.
    distance: f64,
}

/// The positions of `zset` inside `shape`, cell by cell in Redis's order,
/// each cell's in score order; with a `limit` (`ANY`), the first that many.
fn search(zset: &ZSet, shape: &Shape, limit: Option<usize>) -> Vec<Found> {
    let mut found = Vec::new();
    let enough = |found: &Vec<Found>| limit.is_some_and(|n| found.len() >= n);
    for cell in shape.cells() {
        if enough(&found) {
            break;
        }
        let (min, max) = cell.score_range();
        let first = zset.rank_where(|score, _| score >= min);
        for (member, score) in zset.iter_from(first, false) {
            if score >= max {
                break;
            }
            let at = decode_score(score);
            if let Some(distance) = shape.contains(at) {
                found.push(Found {
                    member: member.to_vec(),
                    score,
                    at,
                    distance,
                });
            }
            if enough(&found) {
                break;
            }
        }
    }
    found
}

/// Replaces `key` with a sorted set of `items`, announced as `event`; no
/// items delete it, announced as `del` if it existed.
fn save(ctx: &mut Ctx<'_, '_>, key: &[u8], items: &[(Vec<u8>, f64)], event: &'static str) {
    let limits = ctx.limits();
    let table = ctx.locks.table(key);
    let existed = table.remove(key, ctx.now).is_some();
    if items.is_empty() {
        if existed {
            ctx.changed(notify::GENERIC, "del", key);
        }
        return;
    }
    let mut zset = ZSet::default();
    for (member, score) in items {
        zset.insert(member, *score, &limits);
    }
    table.insert(key, Value::ZSet(Box::new(zset)), Expiry::Persist, ctx.now);
    ctx.changed_by(items.len() as u64, notify::ZSET, event, key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_have_four_decimals_rounded_half_to_even() {
        assert_eq!(format_distance(0.0), "0.0000");
        assert_eq!(format_distance(166274.15156960033), "166274.1516");
        // 0.00025 and 0.00035 scale to exactly 2.5 and 3.5.
        assert_eq!(format_distance(0.00025), "0.0002");
        assert_eq!(format_distance(0.00035), "0.0004");
        assert_eq!(format_distance(12.5), "12.5000");
    }

    #[test]
    fn coordinates_print_seventeen_decimals_without_trailing_zeros() {
        assert_eq!(
            format_coordinate(13.361389338970184),
            "13.36138933897018433"
        );
        assert_eq!(format_coordinate(180.0), "180");
        assert_eq!(format_coordinate(-0.0), "0");
        assert_eq!(format_coordinate(-1e-30), "0");
        assert_eq!(format_coordinate(0.5), "0.5");
    }
}
