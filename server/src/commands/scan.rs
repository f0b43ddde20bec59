//! Cursor walks over one collection (`HSCAN`, `SSCAN`, `ZSCAN`).
//!
//! A compact collection is returned whole with cursor 0, as Redis does for its
//! listpacks and intsets. A large one is walked by position from the highest down:
//! removals move the last element into the hole, an already visited position, so
//! every element present for the whole walk is returned at least once.

use super::{CommandError, Parser};
use crate::protocol::number::parse_u64;
use crate::protocol::Reply;
use crate::util::glob::glob_match;

/// `cursor [MATCH pattern] [COUNT count]` and optional flags.
#[derive(Debug)]
pub struct CursorArgs<'a> {
    /// Where the previous call stopped (0: start).
    pub cursor: u64,
    /// Only elements matching this glob.
    pub pattern: Option<&'a [u8]>,
    /// About how many elements to look at.
    pub count: usize,
}

impl<'a> CursorArgs<'a> {
    /// Parses the cursor and options; `flags` are extra valueless options allowed
    /// (returned when present).
    pub fn parse(
        p: &mut Parser<'a>,
        flags: &[&'static str],
    ) -> Result<(Self, Vec<&'static str>), CommandError> {
        let cursor = parse_u64(p.arg()?).ok_or_else(|| CommandError::err("invalid cursor"))?;
        let mut args = CursorArgs {
            cursor,
            pattern: None,
            count: 10,
        };
        let mut seen = Vec::new();
        while let Some(option) = p.next_keyword() {
            match option.as_str() {
                "MATCH" => args.pattern = Some(p.arg()?).filter(|pat| *pat != b"*"),
                "COUNT" => {
                    let count = p.next_i64()?;
                    if count < 1 {
                        return Err(CommandError::Syntax);
                    }
                    args.count = count as usize;
                }
                other => match flags.iter().find(|f| **f == other) {
                    Some(flag) => seen.push(*flag),
                    None => return Err(CommandError::Syntax),
                },
            }
        }
        Ok((args, seen))
    }

    /// True if `item` passes the MATCH filter.
    pub fn matches(&self, item: &[u8]) -> bool {
        self.pattern.is_none_or(|p| glob_match(p, item, false))
    }

    /// Visits positions of a collection of `len` elements; returns the next
    /// cursor (0 when done).
    pub fn walk(&self, len: usize, compact: bool, mut visit: impl FnMut(usize)) -> u64 {
        if compact {
            (0..len).for_each(visit);
            return 0;
        }
        let mut pos = match self.cursor {
            0 => len as u64,
            c => c.min(len as u64),
        };
        let mut budget = self.count;
        while pos > 0 && budget > 0 {
            pos -= 1;
            visit(pos as usize);
            budget -= 1;
        }
        pos
    }
}

/// A cursor reply: `[cursor, [items]]`.
#[derive(Debug, Default)]
pub struct ScanReply {
    /// The next cursor.
    pub cursor: u64,
    /// The elements (pairs flattened).
    pub items: Vec<Vec<u8>>,
}

impl ScanReply {
    /// Writes the reply.
    pub fn write(&self, out: &mut Reply) {
        out.array(2);
        out.bulk(itoa::Buffer::new().format(self.cursor).as_bytes());
        out.array(self.items.len());
        for item in &self.items {
            out.bulk(item);
        }
    }
}
