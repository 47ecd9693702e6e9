//! The agent and its relay: hints published after an upload and taken as they arrive, roll
//! calls answered, and what the connection says (the sealing and the topics are
//! [`crate::relay::Hints`]).

use std::time::Duration;

use ferry_protocol::RelayHint;
use ferry_relay_client::{State as RelayState, Status as RelayStatus};
use tokio::sync::watch as state;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Agent;
use crate::device::Device;
use crate::relay::Hints;

/// The shortest time between two answers to roll calls.
const ANSWER_EVERY: Duration = Duration::from_secs(1);

impl Agent {
    /// Follows the relay topics as they rotate; a subscription the relay client could not
    /// take is tried again at the next poll.
    pub(super) fn rotate_topics(&mut self) {
        if let Some(hints) = &mut self.relay {
            hints.rotate();
        }
    }

    /// Announces `hints` on the relay, where there is one.
    pub(super) fn publish(&self, hints: &[RelayHint]) {
        if let Some(relay) = &self.relay {
            // What does not go out is logged there; the others see it at their next poll.
            relay.announce(hints);
        }
    }

    pub(super) async fn hint(&mut self, hint: RelayHint) {
        if hint.is_roll_call() {
            self.answer_roll_call(hint);
            return;
        }
        debug!(seq = hint.seq, "hint");
        let result = self.device.engine.fetch_hint(hint).await;
        self.storage_answered(result.as_ref().err());
        match result {
            Ok(_) => {
                self.follow_synced_settings();
                self.apply_newest().await;
            }
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

/// The next hint heard on the relay, where there is one.
pub(super) async fn next_hint(relay: &mut Option<Hints>) -> Option<RelayHint> {
    match relay {
        Some(hints) => hints.next().await,
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

/// The relay's hints for `device`, where a relay is set. One that cannot be used (a synced
/// value this build refuses) costs the agent its hints, not its run.
pub(super) fn listen(device: &Device) -> Option<Hints> {
    let Some(url) = device.config.settings.relay.as_deref() else {
        info!(every = ?device.config.settings.poll_interval, "no relay: polling");
        return None;
    };
    match Hints::listen(url, &device.keys) {
        Ok(hints) => {
            info!(relay = url, "relay: connecting");
            Some(hints)
        }
        Err(failure) => {
            warn!(error = %failure.message, "relay: not used; polling instead");
            None
        }
    }
}
