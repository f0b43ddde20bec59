//! One client connection: read, decode every complete request in the buffer,
//! execute them in order, and send all their replies with one write.
//!
//! However a connection ends (the client leaves, an I/O error, `CLIENT KILL`,
//! shutdown, a limit, a panic in a command), the same cleanup runs: it is
//! `Connection`'s `Drop`, so no path can leak the client's registration, watches
//! or subscriptions. A panic in a command ends only its own connection.

use std::io::IoSlice;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buffer::InputBuffer;
use super::socket::Socket;
use crate::blocking::held::Phase;
use crate::blocking::{Blocked, BlockedOp, Held, Waiter, Wake};
use crate::commands::{self, Executed};
use crate::config::ClientClass;
use crate::protocol::{Args, Decoded, Protocol, Reply, RequestDecoder, RequestLimits};
use crate::session::{ClientHandle, Session};
use crate::shared::Shared;
use crate::util::cancel::Cancelled;
use crate::util::suspend::{Resume, Suspendable};

/// Initial read buffer; grows for large requests and shrinks back when idle.
const READ_BUFFER: usize = 16 * 1024;
/// Least free space offered to each read.
const READ_MIN: usize = 4 * 1024;
/// Blocks of output handed to one vectored write.
const WRITE_SLICES: usize = 16;
/// Replies buffered beyond this are sent before more requests run, so one pipeline
/// cannot make a client's output grow without bound.
const OUTPUT_FLUSH: usize = 64 * 1024;

/// Where processing the input buffer stopped.
#[derive(Debug)]
enum Stop {
    /// Every complete request ran; wait for more input.
    Drained,
    /// The output is large: send it, then continue with the buffered requests.
    OutputFull,
    /// Close after sending what is buffered.
    Close,
    /// Close at once, discarding what is buffered.
    Abort,
    /// The client is a replica that sent `PSYNC`: the connection becomes its
    /// replication stream.
    Replica,
    /// The client is a migration source that sent `CLUSTER SYNCSLOTS
    /// BEGIN`: the connection becomes that import's stream.
    Import,
    /// A command blocked; its request (`len` bytes at the front of the input)
    /// stays unconsumed until it is served, times out, or must run again.
    Blocked { waiter: Arc<Waiter>, len: usize },
    /// A command's reply is held until its lock changes are acknowledged
    /// (`Session::held`); nothing more runs before it is sent.
    Held,
    /// A command runs a script: its request (`len` bytes at the front of
    /// the input) and the rest of the batch run on a suspendable stack.
    Script { len: usize },
}

/// Removes a waiter from the registry however the wait ends (served, timed out,
/// killed, disconnected).
struct Unregister<'a> {
    blocked: &'a Blocked,
    waiter: &'a Arc<Waiter>,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.blocked.unregister(self.waiter);
    }
}

struct Connection {
    shared: Arc<Shared>,
    socket: Socket,
    input: InputBuffer,
    decoder: RequestDecoder,
    output: Reply,
    session: Session,
}

/// Serves one client until it disconnects, is killed, or the server shuts down.
/// Must run on the runtime that will own the socket.
pub async fn serve(shared: Arc<Shared>, stream: std::net::TcpStream, handle: Arc<ClientHandle>) {
    let id = handle.id;
    let socket = match Socket::new(stream) {
        Ok(socket) => socket,
        Err(err) => {
            tracing::warn!(client = id, %err, "cannot register connection");
            shared.clients.unregister(id);
            return;
        }
    };
    let authenticated = !shared.config.has_password();
    let mut session = Session::new(handle, authenticated);
    session.suspendable = true;
    let conn = Box::new(Connection {
        shared,
        socket,
        input: InputBuffer::new(READ_BUFFER),
        decoder: RequestDecoder::new(),
        output: Reply::new(Protocol::Resp2),
        session,
    });
    if let Err(err) = conn.run().await {
        tracing::debug!(client = id, %err, "connection error");
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.stats.flush(&mut self.session.stats);
        self.session.unwatch_all(&shared.data.watches);
        self.session.unsubscribe_all(&shared.data.pubsub);
        shared.clients.unregister(self.session.handle.id);
    }
}

/// True for the first word of an HTTP request (`POST`) or header (`Host:`): a
/// web page making a browser talk to the server (cross-protocol scripting).
fn is_http(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

/// Logs a cross-protocol attack, at most once a minute as Redis does.
fn warn_http_attack() {
    static LAST: parking_lot::Mutex<Option<Instant>> = parking_lot::Mutex::new(None);
    let mut last = LAST.lock();
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        tracing::warn!(
            "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: \
             commands to Redis. This is likely due to an attacker attempting to use Cross \
             Protocol Scripting to compromise your Redis instance. Connection aborted."
        );
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

impl Connection {
    /// Serves the client; owns the connection so that a batch running a
    /// script can take it onto a stack of its own ([`process_suspendable`]).
    async fn run(self: Box<Self>) -> std::io::Result<()> {
        let mut conn = self;
        let mut killed = Cancelled::new(&conn.session.handle.kill);
        loop {
            conn.input.shrink_if_idle();
            let wanted = conn.decoder.wanted().saturating_sub(conn.input.len());
            conn.input.reserve(READ_MIN, wanted);
            let mailbox = conn.session.subscriptions.mailbox.clone();
            let timeout = conn.idle_timeout();
            let read = async {
                let read = conn.socket.read(&mut conn.input);
                match timeout {
                    None => Some(read.await),
                    Some(t) => tokio::time::timeout(t, read).await.ok(),
                }
            };
            let messages = async {
                match &mailbox {
                    Some(m) => m.ready().await,
                    None => std::future::pending().await,
                }
            };
            let n = tokio::select! {
                biased;
                _ = &mut killed => return Ok(()),
                _ = messages => {
                    if let Some(m) = &mailbox {
                        conn.output.append(m.take());
                    }
                    if !conn.flush(&mut killed).await? {
                        return Ok(());
                    }
                    continue;
                }
                n = read => match n {
                    None => {
                        tracing::debug!(client = conn.session.handle.id, "idle timeout");
                        return Ok(());
                    }
                    Some(n) => n?,
                },
            };
            if n == 0 {
                return Ok(());
            }
            conn.session.stats.net_in += n as u64;
            loop {
                // A client that sent a script last time likely sends another
                // (a lock library's): its batch starts on a suspendable stack
                // rather than stopping at the script to run again there.
                let mut stop = match conn.session.ran_script {
                    true => Stop::Script { len: 0 },
                    false => conn.process(),
                };
                conn.session.ran_script = false;
                if let Stop::Script { len } = stop {
                    (conn, stop) = process_suspendable(conn, len).await;
                }
                // Let the other connections with input run first, so replies leave in
                // one burst after the whole round, as Redis writes before it sleeps:
                // clients then find many replies per wake-up.
                crate::util::turn::turn().await;
                if matches!(stop, Stop::Abort) || !conn.flush(&mut killed).await? {
                    return Ok(());
                }
                match stop {
                    Stop::Close | Stop::Abort => {
                        conn.publish(false);
                        return Ok(());
                    }
                    Stop::Replica | Stop::Import => {
                        conn.publish(false);
                        let Connection {
                            shared,
                            socket,
                            input,
                            session,
                            ..
                        } = &mut *conn;
                        return match stop {
                            Stop::Replica => {
                                super::replica::serve(shared, socket, input, session).await
                            }
                            _ => super::import::serve(shared, socket, input, session).await,
                        };
                    }
                    Stop::Drained => break,
                    Stop::OutputFull => {}
                    Stop::Script { .. } => {
                        unreachable!("a batch on a suspendable stack runs its scripts")
                    }
                    Stop::Blocked { waiter, len } => {
                        conn.publish(true);
                        if !conn.wait_blocked(&waiter, len, &mut killed).await? {
                            return Ok(());
                        }
                    }
                    Stop::Held => {
                        conn.publish(true);
                        if !conn.wait_held(&mut killed).await? {
                            return Ok(());
                        }
                    }
                }
            }
            conn.publish(false);
            if conn.pending_input() as u64 > conn.shared.config.query_buffer_limit() {
                tracing::warn!(
                    client = conn.session.handle.id,
                    "closing client that reached max query buffer length"
                );
                let stats = &conn.shared.stats;
                stats.query_limit_disconnections.fetch_add(1, Relaxed);
                conn.output
                    .error("ERR query buffer limit exceeded (client-query-buffer-limit)");
                conn.flush(&mut killed).await?;
                return Ok(());
            }
        }
    }

    /// The client class whose output limits apply now.
    fn class(&self) -> ClientClass {
        if self.session.subscriptions.count() > 0 {
            ClientClass::Pubsub
        } else {
            ClientClass::Normal
        }
    }

    /// How long the client may stay idle (`timeout`); subscribers never time
    /// out, as in Redis.
    fn idle_timeout(&self) -> Option<Duration> {
        match self.shared.config.timeout_secs() {
            0 => None,
            _ if self.class() == ClientClass::Pubsub => None,
            secs => Some(Duration::from_secs(secs)),
        }
    }

    /// Sends the buffered replies. A client that reads slowly is waited for,
    /// but closed (false) once its pending output breaks its class's limits
    /// (`client-output-buffer-limit`), or when it took nothing for `timeout`
    /// seconds: a client that stopped reading is idle too.
    async fn flush(&mut self, killed: &mut Cancelled) -> std::io::Result<bool> {
        // When the client last took output: read only once a write would
        // block (the common flush never waits, and needs no clock).
        let mut progress: Option<Instant> = None;
        let mut over_soft_since = None;
        let result = loop {
            if self.output.is_empty() {
                break Ok(true);
            }
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let n = self.output.unsent(&mut slices);
            if let Some(written) = self.socket.try_write(&slices[..n])? {
                self.output.advance(written);
                self.session.stats.net_out += written as u64;
                progress = None;
                continue;
            }
            let pending = self.output.len() as u64;
            let handle = &self.session.handle;
            handle.set_output(pending as usize, self.output.capacity());
            let limit = self.shared.config.output_limit(self.class());
            let now = Instant::now();
            let progress = *progress.get_or_insert(now);
            if limit.exceeded(pending, &mut over_soft_since, now) {
                tracing::warn!(
                    client = handle.id,
                    pending,
                    "closing client over its output buffer limits"
                );
                let stats = &self.shared.stats;
                stats.output_limit_disconnections.fetch_add(1, Relaxed);
                break Ok(false);
            }
            let timeout = self.idle_timeout();
            let idle_at = timeout.map(|t| progress + t);
            let soft_at = over_soft_since.map(|since| since + limit.soft_grace());
            let deadline = idle_at.into_iter().chain(soft_at).min();
            let expiry = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = &mut *killed => break Ok(false),
                ready = self.socket.writable() => ready?,
                _ = expiry => {
                    if timeout.is_some_and(|t| progress.elapsed() >= t) {
                        tracing::debug!(client = handle.id, "idle timeout: output not read");
                        break Ok(false);
                    }
                    // Otherwise the soft limit ran out: checked above.
                }
            }
        };
        self.output.clear();
        self.session.handle.set_output(0, self.output.capacity());
        result
    }

    /// Waits while a command is blocked, then queues its reply (or runs it again).
    /// Keeps reading meanwhile, so a client that disconnects is noticed at once.
    /// Returns false when the connection must close.
    async fn wait_blocked(
        &mut self,
        waiter: &Arc<Waiter>,
        len: usize,
        killed: &mut Cancelled,
    ) -> std::io::Result<bool> {
        let shared = self.shared.clone();
        let guard = Unregister {
            blocked: &shared.data.blocked,
            waiter,
        };
        let timeout = waiter
            .deadline
            .map(|at| Duration::from_millis(at.saturating_sub(self.shared.clock.now_ms())));
        let expiry = async {
            match timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expiry);
        let wake = loop {
            self.input.reserve(READ_MIN, 0);
            tokio::select! {
                biased;
                _ = &mut *killed => return Ok(false),
                wake = waiter.woken() => break Some(wake),
                _ = &mut expiry => break None,
                n = self.socket.read(&mut self.input) => {
                    let n = n?;
                    if n == 0 || self.pending_input() as u64 > self.shared.config.query_buffer_limit() {
                        return Ok(false);
                    }
                    self.session.stats.net_in += n as u64;
                }
            }
        };
        drop(guard);
        // A writer may have served us just as the wait ended.
        match wake.or_else(|| waiter.take()) {
            Some(Wake::Held(outcome, held)) => {
                self.input.consume(len);
                self.decoder.release();
                match self.settle(&held, killed).await? {
                    None => return Ok(false),
                    Some(Phase::Acked) => commands::blocking::write_outcome(
                        &self.shared,
                        &mut self.session,
                        &outcome,
                        &mut self.output,
                    ),
                    Some(_) => self.write_held_failure(&held),
                }
            }
            Some(Wake::Served(outcome)) => {
                commands::blocking::write_outcome(
                    &self.shared,
                    &mut self.session,
                    &outcome,
                    &mut self.output,
                );
                self.input.consume(len);
                self.decoder.release();
            }
            // Not consumed: the command runs again with the next `process`, with
            // the arguments already decoded (big ones are no longer in the input).
            Some(Wake::Retry) => self.decoder.replay(len),
            // The pause of writes ended (or its check is due): run it again.
            None if matches!(waiter.op, BlockedOp::Paused) => self.decoder.replay(len),
            None => {
                commands::blocking::write_timeout(&self.shared, &waiter.op, &mut self.output);
                self.input.consume(len);
                self.decoder.release();
            }
        }
        Ok(true)
    }

    /// Waits until the held reply (`Session::held`) can go, then queues it, or
    /// the error of a change undone. False when the connection must close.
    async fn wait_held(&mut self, killed: &mut Cancelled) -> std::io::Result<bool> {
        let Some(held) = self.session.held.take() else {
            return Ok(true);
        };
        match self.settle(&held.held, killed).await? {
            None => return Ok(false),
            Some(Phase::Acked) => self.output.append(held.reply),
            Some(_) => self.write_held_failure(&held.held),
        }
        Ok(true)
    }

    /// Waits until `held` is acknowledged or undone (undoing it at its
    /// deadline if nobody did yet). Keeps reading meanwhile, as a blocked
    /// client does. `None` when the connection must close.
    async fn settle(
        &mut self,
        held: &Held,
        killed: &mut Cancelled,
    ) -> std::io::Result<Option<Phase>> {
        let shared = self.shared.clone();
        let left = held.deadline.saturating_sub(shared.clock.now_ms());
        let deadline = tokio::time::sleep(Duration::from_millis(left));
        tokio::pin!(deadline);
        let mut expired = false;
        loop {
            self.input.reserve(READ_MIN, 0);
            tokio::select! {
                biased;
                _ = &mut *killed => return Ok(None),
                phase = held.settled() => return Ok(Some(phase)),
                _ = &mut deadline, if !expired => {
                    expired = true;
                    commands::held::expire(&shared, held);
                }
                n = self.socket.read(&mut self.input) => {
                    let n = n?;
                    if n == 0 || self.pending_input() as u64 > shared.config.query_buffer_limit() {
                        return Ok(None);
                    }
                    self.session.stats.net_in += n as u64;
                }
            }
        }
    }

    fn write_held_failure(&mut self, held: &Held) {
        commands::held::write_failure(&self.shared, &mut self.session, held, &mut self.output);
    }

    /// Bytes of requests received and not yet run: the input, and big arguments
    /// of the request in progress already decoded.
    fn pending_input(&self) -> usize {
        self.input.queued() + self.decoder.held()
    }

    /// Adds the connection's counters to the server's and publishes buffer sizes
    /// and state for `CLIENT LIST`.
    fn publish(&mut self, blocked: bool) {
        self.shared.stats.flush(&mut self.session.stats);
        let handle = &self.session.handle;
        let held = self.decoder.held();
        handle.set_query(self.input.queued() + held, self.input.capacity() + held);
        handle.set_activity(self.session.activity(blocked));
    }

    /// The most one batch of replies may hold: the client class's hard output
    /// limit, or where it has none, `client-query-buffer-limit` (a client may not
    /// make the server hold more for its answer than for its request).
    fn reply_limit(&self) -> usize {
        let config = &self.shared.config;
        match config.output_limit(self.class()).hard {
            0 => config.query_buffer_limit(),
            hard => hard,
        }
        .try_into()
        .unwrap_or(usize::MAX)
    }

    /// Runs every complete request in the input buffer, appending replies.
    fn process(&mut self) -> Stop {
        let limit = self.reply_limit();
        let Connection {
            shared,
            input,
            decoder,
            output,
            session,
            ..
        } = self;
        output.set_limit(limit);
        session.begin_batch(&*shared.clock);
        if let Some(arg) = input.take_detached() {
            decoder.attach(arg);
        }
        let mut consumed = 0;
        let stop = loop {
            if output.len() >= OUTPUT_FLUSH {
                break Stop::OutputFull;
            }
            let limits = RequestLimits {
                max_bulk_len: shared.config.proto_max_bulk_len(),
                authenticated: session.authenticated || !shared.config.has_password(),
            };
            let buf = &input.filled()[consumed..];
            match decoder.decode(buf, limits) {
                Ok(Decoded::Incomplete) => {
                    // A big argument still arriving is received into a buffer of its
                    // own, which commands can then keep as a value.
                    if let Some(detach) = decoder.take_detach() {
                        input.detach(consumed + detach.at, detach.len);
                    }
                    break Stop::Drained;
                }
                Ok(Decoded::Request { consumed: used }) => {
                    let args = decoder.args(buf);
                    consumed += used;
                    let ran = run_request(shared, session, output, args);
                    if !matches!(ran, Ran::Blocked(_) | Ran::NeedsStack) {
                        // Big arguments go as soon as their command is done.
                        decoder.release();
                    }
                    match ran {
                        Ran::Done if session.close_after_reply => break Stop::Close,
                        Ran::Done if session.replconf.psync.is_some() => break Stop::Replica,
                        Ran::Done if session.import.is_some() => break Stop::Import,
                        Ran::Done if session.held.is_some() => break Stop::Held,
                        Ran::Done => {}
                        Ran::Blocked(waiter) => {
                            // The request stays in the buffer until it is served.
                            consumed -= used;
                            break Stop::Blocked { waiter, len: used };
                        }
                        Ran::Abort => break Stop::Abort,
                        Ran::NeedsStack => {
                            consumed -= used;
                            break Stop::Script { len: used };
                        }
                    }
                }
                Err(err) => {
                    output.error(&format!("ERR {err}"));
                    session.stats.error_replies += 1;
                    shared.stats.count_error("ERR");
                    tracing::debug!(client = session.handle.id, %err, "protocol error");
                    break Stop::Close;
                }
            }
        };
        input.consume(consumed);
        stop
    }
}

/// Runs the batch from the script request (`len` bytes, 0 if none was
/// decoded yet) that stopped [`Connection::process`] on a stack that can be
/// suspended: a script past
/// `busy-reply-threshold` suspends at its checks, and the worker serves its
/// other connections for a turn before resuming it. Shutdown resumes it
/// with [`Resume::Abort`], which ends it.
async fn process_suspendable(mut conn: Box<Connection>, len: usize) -> (Box<Connection>, Stop) {
    if len > 0 {
        conn.decoder.replay(len);
    }
    let shared = conn.shared.clone();
    let mut work = Suspendable::new(move || {
        let stop = conn.process();
        (conn, stop)
    });
    let mut how = Resume::Continue;
    loop {
        if let Some(done) = work.resume(how) {
            return done;
        }
        tokio::task::yield_now().await;
        if shared.shutdown.is_cancelled() {
            how = Resume::Abort;
        }
    }
}

/// How running one request ended.
enum Ran {
    /// Its reply is in the output.
    Done,
    /// It blocked and waits to be served.
    Blocked(Arc<Waiter>),
    /// The connection must close at once, without sending anything more.
    Abort,
    /// Nothing ran: it must run on a suspendable stack (`Executed::NeedsStack`).
    NeedsStack,
}

/// Runs one decoded request. An HTTP request (a browser made to talk to us)
/// aborts the connection unanswered, as Redis does; a panic in the command ends
/// this connection with an error and leaves the server and other clients alone.
fn run_request(shared: &Shared, session: &mut Session, output: &mut Reply, args: Args<'_>) -> Ran {
    let Some(name) = args.get(0) else {
        return Ran::Done;
    };
    if is_http(name) {
        warn_http_attack();
        return Ran::Abort;
    }
    let mark = output.len();
    match catch_unwind(AssertUnwindSafe(|| {
        commands::execute(shared, session, output, args)
    })) {
        Ok(Executed::Done) => Ran::Done,
        Ok(Executed::Blocked(waiter)) => Ran::Blocked(waiter),
        Ok(Executed::NeedsStack) => Ran::NeedsStack,
        Err(payload) => {
            tracing::error!(
                client = session.handle.id,
                command = %String::from_utf8_lossy(&name[..name.len().min(64)]),
                panic = panic_message(payload.as_ref()),
                "command panicked; closing its connection"
            );
            output.truncate(mark);
            output.error("ERR internal error while running the command; closing the connection");
            session.close_after_reply = true;
            Ran::Done
        }
    }
}
