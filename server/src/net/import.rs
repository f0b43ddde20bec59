//! A migration target's end of an atomic slot migration (docs/CLUSTER.md,
//! M8-M10): the connection that said `CLUSTER SYNCSLOTS BEGIN` is the
//! source's stream. Its records are applied as a replica applies its
//! master's (through this node's write path, so its own replicas follow),
//! the applied offset is acknowledged every 100 ms, and `RINGKV.HANDOFF`
//! makes this node claim the slots. A stream that ends any other way drops
//! what it brought.

use std::io::{self, IoSlice};
use std::time::{Duration, Instant};

use super::buffer::InputBuffer;
use super::socket::Socket;
use crate::apply::Applier;
use crate::cluster::machine::AdminError;
use crate::protocol::{Decoded, RequestDecoder, RequestLimits};
use crate::session::Session;
use crate::shared::Shared;

/// The record that ends the stream: `RINGKV.HANDOFF <offset> <epoch>`, the
/// stream's offset before it and the source's current epoch then (the
/// target's claim goes above it, M10).
pub const HANDOFF: &[u8] = b"RINGKV.HANDOFF";
/// How often the applied offset is acknowledged.
const ACK_EVERY: Duration = Duration::from_millis(100);
/// How often a claim waiting for this master's own handoff is retried.
const CLAIM_RETRY: Duration = Duration::from_millis(2);

/// How applying the stream ended.
enum End {
    /// The source handed off at this offset, with this current epoch.
    Handoff(u64, u64),
    /// The stream failed, for this reason.
    Failed(String),
}

/// Serves the import this connection began (see `Session::import`) until
/// its handoff or its end.
pub async fn serve(
    shared: &Shared,
    socket: &Socket,
    input: &mut InputBuffer,
    session: &Session,
) -> io::Result<()> {
    let Some(id) = session.import else {
        return Ok(());
    };
    let Some(import) = shared.migrations.import(id) else {
        return Ok(());
    };
    let keyspace = &shared.data.keyspace;
    let now = shared.clock.now_ms();
    // Whatever an earlier, failed import left goes first; then the slots
    // stay out of sight until the handoff (M9).
    for slot in import.slots.iter() {
        crate::write::drop_slot(&shared.data, slot, now);
        keyspace.hide_slot(slot);
    }
    // This node's replicas hide them too.
    shared.data.feed.append_hidden(import.slots.iter(), true);
    tracing::info!(
        source = %import.source,
        slots = import.slots.len(),
        "slot migration: importing"
    );
    let mut stream = Stream {
        shared,
        socket,
        input,
        decoder: RequestDecoder::new(),
        applier: Applier::new(),
        applied: 0,
        records: 0,
    };
    let end = stream.run(id, session, &import.stop).await;
    shared
        .migrations
        .imported(id, stream.applied, stream.records);
    let claimed = match end {
        End::Handoff(offset, source_epoch) if offset == stream.applied => {
            claim(shared, id, source_epoch).await
        }
        End::Handoff(offset, _) => {
            tracing::warn!(
                offset,
                applied = stream.applied,
                "slot migration: the handoff does not match what was applied"
            );
            None
        }
        End::Failed(why) => {
            tracing::warn!(source = %import.source, "slot migration: import failed: {why}");
            None
        }
    };
    let keep = shared.config.slot_migration().log_max_len;
    let now = shared.clock.now_ms();
    match claimed {
        Some(epoch) => {
            for slot in import.slots.iter() {
                keyspace.show_slot(slot);
            }
            shared.data.feed.append_hidden(import.slots.iter(), false);
            tracing::info!(
                epoch,
                slots = import.slots.len(),
                "slot migration: slots taken over"
            );
            stream
                .write(format!("+HANDOFF {epoch}\r\n").as_bytes())
                .await
        }
        None => {
            // The keys go as a slot lost to another master's go; the slots
            // stay hidden while they do, so nothing half-deleted shows.
            shared.migrations.drop_import(id, now, keep);
            for slot in import.slots.iter() {
                crate::write::drop_slot(&shared.data, slot, now);
                keyspace.show_slot(slot);
            }
            shared.data.feed.append_hidden(import.slots.iter(), false);
            Ok(())
        }
    }
}

/// Claims import `id`'s slots (M10), unless the source asked about the
/// outcome first. While this master hands slots off itself its epoch is held
/// and the claim must wait; that hold ends with the other handoff's answer,
/// normally within milliseconds, so the claim is retried for up to half the
/// pause timeout (the source's writes wait meanwhile) before the import is
/// dropped and the source keeps its slots.
async fn claim(shared: &Shared, id: u64, source_epoch: u64) -> Option<u64> {
    let patience = shared.config.slot_migration().pause_timeout_ms / 2;
    let deadline = Instant::now() + Duration::from_millis(patience);
    loop {
        let keep = shared.config.slot_migration().log_max_len;
        let mut refused = None;
        let epoch = shared
            .migrations
            .claim_import(id, shared.clock.now_ms(), keep, |slots| {
                match shared
                    .cluster
                    .step(|c, now| c.claim_import(slots, source_epoch, now))?
                {
                    Ok(epoch) => Some(epoch),
                    Err(err) => {
                        refused = Some(err);
                        None
                    }
                }
            });
        match refused {
            Some(AdminError::HandoffInFlight) if Instant::now() < deadline => {
                tokio::time::sleep(CLAIM_RETRY).await;
            }
            Some(err) => {
                tracing::warn!("slot migration: the claim was refused: {err}");
                return None;
            }
            None => return epoch,
        }
    }
}

/// The stream of one import.
struct Stream<'a> {
    shared: &'a Shared,
    socket: &'a Socket,
    input: &'a mut InputBuffer,
    decoder: RequestDecoder,
    applier: Applier,
    /// Stream bytes applied.
    applied: u64,
    /// Records applied.
    records: u64,
}

impl Stream<'_> {
    async fn run(
        &mut self,
        id: u64,
        session: &Session,
        stop: &tokio_util::sync::CancellationToken,
    ) -> End {
        let kill = session.handle.kill.clone();
        let timeout = Duration::from_millis(self.shared.config.replication().timeout_ms);
        let mut acks = tokio::time::interval(ACK_EVERY);
        let mut last_input = Instant::now();
        loop {
            match self.apply() {
                Ok(Some((offset, epoch))) => return End::Handoff(offset, epoch),
                Ok(None) => {}
                Err(why) => return End::Failed(why),
            }
            self.input.reserve(64 * 1024, 0);
            tokio::select! {
                biased;
                _ = kill.cancelled() => return End::Failed("connection killed".into()),
                _ = stop.cancelled() => return End::Failed("stopped by the source".into()),
                // Before reads, so a busy stream is still acknowledged.
                _ = acks.tick() => {
                    self.shared.migrations.imported(id, self.applied, self.records);
                    let ack = format!("+ACK {}\r\n", self.applied);
                    if let Err(err) = self.write(ack.as_bytes()).await {
                        return End::Failed(err.to_string());
                    }
                    if last_input.elapsed() > timeout {
                        return End::Failed("no data within repl-timeout".into());
                    }
                }
                n = self.socket.read(self.input) => match n {
                    Ok(0) => return End::Failed("the source closed the stream".into()),
                    Ok(_) => last_input = Instant::now(),
                    Err(err) => return End::Failed(err.to_string()),
                },
            }
        }
    }

    /// Applies every complete record in the input. Returns the handoff's
    /// offset and epoch if it came (nothing after it is applied).
    fn apply(&mut self) -> Result<Option<(u64, u64)>, String> {
        let limits = RequestLimits {
            max_bulk_len: u64::MAX,
            authenticated: true,
        };
        let mut consumed = 0;
        let mut handoff = None;
        while handoff.is_none() {
            let buf = &self.input.filled()[consumed..];
            let used = match self.decoder.decode(buf, limits) {
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Request { consumed: used }) => used,
                Err(err) => return Err(format!("malformed stream: {err}")),
            };
            let args = self.decoder.args(buf);
            if args.get(0).is_some_and(|n| n.eq_ignore_ascii_case(HANDOFF)) {
                let number = |i| args.get(i).and_then(crate::protocol::number::parse_u64);
                handoff = Some((
                    number(1).ok_or("malformed handoff")?,
                    number(2).ok_or("malformed handoff")?,
                ));
            } else if let Err(err) = self.applier.run(self.shared, args) {
                return Err(err.to_string());
            } else {
                self.applied += used as u64;
                self.records += 1;
            }
            self.decoder.release();
            consumed += used;
        }
        self.input.consume(consumed);
        self.applier.flush_stats(self.shared);
        Ok(handoff)
    }

    /// Writes `bytes` whole to the source.
    async fn write(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.socket.try_write(&[IoSlice::new(bytes)])? {
                Some(n) => bytes = &bytes[n..],
                None => self.socket.writable().await?,
            }
        }
        Ok(())
    }
}
