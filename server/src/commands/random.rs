//! Random picks for `HRANDFIELD`, `SRANDMEMBER` and `ZRANDMEMBER`.
//!
//! A negative count asks for that many picks with repeats, however small the
//! collection, so the picks are never collected: each is drawn as the reply is
//! written, and drawing stops as soon as the reply passes the client's output
//! limit (the command then fails, see `commands::run`). A client can thus ask for
//! 10^15 picks without the server allocating for them.

use rand::RngExt;

use super::{CommandError, Parser};
use crate::protocol::{Protocol, Reply};

/// Redis's range error for a count outside `-i64::MAX..=i64::MAX`.
const COUNT_RANGE: &str =
    "value is out of range, value must between -9223372036854775807 and 9223372036854775807";

/// Reads the optional `count [WITHVALUES|WITHSCORES]` of a random-pick command,
/// with Redis's range checks: a count of `i64::MIN` is refused, and with the
/// keyword (each pick then answers two elements) so is any beyond half the range.
/// `keyword` is `None` for `SRANDMEMBER`, which has none.
pub fn parse_count(
    p: &mut Parser<'_>,
    keyword: Option<&str>,
) -> Result<(Option<i64>, bool), CommandError> {
    if p.remaining() == 0 {
        return Ok((None, false));
    }
    let count = p.next_i64()?;
    if count == i64::MIN {
        return Err(CommandError::err(COUNT_RANGE));
    }
    let paired = keyword.is_some_and(|k| p.eat(k));
    // Leftovers are a syntax error before the range check below, as in Redis.
    p.finish()?;
    if paired && count.unsigned_abs() > (i64::MAX / 2) as u64 {
        return Err(CommandError::err("value is out of range"));
    }
    Ok((Some(count), paired))
}

/// The positions a random-pick command answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picks {
    /// No count given: one position, or none from a missing collection.
    One(Option<usize>),
    /// A positive count: that many distinct positions (all, if fewer).
    Distinct(Vec<usize>),
    /// A negative count: `count` positions of `0..len`, drawn independently.
    Repeated {
        /// Size of the collection (never 0).
        len: usize,
        /// Number of picks.
        count: u64,
    },
}

impl Picks {
    /// The picks for a `count` (validated by [`parse_count`]) from a collection
    /// of `len` elements.
    pub fn new(len: usize, count: Option<i64>) -> Picks {
        let mut rng = rand::rng();
        match count {
            None => Picks::One((len > 0).then(|| rng.random_range(0..len))),
            Some(0) => Picks::Distinct(Vec::new()),
            _ if len == 0 => Picks::Distinct(Vec::new()),
            Some(n) if n < 0 => Picks::Repeated {
                len,
                count: n.unsigned_abs(),
            },
            Some(n) => {
                let n = (n as u64).min(len as u64) as usize;
                Picks::Distinct(rand::seq::index::sample(&mut rng, len, n).into_vec())
            }
        }
    }

    /// How many positions [`Picks::each`] visits (if it is not stopped).
    pub fn len(&self) -> u64 {
        match self {
            Picks::One(pick) => pick.is_some() as u64,
            Picks::Distinct(v) => v.len() as u64,
            Picks::Repeated { count, .. } => *count,
        }
    }

    /// Writes the reply: without a count, the one pick or nil; with one, an
    /// array of the picks. `paired` picks (WITHVALUES, WITHSCORES) are two
    /// elements each, nested as a pair in RESP3. `element` writes one pick
    /// (both elements when paired); writing stops once the reply is full.
    pub fn reply(
        &self,
        out: &mut Reply,
        counted: bool,
        paired: bool,
        mut element: impl FnMut(&mut Reply, usize),
    ) {
        let nested = paired && out.protocol() == Protocol::Resp3;
        let len = self.len() as usize;
        match (counted, paired && !nested) {
            (false, _) if len == 0 => out.null(),
            (false, _) => {}
            (true, true) => out.array(2 * len),
            (true, false) => out.array(len),
        }
        self.each(|i| {
            if nested {
                out.array(2);
            }
            element(out, i);
            !out.is_full()
        });
    }

    /// Calls `visit` with each position in reply order until it returns false
    /// (the reply is full).
    pub fn each(&self, mut visit: impl FnMut(usize) -> bool) {
        match self {
            Picks::One(pick) => {
                if let Some(i) = pick {
                    visit(*i);
                }
            }
            Picks::Distinct(v) => {
                for &i in v {
                    if !visit(i) {
                        return;
                    }
                }
            }
            Picks::Repeated { len, count } => {
                let mut rng = rand::rng();
                for _ in 0..*count {
                    if !visit(rng.random_range(0..*len)) {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Args;

    fn positions(picks: &Picks) -> Vec<usize> {
        let mut out = Vec::new();
        picks.each(|i| {
            out.push(i);
            true
        });
        out
    }

    fn parse(args: &[&[u8]], keyword: Option<&str>) -> Result<(Option<i64>, bool), CommandError> {
        let mut spans = Vec::new();
        let mut src = Vec::new();
        for a in std::iter::once(&b"CMD"[..]).chain(std::iter::once(&b"key"[..])) {
            spans.push((src.len(), src.len() + a.len()));
            src.extend_from_slice(a);
        }
        for a in args {
            spans.push((src.len(), src.len() + a.len()));
            src.extend_from_slice(a);
        }
        let mut p = Parser::new(Args::new(&src, &spans), 1);
        p.arg()?;
        parse_count(&mut p, keyword)
    }

    #[test]
    fn counts_follow_redis_rules() {
        assert_eq!(Picks::new(0, None).len(), 0);
        assert_eq!(Picks::new(5, None).len(), 1);
        let mut all = positions(&Picks::new(5, Some(10)));
        all.sort();
        assert_eq!(all, [0, 1, 2, 3, 4]);
        let mut distinct = positions(&Picks::new(100, Some(10)));
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        let repeats = positions(&Picks::new(2, Some(-50)));
        assert_eq!(repeats.len(), 50);
        assert!(repeats.iter().all(|&i| i < 2));
        assert_eq!(Picks::new(0, Some(-50)).len(), 0);
    }

    #[test]
    fn a_huge_negative_count_allocates_nothing_and_stops_when_told() {
        let picks = Picks::new(3, Some(-1_000_000_000_000_000));
        assert_eq!(picks.len(), 1_000_000_000_000_000);
        let mut seen = 0;
        picks.each(|_| {
            seen += 1;
            seen < 1000
        });
        assert_eq!(seen, 1000);
    }

    #[test]
    fn count_ranges_match_redis() {
        assert_eq!(parse(&[], None).unwrap(), (None, false));
        assert_eq!(parse(&[b"-3"], None).unwrap(), (Some(-3), false));
        let min = b"-9223372036854775808";
        assert_eq!(
            parse(&[min], None).unwrap_err().to_string(),
            format!("ERR {COUNT_RANGE}")
        );
        let max = b"9223372036854775807";
        assert_eq!(
            parse(&[max], Some("WITHVALUES")).unwrap(),
            (Some(i64::MAX), false)
        );
        assert_eq!(
            parse(&[max, b"withvalues"], Some("WITHVALUES"))
                .unwrap_err()
                .to_string(),
            "ERR value is out of range"
        );
        let half = b"-4611686018427387903";
        assert_eq!(
            parse(&[half, b"WITHSCORES"], Some("WITHSCORES")).unwrap(),
            (Some(-(i64::MAX / 2)), true)
        );
        assert!(parse(
            &[b"-4611686018427387904", b"WITHSCORES"],
            Some("WITHSCORES")
        )
        .is_err());
        assert_eq!(
            parse(&[b"1", b"nope"], Some("WITHSCORES")).unwrap_err(),
            CommandError::Syntax
        );
        assert_eq!(parse(&[b"x"], None).unwrap_err(), CommandError::NotInteger);
    }
}
