//! The agent and its relay: hints published after an upload and taken as they arrive (when
//! the device they name signed them), roll calls answered, and what the connection says (the
//! signing, sealing and the topics are [`crate::relay::Hints`]).

use std::time::Duration;

use ferry_protocol::RelayHint;
use ferry_relay_client::{State as RelayState, Status as RelayStatus};
use ferry_sync::Heard;
use tokio::sync::watch as state;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Agent;
use crate::device::Device;
use crate::relay::{self, Hints};

/// The shortest time between two answers to roll calls.
const ANSWER_EVERY: Duration = Duration::from_secs(1);

/// The shortest time between two polls for hints of devices not known here (a device that
/// joined a moment ago, whose registration the storage has): someone flooding the topic with
/// them costs at most a listing this often, and a newcomer waits at most this long.
const STRANGER_POLL: Duration = Duration::from_secs(5);

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

    /// Takes a hint heard on the relay: news from a device that signed it is fetched, a roll
    /// call answered; a device not known yet sends this one to the storage (a poll, at most
    /// every [`STRANGER_POLL`]), and a hint another device did not sign is counted and
    /// ignored.
    pub(super) async fn hint(&mut self, heard: relay::Heard) {
        let claimed = match heard {
            relay::Heard::Hint(claimed) => claimed,
            relay::Heard::Older(tag) => return self.device.engine.older_version(&tag),
        };
        match self.device.engine.heard(&claimed) {
            // A member's roll call also asks for a look at the storage: it started, or made a
            // new key of the repository, whose candidate a listing shows (SPEC §4.6).
            Heard::Member(hint) if hint.is_roll_call() => {
                self.answer_roll_call();
                self.poll_soon();
            }
            Heard::Stranger(hint) if hint.is_roll_call() => self.answer_roll_call(),
            Heard::Member(hint) => self.fetch_hinted(hint).await,
            Heard::Stranger(hint) => {
                debug!(
                    seq = hint.seq,
                    "a hint of a device not known here: a poll soon"
                );
                self.poll_soon();
            }
            Heard::Forged(device) => {
                if let Some(relay) = &mut self.relay {
                    relay.forged(&self.device.device_name(&device));
                }
            }
            Heard::Own => {}
        }
    }

    /// Polls the storage soon: at once, or [`STRANGER_POLL`] after the last such poll.
    pub(super) fn poll_soon(&mut self) {
        self.stranger_poll_at.get_or_insert_with(|| {
            (self.stranger_polled_at).map_or_else(Instant::now, |at| at + STRANGER_POLL)
        });
    }

    /// The poll that hints of devices not known here (or members' roll calls) asked for.
    pub(super) async fn poll_for_strangers(&mut self) {
        self.stranger_poll_at = None;
        self.stranger_polled_at = Some(Instant::now());
        self.fetch().await;
    }

    async fn fetch_hinted(&mut self, hint: RelayHint) {
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
    fn answer_roll_call(&mut self) {
        let recently = self
            .answered_at
            .is_some_and(|at| at.elapsed() < ANSWER_EVERY);
        if recently {
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
pub(super) async fn next_hint(relay: &mut Option<Hints>) -> Option<relay::Heard> {
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
    match Hints::listen(url, &device.keys, &device.identity) {
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
