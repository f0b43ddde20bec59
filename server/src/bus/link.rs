//! One bus link: frames over a byte stream, once the link is set up and its
//! peer authenticated (docs/CLUSTER.md, Link set-up and authentication).
//!
//! [`connect`] and [`accept`] run the handshake and only then hand back a
//! [`Link`], so holding one means the peer proved it knows the cluster secret
//! (when one is set). [`Link::split_with`] turns a link into a [`LinkReader`]
//! and a [`LinkWriter`], for a reader task and a writer task per connection.
//!
//! Memory is bounded by the [`Limits`]: the read buffer holds at most one
//! frame under the limit plus one read's worth, and is given back after a
//! big frame.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cluster::wire::{encode, Frame, FrameDecoder, Limits, WireError, NONCE_LEN};

/// The bus protocol version this node speaks; a peer speaking another is refused.
pub const BUS_VERSION: u16 = 1;

/// What the accepting side's MAC covers first; a different label for each
/// side, so neither side's MAC can be replayed as the other's.
const ACCEPT_LABEL: &[u8] = b"ringkv-bus accept";
/// What the connecting side's MAC covers first.
const CONNECT_LABEL: &[u8] = b"ringkv-bus connect";

/// The room a read is given at least.
const READ_CHUNK: usize = 16 * 1024;
/// A buffer grown past this by one frame is given back after it: a big
/// `Publish` must not pin its size on the link for good.
const KEEP_CAPACITY: usize = 64 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// Why a link failed; the caller closes it (dropping the link does).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The stream failed.
    #[error("bus link I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer sent bytes that are no frame, or a frame over the limits.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The peer closed the link before the set-up finished.
    #[error("bus peer closed the link during set-up")]
    ClosedInSetUp,
    /// The peer closed the link in the middle of a frame.
    #[error("bus peer closed the link mid-frame")]
    ClosedMidFrame,
    /// A frame other than the set-up step due.
    #[error("bus peer sent {got} where {expected} was due")]
    Unexpected {
        /// The frame due.
        expected: &'static str,
        /// The frame sent.
        got: &'static str,
    },
    /// The peer speaks another bus protocol version.
    #[error("bus peer speaks protocol version {theirs}, this node {ours}")]
    Version {
        /// The peer's version.
        theirs: u16,
        /// This node's, [`BUS_VERSION`].
        ours: u16,
    },
    /// With a secret set: the peer's MAC is missing or wrong.
    #[error("bus peer did not prove it knows the cluster secret")]
    BadMac,
    /// Without a secret: the peer sent a MAC, so the two disagree on having one.
    #[error("bus peer sent a MAC but this node has no cluster secret")]
    UnexpectedMac,
    /// The set-up did not finish in time.
    #[error("bus link set-up took over {0:?}")]
    Timeout(Duration),
}

/// Sets up a link as the connecting side: `Hello`, then the peer's
/// `Challenge` is checked, then `Proof`. Fails unless it all happens
/// `within` the given time.
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    secret: Option<&[u8]>,
    limits: Limits,
    within: Duration,
) -> Result<Link<S>, LinkError> {
    let mut link = Link::new(stream, limits);
    let set_up = async {
        let ours: [u8; NONCE_LEN] = rand::random();
        link.send(&Frame::Hello {
            version: BUS_VERSION,
            nonce: ours,
        })
        .await?;
        let (theirs, mac) = match link.recv().await? {
            Some(Frame::Challenge { nonce, mac }) => (nonce, mac),
            other => return Err(unexpected("Challenge", other)),
        };
        check(secret, ACCEPT_LABEL, &ours, &theirs, &mac)?;
        let mac = sign(secret, CONNECT_LABEL, &theirs, &ours);
        link.send(&Frame::Proof { mac }).await
    };
    in_time(within, set_up).await?;
    Ok(link)
}

/// Sets up a link as the accepting side: the peer's `Hello` (its version must
/// be [`BUS_VERSION`]), then `Challenge`, then the peer's `Proof` is checked.
/// Fails unless it all happens `within` the given time.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    secret: Option<&[u8]>,
    limits: Limits,
    within: Duration,
) -> Result<Link<S>, LinkError> {
    let mut link = Link::new(stream, limits);
    let set_up = async {
        let theirs = match link.recv().await? {
            Some(Frame::Hello {
                version: BUS_VERSION,
                nonce,
            }) => nonce,
            Some(Frame::Hello { version, .. }) => {
                return Err(LinkError::Version {
                    theirs: version,
                    ours: BUS_VERSION,
                })
            }
            other => return Err(unexpected("Hello", other)),
        };
        let ours: [u8; NONCE_LEN] = rand::random();
        let mac = sign(secret, ACCEPT_LABEL, &theirs, &ours);
        link.send(&Frame::Challenge { nonce: ours, mac }).await?;
        match link.recv().await? {
            Some(Frame::Proof { mac }) => check(secret, CONNECT_LABEL, &ours, &theirs, &mac),
            other => Err(unexpected("Proof", other)),
        }
    };
    in_time(within, set_up).await?;
    Ok(link)
}

async fn in_time(
    within: Duration,
    set_up: impl Future<Output = Result<(), LinkError>>,
) -> Result<(), LinkError> {
    tokio::time::timeout(within, set_up)
        .await
        .map_err(|_| LinkError::Timeout(within))?
}

/// The error for `got` arriving where `expected` was due in the set-up.
fn unexpected(expected: &'static str, got: Option<Frame>) -> LinkError {
    let got = match got {
        None => return LinkError::ClosedInSetUp,
        Some(Frame::Hello { .. }) => "Hello",
        Some(Frame::Challenge { .. }) => "Challenge",
        Some(Frame::Proof { .. }) => "Proof",
        Some(Frame::Message(_)) => "a message",
    };
    LinkError::Unexpected { expected, got }
}

/// The MAC over `label | first | second` with the secret, empty without one.
fn sign(secret: Option<&[u8]>, label: &[u8], first: &[u8], second: &[u8]) -> Vec<u8> {
    secret.map_or_else(Vec::new, |key| {
        keyed(key, label, first, second)
            .finalize()
            .into_bytes()
            .to_vec()
    })
}

/// Checks a peer's MAC over `label | first | second`, in constant time.
fn check(
    secret: Option<&[u8]>,
    label: &[u8],
    first: &[u8],
    second: &[u8],
    mac: &[u8],
) -> Result<(), LinkError> {
    match secret {
        None if mac.is_empty() => Ok(()),
        None => Err(LinkError::UnexpectedMac),
        Some(key) => keyed(key, label, first, second)
            .verify_slice(mac)
            .map_err(|_| LinkError::BadMac),
    }
}

fn keyed(key: &[u8], label: &[u8], first: &[u8], second: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(label);
    mac.update(first);
    mac.update(second);
    mac
}

/// A set-up link over one stream.
#[derive(Debug)]
pub struct Link<S> {
    io: S,
    input: Input,
    output: Output,
}

impl<S> Link<S> {
    fn new(io: S, limits: Limits) -> Link<S> {
        Link {
            io,
            input: Input::new(limits),
            output: Output::default(),
        }
    }

    /// Splits the link with `split` (`TcpStream::into_split`,
    /// `tokio::io::split`) into halves for a reader task and a writer task.
    /// Bytes already received and frames queued go with their half.
    pub fn split_with<R, W>(
        self,
        split: impl FnOnce(S) -> (R, W),
    ) -> (LinkReader<R>, LinkWriter<W>) {
        let (read, write) = split(self.io);
        let reader = LinkReader {
            io: read,
            input: self.input,
        };
        let writer = LinkWriter {
            io: write,
            output: self.output,
        };
        (reader, writer)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    /// The next frame, or `None` when the peer closed the link between
    /// frames. Cancel safe.
    pub async fn recv(&mut self) -> Result<Option<Frame>, LinkError> {
        self.input.recv(&mut self.io).await
    }

    /// Queues `frame` for the next [`flush`](Link::flush).
    pub fn queue(&mut self, frame: &Frame) {
        self.output.queue(frame);
    }

    /// Writes every queued frame. Not cancel safe: a cancelled flush leaves
    /// the link out of step, to be dropped.
    pub async fn flush(&mut self) -> Result<(), LinkError> {
        self.output.flush(&mut self.io).await
    }

    /// Queues `frame` and flushes.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), LinkError> {
        self.queue(frame);
        self.flush().await
    }
}

/// The receiving half of a link.
#[derive(Debug)]
pub struct LinkReader<R> {
    io: R,
    input: Input,
}

impl<R: AsyncRead + Unpin> LinkReader<R> {
    /// The next frame, or `None` when the peer closed the link between
    /// frames. Cancel safe.
    pub async fn recv(&mut self) -> Result<Option<Frame>, LinkError> {
        self.input.recv(&mut self.io).await
    }
}

/// The sending half of a link.
#[derive(Debug)]
pub struct LinkWriter<W> {
    io: W,
    output: Output,
}

impl<W: AsyncWrite + Unpin> LinkWriter<W> {
    /// Queues `frame` for the next [`flush`](LinkWriter::flush).
    pub fn queue(&mut self, frame: &Frame) {
        self.output.queue(frame);
    }

    /// Writes every queued frame. Not cancel safe: a cancelled flush leaves
    /// the link out of step, to be dropped.
    pub async fn flush(&mut self) -> Result<(), LinkError> {
        self.output.flush(&mut self.io).await
    }

    /// Queues `frame` and flushes.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), LinkError> {
        self.queue(frame);
        self.flush().await
    }
}

/// Received bytes not yet decoded.
#[derive(Debug)]
struct Input {
    buf: BytesMut,
    decoder: FrameDecoder,
}

impl Input {
    fn new(limits: Limits) -> Input {
        Input {
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(limits),
        }
    }

    /// Frames are decoded before anything more is read, so the buffer holds
    /// less than one frame (which the decoder checked) plus one read.
    async fn recv<R: AsyncRead + Unpin>(&mut self, io: &mut R) -> Result<Option<Frame>, LinkError> {
        loop {
            let before = self.buf.len();
            if let Some(frame) = self.decoder.decode(&mut self.buf)? {
                if before - self.buf.len() > KEEP_CAPACITY {
                    // The bytes after it move to a buffer of their size.
                    self.buf = BytesMut::from(&self.buf[..]);
                }
                return Ok(Some(frame));
            }
            self.buf.reserve(READ_CHUNK);
            if io.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(LinkError::ClosedMidFrame);
            }
        }
    }
}

/// Encoded frames not yet written.
#[derive(Debug, Default)]
struct Output {
    buf: Vec<u8>,
}

impl Output {
    fn queue(&mut self, frame: &Frame) {
        encode(frame, &mut self.buf);
    }

    async fn flush<W: AsyncWrite + Unpin>(&mut self, io: &mut W) -> Result<(), LinkError> {
        io.write_all(&self.buf).await?;
        io.flush().await?;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::id::Id;
    use crate::cluster::message::{Body, Flags, Header, Message};
    use tokio::io::{duplex, DuplexStream};

    const LIMITS: Limits = Limits {
        max_frame: 1 << 20,
        max_publish: 4 << 20,
    };
    /// Long enough never to be reached by a set-up that goes on.
    const PATIENT: Duration = Duration::from_secs(10);
    const SECRET: &[u8] = b"cluster secret";

    fn pair() -> (DuplexStream, DuplexStream) {
        duplex(64 * 1024)
    }

    /// A message from node 1, its current epoch `epoch` (which tells apart
    /// otherwise equal messages).
    fn message_at(epoch: u64, body: Body) -> Frame {
        Frame::Message(Message {
            header: Header {
                sender: Id([1; 20]),
                shard: Id([2; 20]),
                flags: Flags(Flags::MASTER),
                master: None,
                port: 7000,
                cport: 17000,
                current_epoch: epoch,
                config_epoch: 2,
                claim_digest: 5,
                your_claim_digest: 6,
                offset: 0,
                knows_you: true,
                paused: false,
                claim: None,
            },
            body,
        })
    }

    fn message(body: Body) -> Frame {
        message_at(3, body)
    }

    fn ping() -> Frame {
        message(Body::Ping(Vec::new()))
    }

    /// `future`'s output, or a failed test rather than a hung one.
    async fn soon<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(PATIENT, future)
            .await
            .expect("timed out")
    }

    /// Both sides of a set-up over a fresh pair of streams.
    async fn set_up(
        connector: Option<&[u8]>,
        acceptor: Option<&[u8]>,
    ) -> (
        Result<Link<DuplexStream>, LinkError>,
        Result<Link<DuplexStream>, LinkError>,
    ) {
        let (a, b) = pair();
        tokio::join!(
            connect(a, connector, LIMITS, PATIENT),
            accept(b, acceptor, LIMITS, PATIENT)
        )
    }

    /// A connecting side driven by hand: it has sent `Hello` with `version`
    /// and holds the acceptor's nonce from its `Challenge`.
    async fn hand_connector(
        stream: DuplexStream,
        version: u16,
    ) -> (Link<DuplexStream>, [u8; NONCE_LEN], [u8; NONCE_LEN]) {
        let mut link = Link::new(stream, LIMITS);
        let ours = [7; NONCE_LEN];
        link.send(&Frame::Hello {
            version,
            nonce: ours,
        })
        .await
        .unwrap();
        let Some(Frame::Challenge { nonce, .. }) = link.recv().await.unwrap() else {
            panic!("no challenge");
        };
        (link, ours, nonce)
    }

    /// Runs `accept` against a hand-driven connector that, after the
    /// challenge, sends `then`; returns what `accept` returned.
    async fn accept_against(
        secret: Option<&[u8]>,
        then: impl Fn(&[u8; NONCE_LEN], &[u8; NONCE_LEN]) -> Frame,
    ) -> Result<Link<DuplexStream>, LinkError> {
        let (a, b) = pair();
        let peer = async {
            let (mut link, ours, theirs) = hand_connector(a, BUS_VERSION).await;
            link.send(&then(&ours, &theirs)).await.unwrap();
            link
        };
        let (accepted, _peer) = tokio::join!(accept(b, secret, LIMITS, PATIENT), peer);
        accepted
    }

    async fn frames_flow_both_ways(connector: Link<DuplexStream>, acceptor: Link<DuplexStream>) {
        let (mut c, mut a) = (connector, acceptor);
        c.send(&ping()).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), Some(ping()));
        let pong = message(Body::Pong(Vec::new()));
        a.send(&pong).await.unwrap();
        assert_eq!(c.recv().await.unwrap(), Some(pong));
    }

    #[tokio::test]
    async fn without_a_secret_the_set_up_succeeds_and_frames_flow_both_ways() {
        let (c, a) = set_up(None, None).await;
        frames_flow_both_ways(c.unwrap(), a.unwrap()).await;
    }

    #[tokio::test]
    async fn with_the_same_secret_the_set_up_succeeds_and_frames_flow_both_ways() {
        let (c, a) = set_up(Some(SECRET), Some(SECRET)).await;
        frames_flow_both_ways(c.unwrap(), a.unwrap()).await;
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_by_both_sides() {
        let (c, a) = set_up(Some(b"other secret"), Some(SECRET)).await;
        assert!(matches!(c, Err(LinkError::BadMac)), "{c:?}");
        // The connector closes on the bad challenge before proving anything.
        assert!(matches!(a, Err(LinkError::ClosedInSetUp)), "{a:?}");

        // A connector that does not check the challenge still cannot prove.
        let accepted = accept_against(Some(SECRET), |ours, theirs| Frame::Proof {
            mac: sign(Some(b"other secret"), CONNECT_LABEL, theirs, ours),
        })
        .await;
        assert!(matches!(accepted, Err(LinkError::BadMac)), "{accepted:?}");
    }

    #[tokio::test]
    async fn a_secret_on_one_side_only_is_refused() {
        let (c, a) = set_up(Some(SECRET), None).await;
        assert!(matches!(c, Err(LinkError::BadMac)), "{c:?}");
        assert!(matches!(a, Err(LinkError::ClosedInSetUp)), "{a:?}");

        let (c, a) = set_up(None, Some(SECRET)).await;
        assert!(matches!(c, Err(LinkError::UnexpectedMac)), "{c:?}");
        assert!(matches!(a, Err(LinkError::ClosedInSetUp)), "{a:?}");

        let accepted = accept_against(Some(SECRET), |_, _| Frame::Proof { mac: Vec::new() }).await;
        assert!(matches!(accepted, Err(LinkError::BadMac)), "{accepted:?}");
    }

    #[tokio::test]
    async fn the_right_proof_from_a_hand_driven_peer_is_accepted() {
        // Shows the refusals above come from the MAC, not from the driving.
        let accepted = accept_against(Some(SECRET), |ours, theirs| Frame::Proof {
            mac: sign(Some(SECRET), CONNECT_LABEL, theirs, ours),
        })
        .await;
        assert!(accepted.is_ok(), "{accepted:?}");
    }

    #[tokio::test]
    async fn a_message_before_the_proof_is_refused() {
        let accepted = accept_against(None, |_, _| ping()).await;
        assert!(
            matches!(
                accepted,
                Err(LinkError::Unexpected {
                    expected: "Proof",
                    got: "a message"
                })
            ),
            "{accepted:?}"
        );

        // And on the connecting side, a message in place of the challenge.
        let (a, b) = pair();
        let peer = async {
            let mut link = Link::new(b, LIMITS);
            link.recv().await.unwrap();
            link.send(&ping()).await.unwrap();
            link
        };
        let (connected, _peer) = tokio::join!(connect(a, None, LIMITS, PATIENT), peer);
        assert!(
            matches!(
                connected,
                Err(LinkError::Unexpected {
                    expected: "Challenge",
                    ..
                })
            ),
            "{connected:?}"
        );
    }

    #[tokio::test]
    async fn another_protocol_version_is_refused() {
        let (a, b) = pair();
        let peer = async {
            let mut link = Link::new(a, LIMITS);
            link.send(&Frame::Hello {
                version: BUS_VERSION + 1,
                nonce: [7; NONCE_LEN],
            })
            .await
            .unwrap();
            // The acceptor closes without a challenge.
            link.recv().await
        };
        let (accepted, answer) = tokio::join!(accept(b, None, LIMITS, PATIENT), peer);
        assert!(
            matches!(
                accepted,
                Err(LinkError::Version {
                    theirs: 2,
                    ours: BUS_VERSION
                })
            ),
            "{accepted:?}"
        );
        assert!(matches!(answer, Ok(None)), "{answer:?}");
    }

    #[tokio::test]
    async fn a_silent_peer_times_out_on_either_side() {
        let within = Duration::from_millis(50);
        let (a, _silent) = pair();
        let accepted = accept(a, None, LIMITS, within).await;
        assert!(
            matches!(accepted, Err(LinkError::Timeout(t)) if t == within),
            "{accepted:?}"
        );

        let (a, _silent) = pair();
        let connected = connect(a, None, LIMITS, within).await;
        assert!(
            matches!(connected, Err(LinkError::Timeout(_))),
            "{connected:?}"
        );
    }

    #[tokio::test]
    async fn a_frame_over_the_limits_after_set_up_is_an_error() {
        let small = Limits {
            max_frame: 4096,
            max_publish: 4096,
        };
        let (a, b) = pair();
        let (c, acceptor) = tokio::join!(
            connect(a, None, LIMITS, PATIENT),
            accept(b, None, small, PATIENT)
        );
        let (mut c, mut acceptor) = (c.unwrap(), acceptor.unwrap());
        let big = message(Body::Publish {
            channel: b"news".to_vec(),
            message: vec![b'x'; 8192],
        });
        c.send(&big).await.unwrap();
        let got = acceptor.recv().await;
        assert!(
            matches!(
                got,
                Err(LinkError::Wire(WireError::TooLong { limit: 4096, .. }))
            ),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_close_between_frames_is_none_and_mid_frame_an_error() {
        let (c, a) = set_up(None, None).await;
        let (mut c, mut a) = (c.unwrap(), a.unwrap());
        c.send(&ping()).await.unwrap();
        drop(c);
        assert_eq!(a.recv().await.unwrap(), Some(ping()));
        assert!(matches!(a.recv().await, Ok(None)));

        let (c, a) = set_up(None, None).await;
        let (mut c, mut a) = (c.unwrap(), a.unwrap());
        let mut bytes = Vec::new();
        encode(&ping(), &mut bytes);
        c.io.write_all(&bytes[..bytes.len() - 1]).await.unwrap();
        drop(c);
        let got = a.recv().await;
        assert!(matches!(got, Err(LinkError::ClosedMidFrame)), "{got:?}");
    }

    #[tokio::test]
    async fn split_halves_keep_what_arrived_with_the_proof_and_run_concurrently() {
        let (a, b) = pair();
        // The peer sends its proof and a first message in one write, so the
        // acceptor reads the message along with the proof.
        let peer = async {
            let (mut link, ours, theirs) = hand_connector(a, BUS_VERSION).await;
            link.queue(&Frame::Proof {
                mac: sign(Some(SECRET), CONNECT_LABEL, &theirs, &ours),
            });
            link.queue(&ping());
            link.flush().await.unwrap();
            link
        };
        let (accepted, peer) = tokio::join!(accept(b, Some(SECRET), LIMITS, PATIENT), peer);
        let (mut reader, mut writer) = accepted.unwrap().split_with(tokio::io::split);
        assert_eq!(soon(reader.recv()).await.unwrap(), Some(ping()));

        // Each reader in a task of its own, as the bus runs them.
        let (mut peer_reader, mut peer_writer) = peer.split_with(tokio::io::split);
        const N: u64 = 200;
        let ping_at = |n| message_at(n, Body::Ping(Vec::new()));
        let reads = [
            tokio::spawn(async move {
                for n in 0..N {
                    assert_eq!(reader.recv().await.unwrap(), Some(ping_at(n)));
                }
            }),
            tokio::spawn(async move {
                for n in 0..N {
                    assert_eq!(peer_reader.recv().await.unwrap(), Some(ping_at(n)));
                }
            }),
        ];
        for n in 0..N {
            writer.send(&ping_at(n)).await.unwrap();
            peer_writer.send(&ping_at(n)).await.unwrap();
        }
        for read in reads {
            soon(read).await.unwrap();
        }
    }
}
