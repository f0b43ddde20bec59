//! A client's pub/sub subscriptions.

use std::sync::Arc;

use crate::pubsub::{Kind, Mailbox, PubSub};

/// A client's subscriptions: what it subscribed to, and where its messages wait.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Where its messages wait to be written; created by the first subscription.
    pub mailbox: Option<Arc<Mailbox>>,
    channels: Vec<Vec<u8>>,
    patterns: Vec<Vec<u8>>,
    shard_channels: Vec<Vec<u8>>,
}

impl Subscriptions {
    /// Subscriptions of every kind: while there is one, a RESP2 client is in the
    /// subscribed context.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// The count a confirmation of a `kind` (un)subscription carries, as Redis 7
    /// gives it: channels and patterns together, shard channels on their own.
    pub fn confirmed_count(&self, kind: Kind) -> usize {
        match kind {
            Kind::Channel | Kind::Pattern => self.channels.len() + self.patterns.len(),
            Kind::Shard => self.shard_channels.len(),
        }
    }

    /// Channels subscribed.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// Patterns subscribed.
    pub fn patterns(&self) -> usize {
        self.patterns.len()
    }

    /// Shard channels subscribed.
    pub fn shard_channels(&self) -> usize {
        self.shard_channels.len()
    }

    /// The names subscribed as `kind`, in order.
    pub fn names(&self, kind: Kind) -> &[Vec<u8>] {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    /// Records a new subscription (the registry accepted it).
    pub fn add(&mut self, kind: Kind, name: &[u8]) {
        self.list(kind).push(name.to_vec());
    }

    /// Forgets a subscription.
    pub fn remove(&mut self, kind: Kind, name: &[u8]) {
        self.list(kind).retain(|n| n != name);
    }

    fn list(&mut self, kind: Kind) -> &mut Vec<Vec<u8>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard_channels,
        }
    }

    /// Removes every subscription from the registry.
    pub fn drop_from(self, pubsub: &PubSub) {
        if let Some(mailbox) = &self.mailbox {
            for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
                for name in self.names(kind) {
                    pubsub.unsubscribe(kind, name, mailbox);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;
    use tokio_util::sync::CancellationToken;

    #[test]
    fn confirmations_count_shard_channels_apart_from_the_others() {
        let mut subs = Subscriptions::default();
        subs.add(Kind::Shard, b"s1");
        subs.add(Kind::Shard, b"s2");
        subs.add(Kind::Channel, b"c");
        subs.add(Kind::Pattern, b"p*");
        assert_eq!(subs.confirmed_count(Kind::Channel), 2);
        assert_eq!(subs.confirmed_count(Kind::Pattern), 2);
        assert_eq!(subs.confirmed_count(Kind::Shard), 2);
        assert_eq!(subs.count(), 4);
        subs.remove(Kind::Channel, b"c");
        subs.remove(Kind::Pattern, b"p*");
        assert_eq!(subs.confirmed_count(Kind::Channel), 0);
        assert_eq!(
            subs.count(),
            2,
            "shard channels keep the subscribed context"
        );
        assert_eq!(subs.names(Kind::Shard), [b"s1".to_vec(), b"s2".to_vec()]);
    }

    #[test]
    fn dropping_leaves_no_subscription_of_any_kind_behind() {
        let pubsub = PubSub::default();
        let mailbox = Mailbox::new(1, Protocol::Resp2, CancellationToken::new());
        let mut subs = Subscriptions {
            mailbox: Some(mailbox.clone()),
            ..Subscriptions::default()
        };
        for (kind, name) in [
            (Kind::Channel, &b"c"[..]),
            (Kind::Pattern, b"p*"),
            (Kind::Shard, b"s"),
        ] {
            assert!(pubsub.subscribe(kind, name, &mailbox));
            subs.add(kind, name);
        }
        subs.drop_from(&pubsub);
        assert!(pubsub.is_empty());
        assert_eq!(pubsub.shard_channel_count(), 0);
    }
}
