//! Applying a write feed (`feed::Feed`) to a server's dataset with no client
//! connection: what a replica or a migration target does with the records it
//! receives. Runs the records as commands (but for `RINGKV.TOKENS`, a fencing
//! token bound that only raises the counter, and `RINGKV.HIDE`/`SHOW`, which
//! hide slots being imported), so it sits above `commands`;
//! uses them, sessions and the shared node state.

use crate::commands;
use crate::protocol::{Args, Protocol, Reply};
use crate::session::{ClientHandle, Session};
use crate::shared::Shared;

/// Why a record was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The server refused the record: the feed does not fit this dataset.
    #[error("write feed record refused: {record}: {reply}")]
    Refused {
        /// The record, as text.
        record: String,
        /// The server's reply.
        reply: String,
    },
}

/// Applies write-feed records to one server, one decoded record at a time.
#[derive(Debug)]
pub struct Applier {
    session: Session,
    out: Reply,
}

impl Default for Applier {
    fn default() -> Self {
        Applier::new()
    }
}

impl Applier {
    /// An applier in no transaction.
    pub fn new() -> Self {
        let mut session = Session::new(ClientHandle::detached(), true);
        session.master_link = true;
        Applier {
            session,
            out: Reply::new(Protocol::Resp2),
        }
    }

    /// Applies one record to `shared`'s dataset. A record the dataset refuses
    /// (its reply is an error) is reported; what follows it still applies.
    pub fn run(&mut self, shared: &Shared, args: Args<'_>) -> Result<(), ApplyError> {
        let name = args.get(0).unwrap_or_default();
        if name.eq_ignore_ascii_case(crate::feed::TOKENS) {
            return observe_bound(shared, args);
        }
        let hide = name.eq_ignore_ascii_case(crate::feed::HIDE);
        if hide || name.eq_ignore_ascii_case(crate::feed::SHOW) {
            return hide_slots(shared, args, hide);
        }
        let errors = self.session.stats.error_replies;
        self.session.begin_batch(&*shared.clock);
        let executed = commands::execute(shared, &mut self.session, &mut self.out, args);
        debug_assert!(
            matches!(executed, commands::Executed::Done),
            "feed records never block"
        );
        let result = if self.session.stats.error_replies == errors {
            Ok(())
        } else {
            let record: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(&a[..a.len().min(64)]).into_owned())
                .collect();
            let reply = String::from_utf8_lossy(&std::mem::take(&mut self.out).into_vec())
                .trim_end()
                .to_string();
            Err(ApplyError::Refused {
                record: record.join(" "),
                reply,
            })
        };
        self.out.clear();
        result
    }

    /// Adds the applied records' counters to the server's.
    pub fn flush_stats(&mut self, shared: &Shared) {
        shared.stats.flush(&mut self.session.stats);
    }
}

/// `RINGKV.HIDE <slot>...` / `RINGKV.SHOW <slot>...`: the master imports
/// these slots (M9), so they stay out of sight here too, or no longer does.
fn hide_slots(shared: &Shared, args: Args<'_>, hide: bool) -> Result<(), ApplyError> {
    let keyspace = &shared.data.keyspace;
    for arg in args.iter().skip(1) {
        let slot = crate::protocol::number::parse_u64(arg)
            .and_then(|s| u16::try_from(s).ok())
            .filter(|&s| usize::from(s) < crate::keyspace::SLOTS);
        let Some(slot) = slot else {
            return Err(ApplyError::Refused {
                record: "RINGKV.HIDE".to_owned(),
                reply: "ERR invalid slot".to_owned(),
            });
        };
        match hide {
            true => keyspace.hide_slot(slot),
            false => keyspace.show_slot(slot),
        }
    }
    Ok(())
}

/// `RINGKV.TOKENS <bound>`: the master reserved fencing tokens up to `bound`
/// (docs/CLUSTER.md, L4), so this node, once promoted, issues only above it.
fn observe_bound(shared: &Shared, args: Args<'_>) -> Result<(), ApplyError> {
    let bound = args
        .get(1)
        .and_then(crate::protocol::number::parse_i64)
        .and_then(|b| u64::try_from(b).ok());
    match bound.map(|b| shared.data.keyspace.observe_token(b)) {
        Some(Ok(())) if args.len() == 2 => Ok(()),
        _ => Err(ApplyError::Refused {
            record: format!(
                "RINGKV.TOKENS {}",
                String::from_utf8_lossy(args.get(1).unwrap_or_default())
            ),
            reply: "ERR invalid token bound".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::cluster::ClusterHandle;
    use crate::config::{Config, LiveConfig};
    use crate::protocol::encode_command;

    fn shared() -> Shared {
        Shared::new(
            LiveConfig::new(&Config::default(), None),
            Arc::new(ManualClock::new(1_000_000)),
            0,
            crate::commands::table::registry().len(),
            ClusterHandle::standalone(),
        )
    }

    /// Runs `args` as one record.
    fn run(applier: &mut Applier, shared: &Shared, args: &[&[u8]]) -> Result<(), ApplyError> {
        let mut bytes = Vec::new();
        encode_command(&mut bytes, args);
        let mut decoder = crate::protocol::RequestDecoder::new();
        let limits = crate::protocol::RequestLimits {
            max_bulk_len: u64::MAX,
            authenticated: true,
        };
        decoder.decode(&bytes, limits).unwrap();
        applier.run(shared, decoder.args(&bytes))
    }

    #[test]
    fn a_masters_hidden_slots_are_hidden_here_until_shown() {
        let shared = shared();
        let mut applier = Applier::new();
        let slot = crate::keyspace::key_slot(b"k");
        let slot_text = slot.to_string();
        run(&mut applier, &shared, &[b"SET", b"k", b"v"]).unwrap();
        assert_eq!(shared.data.keyspace.len(), 1);
        run(
            &mut applier,
            &shared,
            &[crate::feed::HIDE, slot_text.as_bytes()],
        )
        .unwrap();
        assert_eq!(shared.data.keyspace.len(), 0, "hidden");
        run(
            &mut applier,
            &shared,
            &[crate::feed::SHOW, slot_text.as_bytes()],
        )
        .unwrap();
        assert_eq!(shared.data.keyspace.len(), 1, "shown");
        assert!(run(&mut applier, &shared, &[crate::feed::HIDE, b"16384"]).is_err());
    }
}
