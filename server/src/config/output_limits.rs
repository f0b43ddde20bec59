//! `client-output-buffer-limit`: output-buffer limits per client class, written
//! as in redis.conf (`<class> <hard> <soft> <seconds>`, repeated).

use super::syntax::{Shape, Syntax};
use super::MemSize;
use crate::protocol::number::parse_i64;
use crate::protocol::OutputLimit;

/// The client classes of `client-output-buffer-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientClass {
    /// Ordinary clients.
    Normal,
    /// Replicas (kept for the replication work; shown and settable).
    Replica,
    /// Clients subscribed to pub/sub channels or patterns.
    Pubsub,
}

impl ClientClass {
    const ALL: [ClientClass; 3] = [
        ClientClass::Normal,
        ClientClass::Replica,
        ClientClass::Pubsub,
    ];

    /// The name `CONFIG GET` prints (Redis still prints `slave`).
    fn name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "slave",
            ClientClass::Pubsub => "pubsub",
        }
    }

    /// The name the settings file uses.
    fn file_name(self) -> &'static str {
        match self {
            ClientClass::Replica => "replica",
            other => other.name(),
        }
    }

    fn parse(name: &str) -> Option<ClientClass> {
        match name.to_ascii_lowercase().as_str() {
            "normal" => Some(ClientClass::Normal),
            "slave" | "replica" => Some(ClientClass::Replica),
            "pubsub" => Some(ClientClass::Pubsub),
            _ => None,
        }
    }
}

/// Redis's defaults: normal clients unlimited, replicas 256mb 64mb 60,
/// subscribers 32mb 8mb 60 (indexed by [`ClientClass`]).
pub(super) const REDIS_DEFAULT: [OutputLimit; 3] = [
    limit(0, 0, 0),
    limit(256 << 20, 64 << 20, 60),
    limit(32 << 20, 8 << 20, 60),
];

const fn limit(hard: u64, soft: u64, soft_seconds: u64) -> OutputLimit {
    OutputLimit {
        hard,
        soft,
        soft_seconds,
    }
}

/// The syntax of `client-output-buffer-limit`. A value changes only the classes
/// it names, as in Redis.
pub(super) struct BufferLimits;

impl Syntax<[OutputLimit; 3]> for BufferLimits {
    fn parse(&self, text: &str, current: &[OutputLimit; 3]) -> Result<[OutputLimit; 3], String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.is_empty() || !words.len().is_multiple_of(4) {
            return Err("Wrong number of arguments in buffer limit configuration.".to_string());
        }
        let mut limits = *current;
        for class in words.chunks(4) {
            let which = ClientClass::parse(class[0]).ok_or_else(|| {
                "Invalid client class specified in buffer limit configuration.".to_string()
            })?;
            let bad = || {
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                    .to_string()
            };
            let size = |w: &str| w.parse::<MemSize>().map(|m| m.0).map_err(|_| bad());
            let seconds = parse_i64(class[3].as_bytes())
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(bad)?;
            limits[which as usize] = limit(size(class[1])?, size(class[2])?, seconds);
        }
        Ok(limits)
    }

    fn show(&self, value: &[OutputLimit; 3]) -> String {
        let classes = ClientClass::ALL.map(|class| {
            let l = value[class as usize];
            format!("{} {} {} {}", class.name(), l.hard, l.soft, l.soft_seconds)
        });
        classes.join(" ")
    }

    fn to_file(&self, value: &[OutputLimit; 3]) -> toml::Value {
        let classes = ClientClass::ALL.map(|class| {
            let l = value[class as usize];
            let size = |n| MemSize(n).with_unit();
            format!(
                "{} {} {} {}",
                class.file_name(),
                size(l.hard),
                size(l.soft),
                l.soft_seconds
            )
        });
        toml::Value::String(classes.join(" "))
    }

    fn shape(&self) -> Shape {
        Shape {
            hint: "LIMITS",
            list: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_changes_only_the_classes_it_names() {
        let limits = BufferLimits
            .parse("PUBSUB 2mb 1mb 5", &REDIS_DEFAULT)
            .unwrap();
        assert_eq!(
            limits[ClientClass::Pubsub as usize],
            limit(2 << 20, 1 << 20, 5)
        );
        assert_eq!(limits[..2], REDIS_DEFAULT[..2]);
        assert_eq!(
            BufferLimits.show(&limits),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 2097152 1048576 5"
        );
        let written = BufferLimits.to_file(&limits);
        assert_eq!(
            written.as_str(),
            Some("normal 0 0 0 replica 256mb 64mb 60 pubsub 2mb 1mb 5")
        );
        assert_eq!(
            BufferLimits.parse(written.as_str().unwrap(), &[limit(1, 1, 1); 3]),
            Ok(limits)
        );
    }

    #[test]
    fn refusals_carry_redis_reasons() {
        let refusal = |text| BufferLimits.parse(text, &REDIS_DEFAULT).unwrap_err();
        for text in ["", "pubsub 1mb", "pubsub 1 1 1 normal"] {
            assert_eq!(
                refusal(text),
                "Wrong number of arguments in buffer limit configuration."
            );
        }
        assert_eq!(
            refusal("bogus 1 1 1"),
            "Invalid client class specified in buffer limit configuration."
        );
        for text in [
            "pubsub x 1 1",
            "pubsub 1 1 x",
            "pubsub 1 1 -1",
            "pubsub -1 1 1",
        ] {
            assert_eq!(
                refusal(text),
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
                "{text}"
            );
        }
    }
}
