//! A master serving one replica on the connection that sent `PSYNC`: the reply
//! (`+CONTINUE` from the backlog, or `+FULLRESYNC` and the slot snapshots),
//! then the stream, while reading the replica's acknowledgements (R3, R5-R8).

use std::io::{self, IoSlice};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::buffer::InputBuffer;
use super::socket::Socket;
use crate::config::ClientClass;
use crate::feed::Follower;
use crate::protocol::{Decoded, OutputLimit, RequestDecoder, RequestLimits};
use crate::replication::snapshot::{Outbox, Sync};
use crate::replication::{Psync, Replica};
use crate::session::Session;
use crate::shared::Shared;

/// Bytes of slot snapshots sent per step before the task yields.
const STEP_BYTES: usize = 256 * 1024;
/// Most bytes a replica may send that do not yet form a request (it sends
/// only short acknowledgements).
const MAX_INPUT: usize = 64 * 1024;
/// How often the acknowledgements' age is checked against `repl-timeout`.
const TIMEOUT_CHECK: Duration = Duration::from_millis(500);

/// How much may wait for the replica before the next slot's snapshot is
/// taken (R7): a quarter of its class's limit, so snapshots never push a
/// replica that keeps up with the stream over it.
fn snapshot_threshold(limit: OutputLimit) -> usize {
    let base = match (limit.soft, limit.hard) {
        (0, 0) => 64 << 20,
        (0, hard) => hard,
        (soft, _) => soft,
    };
    usize::try_from(base / 4)
        .unwrap_or(usize::MAX)
        .clamp(256 << 10, 16 << 20)
}

/// Serves the replica that sent `PSYNC` on this connection (see
/// `Session::replconf`) until it leaves, is killed, or stops acknowledging.
pub async fn serve(
    shared: &Shared,
    socket: &Socket,
    input: &mut InputBuffer,
    session: &Session,
) -> io::Result<()> {
    let Some((replid, offset)) = session.replconf.psync.clone() else {
        return Ok(());
    };
    let handle = &session.handle;
    let kill = handle.kill.clone();
    let replication = &shared.replication;
    let feed = &shared.data.feed;
    let limit = shared.config.output_limit(ClientClass::Replica);
    let out = Outbox::new(limit, kill.clone());
    let follower = || -> Follower {
        let out = out.clone();
        Box::new(move |_, bytes, _| out.push(bytes))
    };
    feed.keep_backlog(shared.config.replication().backlog_size);
    let ids = replication.ids();
    let continued = match replication.psync(feed, &replid, offset) {
        Psync::Continue(from) => feed.follow_from(from, follower()).ok(),
        Psync::Full => None,
    };
    let (follow_id, header, sync) = match continued {
        Some(id) => (id, format!("+CONTINUE {}\r\n", ids.replid), None),
        None => {
            let sync = replication.syncs.start(out.clone());
            let (id, start) = feed.follow(follower());
            // Snapshots carry the tokens of live locks only; the bound covers
            // every token issued (L4).
            shared.data.announce_token_bound();
            crate::write::functions_for_full_sync(&shared.data, &shared.functions.dump());
            // Slots being imported stay hidden on the new replica too (M9).
            let keyspace = &shared.data.keyspace;
            if keyspace.any_hidden() {
                let hidden = (0..crate::keyspace::SLOTS as u16).filter(|&s| keyspace.is_hidden(s));
                shared.data.feed.append_hidden(hidden, true);
            }
            (
                id,
                format!("+FULLRESYNC {} {start}\r\n", ids.replid),
                Some(sync),
            )
        }
    };
    let stats = &replication.stats;
    match (&sync, replid.as_slice()) {
        (None, _) => &stats.partial_ok,
        (Some(_), b"?") => &stats.full,
        (Some(_), _) => {
            stats.partial_err.fetch_add(1, Relaxed);
            &stats.full
        }
    }
    .fetch_add(1, Relaxed);
    let port = session
        .replconf
        .listening_port
        .unwrap_or(handle.addr.port());
    let replica = replication.replicas.add(
        handle.id,
        handle.addr.ip(),
        port,
        session.replconf.node,
        sync.is_none(),
        kill.clone(),
    );
    handle.set_activity(crate::session::Activity {
        replica: true,
        ..handle.activity()
    });
    tracing::info!(
        replica = %handle.addr,
        full = sync.is_some(),
        "replica {} accepted",
        if sync.is_some() { "full sync" } else { "partial resync" }
    );
    let mut stream = Stream {
        shared,
        socket,
        input,
        out: &out,
        kill: &kill,
        replica: &replica,
        decoder: RequestDecoder::new(),
        last_input: Instant::now(),
    };
    let result = stream
        .run(header.as_bytes(), sync.clone(), snapshot_threshold(limit))
        .await;
    feed.unfollow(follow_id);
    if let Some(sync) = &sync {
        replication.syncs.end(sync);
    }
    replication.replicas.remove(&replica);
    tracing::info!(replica = %handle.addr, "replica connection closed");
    result
}

/// One replica's connection, once it became the stream.
struct Stream<'a> {
    shared: &'a Shared,
    socket: &'a Socket,
    input: &'a mut InputBuffer,
    out: &'a Outbox,
    kill: &'a CancellationToken,
    replica: &'a Replica,
    decoder: RequestDecoder,
    last_input: Instant,
}

impl Stream<'_> {
    async fn run(
        &mut self,
        header: &[u8],
        mut sync: Option<std::sync::Arc<Sync>>,
        threshold: usize,
    ) -> io::Result<()> {
        if !self.write_all(header).await? {
            return Ok(());
        }
        let mut next_slot = 0;
        loop {
            if !self.read_acks() {
                tracing::warn!("disconnecting a replica that sent no valid acknowledgement");
                return Ok(());
            }
            if let Some(s) = &sync {
                if self.out.len() < threshold {
                    let keyspace = &self.shared.data.keyspace;
                    let now = self.shared.clock.now_ms();
                    if s.step(keyspace, &mut next_slot, STEP_BYTES, now) {
                        self.shared.replication.syncs.end(s);
                        self.replica.online();
                        sync = None;
                        tracing::info!("full sync: every slot sent to the replica");
                    }
                }
            }
            let snapshotting = sync.is_some() && self.out.len() < threshold;
            let timeout = Duration::from_millis(self.shared.config.replication().timeout_ms);
            if self.last_input.elapsed() > timeout {
                tracing::warn!("disconnecting a timed out replica");
                return Ok(());
            }
            self.input.reserve(4096, 0);
            // Reading first, so acknowledgements are taken however busy the
            // stream is.
            let mut send = false;
            tokio::select! {
                biased;
                _ = self.kill.cancelled() => return Ok(()),
                n = self.socket.read(self.input) => {
                    if n? == 0 {
                        return Ok(());
                    }
                    self.last_input = Instant::now();
                }
                _ = self.out.ready() => send = true,
                _ = tokio::task::yield_now(), if snapshotting => {}
                _ = tokio::time::sleep(TIMEOUT_CHECK) => {}
            }
            if send && !self.write_all(&self.out.take()).await? {
                return Ok(());
            }
            if sync.is_some() {
                // A step holds this worker while it encodes; its other
                // clients run between steps (no stop-the-world, R5). The
                // select's yield does not do it: a step leaves the outbox
                // ready, and a ready branch wins without yielding.
                tokio::task::yield_now().await;
            }
        }
    }

    /// Takes the replica's `REPLCONF ACK offset`s from the input; false if
    /// it sent something that is no request, or too much of one.
    fn read_acks(&mut self) -> bool {
        let limits = RequestLimits {
            max_bulk_len: MAX_INPUT as u64,
            authenticated: true,
        };
        let mut consumed = 0;
        let result = loop {
            let buf = &self.input.filled()[consumed..];
            let used = match self.decoder.decode(buf, limits) {
                Ok(Decoded::Request { consumed: used }) => used,
                Ok(Decoded::Incomplete) => break buf.len() <= MAX_INPUT,
                Err(_) => break false,
            };
            let args = self.decoder.args(buf);
            let is_ack = args.len() >= 3
                && args
                    .get(0)
                    .is_some_and(|a| a.eq_ignore_ascii_case(b"replconf"))
                && args.get(1).is_some_and(|a| a.eq_ignore_ascii_case(b"ack"));
            if is_ack {
                let offset = args.get(2).and_then(crate::protocol::number::parse_i64);
                if let Some(offset) = offset.and_then(|o| u64::try_from(o).ok()) {
                    let may_answer = self.shared.cluster.may_grant();
                    self.shared
                        .replication
                        .replicas
                        .ack(self.replica, offset, may_answer);
                }
            }
            self.decoder.release();
            consumed += used;
        };
        self.input.consume(consumed);
        result
    }

    /// Writes `bytes` whole; false if the replica was killed meanwhile.
    async fn write_all(&self, mut bytes: &[u8]) -> io::Result<bool> {
        while !bytes.is_empty() {
            match self.socket.try_write(&[IoSlice::new(bytes)])? {
                Some(n) => bytes = &bytes[n..],
                None => tokio::select! {
                    biased;
                    _ = self.kill.cancelled() => return Ok(false),
                    ready = self.socket.writable() => ready?,
                },
            }
        }
        Ok(true)
    }
}
