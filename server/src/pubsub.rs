//! Publish/subscribe: channels, patterns, shard channels, and each subscriber's
//! mailbox.
//!
//! ```text
//! PUBLISH ch msg  ──▶ subscribers of ch and matching patterns ─┐
//! SPUBLISH ch msg ──▶ subscribers of shard channel ch ─────────┴▶ mailbox (encoded
//!                     in the subscriber's protocol) ──▶ its connection writes it out
//! ```
//! Shard channels are a namespace of their own, as in Redis 7: `PUBLISH` and
//! patterns never reach them, `SPUBLISH` reaches nothing else.
//! A subscriber that reads slower than messages arrive fills its mailbox; past the
//! `client-output-buffer-limit` for pub/sub (hard limit at once, soft limit after it
//! held for the given seconds) it is disconnected, as Redis does, so a slow reader
//! can never make the server's memory grow without bound.
//! Uses the protocol (encoding, output limits) and the glob matcher.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::protocol::OutputLimit;
use crate::protocol::{Protocol, Reply};
use crate::util::glob::glob_match;

#[derive(Debug, Default)]
struct Pending {
    data: Vec<u8>,
    /// Since when the pending data has been over the soft limit.
    over_soft_since: Option<Instant>,
}

/// The messages waiting to be written to one subscriber.
#[derive(Debug)]
pub struct Mailbox {
    client: u64,
    proto: Mutex<Protocol>,
    pending: Mutex<Pending>,
    notify: Notify,
    kill: CancellationToken,
}

impl Mailbox {
    /// A mailbox for client `client`, which `kill` disconnects.
    pub fn new(client: u64, proto: Protocol, kill: CancellationToken) -> Arc<Self> {
        Arc::new(Mailbox {
            client,
            proto: Mutex::new(proto),
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
            kill,
        })
    }

    /// Changes the protocol messages are encoded in (after `HELLO`).
    pub fn set_protocol(&self, proto: Protocol) {
        *self.proto.lock() = proto;
    }

    /// Waits until messages are pending.
    pub async fn ready(&self) {
        loop {
            let notified = self.notify.notified();
            if !self.pending.lock().data.is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Takes the pending messages.
    pub fn take(&self) -> Vec<u8> {
        let mut pending = self.pending.lock();
        pending.over_soft_since = None;
        std::mem::take(&mut pending.data)
    }
}

/// What a client subscribes to: Redis keeps three separate namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary channels (`SUBSCRIBE`, `PUBLISH`).
    Channel,
    /// Glob patterns over ordinary channels (`PSUBSCRIBE`).
    Pattern,
    /// Shard channels (`SSUBSCRIBE`, `SPUBLISH`): not reached by `PUBLISH` nor by
    /// patterns; in a cluster a shard channel lives in its slot's shard.
    Shard,
}

/// Channels and their subscribers, for one namespace.
#[derive(Debug, Default)]
struct Channels(RwLock<HashMap<Vec<u8>, Vec<Arc<Mailbox>>>>);

impl Channels {
    fn subscribe(&self, channel: &[u8], mailbox: &Arc<Mailbox>) -> bool {
        let mut channels = self.0.write();
        let subs = channels.entry(channel.to_vec()).or_default();
        if subs.iter().any(|m| Arc::ptr_eq(m, mailbox)) {
            return false;
        }
        subs.push(mailbox.clone());
        true
    }

    fn unsubscribe(&self, channel: &[u8], mailbox: &Arc<Mailbox>) -> bool {
        let mut channels = self.0.write();
        let Some(subs) = channels.get_mut(channel) else {
            return false;
        };
        let before = subs.len();
        subs.retain(|m| !Arc::ptr_eq(m, mailbox));
        let removed = subs.len() != before;
        if subs.is_empty() {
            channels.remove(channel);
        }
        removed
    }

    /// Delivers one message to every subscriber of `channel`, encoded by
    /// `encode` once per protocol; the number reached.
    fn deliver(&self, channel: &[u8], limit: OutputLimit, encode: impl Fn(&mut Reply)) -> usize {
        let mut encoded: [Option<Vec<u8>>; 2] = [None, None];
        let channels = self.0.read();
        let Some(subs) = channels.get(channel) else {
            return 0;
        };
        for mailbox in subs {
            PubSub::deliver(mailbox, limit, &mut encoded, &encode);
        }
        subs.len()
    }

    fn names(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.0
            .read()
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    fn numsub(&self, channel: &[u8]) -> usize {
        self.0.read().get(channel).map_or(0, Vec::len)
    }

    fn len(&self) -> usize {
        self.0.read().len()
    }

    fn is_empty(&self) -> bool {
        self.0.read().is_empty()
    }
}

/// All subscriptions of the server.
#[derive(Debug, Default)]
pub struct PubSub {
    channels: Channels,
    shard_channels: Channels,
    patterns: RwLock<Vec<(Vec<u8>, Arc<Mailbox>)>>,
}

impl PubSub {
    /// Subscribes `mailbox` to `name` of `kind`; false if it already was.
    pub fn subscribe(&self, kind: Kind, name: &[u8], mailbox: &Arc<Mailbox>) -> bool {
        match kind {
            Kind::Channel => self.channels.subscribe(name, mailbox),
            Kind::Shard => self.shard_channels.subscribe(name, mailbox),
            Kind::Pattern => {
                let mut patterns = self.patterns.write();
                if patterns
                    .iter()
                    .any(|(p, m)| p == name && Arc::ptr_eq(m, mailbox))
                {
                    return false;
                }
                patterns.push((name.to_vec(), mailbox.clone()));
                true
            }
        }
    }

    /// Unsubscribes `mailbox` from `name` of `kind`; false if it was not
    /// subscribed.
    pub fn unsubscribe(&self, kind: Kind, name: &[u8], mailbox: &Arc<Mailbox>) -> bool {
        match kind {
            Kind::Channel => self.channels.unsubscribe(name, mailbox),
            Kind::Shard => self.shard_channels.unsubscribe(name, mailbox),
            Kind::Pattern => {
                let mut patterns = self.patterns.write();
                let before = patterns.len();
                patterns.retain(|(p, m)| !(p == name && Arc::ptr_eq(m, mailbox)));
                patterns.len() != before
            }
        }
    }

    /// True if nobody subscribes to an ordinary channel or a pattern (keyspace
    /// events are then free: they never go to shard channels).
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.read().is_empty()
    }

    /// Delivers `message` on ordinary `channel` to its subscribers and to the
    /// patterns matching it; the number of subscriptions reached.
    /// Subscribers whose pending output passes `limit` are disconnected.
    pub fn publish(&self, channel: &[u8], message: &[u8], limit: OutputLimit) -> usize {
        let mut receivers = self.channels.deliver(channel, limit, |out| {
            out.push(3);
            out.bulk(b"message");
            out.bulk(channel);
            out.bulk(message);
        });
        for (pattern, mailbox) in self.patterns.read().iter() {
            if glob_match(pattern, channel, false) {
                // Pattern messages name their pattern, so they are encoded per pattern.
                Self::deliver(mailbox, limit, &mut [None, None], |out| {
                    out.push(4);
                    out.bulk(b"pmessage");
                    out.bulk(pattern);
                    out.bulk(channel);
                    out.bulk(message);
                });
                receivers += 1;
            }
        }
        receivers
    }

    /// Delivers `message` to the subscribers of shard channel `channel` (as
    /// `smessage`); the number reached. Patterns never match shard channels.
    pub fn publish_shard(&self, channel: &[u8], message: &[u8], limit: OutputLimit) -> usize {
        self.shard_channels.deliver(channel, limit, |out| {
            out.push(3);
            out.bulk(b"smessage");
            out.bulk(channel);
            out.bulk(message);
        })
    }

    fn deliver(
        mailbox: &Mailbox,
        limit: OutputLimit,
        encoded: &mut [Option<Vec<u8>>; 2],
        encode: impl Fn(&mut Reply),
    ) {
        let proto = *mailbox.proto.lock();
        let slot = &mut encoded[usize::from(proto == Protocol::Resp3)];
        let bytes = slot.get_or_insert_with(|| {
            let mut out = Reply::new(proto);
            encode(&mut out);
            out.into_vec()
        });
        let mut pending = mailbox.pending.lock();
        pending.data.extend_from_slice(bytes);
        let len = pending.data.len() as u64;
        if limit.exceeded(len, &mut pending.over_soft_since, Instant::now()) {
            tracing::warn!(
                client = mailbox.client,
                "closing subscriber over the pubsub output buffer limit"
            );
            pending.data = Vec::new();
            mailbox.kill.cancel();
            return;
        }
        drop(pending);
        mailbox.notify.notify_one();
    }

    /// Ordinary channels with subscribers, optionally only those matching
    /// `pattern`.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.channels.names(pattern)
    }

    /// Shard channels with subscribers, optionally only those matching `pattern`.
    pub fn shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.shard_channels.names(pattern)
    }

    /// Subscribers of ordinary `channel`.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.numsub(channel)
    }

    /// Subscribers of shard channel `channel`.
    pub fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.shard_channels.numsub(channel)
    }

    /// Pattern subscriptions in total.
    pub fn numpat(&self) -> usize {
        self.patterns.read().len()
    }

    /// Number of ordinary channels with subscribers.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// Number of shard channels with subscribers.
    pub fn shard_channel_count(&self) -> usize {
        self.shard_channels.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: OutputLimit = OutputLimit {
        hard: 32 << 20,
        soft: 8 << 20,
        soft_seconds: 60,
    };

    fn mailbox(client: u64) -> Arc<Mailbox> {
        Mailbox::new(client, Protocol::Resp2, CancellationToken::new())
    }

    #[test]
    fn messages_reach_channel_and_pattern_subscribers() {
        let ps = PubSub::default();
        let (a, b) = (mailbox(1), mailbox(2));
        assert!(ps.subscribe(Kind::Channel, b"news", &a));
        assert!(!ps.subscribe(Kind::Channel, b"news", &a));
        assert!(ps.subscribe(Kind::Pattern, b"n*", &b));
        assert_eq!(ps.publish(b"news", b"hi", DEFAULT), 2);
        assert_eq!(
            a.take(),
            b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(
            b.take(),
            b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n"
        );
        assert_eq!(ps.publish(b"other", b"x", DEFAULT), 0);
        assert!(ps.unsubscribe(Kind::Channel, b"news", &a));
        assert!(!ps.unsubscribe(Kind::Channel, b"news", &a));
        assert!(ps.unsubscribe(Kind::Pattern, b"n*", &b));
        assert!(ps.is_empty());
    }

    #[test]
    fn resp3_subscribers_get_push_frames() {
        let ps = PubSub::default();
        let a = Mailbox::new(1, Protocol::Resp3, CancellationToken::new());
        ps.subscribe(Kind::Channel, b"c", &a);
        ps.publish(b"c", b"m", DEFAULT);
        assert_eq!(a.take(), b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
    }

    #[test]
    fn shard_channels_are_a_namespace_of_their_own() {
        let ps = PubSub::default();
        let (plain, pattern, shard) = (mailbox(1), mailbox(2), mailbox(3));
        ps.subscribe(Kind::Channel, b"orders", &plain);
        ps.subscribe(Kind::Pattern, b"*", &pattern);
        assert!(ps.subscribe(Kind::Shard, b"orders", &shard));
        assert!(!ps.subscribe(Kind::Shard, b"orders", &shard));
        assert_eq!(ps.publish_shard(b"orders", b"m", DEFAULT), 1);
        assert_eq!(
            shard.take(),
            b"*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$1\r\nm\r\n"
        );
        assert!(plain.take().is_empty() && pattern.take().is_empty());
        assert_eq!(ps.publish(b"orders", b"n", DEFAULT), 2);
        assert!(
            shard.take().is_empty(),
            "PUBLISH never reaches shard channels"
        );
        assert_eq!(ps.shard_channels(None), [b"orders".to_vec()]);
        assert!(ps.shard_channels(Some(b"x*")).is_empty());
        assert_eq!((ps.shard_numsub(b"orders"), ps.numsub(b"orders")), (1, 1));
        assert_eq!((ps.shard_channel_count(), ps.channel_count()), (1, 1));
        // Unsubscribing in one namespace leaves the other alone.
        assert!(ps.unsubscribe(Kind::Shard, b"orders", &shard));
        assert_eq!((ps.shard_channel_count(), ps.channel_count()), (0, 1));
        assert_eq!(ps.publish_shard(b"orders", b"m", DEFAULT), 0);
    }

    #[test]
    fn resp3_shard_subscribers_get_smessage_push_frames() {
        let ps = PubSub::default();
        let a = Mailbox::new(1, Protocol::Resp3, CancellationToken::new());
        ps.subscribe(Kind::Shard, b"c", &a);
        ps.publish_shard(b"c", b"m", DEFAULT);
        assert_eq!(a.take(), b">3\r\n$8\r\nsmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
    }

    #[test]
    fn a_subscriber_over_the_hard_limit_is_disconnected() {
        let ps = PubSub::default();
        let limit = OutputLimit {
            hard: 1000,
            soft: 0,
            soft_seconds: 0,
        };
        let kill = CancellationToken::new();
        let a = Mailbox::new(1, Protocol::Resp2, kill.clone());
        ps.subscribe(Kind::Channel, b"c", &a);
        for _ in 0..100 {
            ps.publish(b"c", &[b'x'; 50], limit);
        }
        assert!(kill.is_cancelled());
        assert!(a.take().len() < 1000);
    }
}
