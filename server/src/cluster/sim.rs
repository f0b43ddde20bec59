//! A deterministic simulator of cluster nodes ([`Cluster`] machines) over a
//! simulated network: links with delays, message loss (which breaks the link, as
//! TCP would), duplication, reordering across links, partitions, crashes,
//! pauses and restarts. Seeded: one seed, one run. It checks the protocol's
//! invariants (docs/CLUSTER.md) after every step and reports the first broken.

mod moves;
mod plane;

pub use moves::MoveCounts;
pub use plane::PlaneCounts;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::id::Id;
use super::machine::{Cluster, Link, Output, Settings, TICK};
use super::message::{Addr, Flags, Message};
use super::nodes_conf;
use super::slots::SlotSet;
use crate::clock::Millis;
use crate::keyspace::SLOTS;

/// How long TCP keeps retransmitting across an outage before the connection
/// breaks (real stacks take minutes; shorter keeps runs short).
const TCP_GIVES_UP: Millis = 10_000;

/// The network's behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Network {
    /// Shortest one-way delay, ms.
    pub min_delay: Millis,
    /// Longest one-way delay, ms.
    pub max_delay: Millis,
    /// Chance that a message is lost (its link breaks).
    pub loss: f64,
    /// Chance that a message is delivered twice.
    pub duplicate: f64,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            min_delay: 1,
            max_delay: 20,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

/// What the simulator schedules.
#[derive(Debug, Clone)]
enum Event {
    Tick(usize),
    /// A lock client asks for a grant (with [`Sim::set_locks`]).
    Client,
    /// A client writes a key (with [`Sim::set_moves`]).
    MoveWrite,
    /// A slot migration may start (with [`Sim::set_moves`]).
    MoveStart,
    /// A slot migration's message between source and target.
    Move {
        from: usize,
        to: usize,
        msg: Box<moves::MoveMsg>,
    },
    LinkUp {
        node: usize,
        peer: Id,
        link: u64,
    },
    LinkDown {
        node: usize,
        peer: Id,
        link: u64,
    },
    Deliver {
        to: usize,
        link: Link,
        from: usize,
        message: Box<Message>,
        via: u64,
        sent: Millis,
    },
}

/// A link in flight between two simulated nodes.
#[derive(Debug, Clone)]
struct SimLink {
    /// The node that opened it, and the peer id it knows it by.
    from: usize,
    peer: Id,
    /// The node it reaches, which numbers it `number`.
    to: usize,
    number: u64,
    /// Deliveries on this link stay in order (TCP).
    last_delivery: Millis,
}

/// One simulated node.
struct SimNode {
    addr: Addr,
    cluster: Option<Cluster>,
    /// The last saved cluster config (its file), what a restart reads.
    disk: Option<String>,
    /// The current and config epochs in `disk` (I5).
    saved_epochs: (u64, u64),
    paused: bool,
    /// Bytes this node sent and received on the bus.
    sent: u64,
    received: u64,
    /// The slot table version last checked (I2).
    table_version: u64,
    /// Highest epochs this node ever reported, for invariant I1.
    seen_current: u64,
    seen_config: u64,
    /// When each node was flagged `fail` by this node (first time).
    failed: BTreeSet<Id>,
    /// The replication offset the data plane reports (see [`Sim::set_offset`]).
    offset: u64,
    /// Its id, as last seen (kept while crashed).
    id: Id,
}

/// Whether `c` serves `slot` as a master.
fn serves(c: &Cluster, slot: u16) -> bool {
    c.role().is_master() && c.owner(slot) == Some(c.myself())
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation(pub String);

/// The simulator.
pub struct Sim {
    now: Millis,
    rng: StdRng,
    network: Network,
    settings: Settings,
    nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(Millis, u64, usize)>>,
    events: BTreeMap<usize, Event>,
    next_event: usize,
    links: BTreeMap<u64, SimLink>,
    /// The link each node opened to each peer, by the id it knows the peer by.
    outbound: BTreeMap<(usize, Id), u64>,
    next_link: u64,
    /// Pairs of nodes that cannot reach each other.
    cut: BTreeSet<(usize, usize)>,
    /// When node `x` became unreachable from node `m` (absent: reachable).
    unreachable_since: BTreeMap<(usize, usize), Millis>,
    /// Longest unreachable spell ending no earlier than this, per pair: (end, length).
    spells: BTreeMap<(usize, usize), Vec<(Millis, Millis)>>,
    /// Messages delivered so far.
    pub messages: u64,
    /// Of those, messages that carried their sender's full claim.
    pub claims: u64,
    violation: Option<Violation>,
    /// The data plane's model (with [`Sim::set_locks`]).
    plane: Option<plane::Plane>,
    /// The slot migration model (with [`Sim::set_moves`]).
    moves: Option<moves::Moves>,
    /// Every claim made, by config epoch: who claimed which slots (I6).
    claimed: BTreeMap<u64, Vec<(Id, SlotSet)>>,
    /// Print every event (`RINGKV_SIM_TRACE`).
    trace: bool,
    /// Check the invariants (off for large benchmark runs).
    checks: bool,
    /// Keep each node's saved config, for restarts (off for large benchmark runs).
    configs: bool,
}

impl Sim {
    /// `count` fresh nodes, alone, on a network behaving as `network`.
    pub fn new(count: usize, settings: Settings, network: Network, seed: u64) -> Sim {
        let mut sim = Sim {
            now: 1_000,
            rng: StdRng::seed_from_u64(seed),
            network,
            settings,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            next_event: 0,
            links: BTreeMap::new(),
            outbound: BTreeMap::new(),
            next_link: 1,
            cut: BTreeSet::new(),
            unreachable_since: BTreeMap::new(),
            spells: BTreeMap::new(),
            messages: 0,
            claims: 0,
            violation: None,
            plane: None,
            moves: None,
            claimed: BTreeMap::new(),
            trace: std::env::var_os("RINGKV_SIM_TRACE").is_some(),
            checks: true,
            configs: true,
        };
        for i in 0..count {
            let addr = Addr {
                ip: IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1)),
                port: 7000,
                cport: 17000,
            };
            let node_seed = sim.rng.random::<u64>();
            let cluster = Cluster::new(settings, addr, node_seed, sim.now);
            let id = cluster.myself();
            sim.nodes.push(SimNode {
                addr,
                cluster: Some(cluster),
                disk: None,
                saved_epochs: (0, 0),
                paused: false,
                sent: 0,
                received: 0,
                table_version: u64::MAX,
                seen_current: 0,
                seen_config: 0,
                failed: BTreeSet::new(),
                offset: 0,
                id,
            });
            // Ticks start at random offsets, as real nodes' crons do.
            let first = sim.now + sim.rng.random_range(0..TICK);
            sim.schedule(first, Event::Tick(i));
        }
        sim
    }

    /// Turns the invariant checks on or off (they cost O(slots x nodes) per
    /// table change: too much for a thousand nodes).
    pub fn set_checks(&mut self, on: bool) {
        self.checks = on;
    }

    /// Turns keeping each node's saved config on or off. Off, a save records
    /// only the epochs (I5 still holds) and restarts are refused: a save formats
    /// every known node, too much for a thousand nodes that save thousands of
    /// times each while they meet.
    pub fn set_configs(&mut self, on: bool) {
        self.configs = on;
    }

    /// Bytes node `i` sent and received on the bus so far.
    pub fn bytes(&self, i: usize) -> (u64, u64) {
        (self.nodes[i].sent, self.nodes[i].received)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True with no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The time now.
    pub fn now(&self) -> Millis {
        self.now
    }

    /// Node `i`'s machine (`None` while crashed).
    pub fn cluster(&self, i: usize) -> Option<&Cluster> {
        self.nodes[i].cluster.as_ref()
    }

    /// Runs `f` on node `i`'s machine (if up), then handles what it produced.
    pub fn with(&mut self, i: usize, f: impl FnOnce(&mut Cluster, Millis)) {
        let now = self.now;
        let offset = self.plane_offset(i).unwrap_or(self.nodes[i].offset);
        if let Some(cluster) = self.nodes[i].cluster.as_mut() {
            cluster.set_repl_offset(offset);
            f(cluster, now);
            self.nodes[i].id = cluster.myself();
            self.drain(i);
        }
    }

    /// Node `i`'s id (it keeps it across restarts).
    pub fn id(&self, i: usize) -> Id {
        match &self.nodes[i].cluster {
            Some(c) => c.myself(),
            None => self.nodes[i].id,
        }
    }

    /// Sets the replication offset node `i`'s data plane reports from now
    /// on (a master's stream, a replica's applied offset).
    pub fn set_offset(&mut self, i: usize, offset: u64) {
        self.nodes[i].offset = offset;
    }

    /// Sets node `i`'s `cluster-replica-no-failover`.
    pub fn set_no_failover(&mut self, i: usize, on: bool) {
        self.with(i, |c, _| {
            let settings = Settings {
                replica_no_failover: on,
                ..c.settings()
            };
            c.set_settings(settings);
        });
    }

    /// A converged cluster on `network`: `masters` masters with the slots
    /// split by the ring, then one more node per entry of `replica_of`, a
    /// replica of the master it names.
    pub fn with_replicas(
        masters: usize,
        replica_of: &[usize],
        settings: Settings,
        network: Network,
        seed: u64,
    ) -> Result<Sim, Violation> {
        let n = masters + replica_of.len();
        let mut sim = Sim::new(n, settings, network, seed);
        for j in 1..n {
            sim.meet(0, j);
        }
        let timeout = settings.node_timeout;
        sim.run_for(3 * timeout)?;
        for (k, &master) in replica_of.iter().enumerate() {
            let master = sim.id(master);
            sim.with(masters + k, |c, now| {
                c.replicate(master, false, now)
                    .expect("a fresh node replicates a master")
            });
        }
        sim.run_for(timeout)?;
        sim.with(0, |c, now| {
            c.ring_assign(now);
        });
        sim.run_for(5 * timeout)?;
        sim.converged()?;
        Ok(sim)
    }

    /// Node `i` meets node `j` (`CLUSTER MEET`).
    pub fn meet(&mut self, i: usize, j: usize) {
        let addr = self.nodes[j].addr;
        self.with(i, |c, now| c.meet(addr, now));
    }

    /// Cuts (or with `false`, heals) the network between `a` and `b`.
    pub fn set_cut(&mut self, a: usize, b: usize, cut: bool) {
        self.cut_pair(a, b, cut);
        self.track_reachability();
    }

    /// Isolates `a` from every other node (or heals it).
    pub fn isolate(&mut self, a: usize, cut: bool) {
        for b in (0..self.nodes.len()).filter(|&b| b != a) {
            self.cut_pair(a, b, cut);
        }
        self.track_reachability();
    }

    fn cut_pair(&mut self, a: usize, b: usize, cut: bool) {
        let pair = (a.min(b), a.max(b));
        if cut {
            self.cut.insert(pair);
        } else {
            self.cut.remove(&pair);
        }
    }

    /// Crashes node `i`: its state and links are gone.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].cluster = None;
        self.plane_crashed(i);
        self.moves_crashed(i);
        let dead: Vec<u64> = self
            .links
            .iter()
            .filter(|(_, l)| l.from == i || l.to == i)
            .map(|(&n, _)| n)
            .collect();
        // The peers' next writes get a reset.
        for number in dead {
            self.break_link(number);
        }
        self.track_reachability();
    }

    /// Restarts crashed node `i` from its saved config.
    pub fn restart(&mut self, i: usize) -> Result<(), Violation> {
        let node = &self.nodes[i];
        if node.cluster.is_some() {
            return Ok(());
        }
        if !self.configs {
            return Err(Violation(format!(
                "node {i} cannot restart: saved configs are off"
            )));
        }
        let seed = self.rng.random::<u64>();
        let cluster = match &node.disk {
            Some(text) => {
                let conf = nodes_conf::parse(text).map_err(|e| {
                    Violation(format!("node {i}'s saved config does not load: {e}"))
                })?;
                Cluster::restore(self.settings, &conf, node.addr, seed, self.now)
                    .map_err(|e| Violation(format!("node {i} cannot restore: {e}")))?
            }
            None => Cluster::new(self.settings, node.addr, seed, self.now),
        };
        self.nodes[i].cluster = Some(cluster);
        self.track_reachability();
        Ok(())
    }

    /// Pauses (`SIGSTOP`) or resumes node `i`: while paused it handles nothing.
    pub fn pause(&mut self, i: usize, paused: bool) {
        self.nodes[i].paused = paused;
        self.track_reachability();
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        let up = |i: usize| self.nodes[i].cluster.is_some() && !self.nodes[i].paused;
        up(a) && up(b) && !self.cut.contains(&(a.min(b), a.max(b)))
    }

    /// Records when each pair stopped or started reaching each other (I3).
    fn track_reachability(&mut self) {
        let n = self.nodes.len();
        for a in 0..n {
            for b in 0..n {
                if a == b {
                    continue;
                }
                let reach = self.reachable(a, b);
                match (reach, self.unreachable_since.get(&(a, b)).copied()) {
                    (false, None) => {
                        self.unreachable_since.insert((a, b), self.now);
                    }
                    (true, Some(since)) => {
                        self.unreachable_since.remove(&(a, b));
                        self.spells
                            .entry((a, b))
                            .or_default()
                            .push((self.now, self.now - since));
                    }
                    _ => {}
                }
            }
        }
    }

    fn delay(&mut self) -> Millis {
        self.rng.random_range(
            self.network.min_delay..=self.network.max_delay.max(self.network.min_delay),
        )
    }

    fn schedule(&mut self, at: Millis, event: Event) {
        let id = self.next_event;
        self.next_event += 1;
        self.events.insert(id, event);
        self.queue.push(Reverse((at, id as u64, id)));
    }

    /// Runs until `until` (simulated ms), checking invariants after every
    /// step. Returns the first violation.
    pub fn run_until(&mut self, until: Millis) -> Result<(), Violation> {
        while let Some(&Reverse((at, _, id))) = self.queue.peek() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let event = self.events.remove(&id).expect("scheduled");
            self.step(event);
            if self.checks {
                self.check();
            }
            if let Some(Violation(what)) = self.violation.take() {
                return Err(Violation(format!("{what}\n{}", self.describe())));
            }
        }
        self.now = until;
        Ok(())
    }

    /// Runs for `ms` more.
    pub fn run_for(&mut self, ms: Millis) -> Result<(), Violation> {
        self.run_until(self.now + ms)
    }

    fn step(&mut self, event: Event) {
        if self.trace {
            match &event {
                Event::Tick(_) => {}
                Event::Deliver {
                    to,
                    link,
                    from,
                    message,
                    via,
                    ..
                } => eprintln!(
                    "{} deliver {from}->{to} via {via} as {link:?}: {} claim={} digest={:x} your={:x} cfg={}",
                    self.now,
                    super::message::Body::KINDS[message.body.kind()],
                    message.header.claim.is_some(),
                    message.header.claim_digest,
                    message.header.your_claim_digest,
                    message.header.config_epoch,
                ),
                other => eprintln!("{} {other:?}", self.now),
            }
        }
        if let Event::Deliver {
            to,
            from,
            via,
            sent,
            ..
        } = event
        {
            if !self.links.contains_key(&via) {
                return;
            }
            if !self.reachable(from, to) {
                // TCP retransmits across a short outage (a paused process
                // reads nothing, its socket keeps the bytes); a long one
                // breaks the connection.
                if self.now - sent > TCP_GIVES_UP {
                    let dead = self.remove_link(via).expect("present");
                    self.with(dead.from, |c, now| c.link_down(dead.peer, now));
                } else {
                    let at = self.now + TICK;
                    self.schedule(at, event);
                }
                return;
            }
        }
        match event {
            Event::Tick(i) => {
                let next = self.now + TICK;
                self.schedule(next, Event::Tick(i));
                if self.nodes[i].paused {
                    return;
                }
                if self.plane.is_some() {
                    self.plane_tick(i);
                }
                self.with(i, |c, now| c.tick(now));
                if self.moves.is_some() && self.nodes[i].cluster.is_some() {
                    self.moves_tick(i);
                }
            }
            Event::Client => self.client(),
            Event::MoveWrite => self.move_write(),
            Event::MoveStart => self.move_start(),
            Event::Move { from, to, msg } => self.move_deliver(from, to, *msg),
            Event::LinkUp { node, peer, link } => {
                if self.nodes[node].paused {
                    // It learns of the connection when it runs again.
                    let at = self.now + TICK;
                    self.schedule(at, Event::LinkUp { node, peer, link });
                    return;
                }
                if self.links.contains_key(&link) {
                    self.with(node, |c, now| c.link_up(peer, now));
                }
            }
            Event::LinkDown { node, peer, link } => {
                self.remove_link(link);
                self.with(node, |c, now| c.link_down(peer, now));
            }
            Event::Deliver {
                to,
                link,
                from,
                message,
                ..
            } => {
                self.messages += 1;
                self.claims += u64::from(message.header.claim.is_some());
                self.nodes[to].received += super::wire::message_len(&message) as u64;
                let ip = self.nodes[from].addr.ip;
                self.with(to, |c, now| c.receive(link, ip, *message, now));
            }
        }
    }

    /// Carries out what node `i` asked for.
    fn drain(&mut self, i: usize) {
        let outputs = match self.nodes[i].cluster.as_mut() {
            Some(c) => c.take_outputs(),
            None => return,
        };
        for output in outputs {
            if self.trace && !matches!(output, Output::Send(..)) {
                eprintln!("{} node {i} output {output:?}", self.now);
            }
            match output {
                Output::Save if self.configs => {
                    if let Some(conf) = self.nodes[i].cluster.as_ref().map(Cluster::durable) {
                        let mine = conf.nodes.iter().find(|n| n.flags.myself);
                        let config = mine.map_or(0, |n| n.config_epoch);
                        self.nodes[i].saved_epochs = (conf.current_epoch, config);
                        self.nodes[i].disk = Some(nodes_conf::format(&conf));
                    }
                }
                Output::Save => {
                    if let Some(c) = self.nodes[i].cluster.as_ref() {
                        let config = c.node(c.myself()).map_or(0, |n| n.config_epoch);
                        self.nodes[i].saved_epochs = (c.current_epoch(), config);
                    }
                }
                Output::Deliver { .. } => {}
                Output::SlotsLost(slots) => self.moves_lost_slots(i, &slots),
                Output::Connect { peer, addr } => {
                    let target = self.nodes.iter().position(|n| n.addr == addr);
                    let number = self.next_link;
                    self.next_link += 1;
                    let at = self.now + self.delay();
                    match target {
                        Some(to) if self.reachable(i, to) => {
                            self.outbound.insert((i, peer), number);
                            self.links.insert(
                                number,
                                SimLink {
                                    from: i,
                                    peer,
                                    to,
                                    number,
                                    last_delivery: 0,
                                },
                            );
                            self.schedule(
                                at,
                                Event::LinkUp {
                                    node: i,
                                    peer,
                                    link: number,
                                },
                            );
                        }
                        _ => {
                            // Refused, or a connect timeout behind a partition.
                            let at = at + if target.is_some() { 1_000 } else { 0 };
                            self.schedule(
                                at,
                                Event::LinkDown {
                                    node: i,
                                    peer,
                                    link: number,
                                },
                            );
                        }
                    }
                }
                Output::Disconnect(peer) => {
                    if let Some(&number) = self.outbound.get(&(i, peer)) {
                        self.remove_link(number);
                    }
                }
                Output::Rename { from, to } => {
                    if let Some(number) = self.outbound.remove(&(i, from)) {
                        self.outbound.insert((i, to), number);
                        if let Some(link) = self.links.get_mut(&number) {
                            link.peer = to;
                        }
                    }
                }
                Output::Send(link, message) => {
                    self.nodes[i].sent += super::wire::message_len(&message) as u64;
                    if self.checks {
                        self.check_saved_before_sent(i, &message);
                    }
                    self.send(i, link, message);
                }
            }
        }
    }

    fn send(&mut self, i: usize, link: Link, message: Message) {
        let found = match link {
            Link::To(peer) => self
                .outbound
                .get(&(i, peer))
                .and_then(|number| self.links.get(number))
                .map(|l| (l.number, l.to, Link::From(l.number))),
            Link::From(number) => self
                .links
                .get(&number)
                .filter(|l| l.to == i)
                .map(|l| (l.number, l.from, Link::To(l.peer))),
        };
        let Some((number, to, their_link)) = found else {
            return;
        };
        if self.rng.random_bool(self.network.loss.clamp(0.0, 1.0)) {
            self.break_link(number);
            return;
        }
        let copies = if self.rng.random_bool(self.network.duplicate.clamp(0.0, 1.0)) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.delay();
            let sim_link = self.links.get_mut(&number).expect("found");
            let at = (self.now + delay).max(sim_link.last_delivery);
            sim_link.last_delivery = at;
            self.schedule(
                at,
                Event::Deliver {
                    to,
                    link: their_link,
                    from: i,
                    message: Box::new(message.clone()),
                    via: number,
                    sent: self.now,
                },
            );
        }
    }

    /// Forgets link `number`.
    fn remove_link(&mut self, number: u64) -> Option<SimLink> {
        let link = self.links.remove(&number)?;
        if self.outbound.get(&(link.from, link.peer)) == Some(&number) {
            self.outbound.remove(&(link.from, link.peer));
        }
        Some(link)
    }

    /// Link `number` breaks: gone at once, and its opener (if running) learns
    /// of it after a network delay.
    fn break_link(&mut self, number: u64) {
        let Some(link) = self.remove_link(number) else {
            return;
        };
        if self.nodes[link.from].cluster.is_some() {
            let at = self.now + self.delay();
            self.schedule(
                at,
                Event::LinkDown {
                    node: link.from,
                    peer: link.peer,
                    link: number,
                },
            );
        }
    }

    /// I5: what a node says is never newer than what it saved.
    fn check_saved_before_sent(&mut self, i: usize, message: &Message) {
        if self.violation.is_some() {
            return;
        }
        let (current, config) = self.nodes[i].saved_epochs;
        let header = &message.header;
        if header.current_epoch > current || header.config_epoch > config {
            self.violation = Some(Violation(format!(
                "I5: node {i} sent epochs {}/{} with {current}/{config} saved",
                header.current_epoch, header.config_epoch
            )));
        }
    }

    /// The invariants that hold at every step (I1, I2, I3).
    fn check(&mut self) {
        if self.violation.is_some() {
            return;
        }
        let timeout = self.settings.node_timeout;
        for i in 0..self.nodes.len() {
            let Some(c) = self.nodes[i].cluster.as_ref() else {
                continue;
            };
            let me = c.node(c.myself()).expect("myself");
            let (current, config) = (c.current_epoch(), me.config_epoch);
            let newly_failed: Vec<Id> = c
                .nodes()
                .filter(|n| n.flags.has(Flags::FAIL) && !self.nodes[i].failed.contains(&n.id))
                .map(|n| n.id)
                .collect();
            let node = &mut self.nodes[i];
            if current < node.seen_current || config < node.seen_config {
                self.violation = Some(Violation(format!(
                    "I1: node {i} epochs went back: current {} -> {current}, config {} -> {config}",
                    node.seen_current, node.seen_config
                )));
                return;
            }
            node.seen_current = current;
            node.seen_config = config;
            // I3: a `fail` flag needs a real outage seen by a majority of masters.
            for id in newly_failed {
                self.nodes[i].failed.insert(id);
                if let Some(x) = self.index_of(id) {
                    if !self.outage_was_real(i, x, timeout) {
                        self.violation = Some(Violation(format!(
                            "I3: node {i} flagged node {x} fail at {} without a majority outage",
                            self.now
                        )));
                        return;
                    }
                }
            }
            let c = self.nodes[i].cluster.as_ref().expect("up");
            let gone: Vec<Id> = self.nodes[i]
                .failed
                .iter()
                .copied()
                .filter(|id| c.node(*id).is_none_or(|n| !n.flags.has(Flags::FAIL)))
                .collect();
            for id in gone {
                self.nodes[i].failed.remove(&id);
            }
        }
        // I2: per slot, no two live nodes serve it from different owners with
        // the same config epoch (checked when a table changed).
        let mut changed = false;
        for node in &mut self.nodes {
            let version = node.cluster.as_ref().map_or(0, Cluster::table_version);
            changed |= std::mem::replace(&mut node.table_version, version) != version;
        }
        if changed {
            self.check_claims();
            if let Some(plane) = &mut self.plane {
                plane.dirty = true;
            }
        }
        self.check_plane();
        if !changed || self.violation.is_some() {
            return;
        }
        let live: Vec<&Cluster> = self
            .nodes
            .iter()
            .filter_map(|n| n.cluster.as_ref())
            .collect();
        let mut seen: Vec<(u64, Id)> = Vec::with_capacity(live.len());
        for slot in 0..SLOTS as u16 {
            seen.clear();
            for c in &live {
                let Some(owner) = c.owner(slot) else {
                    continue;
                };
                let epoch = c.node(owner).map_or(0, |n| n.config_epoch);
                match seen.iter().find(|(e, _)| *e == epoch) {
                    Some(&(_, other)) if other != owner => {
                        self.violation = Some(Violation(format!(
                            "I2: slot {slot} served from {owner:?} and {other:?} at epoch {epoch}"
                        )));
                        return;
                    }
                    Some(_) => {}
                    None => seen.push((epoch, owner)),
                }
            }
        }
    }

    /// I6: two nodes never claim a slot under one config epoch, across the
    /// whole run (a claim is recorded when made, and kept).
    fn check_claims(&mut self) {
        for i in 0..self.nodes.len() {
            let Some(c) = self.nodes[i].cluster.as_ref() else {
                continue;
            };
            let me = c.node(c.myself()).expect("myself");
            if !c.role().is_master() || me.claim.is_empty() {
                continue;
            }
            let claims = self.claimed.entry(me.config_epoch).or_default();
            for (other, slots) in claims.iter() {
                let shared = (0..slots.0.len()).find(|&w| slots.0[w] & me.claim.0[w] != 0);
                if *other != me.id && shared.is_some() {
                    self.violation = Some(Violation(format!(
                        "I6: node {i} ({:?}) claims slots {other:?} claimed under config epoch {}",
                        me.id, me.config_epoch
                    )));
                    return;
                }
            }
            match claims.iter_mut().find(|(id, _)| *id == me.id) {
                Some((_, slots)) => {
                    for (w, word) in slots.0.iter_mut().enumerate() {
                        *word |= me.claim.0[w];
                    }
                }
                None => claims.push((me.id, (*me.claim).clone())),
            }
        }
    }

    /// The node a client's request for `slot` runs on: a random node, or
    /// the owner it redirects to (one redirect), if that one serves the slot
    /// as a master and runs.
    fn client_target(&mut self, slot: u16) -> Option<usize> {
        let mut at = self.rng.random_range(0..self.nodes.len());
        for _ in 0..2 {
            let up = self.nodes[at].cluster.is_some() && !self.nodes[at].paused;
            let c = self.nodes[at].cluster.as_ref().filter(|_| up)?;
            if serves(c, slot) {
                return Some(at);
            }
            at = c.owner(slot).and_then(|owner| self.index_of(owner))?;
        }
        None
    }

    fn index_of(&self, id: Id) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.cluster.as_ref().is_some_and(|c| c.myself() == id))
    }

    /// I3: node `x` was unreachable, each for at least `timeout` within the
    /// last `2 * timeout`, from as many slot-serving masters as the failure
    /// quorum of `observer`'s view needs.
    fn outage_was_real(&self, observer: usize, x: usize, timeout: Millis) -> bool {
        let window = 2 * timeout + TICK * 10;
        let Some(view) = self.nodes[observer].cluster.as_ref() else {
            return true;
        };
        let quorum = view.size() / 2 + 1;
        let long_enough = |m: usize| {
            let ongoing = self
                .unreachable_since
                .get(&(m, x))
                .is_some_and(|&since| self.now - since >= timeout);
            let past = self.spells.get(&(m, x)).is_some_and(|s| {
                s.iter()
                    .any(|&(end, len)| len >= timeout && self.now - end <= window)
            });
            ongoing || past
        };
        let witnesses = (0..self.nodes.len())
            .filter(|&m| {
                m != x
                    && self.nodes[m]
                        .cluster
                        .as_ref()
                        .is_some_and(|c| c.node(c.myself()).is_some_and(|n| !n.slots.is_empty()))
                    && long_enough(m)
            })
            .count();
        witnesses >= quorum
    }

    /// Each node's view, for failure messages: its state and what it thinks
    /// of every other node.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let Some(c) = node.cluster.as_ref() else {
                out.push_str(&format!("node {i}: crashed\n"));
                continue;
            };
            out.push_str(&format!(
                "node {i} {:?} ok={} epoch={} paused={}:",
                c.myself(),
                c.state_ok(),
                c.current_epoch(),
                node.paused
            ));
            for n in c.nodes() {
                out.push_str(&format!(
                    " [{:?} flags={:#x} link={:?} slots={} cfg={} ping={:?} pong={}]",
                    n.id,
                    n.flags.0,
                    n.link,
                    n.slots.len(),
                    n.config_epoch,
                    n.ping_sent,
                    n.pong_recv
                ));
            }
            out.push('\n');
        }
        out
    }

    /// I4: every live node knows every live node, agrees on the slot table,
    /// suspects nobody reachable and is `ok`. A violation shows every view.
    pub fn converged(&self) -> Result<(), Violation> {
        self.check_converged()
            .map_err(|Violation(what)| Violation(format!("{what}\n{}", self.describe())))
    }

    fn check_converged(&self) -> Result<(), Violation> {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].cluster.is_some() && !self.nodes[i].paused)
            .collect();
        let cluster = |i: usize| self.nodes[i].cluster.as_ref().expect("live");
        let ids: BTreeSet<Id> = live.iter().map(|&i| cluster(i).myself()).collect();
        let first = cluster(live[0]);
        // Cheap checks first, for every node (the benchmark asks often, of a
        // thousand nodes): the state, then the table's digest.
        for &i in &live {
            let c = cluster(i);
            if !c.state_ok() {
                return Err(Violation(format!("I4: node {i} is not ok")));
            }
            if c.table_digest() != first.table_digest() {
                return Err(self.slot_difference(live[0], i).unwrap_or_else(|| {
                    Violation(format!(
                        "I4: node {i}'s table digest differs, its slots do not"
                    ))
                }));
            }
        }
        for &i in &live {
            let c = cluster(i);
            for &id in &ids {
                let Some(node) = c.node(id) else {
                    return Err(Violation(format!("I4: node {i} does not know {id:?}")));
                };
                if node
                    .flags
                    .any(Flags::PFAIL | Flags::FAIL | Flags::HANDSHAKE)
                {
                    return Err(Violation(format!(
                        "I4: node {i} flags live node {id:?} {:?}",
                        node.flags
                    )));
                }
            }
        }
        // Equal digests only make equal tables likely: compare every slot.
        match live.iter().find_map(|&i| self.slot_difference(live[0], i)) {
            Some(difference) => Err(difference),
            None => Ok(()),
        }
    }

    /// The first slot nodes `a` and `b` serve from different owners.
    fn slot_difference(&self, a: usize, b: usize) -> Option<Violation> {
        let (ca, cb) = (
            self.nodes[a].cluster.as_ref()?,
            self.nodes[b].cluster.as_ref()?,
        );
        let slot = (0..SLOTS as u16).find(|&slot| ca.owner(slot) != cb.owner(slot))?;
        Some(Violation(format!(
            "I4: node {b} has slot {slot} at {:?}, node {a} at {:?}",
            cb.owner(slot),
            ca.owner(slot)
        )))
    }
}
