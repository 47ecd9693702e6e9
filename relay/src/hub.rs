//! Topics, their subscribers, and each connection's bounded send queue.
//!
//! A publish encodes its `msg` frame once and pushes the same shared bytes into the queue of
//! every other subscriber; the queue never blocks the publisher. A full queue either drops its
//! oldest message or marks the connection for closing, per [`SlowConsumer`].

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use ferry_protocol::TopicId;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::config::SlowConsumer;
use crate::limits::TokenBucket;
use crate::metrics::Metrics;

/// Identifies one connection for the life of the relay process.
pub(crate) type ConnectionId = u64;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Queue<T> {
    messages: VecDeque<T>,
    overflowed: bool,
}

/// Messages waiting to be written to one connection (or, for the broker, publishes waiting to
/// be sent to the other instances).
pub(crate) struct Outbox<T = Message> {
    queue: Mutex<Queue<T>>,
    ready: Notify,
    capacity: usize,
    policy: SlowConsumer,
}

impl<T> Outbox<T> {
    pub(crate) fn new(capacity: usize, policy: SlowConsumer) -> Arc<Self> {
        Arc::new(Outbox {
            queue: Mutex::new(Queue {
                messages: VecDeque::new(),
                overflowed: false,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
            policy,
        })
    }

    /// Queues `message`; returns false when a message was dropped to make room or the queue
    /// overflowed.
    pub(crate) fn push(&self, message: T) -> bool {
        let fitted = {
            let mut queue = lock(&self.queue);
            if queue.overflowed {
                return false;
            }
            if queue.messages.len() < self.capacity {
                queue.messages.push_back(message);
                true
            } else {
                match self.policy {
                    SlowConsumer::DropOldest => {
                        queue.messages.pop_front();
                        queue.messages.push_back(message);
                    }
                    SlowConsumer::Disconnect => queue.overflowed = true,
                }
                false
            }
        };
        self.ready.notify_one();
        fitted
    }

    /// Waits until something was pushed since the last [`Outbox::take`].
    pub(crate) async fn wait(&self) {
        self.ready.notified().await;
    }

    /// Takes everything queued. `Err` when the queue overflowed under the disconnect policy.
    pub(crate) fn take(&self) -> Result<VecDeque<T>, ()> {
        let mut queue = lock(&self.queue);
        if queue.overflowed {
            return Err(());
        }
        // Taking the whole queue leaves an unallocated one: an idle connection holds no buffer.
        Ok(std::mem::take(&mut queue.messages))
    }
}

struct Subscriber {
    connection: ConnectionId,
    outbox: Arc<Outbox>,
}

/// A topic's subscribers, and the budget of what other instances send it through the broker.
struct Topic {
    subscribers: Vec<Subscriber>,
    remote: TokenBucket,
}

type Shard = HashMap<TopicId, Topic>;

/// Every topic with at least one subscriber.
pub(crate) struct Hub {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    metrics: Arc<Metrics>,
    /// Messages a second, and a burst, each topic takes from other instances.
    remote: (f64, f64),
}

/// What a subscription came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subscribed {
    Added,
    /// The connection had it already.
    Already,
    /// The topic has as many subscribers as it may.
    Full,
}

/// What a publish did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fanout {
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
}

impl Hub {
    /// A hub whose topics each take `remote` (messages a second, burst) from other instances.
    pub(crate) fn new(metrics: Arc<Metrics>, remote: (f64, f64)) -> Self {
        let shards = (0..16).map(|_| Mutex::new(Shard::new())).collect();
        Hub {
            shards,
            hasher: RandomState::new(),
            metrics,
            remote,
        }
    }

    /// Whether a message for `topic` from another instance fits the topic's budget: metered
    /// as one address's publishes are, so that what reaches a subscriber through the broker
    /// is bounded as what reaches it from one client is. A topic without subscribers here
    /// keeps no budget (the message reaches no one anyway).
    pub(crate) fn admit_remote(&self, topic: &TopicId, now: Instant) -> bool {
        let (rate, burst) = self.remote;
        let mut shard = self.shard(topic);
        shard
            .get_mut(topic)
            .is_none_or(|t| t.remote.take(rate, burst, now))
    }

    fn shard(&self, topic: &TopicId) -> MutexGuard<'_, Shard> {
        let index = self.hasher.hash_one(topic) as usize % self.shards.len();
        lock(&self.shards[index])
    }

    /// Adds a subscription; false when the connection already had it.
    pub(crate) fn subscribe(
        &self,
        topic: TopicId,
        connection: ConnectionId,
        outbox: &Arc<Outbox>,
    ) -> bool {
        self.subscribe_within(topic, connection, outbox, usize::MAX) == Subscribed::Added
    }

    /// Adds a subscription unless the topic has `max` subscribers already.
    pub(crate) fn subscribe_within(
        &self,
        topic: TopicId,
        connection: ConnectionId,
        outbox: &Arc<Outbox>,
        max: usize,
    ) -> Subscribed {
        let mut shard = self.shard(&topic);
        if let Some(existing) = shard.get(&topic) {
            if existing
                .subscribers
                .iter()
                .any(|s| s.connection == connection)
            {
                return Subscribed::Already;
            }
            if existing.subscribers.len() >= max {
                return Subscribed::Full;
            }
        }
        let entry = shard.entry(topic).or_insert_with(|| {
            Metrics::add(&self.metrics.topics, 1);
            Topic {
                subscribers: Vec::with_capacity(1),
                remote: TokenBucket::full(self.remote.1, Instant::now()),
            }
        });
        entry.subscribers.push(Subscriber {
            connection,
            outbox: Arc::clone(outbox),
        });
        Metrics::add(&self.metrics.subscriptions, 1);
        Subscribed::Added
    }

    /// Removes a subscription; false when the connection did not have it.
    pub(crate) fn unsubscribe(&self, topic: &TopicId, connection: ConnectionId) -> bool {
        let mut shard = self.shard(topic);
        let Some(Topic { subscribers, .. }) = shard.get_mut(topic) else {
            return false;
        };
        let Some(index) = subscribers.iter().position(|s| s.connection == connection) else {
            return false;
        };
        subscribers.swap_remove(index);
        Metrics::sub(&self.metrics.subscriptions, 1);
        if subscribers.is_empty() {
            shard.remove(topic);
            Metrics::sub(&self.metrics.topics, 1);
        }
        true
    }

    /// Queues `message` for every subscriber of `topic` but `from`.
    pub(crate) fn publish(&self, topic: &TopicId, from: ConnectionId, message: &Message) -> Fanout {
        let mut fanout = Fanout::default();
        let shard = self.shard(topic);
        let subscribers = shard.get(topic).map(|t| t.subscribers.as_slice());
        for subscriber in subscribers.into_iter().flatten() {
            if subscriber.connection == from {
                continue;
            }
            if subscriber.outbox.push(message.clone()) {
                fanout.delivered += 1;
            } else {
                fanout.dropped += 1;
            }
        }
        fanout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> TopicId {
        TopicId([n; 32])
    }

    fn drain(outbox: &Outbox) -> Vec<String> {
        let messages = outbox.take().unwrap();
        messages.into_iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn publish_reaches_others_but_not_the_publisher() {
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::new(Arc::clone(&metrics), (10.0, 20.0));
        let boxes: Vec<_> = (0..3)
            .map(|_| Outbox::new(4, SlowConsumer::DropOldest))
            .collect();
        for (id, outbox) in boxes.iter().enumerate() {
            assert!(hub.subscribe(topic(1), id as u64, outbox));
        }
        assert!(!hub.subscribe(topic(1), 0, &boxes[0]));
        let fanout = hub.publish(&topic(1), 0, &Message::text("hi"));
        assert_eq!(fanout.delivered, 2);
        assert!(drain(&boxes[0]).is_empty());
        assert_eq!(drain(&boxes[1]), ["hi"]);
        assert_eq!(hub.publish(&topic(2), 0, &Message::text("x")).delivered, 0);

        assert!(hub.unsubscribe(&topic(1), 1));
        assert!(!hub.unsubscribe(&topic(1), 1));
        assert_eq!(
            hub.publish(&topic(1), 0, &Message::text("again")).delivered,
            1
        );
        hub.unsubscribe(&topic(1), 0);
        hub.unsubscribe(&topic(1), 2);
        assert_eq!(metrics.topics.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert_eq!(
            metrics
                .subscriptions
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    #[test]
    fn full_queue_drops_oldest_or_overflows() {
        let outbox = Outbox::new(2, SlowConsumer::DropOldest);
        assert!(outbox.push(Message::text("1")));
        assert!(outbox.push(Message::text("2")));
        assert!(!outbox.push(Message::text("3")));
        assert_eq!(drain(&outbox), ["2", "3"]);

        let strict = Outbox::new(1, SlowConsumer::Disconnect);
        assert!(strict.push(Message::text("1")));
        assert!(!strict.push(Message::text("2")));
        assert!(strict.take().is_err());
    }
}
