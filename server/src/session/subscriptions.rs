//! A client's pub/sub subscriptions.

use std::sync::Arc;

use crate::pubsub::{Mailbox, PubSub};

/// A client's subscriptions: what it subscribed to, and where its messages wait.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Where its messages wait to be written; created by the first subscription.
    pub mailbox: Option<Arc<Mailbox>>,
    channels: Vec<Vec<u8>>,
    patterns: Vec<Vec<u8>>,
}

impl Subscriptions {
    /// Channels and patterns subscribed.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Channels subscribed.
    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    /// Patterns subscribed.
    pub fn patterns(&self) -> usize {
        self.patterns.len()
    }

    /// The channels (or, with `patterns`, the patterns) subscribed, in order.
    pub fn names(&self, patterns: bool) -> &[Vec<u8>] {
        if patterns {
            &self.patterns
        } else {
            &self.channels
        }
    }

    /// Records a new subscription (the registry accepted it).
    pub fn add(&mut self, patterns: bool, name: &[u8]) {
        self.list(patterns).push(name.to_vec());
    }

    /// Forgets a subscription.
    pub fn remove(&mut self, patterns: bool, name: &[u8]) {
        self.list(patterns).retain(|n| n != name);
    }

    fn list(&mut self, patterns: bool) -> &mut Vec<Vec<u8>> {
        if patterns {
            &mut self.patterns
        } else {
            &mut self.channels
        }
    }

    /// Removes every subscription from the registry.
    pub fn drop_from(self, pubsub: &PubSub) {
        if let Some(mailbox) = &self.mailbox {
            for channel in &self.channels {
                pubsub.unsubscribe(channel, mailbox);
            }
            for pattern in &self.patterns {
                pubsub.punsubscribe(pattern, mailbox);
            }
        }
    }
}
