//! The cluster bus's I/O (docs/CLUSTER.md, Threads and I/O): a thread of its
//! own that accepts and opens the links between nodes, turns what arrives into
//! events for the cluster state machine, and carries out what the machine asks
//! (connect, send, deliver a publish, drop lost slots). The machine decides;
//! this only moves bytes, so a saturated client worker never delays a pong.
//!
//! ```text
//! accept ─▶ handshake task ─┐                     ┌─▶ writer task per link (bounded queue)
//! Connect ─▶ connect task ──┼─▶ events ─▶ Bus ────┤
//! reader task per link ─────┘      ▲      │ step  └─▶ pub/sub, slot drops
//! tick (100 ms) ───────────────────┘      ▼
//!                          ClusterHandle::step ─▶ outputs ─▶ Bus
//! ```
//! Owns the bus sockets; uses `cluster` for the frames and the machine, and the
//! node's shared state for what the machine's outputs touch.

pub mod link;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc::{self, error::TrySendError, UnboundedReceiver, UnboundedSender};
use tokio::task::AbortHandle;

use crate::clock::{Clock, Millis, SystemClock};
use crate::cluster::id::Id;
use crate::cluster::machine::{Link as To, Output, TICK};
use crate::cluster::message::Message;
use crate::cluster::wire::{Frame, Limits};
use crate::cluster::LinkInfo;
use crate::shared::Shared;
use link::{Link, LinkError, LinkReader, LinkWriter};

/// Frames a link's writer may hold before the link counts as stuck and is
/// closed (the machine then reconnects).
const QUEUE: usize = 1024;
/// Most links from peers still in set-up (authenticating) at once.
const MAX_SETTING_UP: usize = 256;
/// The longest frame other than a publish: a header with a full claim plus
/// gossip about many failing nodes.
const MAX_FRAME: usize = 1 << 20;

/// What the bus needs besides the node's shared state.
#[derive(Debug)]
pub struct BusConfig {
    /// The bus port's listener.
    pub listener: std::net::TcpListener,
    /// The lock on the cluster config file, held while the bus runs.
    pub config_lock: std::fs::File,
    /// The node's own IP: links it opens start there, so peers see it.
    pub source_ip: Option<IpAddr>,
    /// `cluster-bus-secret`.
    pub secret: Option<Vec<u8>>,
}

/// Starts the bus thread; it runs until the server shuts down.
pub fn start(shared: Arc<Shared>, config: BusConfig) -> io::Result<std::thread::JoinHandle<()>> {
    let outputs = shared
        .cluster
        .take_receiver()
        .ok_or_else(|| io::Error::other("the cluster bus runs once, in cluster mode"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    config.listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("ringkv-bus".into())
        .spawn(move || {
            runtime.block_on(async move {
                let _held = config.config_lock;
                match TcpListener::from_std(config.listener) {
                    Ok(listener) => {
                        Bus::new(shared, config.source_ip, config.secret, outputs)
                            .run(listener)
                            .await
                    }
                    Err(e) => tracing::error!("cluster bus: {e}"),
                }
            })
        })
}

/// What the bus's tasks report.
enum Event {
    /// A link this node opened is set up.
    Connected(u64, Link<TcpStream>),
    /// A link a peer opened is set up.
    Accepted(u64, Link<TcpStream>),
    /// A message arrived.
    Message(u64, Box<Message>),
    /// A link closed, failed or could not be set up.
    Closed(u64),
}

/// One link, from its first byte to its close.
struct Entry {
    /// For links this node opened: the node it opened it to.
    outbound: Option<Id>,
    /// For links a peer opened: who the messages say it is.
    sender: Option<Id>,
    ip: IpAddr,
    created: Millis,
    /// Set once the link is up.
    queue: Option<mpsc::Sender<Frame>>,
    tasks: Vec<AbortHandle>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Entry {
    fn new(outbound: Option<Id>, ip: IpAddr, task: AbortHandle) -> Entry {
        Entry {
            outbound,
            sender: None,
            ip,
            created: 0,
            queue: None,
            tasks: vec![task],
        }
    }

    fn peer(&self) -> Option<Id> {
        self.outbound.or(self.sender)
    }
}

/// How links are set up.
#[derive(Clone)]
struct SetUp {
    source_ip: Option<IpAddr>,
    secret: Option<Arc<[u8]>>,
    limits: Limits,
}

struct Bus {
    shared: Arc<Shared>,
    set_up: SetUp,
    events_tx: UnboundedSender<Event>,
    events: UnboundedReceiver<Event>,
    outputs: UnboundedReceiver<Output>,
    links: HashMap<u64, Entry>,
    /// This node's link to each node, by the id the machine knows it by.
    outbound: HashMap<Id, u64>,
    next: u64,
    links_changed: bool,
}

impl Bus {
    fn new(
        shared: Arc<Shared>,
        source_ip: Option<IpAddr>,
        secret: Option<Vec<u8>>,
        outputs: UnboundedReceiver<Output>,
    ) -> Bus {
        // A publish carries a channel and a message, each up to the bulk limit.
        let bulk = usize::try_from(shared.config.proto_max_bulk_len()).unwrap_or(usize::MAX);
        let limits = Limits {
            max_frame: MAX_FRAME,
            max_publish: bulk.saturating_mul(2).saturating_add(MAX_FRAME),
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        Bus {
            shared,
            set_up: SetUp {
                source_ip: source_ip.filter(|ip| !ip.is_unspecified()),
                secret: secret.map(Arc::from),
                limits,
            },
            events_tx,
            events,
            outputs,
            links: HashMap::new(),
            outbound: HashMap::new(),
            next: 0,
            links_changed: false,
        }
    }

    async fn run(mut self, listener: TcpListener) {
        let mut tick = tokio::time::interval(Duration::from_millis(TICK));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let shutdown = self.shared.shutdown.clone();
        loop {
            let wake = self.shared.cluster.inspect(|c, now| {
                c.wake_at()
                    .map(|at| Duration::from_millis(at.saturating_sub(now)))
            });
            let wake = async move {
                match wake.flatten() {
                    Some(after) => tokio::time::sleep(after).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => self.accept(stream, peer.ip()),
                    Err(e) => {
                        // Out of descriptors, most likely: let it pass.
                        tracing::warn!("cluster bus accept: {e}");
                        tokio::time::sleep(Duration::from_millis(TICK)).await;
                    }
                },
                Some(event) = self.events.recv() => {
                    self.sync_offset();
                    self.event(event);
                }
                Some(output) = self.outputs.recv() => self.output(output),
                _ = tick.tick() => {
                    self.sync_offset();
                    let rules = self.shared.config.cluster_rules();
                    self.shared.cluster.step(|c, now| {
                        c.set_settings(rules);
                        c.tick(now);
                    });
                }
                _ = wake => {
                    self.sync_offset();
                    self.shared.cluster.step(|c, now| c.wake(now));
                }
            }
            // A step's outputs are carried out before the next event.
            while let Ok(output) = self.outputs.try_recv() {
                self.output(output);
            }
            if std::mem::take(&mut self.links_changed) {
                self.publish_links();
            }
        }
        self.links.clear();
    }

    /// Hands the machine this node's replication offset as of now: headers
    /// carry it, and a paused master's must be final (F7), not as of the
    /// cron's last look.
    fn sync_offset(&self) {
        let offset = self.shared.data.feed.offset();
        self.shared.cluster.set_repl_offset(offset);
    }

    fn number(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.shared.config.cluster_rules().node_timeout)
    }

    fn accept(&mut self, stream: TcpStream, ip: IpAddr) {
        let setting_up = self
            .links
            .values()
            .filter(|e| e.outbound.is_none() && e.queue.is_none())
            .count();
        if setting_up >= MAX_SETTING_UP {
            // Strangers opening connections and saying nothing must not pile up.
            tracing::warn!("cluster bus: {setting_up} links from peers in set-up; refused {ip}");
            return;
        }
        let number = self.number();
        let (set_up, events, within) =
            (self.set_up.clone(), self.events_tx.clone(), self.timeout());
        let task = tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let event =
                match link::accept(stream, set_up.secret.as_deref(), set_up.limits, within).await {
                    Ok(link) => Event::Accepted(number, link),
                    Err(e) => {
                        tracing::info!("cluster bus: refused a link from {ip}: {e}");
                        Event::Closed(number)
                    }
                };
            let _ = events.send(event);
        });
        self.links
            .insert(number, Entry::new(None, ip, task.abort_handle()));
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Connected(number, link) => {
                let Some(peer) = self.links.get(&number).and_then(|e| e.outbound) else {
                    return;
                };
                self.start_link(number, link);
                self.shared.cluster.step(|c, now| c.link_up(peer, now));
            }
            Event::Accepted(number, link) => self.start_link(number, link),
            Event::Message(number, message) => self.received(number, *message),
            Event::Closed(number) => self.close(number),
        }
    }

    /// Starts the reader and writer tasks of a set-up link.
    fn start_link(&mut self, number: u64, link: Link<TcpStream>) {
        let Some(entry) = self.links.get_mut(&number) else {
            return;
        };
        let (reader, writer) = link.split_with(TcpStream::into_split);
        let (queue, frames) = mpsc::channel(QUEUE);
        let reading = tokio::spawn(read(number, reader, self.events_tx.clone()));
        let writing = tokio::spawn(write(number, writer, frames, self.events_tx.clone()));
        entry.tasks = vec![reading.abort_handle(), writing.abort_handle()];
        entry.queue = Some(queue);
        entry.created = SystemClock.now_ms();
        self.links_changed = true;
    }

    fn received(&mut self, number: u64, message: Message) {
        let Some(entry) = self.links.get_mut(&number) else {
            return;
        };
        let sender = message.header.sender;
        if entry.outbound.is_none() {
            entry.sender = Some(sender);
        }
        let cluster = &self.shared.cluster;
        if cluster.drops(Some(sender), true) {
            return;
        }
        if let Some((_, received)) = cluster.message_counts() {
            received.count(&message.body);
        }
        let link = match entry.outbound {
            Some(peer) => To::To(peer),
            None => To::From(number),
        };
        let ip = entry.ip;
        cluster.step(|c, now| c.receive(link, ip, message, now));
    }

    /// Forgets link `number`; the machine hears of it if it was its link to a node.
    fn close(&mut self, number: u64) {
        let Some(entry) = self.links.remove(&number) else {
            return;
        };
        self.links_changed = true;
        if let Some(peer) = entry.outbound {
            if self.outbound.get(&peer) == Some(&number) {
                self.outbound.remove(&peer);
                self.shared.cluster.step(|c, now| c.link_down(peer, now));
            }
        }
    }

    fn output(&mut self, output: Output) {
        match output {
            // Done by the step itself, before anything else it asked for.
            Output::Save => {}
            Output::Connect { peer, addr } => {
                if let Some(old) = self.outbound.remove(&peer) {
                    self.links.remove(&old);
                }
                let number = self.number();
                let target = SocketAddr::new(addr.ip, addr.cport);
                let (set_up, events, within) =
                    (self.set_up.clone(), self.events_tx.clone(), self.timeout());
                let task = tokio::spawn(async move {
                    let event = match connect(target, &set_up, within).await {
                        Ok(link) => Event::Connected(number, link),
                        Err(e) => {
                            tracing::debug!("cluster bus: no link to {target}: {e}");
                            Event::Closed(number)
                        }
                    };
                    let _ = events.send(event);
                });
                self.links
                    .insert(number, Entry::new(Some(peer), addr.ip, task.abort_handle()));
                self.outbound.insert(peer, number);
                self.links_changed = true;
            }
            Output::Disconnect(peer) => {
                if let Some(number) = self.outbound.remove(&peer) {
                    self.links.remove(&number);
                    self.links_changed = true;
                }
            }
            Output::Rename { from, to } => {
                if let Some(number) = self.outbound.remove(&from) {
                    if let Some(old) = self.outbound.insert(to, number) {
                        self.links.remove(&old);
                    }
                    if let Some(entry) = self.links.get_mut(&number) {
                        entry.outbound = Some(to);
                    }
                    self.links_changed = true;
                }
            }
            Output::Send(link, message) => self.send(link, message),
            Output::Deliver {
                channel,
                message,
                shard,
            } => {
                let data = &self.shared.data;
                if shard {
                    data.publish_shard(&channel, &message);
                } else {
                    data.publish(&channel, &message);
                }
            }
            Output::SlotsLost(slots) => {
                let shared = self.shared.clone();
                // Deleting many keys must not hold up the bus's pongs.
                tokio::task::spawn_blocking(move || {
                    let now = shared.clock.now_ms();
                    let dropped: usize = slots
                        .iter()
                        .map(|slot| crate::write::drop_slot(&shared.data, slot, now))
                        .sum();
                    tracing::info!(
                        "cluster: {} slots went to another master; {dropped} keys deleted",
                        slots.len()
                    );
                });
            }
        }
    }

    fn send(&mut self, link: To, message: Message) {
        let number = match link {
            To::To(peer) => self.outbound.get(&peer).copied(),
            To::From(number) => Some(number),
        };
        let Some(entry) = number.and_then(|n| self.links.get(&n)) else {
            return;
        };
        let Some(queue) = &entry.queue else {
            return;
        };
        let cluster = &self.shared.cluster;
        if cluster.drops(entry.peer(), false) {
            return;
        }
        if let Some((sent, _)) = cluster.message_counts() {
            sent.count(&message.body);
        }
        match queue.try_send(Frame::Message(message)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    "cluster bus: the link to {:?} fell {QUEUE} frames behind; closing it",
                    entry.peer()
                );
                if let Some(number) = number {
                    self.close(number);
                }
            }
            Err(TrySendError::Closed(_)) => {
                if let Some(number) = number {
                    self.close(number);
                }
            }
        }
    }

    fn publish_links(&self) {
        let links = self
            .links
            .values()
            .filter(|e| e.queue.is_some())
            .map(|e| LinkInfo {
                outbound: e.outbound.is_some(),
                peer: e.peer(),
                created: e.created,
            })
            .collect();
        self.shared.cluster.set_links(links);
    }
}

/// Opens a link to `target` from the node's own IP and sets it up.
async fn connect(
    target: SocketAddr,
    set_up: &SetUp,
    within: Duration,
) -> Result<Link<TcpStream>, LinkError> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = set_up
        .source_ip
        .filter(|ip| ip.is_ipv4() == target.is_ipv4())
    {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = tokio::time::timeout(within, socket.connect(target))
        .await
        .map_err(|_| LinkError::Timeout(within))??;
    stream.set_nodelay(true)?;
    link::connect(stream, set_up.secret.as_deref(), set_up.limits, within).await
}

/// A link's reader: each message becomes an event until the link ends.
async fn read(number: u64, mut reader: LinkReader<OwnedReadHalf>, events: UnboundedSender<Event>) {
    loop {
        match reader.recv().await {
            Ok(Some(Frame::Message(message))) => {
                if events
                    .send(Event::Message(number, Box::new(message)))
                    .is_err()
                {
                    return;
                }
            }
            Ok(Some(_)) => {
                tracing::info!("cluster bus: a set-up frame on an open link; closing it");
                break;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::info!("cluster bus: closing a link: {e}");
                break;
            }
        }
    }
    let _ = events.send(Event::Closed(number));
}

/// A link's writer: drains its queue, many frames per write.
async fn write(
    number: u64,
    mut writer: LinkWriter<OwnedWriteHalf>,
    mut frames: mpsc::Receiver<Frame>,
    events: UnboundedSender<Event>,
) {
    while let Some(frame) = frames.recv().await {
        writer.queue(&frame);
        while let Ok(frame) = frames.try_recv() {
            writer.queue(&frame);
        }
        if writer.flush().await.is_err() {
            break;
        }
    }
    let _ = events.send(Event::Closed(number));
}
