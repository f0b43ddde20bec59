//! A minimal RESP client for the cluster harnesses: one blocking connection
//! ([`Resp`]: commands queued, flushed, replies read in order) and a
//! cluster-aware client over it ([`ClusterClient`]: a slot table, a
//! connection per node, `-MOVED` and `-ASK` followed, `-TRYAGAIN` and
//! `-CLUSTERDOWN` retried, and, given seeds, the table reloaded from
//! `CLUSTER SLOTS` when a node stops answering).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::encode_command;

/// Slots in a cluster.
pub const SLOTS: usize = 16384;

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+text`.
    Status(String),
    /// `-text` (code and message).
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$n` (`None`: nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` (`None`: nil).
    Array(Option<Vec<Reply>>),
}

/// One connection: commands are queued, flushed, and their replies read in
/// order.
pub struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
}

impl Resp {
    /// Connects to `127.0.0.1:port` (2 s connect timeout); reads and writes
    /// time out after `timeout`.
    pub fn connect(port: u16, timeout: Duration) -> std::io::Result<Resp> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Resp {
            reader: BufReader::with_capacity(1 << 16, stream.try_clone()?),
            writer: stream,
            out: Vec::with_capacity(1 << 16),
        })
    }

    /// Queues one command.
    pub fn queue<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        encode_command(args, &mut self.out);
    }

    /// Sends every queued command.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Sends one command and reads its reply.
    pub fn call<A: AsRef<[u8]>>(&mut self, args: &[A]) -> std::io::Result<Reply> {
        self.queue(args);
        self.flush()?;
        self.read()
    }

    fn line(&mut self) -> std::io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    /// Reads the next reply.
    pub fn read(&mut self) -> std::io::Result<Reply> {
        let line = self.line()?;
        let bad = || std::io::Error::other(format!("bad reply line {line:?}"));
        let (kind, rest) = line.split_at_checked(1).ok_or_else(bad)?;
        let number = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "+" => Reply::Status(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(number()?),
            "$" => match number()? {
                n if n < 0 => Reply::Bulk(None),
                n => {
                    let mut data = vec![0; n as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(n as usize);
                    Reply::Bulk(Some(data))
                }
            },
            "*" => match number()? {
                n if n < 0 => Reply::Array(None),
                n => Reply::Array(Some((0..n).map(|_| self.read()).collect::<Result<_, _>>()?)),
            },
            _ => return Err(bad()),
        })
    }
}

/// Redirects and retries a [`ClusterClient`] went through.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Redirects {
    /// `-MOVED` answers followed.
    pub moved: u64,
    /// `-ASK` answers followed.
    pub asked: u64,
    /// `-TRYAGAIN` / `-CLUSTERDOWN` answers retried.
    pub retried: u64,
    /// Of those, the `-CLUSTERDOWN` answers.
    pub clusterdown: u64,
    /// Slot tables reloaded after a node stopped answering.
    pub refreshed: u64,
}

/// Why a [`ClusterClient::run`] did not get a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// No connection could be made: the command was never sent.
    NotSent(String),
    /// The connection failed after the command was sent: its outcome is
    /// unknown.
    Unknown(String),
    /// An error reply that is not a redirect (or one that cannot be
    /// followed), or too many redirects and retries.
    Failed(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::NotSent(e) => write!(f, "not sent: {e}"),
            RunError::Unknown(e) => write!(f, "outcome unknown: {e}"),
            RunError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// A cluster-aware client: a slot table (slot -> port), a connection per
/// node, `-MOVED` and `-ASK` followed, `-TRYAGAIN` and `-CLUSTERDOWN`
/// retried (1 ms apart, 10 ms after the first 100).
pub struct ClusterClient {
    owner: Vec<u16>,
    connections: HashMap<u16, Resp>,
    timeout: Duration,
    /// Ports asked for a new slot table; empty: the table only changes by
    /// `-MOVED`.
    seeds: Vec<u16>,
    stale: bool,
    /// Redirects and retries followed so far.
    pub redirects: Redirects,
    /// Redirects and retries one command may take.
    pub max_attempts: usize,
    /// The first [`RETRIED_KEPT`] `-TRYAGAIN` / `-CLUSTERDOWN` answers: when,
    /// from which port, and the text.
    pub retried_replies: Vec<(Instant, u16, String)>,
}

/// How many retried answers a [`ClusterClient`] keeps.
pub const RETRIED_KEPT: usize = 20;

impl ClusterClient {
    /// A client with slot table `owner` (each slot's port, [`SLOTS`] of
    /// them) whose connections time out after `timeout`.
    pub fn new(owner: Vec<u16>, timeout: Duration) -> ClusterClient {
        ClusterClient {
            owner,
            connections: HashMap::new(),
            timeout,
            seeds: Vec::new(),
            stale: false,
            redirects: Redirects::default(),
            max_attempts: 100,
            retried_replies: Vec::new(),
        }
    }

    /// A client whose slot table comes from `CLUSTER SLOTS` of the first of
    /// `seeds` that answers, and is reloaded (from a seed or a node of the
    /// table) whenever a node stops answering.
    pub fn with_seeds(seeds: &[u16], timeout: Duration) -> Result<ClusterClient, String> {
        let mut client = ClusterClient::new(vec![0; SLOTS], timeout);
        client.seeds = seeds.to_vec();
        if !client.refresh() {
            return Err(format!("no seed of {seeds:?} answered CLUSTER SLOTS"));
        }
        Ok(client)
    }

    /// The port the table has for `slot`.
    pub fn owner(&self, slot: u16) -> u16 {
        self.owner[usize::from(slot)]
    }

    /// Reloads the slot table from the first node (seeds first, then the
    /// table's) that answers `CLUSTER SLOTS`; false if none did.
    pub fn refresh(&mut self) -> bool {
        let mut ports = self.seeds.clone();
        let mut known: Vec<u16> = self.owner.clone();
        known.sort_unstable();
        known.dedup();
        ports.extend(known.into_iter().filter(|p| *p != 0));
        for port in ports {
            let Ok(mut con) = Resp::connect(port, self.timeout) else {
                continue;
            };
            let Ok(reply) = con.call(&["CLUSTER", "SLOTS"]) else {
                continue;
            };
            if let Some(table) = slot_table(&reply) {
                for (slot, port) in table.into_iter().enumerate() {
                    if port != 0 {
                        self.owner[slot] = port;
                    }
                }
                self.redirects.refreshed += 1;
                self.stale = false;
                return true;
            }
        }
        false
    }

    fn connection(&mut self, port: u16) -> std::io::Result<&mut Resp> {
        match self.connections.entry(port) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(e) => {
                Ok(e.insert(Resp::connect(port, self.timeout)?))
            }
        }
    }

    /// Runs `args` on key slot `slot`'s owner, following redirects.
    pub fn run(&mut self, slot: u16, args: &[&[u8]]) -> Result<Reply, RunError> {
        let mut ask: Option<u16> = None;
        for attempt in 0..self.max_attempts {
            if self.stale && !self.seeds.is_empty() {
                self.refresh();
            }
            let port = ask.unwrap_or(self.owner[usize::from(slot)]);
            let con = match self.connection(port) {
                Ok(con) => con,
                Err(e) => {
                    // Nothing was sent: with seeds, look the owner up again.
                    if self.seeds.is_empty() {
                        return Err(RunError::NotSent(format!("port {port}: {e}")));
                    }
                    self.stale = true;
                    ask = None;
                    if !self.refresh() || self.owner[usize::from(slot)] == port {
                        return Err(RunError::NotSent(format!("port {port}: {e}")));
                    }
                    continue;
                }
            };
            let reply = (|| {
                if ask.is_some() {
                    con.queue(&[b"ASKING"]);
                }
                con.queue(args);
                con.flush()?;
                if ask.is_some() {
                    con.read()?;
                }
                con.read()
            })();
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => {
                    self.connections.remove(&port);
                    self.stale = true;
                    return Err(RunError::Unknown(format!("port {port}: {e}")));
                }
            };
            let Reply::Error(text) = &reply else {
                return Ok(reply);
            };
            let target = || {
                text.split_whitespace()
                    .nth(2)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or_else(|| RunError::Failed(format!("bad redirect {text:?}")))
            };
            if text.starts_with("MOVED ") {
                self.redirects.moved += 1;
                self.owner[usize::from(slot)] = target()?;
                ask = None;
            } else if text.starts_with("ASK ") {
                self.redirects.asked += 1;
                ask = Some(target()?);
            } else if text.starts_with("TRYAGAIN") || text.starts_with("CLUSTERDOWN") {
                self.redirects.retried += 1;
                if text.starts_with("CLUSTERDOWN") {
                    self.redirects.clusterdown += 1;
                }
                if self.retried_replies.len() < RETRIED_KEPT {
                    self.retried_replies
                        .push((Instant::now(), port, text.clone()));
                }
                ask = None;
                let pause = if attempt < 100 { 1 } else { 10 };
                std::thread::sleep(Duration::from_millis(pause));
            } else {
                return Err(RunError::Failed(format!("port {port}: -{text}")));
            }
        }
        Err(RunError::Failed(format!(
            "more than {} redirects and retries",
            self.max_attempts
        )))
    }
}

/// Each slot's port (0: unassigned) from a `CLUSTER SLOTS` reply.
pub fn slot_table(reply: &Reply) -> Option<Vec<u16>> {
    let Reply::Array(Some(ranges)) = reply else {
        return None;
    };
    let mut table = vec![0u16; SLOTS];
    for range in ranges {
        let Reply::Array(Some(fields)) = range else {
            return None;
        };
        let (Some(Reply::Int(start)), Some(Reply::Int(end)), Some(Reply::Array(Some(master)))) =
            (fields.first(), fields.get(1), fields.get(2))
        else {
            return None;
        };
        let port = match master.get(1) {
            Some(Reply::Int(port)) => u16::try_from(*port).ok()?,
            _ => return None,
        };
        let (start, end) = (usize::try_from(*start).ok()?, usize::try_from(*end).ok()?);
        for slot in table.get_mut(start..=end)? {
            *slot = port;
        }
    }
    Some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_cluster_slots_reply() {
        let node = |port| {
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"127.0.0.1".to_vec())),
                Reply::Int(port),
                Reply::Bulk(Some(b"id".to_vec())),
            ]))
        };
        let reply = Reply::Array(Some(vec![
            Reply::Array(Some(vec![Reply::Int(0), Reply::Int(9), node(7000)])),
            Reply::Array(Some(vec![Reply::Int(20), Reply::Int(16383), node(7001)])),
        ]));
        let table = slot_table(&reply).unwrap();
        assert_eq!(
            (table[0], table[9], table[10], table[20]),
            (7000, 7000, 0, 7001)
        );
        assert_eq!(table[16383], 7001);
        assert_eq!(slot_table(&Reply::Int(1)), None);
    }
}
