//! A replica's link to its master: connect, handshake (`PING`, `AUTH`,
//! `REPLCONF`, `PSYNC`), then apply the stream record by record, append the
//! master's bytes to this node's own feed, and acknowledge the offset every
//! second and when asked (R1, R3, R6, R8). A failed link is retried after a
//! second; a changed target (`REPLICAOF`, the cluster) drops it at once.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};

use crate::apply::Applier;
use crate::cluster::Role;
use crate::keyspace::SLOTS;
use crate::protocol::{encode_command, Decoded, RequestDecoder, RequestLimits};
use crate::replication::snapshot::{self, Loaded, SNAPSHOT};
use crate::replication::{LinkState, Target};
use crate::shared::Shared;

/// How long to wait before connecting again after the link failed.
const RETRY: Duration = Duration::from_secs(1);
/// How often the replica acknowledges its offset.
const ACK_PERIOD: Duration = Duration::from_millis(crate::replication::ACK_PERIOD_MS);
/// Longest handshake reply line accepted.
const MAX_LINE: usize = 4096;

/// Why the link to the master ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the master replied '{0}'")]
    Refused(String),
    #[error("the master sent no data for {0:?}")]
    Timeout(Duration),
    #[error("the master closed the connection")]
    Closed,
    #[error("the master's stream is malformed: {0}")]
    Malformed(String),
}

/// Follows the master the replication state names (none: waits), until
/// shutdown; in cluster mode the cluster decides the role.
pub async fn follow_master(shared: Arc<Shared>) {
    tokio::join!(follow_targets(&shared), follow_cluster_role(&shared));
}

/// Puts the role the cluster decides in force (`CLUSTER REPLICATE`, a
/// promotion, a master that lost its slots following their new owner).
async fn follow_cluster_role(shared: &Shared) {
    let Some(mut roles) = shared.cluster.role() else {
        return;
    };
    loop {
        let role = *roles.borrow_and_update();
        let (data, replication) = (&shared.data, &shared.replication);
        match role {
            Role::Master => {
                if replication.promote(&data.feed, &data.keyspace) {
                    tracing::info!("the cluster made this node a master");
                    drop_orphan_imports(shared);
                }
            }
            Role::Replica { master, ip, port } => {
                let target = Target {
                    host: ip.to_string(),
                    port,
                };
                if replication.follow(&data.feed, &data.keyspace, &shared.config, target) {
                    tracing::info!(%master, "the cluster made this node a replica");
                }
            }
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            changed = roles.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// A replica promoted while its master imported slots (M9) holds their keys
/// hidden, with no stream to finish them: they go, and the slots show again.
fn drop_orphan_imports(shared: &Shared) {
    let keyspace = &shared.data.keyspace;
    if !keyspace.any_hidden() {
        return;
    }
    let now = shared.clock.now_ms();
    let hidden: Vec<u16> = (0..SLOTS as u16)
        .filter(|&s| keyspace.is_hidden(s))
        .collect();
    for &slot in &hidden {
        crate::write::drop_slot(&shared.data, slot, now);
        keyspace.show_slot(slot);
    }
    shared
        .data
        .feed
        .append_hidden(hidden.iter().copied(), false);
    tracing::warn!(
        slots = hidden.len(),
        "dropped the keys of an import the old master left unfinished"
    );
}

/// Keeps a link to whichever master the replication state names.
async fn follow_targets(shared: &Shared) {
    let mut targets = shared.replication.subscribe();
    loop {
        let target = targets.borrow_and_update().clone();
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            changed = targets.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = follow(shared, target) => {}
        }
    }
}

/// Keeps a link to `target` up (never returns while there is one).
async fn follow(shared: &Shared, target: Option<Target>) {
    let Some(target) = target else {
        return std::future::pending().await;
    };
    loop {
        let now = shared.clock.now_ms();
        shared.replication.set_link(LinkState::Connecting, now);
        tracing::info!(master = %format_args!("{}:{}", target.host, target.port), "connecting to MASTER");
        let result = Link::open(shared, &target).await;
        let err = match result {
            Ok(link) => link.stream(shared).await.unwrap_err(),
            Err(err) => err,
        };
        tracing::warn!(%err, "link with MASTER lost; reconnecting");
        shared
            .replication
            .set_link(LinkState::Connect, shared.clock.now_ms());
        tokio::time::sleep(RETRY).await;
    }
}

/// An open link: the handshake done, `PSYNC` answered.
struct Link {
    stream: TcpStream,
    /// Bytes received after the `PSYNC` reply.
    pending: Vec<u8>,
    timeout: Duration,
}

impl Link {
    /// Connects to `target` and runs the handshake.
    async fn open(shared: &Shared, target: &Target) -> Result<Link, LinkError> {
        let settings = shared.config.replication();
        let timeout = Duration::from_millis(settings.timeout_ms);
        let stream = tokio::time::timeout(timeout, connect(shared, target))
            .await
            .map_err(|_| LinkError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        let mut link = Link {
            stream,
            pending: Vec::new(),
            timeout,
        };
        let reply = link.call(&[b"PING"]).await?;
        // A master with a password answers -NOAUTH before AUTH: fine.
        if !reply.starts_with("+PONG") && !reply.starts_with("-NOAUTH") {
            return Err(LinkError::Refused(reply));
        }
        if let Some((user, password)) = &settings.auth {
            let reply = match user {
                Some(user) => {
                    link.call(&[b"AUTH", user.as_bytes(), password.as_bytes()])
                        .await?
                }
                None => link.call(&[b"AUTH", password.as_bytes()]).await?,
            };
            link.expect_ok(reply)?;
        }
        let port = shared.config_port().to_string();
        let reply = link
            .call(&[b"REPLCONF", b"listening-port", port.as_bytes()])
            .await?;
        link.expect_ok(reply)?;
        let reply = link
            .call(&[b"REPLCONF", b"capa", b"ringkv", b"capa", b"psync2"])
            .await?;
        link.expect_ok(reply)?;
        // The master names this node to the cluster in its in-sync set (L2).
        if let Some(id) = shared.cluster.myself() {
            let id = id.to_string();
            let reply = link.call(&[b"REPLCONF", b"node-id", id.as_bytes()]).await?;
            link.expect_ok(reply)?;
        }
        let replication = &shared.replication;
        let feed = &shared.data.feed;
        // Kept from the start, so that once promoted this node can continue
        // its siblings' streams (R2).
        feed.keep_backlog(settings.backlog_size);
        // A dataset half loaded continues nothing.
        let (replid, offset) = match replication.loading() {
            true => ("?".to_owned(), "-1".to_owned()),
            false => (replication.ids().replid, (feed.offset() + 1).to_string()),
        };
        let reply = link
            .call(&[b"PSYNC", replid.as_bytes(), offset.as_bytes()])
            .await?;
        let now = shared.clock.now_ms();
        let words: Vec<&str> = reply.split(' ').collect();
        match words.as_slice() {
            ["+FULLRESYNC", replid, offset] => {
                let offset: u64 = offset
                    .parse()
                    .map_err(|_| LinkError::Malformed(reply.clone()))?;
                tracing::info!(%replid, offset, "full resync from MASTER: MASTER <-> REPLICA sync started");
                replication.sync_started(replid, offset, feed, now);
                flush(shared);
            }
            ["+CONTINUE"] => replication.continued(None, feed, now),
            ["+CONTINUE", replid] => {
                tracing::info!("partial resynchronization accepted");
                replication.continued(Some(replid), feed, now);
            }
            _ => return Err(LinkError::Refused(reply)),
        }
        Ok(link)
    }

    fn expect_ok(&self, reply: String) -> Result<(), LinkError> {
        match reply.starts_with("+OK") {
            true => Ok(()),
            false => Err(LinkError::Refused(reply)),
        }
    }

    /// Sends one command and reads its one-line reply.
    async fn call(&mut self, args: &[&[u8]]) -> Result<String, LinkError> {
        let mut request = Vec::new();
        encode_command(&mut request, args);
        self.stream.write_all(&request).await?;
        tokio::time::timeout(self.timeout, self.line())
            .await
            .map_err(|_| LinkError::Timeout(self.timeout))?
    }

    /// Reads one reply line (a master sends newlines to keep the link alive
    /// while it prepares; they are skipped).
    async fn line(&mut self) -> Result<String, LinkError> {
        loop {
            if let Some(end) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                self.pending.drain(..end + 2);
                if line.is_empty() {
                    continue;
                }
                return Ok(line);
            }
            if self.pending.len() > MAX_LINE {
                return Err(LinkError::Malformed("reply line too long".into()));
            }
            self.pending.reserve(MAX_LINE);
            if self.stream.read_buf(&mut self.pending).await? == 0 {
                return Err(LinkError::Closed);
            }
        }
    }

    /// Applies the stream until the link fails.
    async fn stream(self, shared: &Shared) -> Result<(), LinkError> {
        let Link {
            stream,
            mut pending,
            timeout,
        } = self;
        let (mut reader, mut writer) = stream.into_split();
        let mut apply = Apply::default();
        let mut acks = tokio::time::interval(ACK_PERIOD);
        let mut last_io = Instant::now();
        loop {
            if apply.records(shared, &mut pending)? {
                send_ack(shared, &mut writer).await?;
            }
            pending.reserve(64 * 1024);
            tokio::select! {
                biased;
                n = reader.read_buf(&mut pending) => {
                    if n? == 0 {
                        return Err(LinkError::Closed);
                    }
                    last_io = Instant::now();
                    shared.replication.link_io(shared.clock.now_ms());
                }
                _ = acks.tick() => send_ack(shared, &mut writer).await?,
                _ = tokio::time::sleep_until((last_io + timeout).into()) => {
                    return Err(LinkError::Timeout(timeout));
                }
            }
        }
    }
}

/// Connects from this node's own address (so peers on distinct loopback
/// addresses see who connects), as Redis binds its replication link.
pub(super) async fn connect(shared: &Shared, target: &Target) -> io::Result<TcpStream> {
    let addrs = tokio::net::lookup_host((target.host.as_str(), target.port)).await?;
    let mut last = io::Error::other(format!("{} resolves to no address", target.host));
    for addr in addrs {
        let socket = match addr {
            std::net::SocketAddr::V4(_) => TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = shared.config.first_bind() {
            if ip.is_ipv4() == addr.is_ipv4() {
                socket.bind(std::net::SocketAddr::new(ip, 0))?;
            }
        }
        match socket.connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// Empties every slot: a full sync replaces the dataset (and what its master
/// hides, it says again).
fn flush(shared: &Shared) {
    let keyspace = &shared.data.keyspace;
    for slot in 0..SLOTS as u16 {
        drop(keyspace.lock(slot).take());
        keyspace.show_slot(slot);
    }
}

/// `REPLCONF ACK <offset>`: what this replica applied.
async fn send_ack(shared: &Shared, writer: &mut OwnedWriteHalf) -> io::Result<()> {
    let offset = shared.data.feed.offset().to_string();
    let mut ack = Vec::new();
    encode_command(&mut ack, &[b"REPLCONF", b"ACK", offset.as_bytes()]);
    writer.write_all(&ack).await
}

/// Applying the stream's records.
#[derive(Default)]
struct Apply {
    decoder: RequestDecoder,
    applier: Applier,
}

impl Apply {
    /// Applies every complete record in `pending` and removes them; true if
    /// the master asked for an acknowledgement.
    fn records(&mut self, shared: &Shared, pending: &mut Vec<u8>) -> Result<bool, LinkError> {
        let limits = RequestLimits {
            max_bulk_len: u64::MAX,
            authenticated: true,
        };
        let mut consumed = 0;
        let mut ack = false;
        let replication = &shared.replication;
        let feed = &shared.data.feed;
        while consumed < pending.len() {
            let buf = &pending[consumed..];
            let used = match self.decoder.decode(buf, limits) {
                Ok(Decoded::Incomplete) => break,
                Ok(Decoded::Request { consumed: used }) => used,
                Err(err) => return Err(LinkError::Malformed(err.to_string())),
            };
            let args = self.decoder.args(buf);
            let name = args.get(0).unwrap_or_default();
            if name.eq_ignore_ascii_case(SNAPSHOT) {
                let rest: Vec<&[u8]> = args.iter().skip(1).collect();
                let limits = shared.config.encoding_limits();
                let now = shared.clock.now_ms();
                match snapshot::load(&shared.data.keyspace, &limits, &rest, now) {
                    Ok(Loaded::Done) => {
                        tracing::info!("MASTER <-> REPLICA sync: finished with success");
                        replication.sync_done(now);
                    }
                    Ok(Loaded::Slot(_)) => {}
                    Err(err) => return Err(LinkError::Malformed(err.to_string())),
                }
            } else {
                let getack = name.eq_ignore_ascii_case(b"replconf")
                    && args
                        .get(1)
                        .is_some_and(|a| a.eq_ignore_ascii_case(b"getack"));
                if getack {
                    ack = true;
                } else if let Err(err) = self.applier.run(shared, args) {
                    // As Redis 7 (propagation-error-behavior ignore): the
                    // record is logged and the stream goes on. During a full
                    // sync, records on slots not loaded yet may fail; the
                    // slot's snapshot replaces what they did.
                    match replication.loading() {
                        true => tracing::debug!(%err, "record refused while loading"),
                        false => tracing::warn!(%err, "record from MASTER refused"),
                    }
                }
                feed.append_upstream(&buf[..used]);
            }
            self.decoder.release();
            consumed += used;
        }
        pending.drain(..consumed);
        self.applier.flush_stats(shared);
        shared.cluster.set_repl_offset(feed.offset());
        Ok(ack)
    }
}
