//! The agent and its relay: the daily topics, hints published after an upload and taken as
//! they arrive, and what the connection says.

use std::time::Duration;

use ferry_protocol::RelayHint;
use ferry_relay_client::{Delivery, RelayClient, State as RelayState, Status as RelayStatus};
use tokio::sync::{mpsc, watch as state};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Agent, unix_now};

/// The shortest time between two answers to roll calls.
const ANSWER_EVERY: Duration = Duration::from_secs(1);

/// When the relay topics to listen on change next.
pub(super) fn topics_change() -> Instant {
    let now = unix_now();
    let next = ferry_protocol::relay::next_topic_change(now);
    Instant::now() + Duration::from_secs(next.saturating_sub(now))
}

impl Agent {
    /// Listens on the topics of the time now: subscribes to the new ones, leaves the old ones.
    /// A request the relay client could not take is tried again at the next poll.
    pub(super) fn rotate_topics(&mut self) {
        self.topics_change = topics_change();
        let wanted = self.device.keys.relay.listen_topics(unix_now());
        if wanted == self.topics {
            return;
        }
        let Some((client, _)) = &self.relay else {
            self.topics = wanted;
            return;
        };
        let mut held = Vec::new();
        for topic in &wanted {
            if self.topics.contains(topic) {
                held.push(*topic);
            } else if let Err(error) = client.subscribe(*topic) {
                warn!(%error, "could not subscribe to the relay's new topic");
            } else {
                held.push(*topic);
            }
        }
        for topic in self.topics.iter().filter(|t| !wanted.contains(t)) {
            if let Err(error) = client.unsubscribe(*topic) {
                warn!(%error, "could not leave the relay's old topic");
                held.push(*topic);
            }
        }
        debug!("relay: topics rotated");
        self.topics = held;
    }

    pub(super) fn publish(&self, hints: &[RelayHint]) {
        let Some((client, _)) = &self.relay else {
            return;
        };
        let topic = self.device.keys.relay.publish_topic(unix_now());
        for hint in hints {
            match self.device.keys.relay.seal_hint(&topic, hint) {
                Ok(sealed) => {
                    if let Err(error) = client.publish(topic, sealed.into_bytes()) {
                        warn!(%error, "a hint could not be published");
                    }
                }
                Err(error) => warn!(%error, "a hint could not be sealed"),
            }
        }
    }

    pub(super) async fn hint(&mut self, delivery: Delivery) {
        let hint = match self
            .device
            .keys
            .relay
            .open_hint(&delivery.topic, &delivery.data)
        {
            Ok(hint) => hint,
            Err(error) => {
                warn!(%error, "ignored a relay message that does not open with this key");
                return;
            }
        };
        if hint.is_roll_call() {
            self.answer_roll_call(hint);
            return;
        }
        debug!(seq = hint.seq, "hint");
        let result = self.device.engine.fetch_hint(hint).await;
        self.storage_answered(result.as_ref().err());
        match result {
            Ok(_) => self.apply_newest().await,
            Err(error) => warn!(%error, "fetch after a hint failed"),
        }
    }
}

impl Agent {
    /// Asks the other devices how far they have written: a device that starts learns from
    /// them, not only from the storage, where their logs end.
    pub(super) fn roll_call(&self) {
        self.publish(&[self.device.engine.roll_call()]);
    }

    /// Answers another device's roll call with this device's newest segment, at most once per
    /// [`ANSWER_EVERY`] (a burst of roll calls gets one answer, which all of them hear).
    fn answer_roll_call(&mut self, call: RelayHint) {
        let own = self.device.engine.roll_call().device;
        let recently = self
            .answered_at
            .is_some_and(|at| at.elapsed() < ANSWER_EVERY);
        if call.device == own || recently {
            return;
        }
        match self.device.engine.roll_call_answer() {
            Ok(Some(answer)) => {
                debug!(seq = answer.seq, "relay: answered a roll call");
                self.publish(&[answer]);
                self.answered_at = Some(Instant::now());
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "a roll call could not be answered"),
        }
    }
}

pub(super) async fn recv_relay(
    relay: &mut Option<(RelayClient, mpsc::Receiver<Delivery>)>,
) -> Option<Delivery> {
    match relay {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The relay connection's next change of state.
pub(super) async fn relay_changed(
    state: &mut Option<state::Receiver<RelayStatus>>,
) -> Option<RelayStatus> {
    if let Some(rx) = state
        && rx.changed().await.is_ok()
    {
        return Some(rx.borrow_and_update().clone());
    }
    // No relay, or its client stopped: nothing more to say.
    *state = None;
    std::future::pending().await
}

/// Says how the relay connection changed.
pub(super) fn relay_news(status: &RelayStatus) {
    match &status.state {
        RelayState::Connected => info!(connections = status.connections, "relay: subscribed"),
        RelayState::Waiting { retry_in } => info!(
            ?retry_in,
            error = status.last_error.as_deref().unwrap_or(""),
            "relay: not connected; polling until it answers"
        ),
        RelayState::Connecting | RelayState::Stopped => {}
    }
}
