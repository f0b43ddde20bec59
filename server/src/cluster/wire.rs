//! The bus's binary encoding (docs/CLUSTER.md, Messages): frames of
//! `u32 length (big endian, of what follows) | u8 type | body`.
//!
//! The decoder checks a frame's declared length against [`Limits`] before it
//! waits for, reserves or allocates anything for the frame, and every count and
//! length inside a frame against the bytes the frame has left, so nothing a peer
//! sends can panic it or make it allocate more than the frame it declared.
//! The encoding is canonical: a decoded frame encodes back to the same bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BytesMut};

use super::id::Id;
use super::message::{Addr, Body, Flags, Gossip, Header, Message};
use super::slots::SlotSet;
use crate::keyspace::SLOTS;

/// Length of a link set-up nonce.
pub const NONCE_LEN: usize = 16;
/// Length of a link set-up MAC (HMAC-SHA256) when the cluster has a secret.
pub const MAC_LEN: usize = 32;

/// The `u32` length in front of every frame.
const PREFIX_LEN: usize = 4;
/// A claim's bitmap: one bit per slot.
const SLOT_BYTES: usize = SLOTS / 8;
/// A gossip entry with an IPv4 address, the smallest: what a gossip count must
/// leave room for before the entries are allocated.
const MIN_GOSSIP_LEN: usize = 20 + 20 + 1 + 4 + 2 + 2 + 2 + 4;

/// One frame on a bus link: a link set-up step or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The connecting side's first frame.
    Hello {
        /// The bus protocol version it speaks.
        version: u16,
        /// Its nonce (`nonce_c`).
        nonce: [u8; NONCE_LEN],
    },
    /// The accepting side's answer.
    Challenge {
        /// Its nonce (`nonce_s`).
        nonce: [u8; NONCE_LEN],
        /// `mac_s`: [`MAC_LEN`] bytes with a secret, empty without one.
        mac: Vec<u8>,
    },
    /// The connecting side's proof, the last set-up frame.
    Proof {
        /// `mac_c`: [`MAC_LEN`] bytes with a secret, empty without one.
        mac: Vec<u8>,
    },
    /// A message, once the link is set up.
    Message(Message),
}

/// How long a frame may be, checked before anything is buffered for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest frame (its `length` field) of any type.
    pub max_frame: usize,
    /// The longest `Publish` or `PublishShard` frame, when more than
    /// `max_frame`: it must leave room for the header (up to 2,148 bytes with a
    /// claim) and the channel besides the message.
    pub max_publish: usize,
}

/// Why a frame could not be decoded. Any of these closes the link: the stream
/// is out of step from there on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The declared length is over the limit for the frame's type.
    #[error("bus frame of {len} bytes is over the limit of {limit}")]
    TooLong {
        /// The declared length.
        len: usize,
        /// The limit for its type.
        limit: usize,
    },
    /// A type byte no frame has.
    #[error("unknown bus frame type {0}")]
    UnknownType(u8),
    /// The body ends before its last field.
    #[error("bus frame ends early")]
    Truncated,
    /// The body ends before the frame does.
    #[error("bus frame has {0} bytes after its body")]
    Trailing(usize),
    /// Node flags with bits no flag has.
    #[error("unknown node flag bits {0:#06x}")]
    BadFlags(u16),
    /// A count or length larger than what the frame has left.
    #[error("bus frame {what} {value} exceeds the {left} bytes left")]
    Exceeds {
        /// Which count.
        what: &'static str,
        /// Its value.
        value: usize,
        /// The bytes left in the frame.
        left: usize,
    },
    /// A presence, address family or MAC length byte with a value it cannot have.
    #[error("bad {what} byte {value} in bus frame")]
    Malformed {
        /// Which byte.
        what: &'static str,
        /// Its value.
        value: u8,
    },
}

/// The type byte of each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Hello = 1,
    Challenge = 2,
    Proof = 3,
    // Messages from 0x10, so a dump tells them from set-up frames at a glance.
    Meet = 0x10,
    Ping = 0x11,
    Pong = 0x12,
    Fail = 0x13,
    Update = 0x14,
    AddSlots = 0x15,
    Publish = 0x16,
    PublishShard = 0x17,
    AuthRequest = 0x18,
    AuthAck = 0x19,
    MfStart = 0x1a,
    InSync = 0x1b,
    InSyncAck = 0x1c,
}

impl Kind {
    fn of_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::Hello,
            2 => Kind::Challenge,
            3 => Kind::Proof,
            0x10 => Kind::Meet,
            0x11 => Kind::Ping,
            0x12 => Kind::Pong,
            0x13 => Kind::Fail,
            0x14 => Kind::Update,
            0x15 => Kind::AddSlots,
            0x16 => Kind::Publish,
            0x17 => Kind::PublishShard,
            0x18 => Kind::AuthRequest,
            0x19 => Kind::AuthAck,
            0x1a => Kind::MfStart,
            0x1b => Kind::InSync,
            0x1c => Kind::InSyncAck,
            _ => return None,
        })
    }

    fn of_frame(frame: &Frame) -> Kind {
        match frame {
            Frame::Hello { .. } => Kind::Hello,
            Frame::Challenge { .. } => Kind::Challenge,
            Frame::Proof { .. } => Kind::Proof,
            Frame::Message(message) => match message.body {
                Body::Meet(_) => Kind::Meet,
                Body::Ping(_) => Kind::Ping,
                Body::Pong(_) => Kind::Pong,
                Body::Fail(_) => Kind::Fail,
                Body::Update { .. } => Kind::Update,
                Body::AddSlots { .. } => Kind::AddSlots,
                Body::Publish { .. } => Kind::Publish,
                Body::PublishShard { .. } => Kind::PublishShard,
                Body::FailoverAuthRequest { .. } => Kind::AuthRequest,
                Body::FailoverAuthAck { .. } => Kind::AuthAck,
                Body::MfStart => Kind::MfStart,
                Body::InSync { .. } => Kind::InSync,
                Body::InSyncAck { .. } => Kind::InSyncAck,
            },
        }
    }
}

impl Limits {
    fn for_kind(&self, kind: Kind) -> usize {
        match kind {
            Kind::Publish | Kind::PublishShard => self.max_frame.max(self.max_publish),
            _ => self.max_frame,
        }
    }
}

/// The encoded length of `frame`, prefix included, without encoding it.
pub fn frame_len(frame: &Frame) -> usize {
    match frame {
        Frame::Hello { .. } => PREFIX_LEN + 1 + 2 + NONCE_LEN,
        Frame::Challenge { mac, .. } => PREFIX_LEN + 1 + NONCE_LEN + 1 + mac.len(),
        Frame::Proof { mac } => PREFIX_LEN + 1 + 1 + mac.len(),
        Frame::Message(message) => message_len(message),
    }
}

/// The encoded length of the frame carrying `message`.
pub fn message_len(message: &Message) -> usize {
    PREFIX_LEN + 1 + header_len(&message.header) + body_len(&message.body)
}

fn header_len(header: &Header) -> usize {
    let master = header.master.map_or(0, |_| 20);
    let claim = header.claim.as_ref().map_or(0, |_| SLOT_BYTES);
    20 + 20 + 2 + 1 + master + 2 + 2 + 5 * 8 + 1 + 1 + 1 + claim
}

fn body_len(body: &Body) -> usize {
    match body {
        Body::Meet(gossip) | Body::Ping(gossip) | Body::Pong(gossip) => {
            2 + sent_gossip(gossip).iter().map(gossip_len).sum::<usize>()
        }
        Body::Fail(_) => 20,
        Body::Update { .. } => 20 + 8 + SLOT_BYTES,
        Body::AddSlots { .. } => 8 + SLOT_BYTES,
        Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
            4 + channel.len() + 4 + message.len()
        }
        Body::FailoverAuthRequest { .. } => 8 + SLOT_BYTES + 1,
        Body::FailoverAuthAck { .. } | Body::InSyncAck { .. } => 8,
        Body::MfStart => 0,
        Body::InSync { members, .. } => 8 + 2 + 20 * sent_members(members).len(),
    }
}

/// The members an in-sync set carries: a count is a `u16` (a shard has far
/// fewer replicas).
fn sent_members(members: &[Id]) -> &[Id] {
    &members[..members.len().min(usize::from(u16::MAX))]
}

fn gossip_len(gossip: &Gossip) -> usize {
    let ip = match gossip.addr.ip {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 16,
    };
    MIN_GOSSIP_LEN - 4 + ip
}

/// The entries a gossip list carries: a count is a `u16`, and dropping entries
/// past 65,535 loses nothing gossip promises (a message carries three plus the
/// failing nodes).
fn sent_gossip(gossip: &[Gossip]) -> &[Gossip] {
    &gossip[..gossip.len().min(usize::from(u16::MAX))]
}

/// Appends `frame`, whole, to `out`.
///
/// A MAC must be empty or [`MAC_LEN`] bytes and a frame under 4 GiB (the
/// configuration keeps `proto-max-bulk-len` far below): the peer refuses
/// anything else.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let len = frame_len(frame);
    out.reserve(len);
    put_u32(out, len - PREFIX_LEN);
    out.push(Kind::of_frame(frame) as u8);
    match frame {
        Frame::Hello { version, nonce } => {
            out.extend_from_slice(&version.to_be_bytes());
            out.extend_from_slice(nonce);
        }
        Frame::Challenge { nonce, mac } => {
            out.extend_from_slice(nonce);
            put_mac(out, mac);
        }
        Frame::Proof { mac } => put_mac(out, mac),
        Frame::Message(message) => {
            put_header(out, &message.header);
            put_body(out, &message.body);
        }
    }
}

/// Writes `n` as a `u32`, saturated: a peer refuses a saturated length (it
/// overruns what follows), where a wrapped one could frame garbage.
fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_mac(out: &mut Vec<u8>, mac: &[u8]) {
    debug_assert!(
        mac.is_empty() || mac.len() == MAC_LEN,
        "MAC of {} bytes",
        mac.len()
    );
    out.push(u8::try_from(mac.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(mac);
}

fn put_header(out: &mut Vec<u8>, header: &Header) {
    out.extend_from_slice(&header.sender.0);
    out.extend_from_slice(&header.shard.0);
    out.extend_from_slice(&header.flags.0.to_be_bytes());
    match header.master {
        Some(master) => {
            out.push(1);
            out.extend_from_slice(&master.0);
        }
        None => out.push(0),
    }
    out.extend_from_slice(&header.port.to_be_bytes());
    out.extend_from_slice(&header.cport.to_be_bytes());
    for n in [
        header.current_epoch,
        header.config_epoch,
        header.claim_digest,
        header.your_claim_digest,
        header.offset,
    ] {
        out.extend_from_slice(&n.to_be_bytes());
    }
    out.push(u8::from(header.knows_you));
    out.push(u8::from(header.paused));
    match &header.claim {
        Some(claim) => {
            out.push(1);
            put_slots(out, claim);
        }
        None => out.push(0),
    }
}

fn put_body(out: &mut Vec<u8>, body: &Body) {
    match body {
        Body::Meet(gossip) | Body::Ping(gossip) | Body::Pong(gossip) => {
            let gossip = sent_gossip(gossip);
            out.extend_from_slice(&(gossip.len() as u16).to_be_bytes());
            for entry in gossip {
                put_gossip(out, entry);
            }
        }
        Body::Fail(id) => out.extend_from_slice(&id.0),
        Body::Update {
            node,
            config_epoch,
            slots,
        } => {
            out.extend_from_slice(&node.0);
            out.extend_from_slice(&config_epoch.to_be_bytes());
            put_slots(out, slots);
        }
        Body::AddSlots { epoch, slots } => {
            out.extend_from_slice(&epoch.to_be_bytes());
            put_slots(out, slots);
        }
        Body::Publish { channel, message } | Body::PublishShard { channel, message } => {
            put_u32(out, channel.len());
            out.extend_from_slice(channel);
            put_u32(out, message.len());
            out.extend_from_slice(message);
        }
        Body::FailoverAuthRequest {
            config_epoch,
            slots,
            manual,
        } => {
            out.extend_from_slice(&config_epoch.to_be_bytes());
            put_slots(out, slots);
            out.push(u8::from(*manual));
        }
        Body::FailoverAuthAck { epoch } => out.extend_from_slice(&epoch.to_be_bytes()),
        Body::InSyncAck { version } => out.extend_from_slice(&version.to_be_bytes()),
        Body::MfStart => {}
        Body::InSync { version, members } => {
            out.extend_from_slice(&version.to_be_bytes());
            let members = sent_members(members);
            out.extend_from_slice(&(members.len() as u16).to_be_bytes());
            for id in members {
                out.extend_from_slice(&id.0);
            }
        }
    }
}

fn put_gossip(out: &mut Vec<u8>, gossip: &Gossip) {
    out.extend_from_slice(&gossip.id.0);
    out.extend_from_slice(&gossip.shard.0);
    match gossip.addr.ip {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&gossip.addr.port.to_be_bytes());
    out.extend_from_slice(&gossip.addr.cport.to_be_bytes());
    out.extend_from_slice(&gossip.flags.0.to_be_bytes());
    out.extend_from_slice(&gossip.pong_age.to_be_bytes());
}

/// Slot `s` is bit `s % 8` of byte `s / 8`, as in Redis's bitmap.
fn put_slots(out: &mut Vec<u8>, slots: &SlotSet) {
    for word in slots.0 {
        out.extend_from_slice(&word.to_le_bytes());
    }
}

/// Takes whole frames off the front of a link's input as they arrive.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    limits: Limits,
}

impl FrameDecoder {
    /// A decoder refusing frames over `limits`.
    pub fn new(limits: Limits) -> FrameDecoder {
        FrameDecoder { limits }
    }

    /// The next frame in `buf`, taken off its front, or `None` until it has
    /// all arrived (then `buf` has room reserved for the rest of it).
    ///
    /// A frame's length and type are checked as soon as they arrive, before its
    /// body. On an error nothing is taken, so the same error comes back.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
        let &[a, b, c, d, ref rest @ ..] = &buf[..] else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        let most = self.limits.max_frame.max(self.limits.max_publish);
        if len > most {
            return Err(WireError::TooLong { len, limit: most });
        }
        if len == 0 {
            return Err(WireError::Truncated);
        }
        let Some(&byte) = rest.first() else {
            return Ok(None);
        };
        let kind = Kind::of_byte(byte).ok_or(WireError::UnknownType(byte))?;
        let limit = self.limits.for_kind(kind);
        if len > limit {
            return Err(WireError::TooLong { len, limit });
        }
        let Some(frame) = rest.get(1..len) else {
            // The length is checked: reserving it spares a large frame's
            // reads from regrowing the buffer as it arrives.
            let missing = PREFIX_LEN + len - buf.len();
            buf.reserve(missing);
            return Ok(None);
        };
        let mut reader = Reader { rest: frame };
        let frame = reader.frame(kind)?;
        if !reader.rest.is_empty() {
            return Err(WireError::Trailing(reader.rest.len()));
        }
        buf.advance(PREFIX_LEN + len);
        Ok(Some(frame))
    }
}

/// Reads fields off the front of one frame's body.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn frame(&mut self, kind: Kind) -> Result<Frame, WireError> {
        Ok(match kind {
            Kind::Hello => Frame::Hello {
                version: self.u16()?,
                nonce: *self.array()?,
            },
            Kind::Challenge => Frame::Challenge {
                nonce: *self.array()?,
                mac: self.mac()?,
            },
            Kind::Proof => Frame::Proof { mac: self.mac()? },
            Kind::Meet => self.message(|r| Ok(Body::Meet(r.gossip_list()?)))?,
            Kind::Ping => self.message(|r| Ok(Body::Ping(r.gossip_list()?)))?,
            Kind::Pong => self.message(|r| Ok(Body::Pong(r.gossip_list()?)))?,
            Kind::Fail => self.message(|r| Ok(Body::Fail(r.id()?)))?,
            Kind::Update => self.message(|r| {
                Ok(Body::Update {
                    node: r.id()?,
                    config_epoch: r.u64()?,
                    slots: r.slots()?,
                })
            })?,
            Kind::AddSlots => self.message(|r| {
                Ok(Body::AddSlots {
                    epoch: r.u64()?,
                    slots: r.slots()?,
                })
            })?,
            Kind::Publish => self.message(|r| {
                Ok(Body::Publish {
                    channel: r.blob("channel length")?,
                    message: r.blob("message length")?,
                })
            })?,
            Kind::PublishShard => self.message(|r| {
                Ok(Body::PublishShard {
                    channel: r.blob("channel length")?,
                    message: r.blob("message length")?,
                })
            })?,
            Kind::AuthRequest => self.message(|r| {
                Ok(Body::FailoverAuthRequest {
                    config_epoch: r.u64()?,
                    slots: r.slots()?,
                    manual: r.present("manual")?,
                })
            })?,
            Kind::AuthAck => self.message(|r| Ok(Body::FailoverAuthAck { epoch: r.u64()? }))?,
            Kind::MfStart => self.message(|_| Ok(Body::MfStart))?,
            Kind::InSync => self.message(|r| {
                Ok(Body::InSync {
                    version: r.u64()?,
                    members: r.id_list()?,
                })
            })?,
            Kind::InSyncAck => self.message(|r| Ok(Body::InSyncAck { version: r.u64()? }))?,
        })
    }

    /// A message: the header, then what `body` reads.
    fn message(
        &mut self,
        body: impl FnOnce(&mut Self) -> Result<Body, WireError>,
    ) -> Result<Frame, WireError> {
        let header = self.header()?;
        Ok(Frame::Message(Message {
            header,
            body: body(self)?,
        }))
    }

    fn header(&mut self) -> Result<Header, WireError> {
        Ok(Header {
            sender: self.id()?,
            shard: self.id()?,
            flags: self.flags()?,
            master: match self.present("master presence")? {
                true => Some(self.id()?),
                false => None,
            },
            port: self.u16()?,
            cport: self.u16()?,
            current_epoch: self.u64()?,
            config_epoch: self.u64()?,
            claim_digest: self.u64()?,
            your_claim_digest: self.u64()?,
            offset: self.u64()?,
            knows_you: self.present("knows-you")?,
            paused: self.present("paused")?,
            claim: match self.present("claim presence")? {
                true => Some(self.slots()?),
                false => None,
            },
        })
    }

    fn gossip_list(&mut self) -> Result<Vec<Gossip>, WireError> {
        let count = usize::from(self.u16()?);
        // Room for `count` of the smallest entry, before allocating for them.
        if count * MIN_GOSSIP_LEN > self.rest.len() {
            return Err(WireError::Exceeds {
                what: "gossip count",
                value: count,
                left: self.rest.len(),
            });
        }
        let mut gossip = Vec::with_capacity(count);
        for _ in 0..count {
            gossip.push(Gossip {
                id: self.id()?,
                shard: self.id()?,
                addr: Addr {
                    ip: self.ip()?,
                    port: self.u16()?,
                    cport: self.u16()?,
                },
                flags: self.flags()?,
                pong_age: self.u32()?,
            });
        }
        Ok(gossip)
    }

    fn id_list(&mut self) -> Result<Vec<Id>, WireError> {
        let count = usize::from(self.u16()?);
        // Room for `count` ids, before allocating for them.
        if count * 20 > self.rest.len() {
            return Err(WireError::Exceeds {
                what: "member count",
                value: count,
                left: self.rest.len(),
            });
        }
        (0..count).map(|_| self.id()).collect()
    }

    fn ip(&mut self) -> Result<IpAddr, WireError> {
        Ok(match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(*self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(*self.array::<16>()?)),
            value => {
                return Err(WireError::Malformed {
                    what: "address family",
                    value,
                })
            }
        })
    }

    fn slots(&mut self) -> Result<Box<SlotSet>, WireError> {
        // Taken whole first, so a short frame allocates no set.
        let mut words = Reader {
            rest: self.take(SLOT_BYTES)?,
        };
        let mut slots = Box::<SlotSet>::default();
        for word in slots.0.iter_mut() {
            *word = u64::from_le_bytes(*words.array()?);
        }
        Ok(slots)
    }

    fn blob(&mut self, what: &'static str) -> Result<Vec<u8>, WireError> {
        let len = self.u32()? as usize;
        if len > self.rest.len() {
            return Err(WireError::Exceeds {
                what,
                value: len,
                left: self.rest.len(),
            });
        }
        Ok(self.take(len)?.to_vec())
    }

    fn mac(&mut self) -> Result<Vec<u8>, WireError> {
        match self.u8()? {
            0 => Ok(Vec::new()),
            32 => Ok(self.take(MAC_LEN)?.to_vec()),
            value => Err(WireError::Malformed {
                what: "MAC length",
                value,
            }),
        }
    }

    fn present(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(WireError::Malformed { what, value }),
        }
    }

    fn flags(&mut self) -> Result<Flags, WireError> {
        let bits = self.u16()?;
        if bits & !Flags::ALL != 0 {
            return Err(WireError::BadFlags(bits));
        }
        Ok(Flags(bits))
    }

    fn id(&mut self) -> Result<Id, WireError> {
        Ok(Id(*self.array()?))
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(*self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(*self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(*self.array()?))
    }

    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], WireError> {
        let (head, rest) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or(WireError::Truncated)?;
        self.rest = rest;
        Ok(head)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    const LIMITS: Limits = Limits {
        max_frame: 1 << 20,
        max_publish: 4 << 20,
    };
    /// A header without master or claim.
    const HEADER_LEN: usize = 90;
    /// Where a message's body starts: prefix, type byte, header.
    const BODY_AT: usize = PREFIX_LEN + 1 + HEADER_LEN;

    fn bytes_of(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        encode(frame, &mut out);
        out
    }

    /// A frame of type `kind` around `body`, its length prefix right.
    fn raw(kind: u8, body: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        out.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
        out.extend_from_slice(&[kind]);
        out.extend_from_slice(body);
        out
    }

    /// Rewrites the length prefix of the frame in `bytes` to fit its size.
    fn fix_len(bytes: &mut [u8]) {
        let len = bytes.len() as u32 - PREFIX_LEN as u32;
        bytes[..PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
    }

    fn decode_one(bytes: &[u8]) -> Result<Option<Frame>, WireError> {
        FrameDecoder::new(LIMITS).decode(&mut BytesMut::from(bytes))
    }

    /// Feeds `input` to a decoder `chunk` bytes at a time; checks that every
    /// frame decoded encodes back to exactly the bytes it was taken from.
    fn decode_arriving(input: &[u8], chunk: usize) -> Result<Vec<Frame>, WireError> {
        let mut decoder = FrameDecoder::new(LIMITS);
        let (mut buf, mut frames, mut start) = (BytesMut::new(), Vec::new(), 0);
        for piece in input.chunks(chunk.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                let before = buf.len();
                let Some(frame) = decoder.decode(&mut buf)? else {
                    break;
                };
                let taken = before - buf.len();
                assert_eq!(bytes_of(&frame), input[start..start + taken]);
                start += taken;
                frames.push(frame);
            }
        }
        Ok(frames)
    }

    fn header(claim: Option<SlotSet>) -> Header {
        Header {
            sender: Id([1; 20]),
            shard: Id([2; 20]),
            flags: Flags(Flags::MASTER),
            master: None,
            port: 7000,
            cport: 17000,
            current_epoch: 12,
            config_epoch: 9,
            claim_digest: 0x0123_4567_89ab_cdef,
            your_claim_digest: 0xfedc_ba98_7654_3210,
            offset: 0x1122_3344,
            knows_you: true,
            paused: false,
            claim: claim.map(Box::new),
        }
    }

    fn gossip(n: u8) -> Gossip {
        Gossip {
            id: Id([n; 20]),
            shard: Id([n ^ 0xff; 20]),
            addr: Addr {
                ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)),
                port: 7000 + u16::from(n),
                cport: 17000 + u16::from(n),
            },
            flags: Flags(Flags::MASTER | Flags::PFAIL),
            pong_age: 1500,
        }
    }

    fn message(header: Header, body: Body) -> Frame {
        Frame::Message(Message { header, body })
    }

    /// One frame of every type, with every optional field both ways.
    fn every_variant() -> Vec<Frame> {
        let claim: SlotSet = (0..5461).chain([16383]).collect();
        let mut replica = header(Some(claim.clone()));
        replica.flags = Flags(Flags::REPLICA | Flags::NOFAILOVER);
        replica.master = Some(Id([9; 20]));
        let mut v6 = gossip(4);
        v6.addr.ip = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4));
        vec![
            Frame::Hello {
                version: 1,
                nonce: [7; NONCE_LEN],
            },
            Frame::Challenge {
                nonce: [8; NONCE_LEN],
                mac: vec![0xaa; MAC_LEN],
            },
            Frame::Challenge {
                nonce: [8; NONCE_LEN],
                mac: Vec::new(),
            },
            Frame::Proof {
                mac: vec![0xbb; MAC_LEN],
            },
            Frame::Proof { mac: Vec::new() },
            message(header(None), Body::Meet(vec![gossip(1)])),
            message(header(None), Body::Ping(vec![gossip(1), gossip(2), v6])),
            message(replica.clone(), Body::Pong(Vec::new())),
            message(header(None), Body::Fail(Id([5; 20]))),
            message(
                header(None),
                Body::Update {
                    node: Id([6; 20]),
                    config_epoch: u64::MAX,
                    slots: Box::new(claim.clone()),
                },
            ),
            message(
                replica,
                Body::AddSlots {
                    epoch: 9,
                    slots: Box::new(claim),
                },
            ),
            message(
                header(None),
                Body::Publish {
                    channel: b"news".to_vec(),
                    message: vec![0; 70_000],
                },
            ),
            message(
                header(None),
                Body::PublishShard {
                    channel: Vec::new(),
                    message: Vec::new(),
                },
            ),
            message(
                paused_master(),
                Body::FailoverAuthRequest {
                    config_epoch: 7,
                    slots: Box::new((0..100).collect()),
                    manual: true,
                },
            ),
            message(
                header(None),
                Body::FailoverAuthRequest {
                    config_epoch: 0,
                    slots: Box::default(),
                    manual: false,
                },
            ),
            message(header(None), Body::FailoverAuthAck { epoch: 12 }),
            message(header(None), Body::MfStart),
            message(
                header(None),
                Body::InSync {
                    version: 3,
                    members: vec![Id([1; 20]), Id([2; 20])],
                },
            ),
            message(
                header(None),
                Body::InSync {
                    version: 4,
                    members: Vec::new(),
                },
            ),
            message(header(None), Body::InSyncAck { version: 4 }),
        ]
    }

    /// A master's header during a manual failover: writes paused.
    fn paused_master() -> Header {
        let mut header = header(None);
        header.paused = true;
        header
    }

    #[test]
    fn every_variant_round_trips_and_frame_len_is_its_size() {
        for frame in every_variant() {
            let bytes = bytes_of(&frame);
            assert_eq!(bytes.len(), frame_len(&frame), "{frame:?}");
            assert_eq!(bytes[PREFIX_LEN], Kind::of_frame(&frame) as u8);
            let mut buf = BytesMut::from(&bytes[..]);
            let decoded = FrameDecoder::new(LIMITS).decode(&mut buf);
            assert_eq!(decoded, Ok(Some(frame)));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn frames_arriving_byte_by_byte_decode_when_their_last_byte_arrives() {
        let frame = message(header(None), Body::Ping(vec![gossip(1), gossip(2)]));
        let bytes = bytes_of(&frame);
        let mut decoder = FrameDecoder::new(LIMITS);
        let mut buf = BytesMut::new();
        for (i, &byte) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[byte]);
            let decoded = decoder.decode(&mut buf).unwrap();
            if i + 1 < bytes.len() {
                assert_eq!(decoded, None, "decoded at byte {i}");
                assert_eq!(
                    buf.len(),
                    i + 1,
                    "nothing is taken before the frame is whole"
                );
            } else {
                assert_eq!(decoded, Some(frame.clone()));
            }
        }
        assert!(buf.is_empty());
        let all: Vec<u8> = every_variant().iter().flat_map(bytes_of).collect();
        assert_eq!(decode_arriving(&all, 1), Ok(every_variant()));
    }

    #[test]
    fn two_frames_in_one_buffer_decode_in_order() {
        let first = message(header(None), Body::Fail(Id([3; 20])));
        let second = Frame::Proof { mac: Vec::new() };
        let mut buf = BytesMut::from(&[bytes_of(&first), bytes_of(&second)].concat()[..]);
        let mut decoder = FrameDecoder::new(LIMITS);
        assert_eq!(decoder.decode(&mut buf), Ok(Some(first)));
        assert_eq!(decoder.decode(&mut buf), Ok(Some(second)));
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_frame_split_across_calls_waits_for_its_rest_with_room_reserved() {
        let frame = message(
            header(None),
            Body::Publish {
                channel: b"c".to_vec(),
                message: vec![1; 100_000],
            },
        );
        let bytes = bytes_of(&frame);
        let mut decoder = FrameDecoder::new(LIMITS);
        let mut buf = BytesMut::from(&bytes[..10]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(buf.capacity() >= bytes.len(), "{}", buf.capacity());
        buf.extend_from_slice(&bytes[10..50_000]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        buf.extend_from_slice(&bytes[50_000..]);
        assert_eq!(decoder.decode(&mut buf), Ok(Some(frame)));
    }

    #[test]
    fn over_long_frames_are_refused_from_their_prefix_before_buffering() {
        let mut decoder = FrameDecoder::new(LIMITS);
        // Over every limit: refused on the prefix alone, nothing reserved.
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        let capacity = buf.capacity();
        let refused = Err(WireError::TooLong {
            len: u32::MAX as usize,
            limit: LIMITS.max_publish,
        });
        assert_eq!(decoder.decode(&mut buf), refused);
        assert_eq!(buf.capacity(), capacity);
        // Over `max_frame` but within `max_publish`: only publish frames may be.
        let len = LIMITS.max_frame + 1;
        for kind in [Kind::Ping, Kind::Hello, Kind::Update] {
            let mut buf = BytesMut::from(&raw(kind as u8, &[])[..]);
            buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
            let capacity = buf.capacity();
            let refused = Err(WireError::TooLong {
                len,
                limit: LIMITS.max_frame,
            });
            assert_eq!(decoder.decode(&mut buf), refused);
            assert_eq!(buf.capacity(), capacity);
        }
        for kind in [Kind::Publish, Kind::PublishShard] {
            let mut buf = BytesMut::from(&raw(kind as u8, &[])[..]);
            buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
            assert_eq!(decoder.decode(&mut buf), Ok(None));
        }
    }

    #[test]
    fn unknown_types_are_refused_before_their_body_arrives() {
        for kind in [0, 4, 0x0f, 0x1d, 0xff] {
            let mut buf = BytesMut::from(&100u32.to_be_bytes()[..]);
            buf.extend_from_slice(&[kind]);
            let mut decoder = FrameDecoder::new(LIMITS);
            assert_eq!(decoder.decode(&mut buf), Err(WireError::UnknownType(kind)));
        }
    }

    #[test]
    fn empty_and_truncated_frames_are_refused() {
        assert_eq!(decode_one(&[0, 0, 0, 0]), Err(WireError::Truncated));
        assert_eq!(
            decode_one(&raw(Kind::Hello as u8, &[0; 17])),
            Err(WireError::Truncated)
        );
        let header_only = bytes_of(&message(header(None), Body::Fail(Id([1; 20]))));
        let mut cut = header_only[..BODY_AT].to_vec();
        fix_len(&mut cut);
        assert_eq!(decode_one(&cut), Err(WireError::Truncated));
        // Every frame cut anywhere, its length fixed to match, is refused.
        for frame in every_variant() {
            let bytes = bytes_of(&frame);
            for end in PREFIX_LEN + 1..bytes.len() {
                let mut cut = bytes[..end].to_vec();
                fix_len(&mut cut);
                assert!(decode_one(&cut).is_err(), "{frame:?} cut at {end}");
            }
        }
    }

    #[test]
    fn trailing_bytes_inside_a_frame_are_refused() {
        for frame in every_variant() {
            let mut bytes = bytes_of(&frame);
            bytes.extend_from_slice(&[0, 0]);
            fix_len(&mut bytes);
            assert_eq!(decode_one(&bytes), Err(WireError::Trailing(2)), "{frame:?}");
        }
    }

    #[test]
    fn unknown_flag_bits_are_refused_in_headers_and_gossip() {
        let bytes = bytes_of(&message(header(None), Body::Ping(vec![gossip(1)])));
        let header_flags = PREFIX_LEN + 1 + 40;
        let mut bad = bytes.clone();
        bad[header_flags..header_flags + 2].copy_from_slice(&0x0101u16.to_be_bytes());
        assert_eq!(decode_one(&bad), Err(WireError::BadFlags(0x0101)));
        // Count, ids, family, IPv4, ports: then the entry's flags.
        let gossip_flags = BODY_AT + 2 + 40 + 1 + 4 + 4;
        let mut bad = bytes;
        bad[gossip_flags..gossip_flags + 2].copy_from_slice(&0x8000u16.to_be_bytes());
        assert_eq!(decode_one(&bad), Err(WireError::BadFlags(0x8000)));
    }

    #[test]
    fn counts_and_lengths_over_what_the_frame_holds_are_refused() {
        let mut ping = bytes_of(&message(header(None), Body::Ping(vec![gossip(1)])));
        ping[BODY_AT..BODY_AT + 2].copy_from_slice(&u16::MAX.to_be_bytes());
        let left = MIN_GOSSIP_LEN;
        assert_eq!(
            decode_one(&ping),
            Err(WireError::Exceeds {
                what: "gossip count",
                value: 65535,
                left
            })
        );
        // Two entries' count with one entry's bytes.
        ping[BODY_AT..BODY_AT + 2].copy_from_slice(&2u16.to_be_bytes());
        assert!(matches!(decode_one(&ping), Err(WireError::Exceeds { .. })));
        let publish = message(
            header(None),
            Body::Publish {
                channel: b"ch".to_vec(),
                message: b"hi".to_vec(),
            },
        );
        let mut bad = bytes_of(&publish);
        bad[BODY_AT..BODY_AT + 4].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(
            decode_one(&bad),
            Err(WireError::Exceeds {
                what: "channel length",
                value: 1_000_000_000,
                left: 8
            })
        );
        let mut bad = bytes_of(&publish);
        bad[BODY_AT + 6..BODY_AT + 10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_one(&bad),
            Err(WireError::Exceeds {
                what: "message length",
                ..
            })
        ));
    }

    #[test]
    fn presence_family_and_mac_length_bytes_take_only_their_values() {
        let bytes = bytes_of(&message(header(None), Body::Ping(vec![gossip(1)])));
        let master_presence = PREFIX_LEN + 1 + 42;
        let claim_presence = BODY_AT - 1;
        let paused = BODY_AT - 2;
        let knows_you = BODY_AT - 3;
        let family = BODY_AT + 2 + 40;
        for (at, what, value) in [
            (master_presence, "master presence", 2),
            (claim_presence, "claim presence", 0xff),
            (paused, "paused", 2),
            (knows_you, "knows-you", 7),
            (family, "address family", 5),
        ] {
            let mut bad = bytes.clone();
            bad[at] = value;
            assert_eq!(decode_one(&bad), Err(WireError::Malformed { what, value }));
        }
        let mut proof = raw(Kind::Proof as u8, &[31]);
        proof.extend_from_slice(&[0; 31]);
        fix_len(&mut proof);
        let refused = Err(WireError::Malformed {
            what: "MAC length",
            value: 31,
        });
        assert_eq!(decode_one(&proof), refused);
        let request = Body::FailoverAuthRequest {
            config_epoch: 1,
            slots: Box::default(),
            manual: false,
        };
        let mut bad = bytes_of(&message(header(None), request));
        *bad.last_mut().unwrap() = 2;
        let refused = Err(WireError::Malformed {
            what: "manual",
            value: 2,
        });
        assert_eq!(decode_one(&bad), refused);
    }

    #[test]
    fn an_in_sync_member_count_over_what_the_frame_holds_is_refused() {
        let set = Body::InSync {
            version: 1,
            members: vec![Id([3; 20])],
        };
        let mut bad = bytes_of(&message(header(None), set));
        bad[BODY_AT + 8..BODY_AT + 10].copy_from_slice(&2u16.to_be_bytes());
        let refused = Err(WireError::Exceeds {
            what: "member count",
            value: 2,
            left: 20,
        });
        assert_eq!(decode_one(&bad), refused);
    }

    #[test]
    fn an_error_takes_nothing_and_repeats() {
        let mut bytes = bytes_of(&Frame::Proof { mac: Vec::new() });
        bytes.push(0);
        fix_len(&mut bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = FrameDecoder::new(LIMITS);
        assert_eq!(decoder.decode(&mut buf), Err(WireError::Trailing(1)));
        assert_eq!(buf.len(), bytes.len());
        assert_eq!(decoder.decode(&mut buf), Err(WireError::Trailing(1)));
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(12);
        let pool: Vec<Vec<u8>> = every_variant().iter().map(bytes_of).collect();
        let (mut decoded, mut refused) = (0, 0);
        for _ in 0..4000 {
            let mut input = if rng.random_bool(0.25) {
                let len = rng.random_range(0..400);
                (0..len).map(|_| rng.random::<u8>()).collect()
            } else {
                let mut bytes = pool[rng.random_range(0..pool.len())].clone();
                for _ in 0..rng.random_range(0..4) {
                    let at = rng.random_range(PREFIX_LEN..bytes.len());
                    bytes[at] = rng.random();
                }
                if rng.random_bool(0.3) {
                    bytes.truncate(rng.random_range(PREFIX_LEN + 1..=bytes.len()));
                }
                // Mostly keep the length consistent, so bodies get parsed.
                if rng.random_bool(0.8) {
                    fix_len(&mut bytes);
                }
                bytes
            };
            if rng.random_bool(0.2) {
                input.extend_from_slice(&pool[rng.random_range(0..pool.len())]);
            }
            match decode_arriving(&input, rng.random_range(1..300)) {
                Ok(frames) if !frames.is_empty() => decoded += 1,
                Ok(_) => {}
                Err(_) => refused += 1,
            }
        }
        // Both outcomes reached: the mutations exercise the body parser.
        assert!(
            decoded > 500 && refused > 500,
            "{decoded} decoded, {refused} refused"
        );
    }

    #[test]
    fn a_typical_ping_is_262_bytes_and_2310_with_its_claim() {
        let gossip = vec![gossip(1), gossip(2), gossip(3)];
        let ping = message(header(None), Body::Ping(gossip.clone()));
        let claim: SlotSet = (0..5461).collect();
        let with_claim = message(header(Some(claim)), Body::Ping(gossip));
        assert_eq!(bytes_of(&ping).len(), 262);
        assert_eq!(bytes_of(&with_claim).len(), 262 + SLOT_BYTES);
    }

    fn id() -> impl Strategy<Value = Id> {
        any::<[u8; 20]>().prop_map(Id)
    }

    fn flags() -> impl Strategy<Value = Flags> {
        any::<u16>().prop_map(|bits| Flags(bits & Flags::ALL))
    }

    fn slots() -> impl Strategy<Value = Box<SlotSet>> {
        prop_oneof![
            proptest::collection::vec(0..SLOTS as u16, 0..40)
                .prop_map(|slots| Box::new(slots.into_iter().collect())),
            proptest::collection::vec(any::<u64>(), SLOTS / 64).prop_map(|words| {
                let mut set = Box::<SlotSet>::default();
                set.0.copy_from_slice(&words);
                set
            }),
        ]
    }

    fn mac() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![Just(Vec::new()), any::<[u8; MAC_LEN]>().prop_map(Vec::from)]
    }

    fn arb_gossip() -> impl Strategy<Value = Gossip> {
        let ip = prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ];
        (
            id(),
            id(),
            ip,
            any::<u16>(),
            any::<u16>(),
            flags(),
            any::<u32>(),
        )
            .prop_map(|(id, shard, ip, port, cport, flags, pong_age)| Gossip {
                id,
                shard,
                addr: Addr { ip, port, cport },
                flags,
                pong_age,
            })
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (
            (id(), id(), flags(), proptest::option::of(id())),
            (any::<u16>(), any::<u16>()),
            any::<[u64; 5]>(),
            (proptest::option::of(slots()), any::<bool>(), any::<bool>()),
        )
            .prop_map(
                |(
                    (sender, shard, flags, master),
                    (port, cport),
                    epochs,
                    (claim, knows_you, paused),
                )| {
                    Header {
                        sender,
                        shard,
                        flags,
                        master,
                        port,
                        cport,
                        current_epoch: epochs[0],
                        config_epoch: epochs[1],
                        claim_digest: epochs[2],
                        your_claim_digest: epochs[3],
                        offset: epochs[4],
                        knows_you,
                        paused,
                        claim,
                    }
                },
            )
    }

    fn arb_body() -> impl Strategy<Value = Body> {
        let gossip = || proptest::collection::vec(arb_gossip(), 0..6);
        let blob = || proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            gossip().prop_map(Body::Meet),
            gossip().prop_map(Body::Ping),
            gossip().prop_map(Body::Pong),
            id().prop_map(Body::Fail),
            (id(), any::<u64>(), slots()).prop_map(|(node, config_epoch, slots)| {
                Body::Update {
                    node,
                    config_epoch,
                    slots,
                }
            }),
            (any::<u64>(), slots()).prop_map(|(epoch, slots)| Body::AddSlots { epoch, slots }),
            (blob(), blob()).prop_map(|(channel, message)| Body::Publish { channel, message }),
            (blob(), blob()).prop_map(|(channel, message)| Body::PublishShard { channel, message }),
            (any::<u64>(), slots(), any::<bool>()).prop_map(|(config_epoch, slots, manual)| {
                Body::FailoverAuthRequest {
                    config_epoch,
                    slots,
                    manual,
                }
            }),
            any::<u64>().prop_map(|epoch| Body::FailoverAuthAck { epoch }),
            Just(Body::MfStart),
            (any::<u64>(), proptest::collection::vec(id(), 0..5))
                .prop_map(|(version, members)| Body::InSync { version, members }),
            any::<u64>().prop_map(|version| Body::InSyncAck { version }),
        ]
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (any::<u16>(), any::<[u8; NONCE_LEN]>())
                .prop_map(|(version, nonce)| Frame::Hello { version, nonce }),
            (any::<[u8; NONCE_LEN]>(), mac())
                .prop_map(|(nonce, mac)| Frame::Challenge { nonce, mac }),
            mac().prop_map(|mac| Frame::Proof { mac }),
            (arb_header(), arb_body()).prop_map(|(header, body)| message(header, body)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_frame_round_trips_and_frame_len_is_its_size(frame in arb_frame()) {
            let bytes = bytes_of(&frame);
            prop_assert_eq!(bytes.len(), frame_len(&frame));
            let mut buf = BytesMut::from(&bytes[..]);
            prop_assert_eq!(FrameDecoder::new(LIMITS).decode(&mut buf), Ok(Some(frame)));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn frames_arriving_in_any_pieces_decode_the_same(
            frames in proptest::collection::vec(arb_frame(), 1..4),
            chunk in 1usize..3000,
        ) {
            let input: Vec<u8> = frames.iter().flat_map(bytes_of).collect();
            prop_assert_eq!(decode_arriving(&input, chunk), Ok(frames));
        }
    }
}
