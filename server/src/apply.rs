//! Applying a write feed (`feed::Feed`) to a server's dataset with no client
//! connection: what a replica or a migration target does with the records it
//! receives. Runs the records as commands (but for `RINGKV.TOKENS`, a fencing
//! token bound that only raises the counter), so it sits above `commands`;
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
        if args
            .get(0)
            .is_some_and(|name| name.eq_ignore_ascii_case(crate::feed::TOKENS))
        {
            return observe_bound(shared, args);
        }
        let errors = self.session.stats.error_replies;
        self.session.begin_batch(&*shared.clock);
        let blocked = commands::execute(shared, &mut self.session, &mut self.out, args);
        debug_assert!(blocked.is_none(), "feed records never block");
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
