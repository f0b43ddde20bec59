//! One client connection: read, decode every complete request in the buffer,
//! execute them in order, and send all their replies with one write.

use std::sync::Arc;
use std::time::Duration;

use super::buffer::InputBuffer;
use super::socket::Socket;
use crate::blocking::{Blocked, Waiter, Wake};
use crate::clients::{ClientHandle, Session};
use crate::commands;
use crate::protocol::{Decoded, Protocol, Reply, RequestDecoder, RequestLimits};
use crate::server::Shared;

/// Initial read buffer; grows for large requests and shrinks back when idle.
const READ_BUFFER: usize = 16 * 1024;
/// Least free space offered to each read.
const READ_MIN: usize = 4 * 1024;
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
    /// A command blocked; its request (`len` bytes at the front of the input)
    /// stays unconsumed until it is served, times out, or must run again.
    Blocked { waiter: Arc<Waiter>, len: usize },
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
    let mut conn = Connection {
        shared: shared.clone(),
        socket,
        input: InputBuffer::new(READ_BUFFER),
        decoder: RequestDecoder::new(),
        output: Reply::new(Protocol::Resp2),
        session: Session::new(handle, authenticated),
    };
    if let Err(err) = conn.run().await {
        tracing::debug!(client = id, %err, "connection error");
    }
    conn.shared.stats.flush(&mut conn.session.stats);
    commands::transactions::unwatch_all(&shared, &mut conn.session);
    commands::pubsub::unsubscribe_all(&shared, &mut conn.session);
    shared.clients.unregister(id);
}

impl Connection {
    async fn run(&mut self) -> std::io::Result<()> {
        let kill = self.session.handle.kill.clone();
        let killed = kill.cancelled();
        tokio::pin!(killed);
        loop {
            self.input.shrink_if_idle();
            let wanted = self.decoder.wanted().saturating_sub(self.input.len());
            self.input.reserve(READ_MIN, wanted);
            // Subscribers are exempt from the idle timeout, as in Redis.
            let mailbox = self.session.subscriptions.mailbox.clone();
            let timeout = match mailbox {
                Some(_) => 0,
                None => self.shared.config.timeout_secs(),
            };
            let read = async {
                let read = self.socket.read(&mut self.input);
                if timeout == 0 {
                    Some(read.await)
                } else {
                    tokio::time::timeout(Duration::from_secs(timeout), read)
                        .await
                        .ok()
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
                    let pending = mailbox.as_ref().map(|m| m.take()).unwrap_or_default();
                    tokio::select! {
                        biased;
                        _ = &mut killed => return Ok(()),
                        written = self.socket.write_all(&pending) => written?,
                    }
                    self.session.stats.net_out += pending.len() as u64;
                    continue;
                }
                n = read => match n {
                    None => {
                        tracing::debug!(client = self.session.handle.id, "idle timeout");
                        return Ok(());
                    }
                    Some(n) => n?,
                },
            };
            if n == 0 {
                return Ok(());
            }
            self.session.stats.net_in += n as u64;
            loop {
                let stop = self.process();
                // Let the other connections with input run first, so replies leave in
                // one burst after the whole round, as Redis writes before it sleeps:
                // clients then find many replies per wake-up.
                tokio::task::yield_now().await;
                tokio::select! {
                    biased;
                    _ = &mut killed => return Ok(()),
                    written = self.socket.write_all(self.output.as_bytes()) => written?,
                }
                self.session.stats.net_out += self.output.len() as u64;
                self.output.clear();
                match stop {
                    Stop::Close => {
                        self.publish(false);
                        return Ok(());
                    }
                    Stop::Drained => break,
                    Stop::OutputFull => {}
                    Stop::Blocked { waiter, len } => {
                        self.publish(true);
                        if !self.wait_blocked(&waiter, len, &mut killed).await? {
                            return Ok(());
                        }
                    }
                }
            }
            self.publish(false);
            if self.pending_input() as u64 > self.shared.config.query_buffer_limit() {
                tracing::warn!(
                    client = self.session.handle.id,
                    "closing client that reached max query buffer length"
                );
                self.output
                    .error("ERR query buffer limit exceeded (client-query-buffer-limit)");
                let _ = self.socket.write_all(self.output.as_bytes()).await;
                return Ok(());
            }
        }
    }

    /// Waits while a command is blocked, then queues its reply (or runs it again).
    /// Keeps reading meanwhile, so a client that disconnects is noticed at once.
    /// Returns false when the connection must close.
    async fn wait_blocked(
        &mut self,
        waiter: &Arc<Waiter>,
        len: usize,
        killed: &mut std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
    ) -> std::io::Result<bool> {
        let shared = self.shared.clone();
        let guard = Unregister {
            blocked: &shared.blocked,
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
                _ = killed.as_mut() => return Ok(false),
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
            Some(Wake::Reply(reply)) => {
                self.output.raw(&reply);
                self.input.consume(len);
                self.decoder.release();
            }
            // Not consumed: the command runs again with the next `process`, with
            // the arguments already decoded (big ones are no longer in the input).
            Some(Wake::Retry) => self.decoder.replay(len),
            None => {
                waiter.op.write_timeout(&mut self.output);
                self.input.consume(len);
                self.decoder.release();
            }
        }
        Ok(true)
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
        handle.set_buffers(
            self.input.queued() + held,
            self.input.capacity() + held,
            self.output.len(),
        );
        handle.set_activity(self.session.activity(blocked));
    }

    /// Runs every complete request in the input buffer, appending replies.
    fn process(&mut self) -> Stop {
        let Connection {
            shared,
            input,
            decoder,
            output,
            session,
            ..
        } = self;
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
                    if !args.is_empty() {
                        if let Some(waiter) = commands::execute(shared, session, output, args) {
                            break Stop::Blocked { waiter, len: used };
                        }
                    }
                    decoder.release();
                    consumed += used;
                    if session.close_after_reply {
                        break Stop::Close;
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
