//! Publish/subscribe: channels, patterns, and each subscriber's mailbox.
//!
//! ```text
//! PUBLISH ch msg ──▶ subscribers of ch and matching patterns ──▶ mailbox (encoded
//!                    in the subscriber's protocol) ──▶ its connection writes it out
//! ```
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

/// All subscriptions of the server.
#[derive(Debug, Default)]
pub struct PubSub {
    channels: RwLock<HashMap<Vec<u8>, Vec<Arc<Mailbox>>>>,
    patterns: RwLock<Vec<(Vec<u8>, Arc<Mailbox>)>>,
}

impl PubSub {
    /// Subscribes `mailbox` to `channel`; false if it already was.
    pub fn subscribe(&self, channel: &[u8], mailbox: &Arc<Mailbox>) -> bool {
        let mut channels = self.channels.write();
        let subs = channels.entry(channel.to_vec()).or_default();
        if subs.iter().any(|m| Arc::ptr_eq(m, mailbox)) {
            return false;
        }
        subs.push(mailbox.clone());
        true
    }

    /// Unsubscribes `mailbox` from `channel`; false if it was not subscribed.
    pub fn unsubscribe(&self, channel: &[u8], mailbox: &Arc<Mailbox>) -> bool {
        let mut channels = self.channels.write();
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

    /// Subscribes `mailbox` to `pattern`; false if it already was.
    pub fn psubscribe(&self, pattern: &[u8], mailbox: &Arc<Mailbox>) -> bool {
        let mut patterns = self.patterns.write();
        if patterns
            .iter()
            .any(|(p, m)| p == pattern && Arc::ptr_eq(m, mailbox))
        {
            return false;
        }
        patterns.push((pattern.to_vec(), mailbox.clone()));
        true
    }

    /// Unsubscribes `mailbox` from `pattern`; false if it was not subscribed.
    pub fn punsubscribe(&self, pattern: &[u8], mailbox: &Arc<Mailbox>) -> bool {
        let mut patterns = self.patterns.write();
        let before = patterns.len();
        patterns.retain(|(p, m)| !(p == pattern && Arc::ptr_eq(m, mailbox)));
        patterns.len() != before
    }

    /// True if nobody subscribes to anything (publishing is then free).
    pub fn is_empty(&self) -> bool {
        self.channels.read().is_empty() && self.patterns.read().is_empty()
    }

    /// Delivers `message` on `channel`; the number of subscriptions reached.
    /// Subscribers whose pending output passes `limit` are disconnected.
    pub fn publish(&self, channel: &[u8], message: &[u8], limit: OutputLimit) -> usize {
        let mut encoded: [Option<Vec<u8>>; 2] = [None, None];
        let mut receivers = 0;
        if let Some(subs) = self.channels.read().get(channel) {
            for mailbox in subs {
                Self::deliver(mailbox, limit, &mut encoded, |out| {
                    out.push(3);
                    out.bulk(b"message");
                    out.bulk(channel);
                    out.bulk(message);
                });
                receivers += 1;
            }
        }
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

    /// Channels with subscribers, optionally only those matching `pattern`.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.channels
            .read()
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of `channel`.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.read().get(channel).map_or(0, Vec::len)
    }

    /// Pattern subscriptions in total.
    pub fn numpat(&self) -> usize {
        self.patterns.read().len()
    }

    /// Number of channels with subscribers.
    pub fn channel_count(&self) -> usize {
        self.channels.read().len()
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
        assert!(ps.subscribe(b"news", &a));
        assert!(!ps.subscribe(b"news", &a));
        assert!(ps.psubscribe(b"n*", &b));
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
        assert!(ps.unsubscribe(b"news", &a));
        assert!(ps.punsubscribe(b"n*", &b));
        assert!(ps.is_empty());
    }

    #[test]
    fn resp3_subscribers_get_push_frames() {
        let ps = PubSub::default();
        let a = Mailbox::new(1, Protocol::Resp3, CancellationToken::new());
        ps.subscribe(b"c", &a);
        ps.publish(b"c", b"m", DEFAULT);
        assert_eq!(a.take(), b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
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
        ps.subscribe(b"c", &a);
        for _ in 0..100 {
            ps.publish(b"c", &[b'x'; 50], limit);
        }
        assert!(kill.is_cancelled());
        assert!(a.take().len() < 1000);
    }
}
