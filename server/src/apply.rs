//! Applying a write feed (`feed::Feed`) to a server's dataset with no client
//! connection: what a replica or a migration target does with the records it
//! receives. Runs the records as commands, so it sits above `commands`; uses them,
//! sessions and the shared node state.

use crate::commands;
use crate::protocol::{Decoded, Protocol, ProtocolError, Reply, RequestDecoder, RequestLimits};
use crate::session::{ClientHandle, Session};
use crate::shared::Shared;

/// Why applying a feed stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The bytes are not RESP commands.
    #[error("malformed write feed: {0}")]
    Malformed(#[from] ProtocolError),
    /// The server refused a record: the feed does not fit this dataset.
    #[error("write feed record refused: {record}: {reply}")]
    Refused {
        /// The record, as text.
        record: String,
        /// The server's reply.
        reply: String,
    },
}

/// Applies write-feed records to one server, keeping a record cut in two
/// between calls.
#[derive(Debug)]
pub struct Applier {
    session: Session,
    decoder: RequestDecoder,
    pending: Vec<u8>,
    out: Reply,
}

impl Default for Applier {
    fn default() -> Self {
        Applier::new()
    }
}

impl Applier {
    /// An applier with nothing pending.
    pub fn new() -> Self {
        Applier {
            session: Session::new(ClientHandle::detached(), true),
            decoder: RequestDecoder::new(),
            pending: Vec::new(),
            out: Reply::new(Protocol::Resp2),
        }
    }

    /// Applies every complete record in `bytes` (after what an earlier call
    /// left incomplete) to `shared`'s dataset, in order.
    pub fn apply(&mut self, shared: &Shared, bytes: &[u8]) -> Result<(), ApplyError> {
        self.pending.extend_from_slice(bytes);
        let limits = RequestLimits {
            max_bulk_len: u64::MAX,
            authenticated: true,
        };
        let mut consumed = 0;
        let result = loop {
            let buf = &self.pending[consumed..];
            let used = match self.decoder.decode(buf, limits) {
                Ok(Decoded::Incomplete) => break Ok(()),
                Ok(Decoded::Request { consumed: used }) => used,
                Err(err) => break Err(err.into()),
            };
            let args = self.decoder.args(buf);
            let errors = self.session.stats.error_replies;
            self.session.begin_batch(&*shared.clock);
            let blocked = commands::execute(shared, &mut self.session, &mut self.out, args);
            debug_assert!(blocked.is_none(), "feed records never block");
            if self.session.stats.error_replies != errors {
                let record: Vec<String> = args
                    .iter()
                    .map(|a| String::from_utf8_lossy(&a[..a.len().min(64)]).into_owned())
                    .collect();
                let reply = std::mem::take(&mut self.out).into_vec();
                let reply = String::from_utf8_lossy(&reply).trim_end().to_string();
                break Err(ApplyError::Refused {
                    record: record.join(" "),
                    reply,
                });
            }
            self.decoder.release();
            self.out.clear();
            consumed += used;
        };
        self.out.clear();
        self.pending.drain(..consumed);
        shared.stats.flush(&mut self.session.stats);
        result
    }
}
