//! Keyspace notifications (`notify-keyspace-events`): events about keys published
//! on `__keyspace@0__:<key>` (the event as message) and `__keyevent@0__:<event>`
//! (the key as message), so caches can invalidate on writes and expiries.
//! Uses pub/sub and the protocol.

use crate::protocol::OutputLimit;
use crate::pubsub::PubSub;

/// Publish on `__keyspace@0__:<key>` channels.
pub const KEYSPACE: u32 = 1 << 0;
/// Publish on `__keyevent@0__:<event>` channels.
pub const KEYEVENT: u32 = 1 << 1;
/// Generic commands: DEL, EXPIRE, RENAME, ...
pub const GENERIC: u32 = 1 << 2;
/// String commands.
pub const STRING: u32 = 1 << 3;
/// List commands.
pub const LIST: u32 = 1 << 4;
/// Set commands.
pub const SET: u32 = 1 << 5;
/// Hash commands.
pub const HASH: u32 = 1 << 6;
/// Sorted-set commands.
pub const ZSET: u32 = 1 << 7;
/// Keys that expired.
pub const EXPIRED: u32 = 1 << 8;
/// Keys evicted for memory.
pub const EVICTED: u32 = 1 << 9;
/// Stream commands (accepted for compatibility).
pub const STREAM: u32 = 1 << 10;
/// Key misses (accepted for compatibility).
pub const MISS: u32 = 1 << 11;
/// Module events (accepted for compatibility).
pub const MODULE: u32 = 1 << 12;
/// New keys (accepted for compatibility).
pub const NEW: u32 = 1 << 13;

const CLASSES: &[(char, u32)] = &[
    ('K', KEYSPACE),
    ('E', KEYEVENT),
    ('g', GENERIC),
    ('$', STRING),
    ('l', LIST),
    ('s', SET),
    ('h', HASH),
    ('z', ZSET),
    ('x', EXPIRED),
    ('e', EVICTED),
    ('t', STREAM),
    ('m', MISS),
    ('d', MODULE),
    ('n', NEW),
];

/// `A`: every class but key misses and new keys, as in Redis.
const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Parses Redis's flag string (`KEA`, `Ex`, `g$`); `None` for an unknown character.
pub fn parse_flags(text: &str) -> Option<u32> {
    text.chars().try_fold(0, |flags, c| {
        if c == 'A' {
            return Some(flags | ALL);
        }
        CLASSES
            .iter()
            .find(|(ch, _)| *ch == c)
            .map(|(_, f)| flags | f)
    })
}

/// The flag string for `flags`, in Redis's canonical order.
pub fn format_flags(flags: u32) -> String {
    let mut text = String::new();
    let classes = flags & !(KEYSPACE | KEYEVENT);
    if classes & ALL == ALL {
        text.push('A');
    }
    for (c, f) in CLASSES.iter().skip(2) {
        if flags & f != 0 && (classes & ALL != ALL || ALL & f == 0) {
            text.push(*c);
        }
    }
    for (c, f) in &CLASSES[..2] {
        if flags & f != 0 {
            text.push(*c);
        }
    }
    text
}

/// Publishes `event` about `key` if `flags` enable its `class`.
pub fn publish(
    pubsub: &PubSub,
    limit: OutputLimit,
    flags: u32,
    class: u32,
    event: &str,
    key: &[u8],
) {
    if flags & class == 0 || flags & (KEYSPACE | KEYEVENT) == 0 || pubsub.is_empty() {
        return;
    }
    if flags & KEYSPACE != 0 {
        let mut channel = b"__keyspace@0__:".to_vec();
        channel.extend_from_slice(key);
        pubsub.publish(&channel, event.as_bytes(), limit);
    }
    if flags & KEYEVENT != 0 {
        let channel = format!("__keyevent@0__:{event}");
        pubsub.publish(channel.as_bytes(), key, limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_format_like_redis() {
        assert_eq!(parse_flags("Ex"), Some(KEYEVENT | EXPIRED));
        assert_eq!(parse_flags("KEA"), Some(KEYSPACE | KEYEVENT | ALL));
        assert_eq!(parse_flags(""), Some(0));
        assert_eq!(parse_flags("Q"), None);
        assert_eq!(format_flags(parse_flags("Ex").unwrap()), "xE");
        assert_eq!(format_flags(parse_flags("g$K").unwrap()), "g$K");
        assert_eq!(format_flags(parse_flags("KEA").unwrap()), "AKE");
    }
}
