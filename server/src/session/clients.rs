//! Connected clients: the registry behind `CLIENT LIST`/`KILL`, and what other
//! connections may see of one client.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::clock::Millis;
use crate::protocol::Protocol;

/// Names and library info a client set about itself.
#[derive(Debug, Default, Clone)]
struct Meta {
    name: Vec<u8>,
    lib_name: Vec<u8>,
    lib_ver: Vec<u8>,
}

/// A client's pub/sub, transaction and blocking state, as `CLIENT LIST` shows it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Channels subscribed.
    pub sub: usize,
    /// Patterns subscribed.
    pub psub: usize,
    /// Shard channels subscribed.
    pub ssub: usize,
    /// Commands queued in an open transaction; `None` outside `MULTI`.
    pub multi: Option<usize>,
    /// Keys watched.
    pub watch: usize,
    /// Waiting in a blocking command.
    pub blocked: bool,
    /// `READONLY`: reads may run on a cluster replica.
    pub readonly: bool,
    /// The connection is a replica's stream (flag `S`).
    pub replica: bool,
}

impl Activity {
    /// True while subscribed to anything (`CLIENT LIST TYPE pubsub`, flag `P`).
    pub fn subscribed(&self) -> bool {
        self.sub + self.psub + self.ssub > 0
    }

    /// `CLIENT LIST`'s flags letters.
    fn flags(&self) -> String {
        let mut flags = String::new();
        if self.replica {
            flags.push('S');
        }
        if self.subscribed() {
            flags.push('P');
        }
        if self.multi.is_some() {
            flags.push('x');
        }
        if self.blocked {
            flags.push('b');
        }
        if self.readonly {
            flags.push('r');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        flags
    }
}

/// What other connections may see of, and do to, one client.
#[derive(Debug)]
pub struct ClientHandle {
    /// Unique, increasing id (`CLIENT ID`).
    pub id: u64,
    /// The client's address.
    pub addr: SocketAddr,
    /// The server address it connected to.
    pub laddr: SocketAddr,
    /// The socket's file descriptor.
    pub fd: i32,
    created: Instant,
    /// Unix milliseconds of the last command.
    last_interaction: AtomicU64,
    /// Id + 1 of the last command run (0: none yet).
    last_command: AtomicUsize,
    resp: AtomicU8,
    /// Bytes in the query buffer and its capacity, as of the last batch.
    query_len: AtomicUsize,
    query_capacity: AtomicUsize,
    /// Output not yet taken by the client (while it is being written), and the
    /// output buffer's capacity.
    output_len: AtomicUsize,
    output_capacity: AtomicUsize,
    meta: Mutex<Meta>,
    activity: Mutex<Activity>,
    /// Cancelled to disconnect the client (`CLIENT KILL`, shutdown).
    pub kill: CancellationToken,
}

impl ClientHandle {
    fn new(
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
        fd: i32,
        kill: CancellationToken,
        now: Millis,
    ) -> Self {
        ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            last_interaction: AtomicU64::new(now),
            last_command: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            query_len: AtomicUsize::new(0),
            query_capacity: AtomicUsize::new(0),
            output_len: AtomicUsize::new(0),
            output_capacity: AtomicUsize::new(0),
            meta: Mutex::new(Meta::default()),
            activity: Mutex::new(Activity::default()),
            kill,
        }
    }

    /// A handle for work done inside the server on no connection's behalf
    /// (applying a write feed): id 0, no address, not in the registry.
    pub fn detached() -> Arc<Self> {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        Arc::new(ClientHandle::new(
            0,
            nowhere,
            nowhere,
            -1,
            CancellationToken::new(),
            0,
        ))
    }

    /// Records activity: the command about to run and its time (Unix ms).
    pub fn touch(&self, command_id: usize, now: Millis) {
        self.last_command.store(command_id + 1, Relaxed);
        self.last_interaction.store(now, Relaxed);
    }

    /// Seconds between the last command and `now` (Unix ms).
    pub fn idle_secs(&self, now: Millis) -> u64 {
        now.saturating_sub(self.last_interaction.load(Relaxed)) / 1000
    }

    /// Seconds since the client connected.
    pub fn age_secs(&self) -> u64 {
        self.created.elapsed().as_secs()
    }

    /// Publishes the query buffer's size for `CLIENT LIST`.
    pub fn set_query(&self, len: usize, capacity: usize) {
        self.query_len.store(len, Relaxed);
        self.query_capacity.store(capacity, Relaxed);
    }

    /// Publishes the output waiting for the client to read it, and the output
    /// buffer's capacity, for `CLIENT LIST`.
    pub fn set_output(&self, pending: usize, capacity: usize) {
        self.output_len.store(pending, Relaxed);
        self.output_capacity.store(capacity, Relaxed);
    }

    /// Bytes its buffers hold: the query buffer's capacity (a big argument's own
    /// buffer included) and the output buffer's (`CLIENT LIST`'s `tot-mem`).
    pub fn buffer_memory(&self) -> usize {
        let output = self.output_capacity.load(Relaxed);
        self.query_capacity.load(Relaxed) + output.max(self.output_len.load(Relaxed))
    }

    /// Publishes the client's pub/sub, transaction and blocking state.
    pub fn set_activity(&self, activity: Activity) {
        *self.activity.lock() = activity;
    }

    /// The state last published with [`ClientHandle::set_activity`].
    pub fn activity(&self) -> Activity {
        *self.activity.lock()
    }

    /// Records the protocol in use.
    pub fn set_protocol(&self, proto: Protocol) {
        self.resp.store(proto.version() as u8, Relaxed);
    }

    /// The client name, empty if none.
    pub fn name(&self) -> Vec<u8> {
        self.meta.lock().name.clone()
    }

    /// Sets (or with an empty name, clears) the client name.
    pub fn set_name(&self, name: &[u8]) {
        self.meta.lock().name = name.to_vec();
    }

    /// Sets the library name or version (`CLIENT SETINFO`).
    pub fn set_lib(&self, name: Option<&[u8]>, version: Option<&[u8]>) {
        let mut meta = self.meta.lock();
        if let Some(n) = name {
            meta.lib_name = n.to_vec();
        }
        if let Some(v) = version {
            meta.lib_ver = v.to_vec();
        }
    }

    /// The id of the last command run, if any (see [`ClientHandle::touch`]).
    pub fn last_command(&self) -> Option<usize> {
        self.last_command.load(Relaxed).checked_sub(1)
    }

    /// The `CLIENT LIST` line describing this client at `now` (without
    /// newline); `command` names its last command.
    pub fn describe(&self, now: Millis, command: &str) -> String {
        let meta = self.meta.lock().clone();
        let activity = self.activity();
        let multi = activity.multi.map_or(-1, |n| n as i64);
        let qbuf = self.query_len.load(Relaxed);
        let qcap = self.query_capacity.load(Relaxed);
        let omem = self.output_len.load(Relaxed);
        let ocap = self.output_capacity.load(Relaxed);
        let mut line = String::with_capacity(256);
        let _ = write!(
            line,
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db=0 sub={} psub={} ssub={} \
             multi={} watch={} qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={} rbp={} obl={} oll=0 \
             omem={} tot-mem={} events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            String::from_utf8_lossy(&meta.name),
            self.age_secs(),
            self.idle_secs(now),
            activity.flags(),
            activity.sub,
            activity.psub,
            activity.ssub,
            multi,
            activity.watch,
            qbuf,
            qcap.saturating_sub(qbuf),
            ocap,
            ocap,
            omem,
            omem,
            self.buffer_memory(),
            command,
            self.resp.load(Relaxed),
            String::from_utf8_lossy(&meta.lib_name),
            String::from_utf8_lossy(&meta.lib_ver),
        );
        line
    }
}

/// The registry of connected clients.
#[derive(Debug, Default)]
pub struct Clients {
    map: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    next_id: AtomicU64,
}

impl Clients {
    /// Registers a new connection; its kill token is a child of `shutdown`.
    pub fn register(
        &self,
        addr: SocketAddr,
        laddr: SocketAddr,
        fd: i32,
        shutdown: &CancellationToken,
        now: Millis,
    ) -> Arc<ClientHandle> {
        let id = self.next_id.fetch_add(1, Relaxed) + 1;
        let handle = Arc::new(ClientHandle::new(
            id,
            addr,
            laddr,
            fd,
            shutdown.child_token(),
            now,
        ));
        self.map.lock().insert(handle.id, handle.clone());
        handle
    }

    /// Removes a client that disconnected.
    pub fn unregister(&self, id: u64) {
        self.map.lock().remove(&id);
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// True when no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes all clients' buffers hold (`mem_clients_normal`).
    pub fn buffer_memory(&self) -> usize {
        self.map.lock().values().map(|c| c.buffer_memory()).sum()
    }

    /// All clients, by id.
    pub fn list(&self) -> Vec<Arc<ClientHandle>> {
        let mut all: Vec<_> = self.map.lock().values().cloned().collect();
        all.sort_by_key(|c| c.id);
        all
    }
}
