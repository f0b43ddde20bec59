//! A migration source's side of atomic slot migration (docs/CLUSTER.md,
//! M7-M11): one task per job. It opens the stream to the target (`CLUSTER
//! SYNCSLOTS BEGIN`), sends the slots' snapshots and the feed's records on
//! them, reads the target's acknowledgements, and does what the job's state
//! machine (`cluster::migration::Job`) decides: pause the slots' writes, send
//! the handoff, resume, give the slots up, ask how a handoff ended.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster::id::Id;
use crate::cluster::migration::{Action, Event, Phase};
use crate::cluster::slots::SlotSet;
use crate::feed::Scope;
use crate::net::import::HANDOFF;
use crate::protocol::{encode_command, OutputLimit};
use crate::replication::snapshot::Outbox;
use crate::replication::Target;
use crate::shared::Shared;

/// How often the job is told the time (timeouts) and the view is checked.
const TICK: Duration = Duration::from_millis(100);
/// Snapshot bytes encoded per step before the task yields.
const STEP_BYTES: usize = 256 * 1024;
/// Snapshots wait while this much is queued for the target.
const QUEUED_MAX: usize = 16 << 20;
/// Longest reply line read from the target.
const MAX_LINE: usize = 4096;
/// How long a connection asking for the handoff's outcome may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a target that does not see this node owning the slots yet is
/// asked again to import them.
const BEGIN_PATIENCE: Duration = Duration::from_secs(2);
/// The end of that refusal's text (`AdminError::NotSourceSlot`).
const NOT_SOURCE: &str = "is not served by the source node";

/// Runs the task of every job started on this node, until shutdown.
pub async fn run_exports(shared: Arc<Shared>) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = shared.migrations.wait_started() => {}
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        }
        for (id, events) in shared.migrations.take_new() {
            tasks.spawn(export(shared.clone(), id, events));
        }
    }
}

/// Runs job `id` to its end; `events` brings commands' events (a cancel).
async fn export(shared: Arc<Shared>, id: u64, mut events: UnboundedReceiver<Event>) {
    let Some(job) = shared.migrations.job(id) else {
        return;
    };
    let (tx, mut internal) = unbounded_channel();
    let mut export = Export {
        shared: shared.clone(),
        id,
        target: job.target,
        slots: Arc::new(job.slots.clone()),
        internal: tx,
        out: None,
        over: false,
        held: false,
    };
    tracing::info!(target = %job.target, slots = job.slots.len(), "slot migration: starting");
    match export.open().await {
        Ok(stream) => {
            export.act(Event::Accepted);
            export.stream(stream, &mut events, &mut internal).await;
        }
        Err(why) => export.act(Event::LinkLost(why)),
    }
    // Without a stream the job still ends by its events (a handoff in
    // doubt is asked about until its outcome is known).
    export.wait_out(&mut events, &mut internal).await;
}

/// One job's task.
struct Export {
    shared: Arc<Shared>,
    id: u64,
    target: Id,
    slots: Arc<SlotSet>,
    /// Events the task reports to itself (writes settled, outcome answers).
    internal: UnboundedSender<Event>,
    /// The stream's queue, while it is open.
    out: Option<Arc<Outbox>>,
    /// The job ended.
    over: bool,
    /// A handoff is in flight: this master holds its epoch (M10).
    held: bool,
}

impl Export {
    /// Opens the stream: `CLUSTER SYNCSLOTS BEGIN` (M8). A target whose
    /// table does not show this node owning the slots yet (this node's
    /// claim of them is still on its way there) is asked again for a while.
    async fn open(&self) -> Result<TcpStream, String> {
        let deadline = tokio::time::Instant::now() + BEGIN_PATIENCE;
        loop {
            match self.begin().await {
                Err(why) if why.ends_with(NOT_SOURCE) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(TICK).await;
                }
                done => return done,
            }
        }
    }

    async fn begin(&self) -> Result<TcpStream, String> {
        let id = format!("{:016x}", self.id);
        let me = self
            .shared
            .cluster
            .myself()
            .ok_or("not in a cluster")?
            .to_string();
        let ranges = self.slots.range_words();
        let mut request: Vec<&[u8]> = vec![
            b"CLUSTER",
            b"SYNCSLOTS",
            b"BEGIN",
            id.as_bytes(),
            me.as_bytes(),
        ];
        request.extend(ranges.iter().map(|r| r.as_bytes()));
        let (stream, reply) = call(&self.shared, self.target, &request).await?;
        match reply.as_str() {
            "+OK" => Ok(stream),
            _ => Err(format!("the target refused the import: {reply}")),
        }
    }

    /// Steps the job with `event` and does what it decides.
    fn act(&mut self, event: Event) {
        let shared = self.shared.clone();
        let now = shared.clock.now_ms();
        let keep = shared.config.slot_migration().log_max_len;
        let (actions, ended) = shared.migrations.step(self.id, event, now, keep);
        match ended {
            Some(Phase::Failed(why)) => {
                tracing::info!(state = "failed", "slot migration: ended: {why}");
            }
            Some(phase) => tracing::info!(state = phase.name(), "slot migration: ended"),
            None => {}
        }
        for action in actions {
            tracing::debug!(?action, "slot migration");
            match action {
                Action::Pause => self.pause(),
                Action::SendHandoff(_) => {
                    let epoch = shared.cluster.step(|c, _| {
                        c.hold_epoch(true);
                        c.current_epoch()
                    });
                    self.held = true;
                    if let Some(out) = &self.out {
                        let epoch = epoch.unwrap_or(0).to_string();
                        out.push_at_end(|offset| {
                            let mut record = Vec::new();
                            let offset = offset.to_string();
                            let args = [HANDOFF, offset.as_bytes(), epoch.as_bytes()];
                            encode_command(&mut record, &args);
                            record
                        });
                    }
                }
                Action::Resume => {
                    self.release();
                    self.resume();
                }
                Action::GiveUp(epoch) => {
                    let (target, slots) = (self.target, self.slots.clone());
                    let lost = shared.cluster.step(|c, now| {
                        c.handed_off(target, epoch, &slots, now);
                        let me = c.myself();
                        slots
                            .iter()
                            .filter(|&s| c.owner(s) != Some(me))
                            .collect::<Vec<u16>>()
                    });
                    // Their keys stay out of sight until deleted (the target
                    // shows them now: nothing is seen twice, M9).
                    for slot in lost.unwrap_or_default() {
                        shared.data.keyspace.hide_slot(slot);
                    }
                    self.release();
                    self.resume();
                }
                Action::AskOutcome => self.ask_outcome(),
                Action::Close => {
                    self.out = None;
                    self.over = true;
                }
            }
        }
    }

    /// Pauses writes to the slots, then reports [`Event::Settled`] once every
    /// write admitted before has committed: each slot's lock taken once
    /// after the pause shows no unit is still inside (M10).
    fn pause(&self) {
        let data = &self.shared.data;
        for slot in self.slots.iter() {
            data.paused.insert(slot);
        }
        let (slots, internal) = (self.slots.clone(), self.internal.clone());
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            for slot in slots.iter() {
                drop(shared.data.keyspace.lock(slot));
            }
            let _ = internal.send(Event::Settled);
        });
    }

    /// The handoff's outcome is known: this master may take epochs again.
    fn release(&mut self) {
        if std::mem::take(&mut self.held) {
            self.shared.cluster.step(|c, _| c.hold_epoch(false));
        }
    }

    fn resume(&self) {
        for slot in self.slots.iter() {
            self.shared.data.paused.remove(slot);
        }
    }

    /// Asks the target how the handoff ended, on a new connection; the
    /// answer comes back as an event.
    fn ask_outcome(&self) {
        let id = format!("{:016x}", self.id);
        let mut request: Vec<Vec<u8>> = vec![
            b"CLUSTER".to_vec(),
            b"SYNCSLOTS".to_vec(),
            b"FINISH".to_vec(),
            id.into_bytes(),
        ];
        request.extend(self.slots.range_words().into_iter().map(String::into_bytes));
        let (shared, target) = (self.shared.clone(), self.target);
        let internal = self.internal.clone();
        tokio::spawn(async move {
            let args: Vec<&[u8]> = request.iter().map(Vec::as_slice).collect();
            let _ = internal.send(ask(&shared, target, &args).await);
        });
    }

    /// Streams the slots until the job no longer needs the stream.
    async fn stream(
        &mut self,
        stream: TcpStream,
        events: &mut UnboundedReceiver<Event>,
        internal: &mut UnboundedReceiver<Event>,
    ) {
        let shared = self.shared.clone();
        let (data, replication) = (&shared.data, &shared.replication);
        let unlimited = OutputLimit {
            hard: 0,
            soft: 0,
            soft_seconds: 0,
        };
        let out = Outbox::new(unlimited, CancellationToken::new());
        self.out = Some(out.clone());
        let list: Vec<u16> = self.slots.iter().collect();
        let sync = replication.syncs.start_slots(out.clone(), &list);
        let several = Arc::new(AtomicBool::new(false));
        let follower = {
            let (out, slots, several) = (out.clone(), self.slots.clone(), several.clone());
            Box::new(move |_: u64, bytes: &[u8], scope: Scope| match scope {
                Scope::Slot(slot) if slots.contains(slot) => out.push(bytes),
                Scope::Tokens => out.push(bytes),
                Scope::Several => several.store(true, Relaxed),
                Scope::Slot(_) | Scope::Link => {}
            })
        };
        let (follow_id, _) = data.feed.follow(follower);
        // Every token issued here stays below the target's next ones (M8).
        data.announce_token_bound();
        let (mut reader, mut writer) = stream.into_split();
        let mut pending = Vec::new();
        let mut ticks = tokio::time::interval(TICK);
        let (mut next_slot, mut snapshot_done, mut acked) = (0u32, false, 0u64);
        let mut sync = Some(sync);
        let mut linked = true;
        while !self.over {
            if let Some(s) = sync.as_ref().filter(|_| out.len() < QUEUED_MAX) {
                let now = shared.clock.now_ms();
                let done = s.step(&data.keyspace, &mut next_slot, STEP_BYTES, now);
                shared.migrations.exported(self.id, s.keys_sent());
                if done {
                    replication.syncs.end(s);
                    sync = None;
                    snapshot_done = true;
                }
            }
            if several.swap(false, Relaxed) {
                self.act(Event::LinkLost(
                    "a write over several slots touched a moving slot".into(),
                ));
                continue;
            }
            self.act(Event::Progress {
                sent: out.pushed(),
                acked,
                snapshot_done,
            });
            if self.over {
                break;
            }
            let snapshotting = sync.is_some() && out.len() < QUEUED_MAX;
            pending.reserve(MAX_LINE);
            tokio::select! {
                biased;
                _ = shared.shutdown.cancelled() => {
                    self.act(Event::LinkLost("the node is shutting down".into()));
                    break;
                }
                Some(event) = events.recv() => self.act(event),
                Some(event) = internal.recv() => self.act(event),
                _ = ticks.tick() => self.tick(),
                n = reader.read_buf(&mut pending), if linked => match n {
                    Ok(0) | Err(_) => {
                        linked = false;
                        self.act(Event::LinkLost("the target closed the stream".into()));
                    }
                    Ok(_) => {
                        while let Some(line) = take_line(&mut pending) {
                            match line.split_once(' ') {
                                Some(("+ACK", n)) => acked = n.parse().unwrap_or(acked),
                                Some(("+HANDOFF", epoch)) => match epoch.parse() {
                                    Ok(epoch) => self.act(Event::Claimed(epoch)),
                                    Err(_) => self.act(Event::LinkLost(line.clone())),
                                },
                                _ => self.act(Event::LinkLost(format!("the target said {line}"))),
                            }
                        }
                    }
                },
                _ = out.ready(), if linked => {
                    if let Err(err) = writer.write_all(&out.take()).await {
                        linked = false;
                        self.act(Event::LinkLost(err.to_string()));
                    }
                }
                _ = tokio::task::yield_now(), if snapshotting => {}
            }
        }
        data.feed.unfollow(follow_id);
        if let Some(s) = &sync {
            replication.syncs.end(s);
        }
        self.out = None;
    }

    /// Events after the stream closed, until the job is over.
    async fn wait_out(
        &mut self,
        events: &mut UnboundedReceiver<Event>,
        internal: &mut UnboundedReceiver<Event>,
    ) {
        let mut ticks = tokio::time::interval(TICK);
        while !self.over
            && self
                .shared
                .migrations
                .job(self.id)
                .is_some_and(|j| !j.phase.is_over())
        {
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => return,
                Some(event) = events.recv() => self.act(event),
                Some(event) = internal.recv() => self.act(event),
                _ = ticks.tick() => self.tick(),
            }
        }
    }

    /// Tells the job the time, and what the view says of the target: a claim
    /// of the slots (rule 15 brought it first), or a failure.
    fn tick(&mut self) {
        let claim = {
            let view = self.shared.cluster.view();
            let view = view.as_deref().and_then(Option::as_deref);
            view.and_then(|v| {
                let node = v.node(self.target)?;
                if node.line.flags.fail {
                    return Some(Event::TargetFailed);
                }
                let owns = self
                    .slots
                    .iter()
                    .any(|s| v.owner(s).is_some_and(|o| o.id == self.target));
                owns.then_some(Event::Claimed(node.line.config_epoch))
            })
        };
        if let Some(event) = claim {
            self.act(event);
        }
        self.act(Event::Tick);
    }
}

/// The address of node `id`, as the view has it.
fn address(shared: &Shared, id: Id) -> Result<Target, String> {
    let view = shared.cluster.view();
    let node = view
        .as_deref()
        .and_then(Option::as_deref)
        .and_then(|v| v.node(id).cloned())
        .ok_or("the target is not a known node")?;
    Ok(Target {
        host: node.line.ip.clone(),
        port: node.addr.port,
    })
}

/// Connects to node `target` (authenticating as a replica would) and sends
/// `request`; returns the connection and the first reply line.
pub(super) async fn call(
    shared: &Shared,
    target: Id,
    request: &[&[u8]],
) -> Result<(TcpStream, String), String> {
    let address = address(shared, target)?;
    let timeout = Duration::from_millis(shared.config.replication().timeout_ms);
    let connect = super::upstream::connect(shared, &address);
    let mut stream = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let auth = shared.config.replication().auth;
    if let Some((user, password)) = &auth {
        let mut args: Vec<&[u8]> = vec![b"AUTH"];
        args.extend(user.as_deref().map(str::as_bytes));
        args.push(password.as_bytes());
        encode_command(&mut bytes, &args);
    }
    encode_command(&mut bytes, request);
    stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
    let mut pending = Vec::new();
    if auth.is_some() {
        let reply = read_line(&mut stream, &mut pending, timeout).await?;
        if !reply.starts_with("+OK") {
            return Err(format!("the target refused AUTH: {reply}"));
        }
    }
    let reply = read_line(&mut stream, &mut pending, timeout).await?;
    Ok((stream, reply))
}

/// Asks node `target` how a handoff ended (`CLUSTER SYNCSLOTS FINISH`).
async fn ask(shared: &Shared, target: Id, request: &[&[u8]]) -> Event {
    let reply = tokio::time::timeout(ASK_TIMEOUT, call(shared, target, request)).await;
    match reply {
        Err(_) => Event::LinkLost("no answer".into()),
        Ok(Err(why)) => Event::LinkLost(why),
        Ok(Ok((_, line))) => match line.split_once(' ') {
            Some(("+HANDOFF", epoch)) => epoch
                .parse()
                .map_or_else(|_| Event::LinkLost(line.clone()), Event::Claimed),
            _ if line == "+CANCELLED" => Event::NotClaimed,
            _ => Event::LinkLost(format!("the target said {line}")),
        },
    }
}

/// Reads one reply line within `timeout`.
async fn read_line(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    timeout: Duration,
) -> Result<String, String> {
    let read = async {
        loop {
            if let Some(line) = take_line(pending) {
                return Ok(line);
            }
            if pending.len() > MAX_LINE {
                return Err("reply line too long".to_string());
            }
            pending.reserve(MAX_LINE);
            match stream.read_buf(pending).await {
                Ok(0) => return Err("the target closed the connection".to_string()),
                Ok(_) => {}
                Err(err) => return Err(err.to_string()),
            }
        }
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut).to_string())?
}

/// Takes the first complete line (without CRLF) from `pending`.
fn take_line(pending: &mut Vec<u8>) -> Option<String> {
    let end = pending.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&pending[..end]).into_owned();
    pending.drain(..end + 2);
    Some(line)
}
