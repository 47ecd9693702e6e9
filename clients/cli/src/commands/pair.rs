//! `ferry pair` and `ferry join` with a code: the two ends of pairing, moving the frames of a
//! [`Session`] through the relay, over the LAN, or both, whichever answers first.
//!
//! ```text
//! ferry pair (offer)                                   ferry join (join)
//! code + QR shown ── person reads it ──▶ code typed
//! Channel: relay topic H(nameplate), republished every 2 s ┐ both when both are on;
//!          LAN meeting place by mDNS, one TCP connection   ┘ frames from either count
//! ◀──────────────── confirmation both ways ─────────────────▶
//! Reply (id, name, keys) ◀──── attest it (`devices vouch`, here or in the agent)
//! Bundle (key, storage, credentials, relay) ────▶ setup::install, then Outcome ──▶ "joined"
//!                                                  first sync
//! ```
//!
//! The relay is the one given, configured, or carried by the code; the LAN is used wherever
//! mDNS discovery is on (`lan.enabled`, `lan.discovery`), so that two devices on one network
//! pair with no relay at all, or with one that cannot be reached. Whatever ends an attempt early
//! (a wrong code, a crowd, expiry, a damaged frame) is told to the other side with an abort
//! frame, and nothing is written on the joining device.

use std::fmt;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_lan::{Meeting, MeetingConfig};
use ferry_protocol::pairing::{
    self, AbortReason, Bundle, Message, Outcome, PairingCode, PairingError, Progress, Reply, Role,
    Session,
};
use ferry_protocol::{DeviceId, Identity, SyncKey, TopicId};
use ferry_relay_client::{ClientConfig, Delivery, RelayClient, State};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{info, warn};

use crate::cli::{DataCommand, DevicesAction, JoinArgs, PairArgs};
use crate::commands::devices::Vouched;
use crate::commands::setup::{self, KeySource, Paired, SetUp, Setup, ShowCode};
use crate::config::Config;
use crate::device;
use crate::error::Failure;
use crate::home::Home;
use crate::output::Output;
use crate::prompt;

/// How often a side publishes its frames again while waiting: the relay keeps no history.
const REPUBLISH: Duration = Duration::from_secs(2);

/// How long the exchange may take once the other side has answered.
const EXCHANGE: Duration = Duration::from_secs(120);

/// How long to wait for the relay to take the connection.
const CONNECT: Duration = Duration::from_secs(10);

/// How long a side waits for its last frames to go out before it exits.
const FLUSH: Duration = Duration::from_secs(2);

/// Where a side looks for the other: a relay, the LAN, or both.
struct Paths {
    relay: Option<String>,
    lan: Option<MeetingConfig>,
}

impl Paths {
    /// The relay to pair through (the one given, else the code's, else the configured one)
    /// and the LAN where discovery is on; at least one of them.
    fn choose(
        given: Option<&str>,
        from_code: Option<String>,
        config: &Config,
    ) -> Result<Paths, Failure> {
        let relay = given
            .map(str::to_owned)
            .or(from_code)
            .or_else(|| config.settings.relay.clone());
        let settings = &config.settings;
        // The port after the agent's (a free one where the agent's is free-floating too).
        let lan = (settings.lan_enabled && settings.lan_discovery).then(|| MeetingConfig {
            port: match settings.lan_port {
                0 => 0,
                port => port.saturating_add(1),
            },
            ..MeetingConfig::default()
        });
        if relay.is_none() && lan.is_none() {
            return Err(Failure::usage(
                "no relay configured, and LAN discovery is off (`lan.enabled` or \
                 `lan.discovery` is false): give `--relay URL` (the relay the other device \
                 uses; its QR code carries it), or turn discovery on to pair on this network",
            ));
        }
        Ok(Paths { relay, lan })
    }

    /// Where the other device should be, for messages: "through the relay at X and on this
    /// network".
    fn described(&self) -> String {
        match (&self.relay, &self.lan) {
            (Some(relay), Some(_)) => format!("through the relay at {relay} and on this network"),
            (Some(relay), None) => format!("through the relay at {relay}"),
            (None, _) => "on this network, with no relay configured".to_owned(),
        }
    }
}

/// A relay topic carrying the session's frames.
struct RelayPath {
    url: String,
    client: RelayClient,
    deliveries: mpsc::Receiver<Delivery>,
    topic: TopicId,
    /// Until when the relay may take to connect before the person is told it cannot be
    /// reached (`None` once connected or told).
    connect_by: Option<Instant>,
}

impl RelayPath {
    async fn open(url: &str, code: &PairingCode, wait: bool) -> Result<RelayPath, Failure> {
        let (client, deliveries) = RelayClient::start(ClientConfig {
            connect_timeout: CONNECT,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            ..ClientConfig::new(url)
        })
        .map_err(|e| Failure::usage(e.to_string()))?;
        let topic = pairing::topic(code.nameplate());
        // Subscribing goes before any publish on the one connection, so no answer is missed.
        client
            .subscribe(topic)
            .map_err(|e| Failure::new(e.to_string()))?;
        let path = RelayPath {
            url: url.to_owned(),
            client,
            deliveries,
            topic,
            // Only worth saying when the LAN may still carry the pairing (not waited for).
            connect_by: (!wait).then(|| Instant::now() + CONNECT),
        };
        if wait {
            let mut status = path.client.watch();
            let connected =
                timeout(CONNECT, status.wait_for(|s| s.state == State::Connected)).await;
            if !matches!(connected, Ok(Ok(_))) {
                return Err(Failure::new(format!(
                    "cannot reach the relay at {url} ({}); check the URL, or give another \
                     with --relay",
                    path.unreachable_because()
                )));
            }
        }
        Ok(path)
    }

    fn unreachable_because(&self) -> String {
        self.client
            .status()
            .last_error
            .unwrap_or_else(|| "no answer".into())
    }

    fn publish(&self, frame: Vec<u8>) -> Result<(), Failure> {
        self.client
            .publish(self.topic, frame)
            .map_err(|e| Failure::new(e.to_string()))
    }
}

/// The LAN meeting place carrying the session's frames.
struct LanPath {
    meeting: Meeting,
    frames: mpsc::Receiver<Vec<u8>>,
}

impl LanPath {
    async fn open(
        config: &MeetingConfig,
        code: &PairingCode,
        role: Role,
    ) -> Result<LanPath, ferry_lan::LanError> {
        let (meeting, frames) = match role {
            Role::Offer => Meeting::host(code.nameplate(), config).await?,
            Role::Join => Meeting::seek(code.nameplate(), config)?,
        };
        Ok(LanPath { meeting, frames })
    }
}

/// What a side heard while it waited.
enum Heard {
    Frame(Vec<u8>),
    RelayStopped,
    LanStopped,
    Republish,
    RelayLate,
    Deadline,
}

/// One side's session, on the relay topic of its code, its LAN meeting place, or both.
struct Channel {
    relay: Option<RelayPath>,
    lan: Option<LanPath>,
    session: Session,
    /// How many of the session's frames were published.
    published: usize,
    next_republish: Instant,
    /// Times this side published something new: with the answers, its round trips.
    bursts: u32,
}

impl Channel {
    async fn open(paths: &Paths, code: &PairingCode, role: Role) -> Result<Channel, Failure> {
        let session = Session::new(role, code).map_err(failure)?;
        let lan = match &paths.lan {
            Some(config) => match LanPath::open(config, code, role).await {
                Ok(lan) => Some(lan),
                Err(error) if paths.relay.is_some() => {
                    warn!(%error, "pairing goes through the relay only");
                    None
                }
                Err(error) => {
                    return Err(Failure::new(format!(
                        "cannot pair on this network: {error}; give `--relay URL` to pair \
                         through a relay"
                    )));
                }
            },
            None => None,
        };
        // With the LAN as well, a relay that cannot be reached is said, not fatal.
        let relay = match &paths.relay {
            Some(url) => Some(RelayPath::open(url, code, lan.is_none()).await?),
            None => None,
        };
        let mut channel = Channel {
            relay,
            lan,
            session,
            published: 0,
            next_republish: Instant::now() + REPUBLISH,
            bursts: 0,
        };
        channel.publish_new()?;
        Ok(channel)
    }

    /// Publishes the frames not published yet, on every path.
    fn publish_new(&mut self) -> Result<(), Failure> {
        let frames = &self.session.frames()[self.published..];
        if frames.is_empty() {
            return Ok(());
        }
        for frame in frames {
            if let Some(relay) = &self.relay {
                relay.publish(frame.clone())?;
            }
            if let Some(lan) = &self.lan {
                lan.meeting.send(frame.clone());
            }
        }
        self.published = self.session.frames().len();
        self.bursts += 1;
        Ok(())
    }

    /// Publishes the new frames on every path, and the others again on the relay, for a side
    /// that may have missed them (a LAN connection is given every frame when it opens).
    fn publish_all(&mut self) -> Result<(), Failure> {
        if let Some(relay) = &self.relay {
            for frame in &self.session.frames()[..self.published] {
                relay.publish(frame.clone())?;
            }
        }
        self.publish_new()?;
        self.next_republish = Instant::now() + REPUBLISH;
        Ok(())
    }

    /// The next thing heard on either path, or a timer.
    async fn hear(&mut self, deadline: Instant) -> Heard {
        let relay_late = self.relay.as_ref().and_then(|r| r.connect_by);
        tokio::select! {
            delivery = recv_relay(self.relay.as_mut()) => match delivery {
                Some(delivery) => Heard::Frame(delivery.data),
                None => Heard::RelayStopped,
            },
            frame = recv_lan(self.lan.as_mut()) => match frame {
                Some(frame) => Heard::Frame(frame),
                None => Heard::LanStopped,
            },
            () = sleep_until(self.next_republish), if self.relay.is_some() => Heard::Republish,
            () = sleep_until(relay_late.unwrap_or(deadline)), if relay_late.is_some() => {
                Heard::RelayLate
            }
            () = sleep_until(deadline) => Heard::Deadline,
        }
    }

    /// Waits for the other side's next news, until `deadline` (then `None`). A frame that
    /// ends the attempt is answered with an abort and returned as the failure.
    async fn next(&mut self, deadline: Instant) -> Result<Option<Progress>, Failure> {
        loop {
            let frame = match self.hear(deadline).await {
                Heard::Frame(frame) => frame,
                Heard::RelayStopped if self.lan.is_some() => {
                    self.relay = None;
                    continue;
                }
                Heard::RelayStopped => return Err(Failure::new("the relay connection stopped")),
                Heard::LanStopped if self.relay.is_some() => {
                    self.lan = None;
                    continue;
                }
                Heard::LanStopped => return Err(Failure::new("pairing on this network stopped")),
                Heard::Republish => {
                    self.publish_all()?;
                    continue;
                }
                Heard::RelayLate => {
                    self.relay_late();
                    continue;
                }
                Heard::Deadline => return Ok(None),
            };
            let progress = match self.session.receive(&frame) {
                Ok(progress) => progress,
                Err(error) => return Err(self.fail(error).await),
            };
            if progress.send_now {
                self.publish_all()?;
            }
            return Ok(Some(progress));
        }
    }

    /// Says once that the relay has not answered, when the LAN may still carry the pairing.
    fn relay_late(&mut self) {
        let Some(relay) = &mut self.relay else {
            return;
        };
        relay.connect_by = None;
        if relay.client.status().state != State::Connected {
            let note = format!(
                "cannot reach the relay at {} ({}); still waiting on this network",
                relay.url,
                relay.unreachable_because()
            );
            warn!("{note}");
            if std::io::stderr().is_terminal() {
                eprintln!("{note}");
            }
        }
    }

    /// [`next`](Self::next), unless the person presses Ctrl-C first: the other side is then
    /// told, and the code is used up.
    async fn next_unless_cancelled(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Progress>, Failure> {
        tokio::select! {
            next = self.next(deadline) => next,
            _ = tokio::signal::ctrl_c() => {
                self.abort(AbortReason::Cancelled).await;
                Err(Failure::new("pairing cancelled; the code is no longer valid"))
            }
        }
    }

    /// Seals `message` for the other side and publishes it.
    fn send(&mut self, message: &Message) -> Result<(), Failure> {
        self.session.send(message).map_err(failure)?;
        self.publish_new()
    }

    /// Tells the other side this one gives up, and says why here.
    async fn fail(&mut self, error: PairingError) -> Failure {
        if let Some(reason) = error.abort_reason() {
            self.abort(reason).await;
        }
        failure(error)
    }

    async fn abort(&mut self, reason: AbortReason) {
        let frame = self.session.abort(reason);
        if let Some(relay) = &self.relay {
            let _ = relay.publish(frame.clone());
        }
        if let Some(lan) = &self.lan {
            lan.meeting.send(frame);
        }
        self.flush().await;
    }

    /// Waits, at most [`FLUSH`], for what was published to go out on every path.
    async fn flush(&self) {
        let relay = async {
            if let Some(relay) = &self.relay {
                relay.client.flush(FLUSH).await;
            }
        };
        let lan = async {
            if let Some(lan) = &self.lan {
                lan.meeting.flush(FLUSH).await;
            }
        };
        tokio::join!(relay, lan);
    }
}

async fn recv_relay(relay: Option<&mut RelayPath>) -> Option<Delivery> {
    let Some(relay) = relay else {
        return std::future::pending().await;
    };
    loop {
        let delivery = relay.deliveries.recv().await?;
        if delivery.topic == relay.topic {
            return Some(delivery);
        }
    }
}

async fn recv_lan(lan: Option<&mut LanPath>) -> Option<Vec<u8>> {
    match lan {
        Some(lan) => lan.frames.recv().await,
        None => std::future::pending().await,
    }
}

fn failure(error: PairingError) -> Failure {
    Failure::new(error.to_string())
}

/// What `ferry pair` says as it goes: text, or one JSON object a line (`--json`).
struct Events {
    json: bool,
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event<'a> {
    Code {
        code: String,
        uri: &'a str,
        expires_at: u64,
    },
    Answered,
    Joined {
        device_id: String,
        name: &'a str,
    },
    Failed {
        reason: &'a str,
    },
}

impl Events {
    fn say(&self, event: &Event<'_>, text: impl fmt::Display) {
        let mut stdout = std::io::stdout().lock();
        let _ = if self.json {
            serde_json::to_writer(&mut stdout, event)
                .map_err(std::io::Error::other)
                .and_then(|()| writeln!(stdout))
        } else {
            write!(stdout, "{text}")
        };
        let _ = stdout.flush();
    }
}

/// `ferry pair`: shows a code, and sends what the device that types it needs.
pub(crate) async fn offer(
    home: Home,
    config: Config,
    args: PairArgs,
    json: bool,
) -> Result<(), Failure> {
    let events = Events { json };
    let result = run_offer(&home, &config, &args, &events).await;
    if let Err(failure) = &result {
        events.say(
            &Event::Failed {
                reason: &failure.message,
            },
            "",
        );
    }
    result
}

async fn run_offer(
    home: &Home,
    config: &Config,
    args: &PairArgs,
    events: &Events,
) -> Result<(), Failure> {
    let Some(store) = config.settings.store.clone() else {
        return Err(Failure::new(format!(
            "this device is not set up (no store in {}): pair from a device that is, or create \
             a repository here with `ferry init --store URL`",
            config.user_file.display()
        )));
    };
    let paths = Paths::choose(args.relay.as_deref(), None, config)?;
    let url = device::parse_store(&store)?;
    let secrets = device::secrets(home, config);
    let key = device::sync_key(&secrets)?;
    let credentials = device::credentials_for(&url, config, &secrets)?;

    let code = PairingCode::generate()?;
    let mut channel = Channel::open(&paths, &code, Role::Offer).await?;
    let uri = code.uri(paths.relay.as_deref());
    let expires_at = SystemTime::now() + args.expires;
    events.say(
        &Event::Code {
            code: code.to_string(),
            uri: &uri,
            expires_at: expires_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        },
        format_args!(
            "Pairing code: {code}     (expires in {}; one try)\n{}\
             On the new device run `ferry join` and type the code (four letters of each word \
             are enough).\nWaiting for the other device {}…\n",
            humantime::format_duration(Duration::from_secs(args.expires.as_secs())),
            qr(&uri, args.no_qr || events.json),
            paths.described(),
        ),
    );

    let mut deadline = Instant::now() + args.expires;
    let mut joining: Option<Reply> = None;
    loop {
        let Some(progress) = channel.next_unless_cancelled(deadline).await? else {
            return Err(match &joining {
                None => {
                    channel.abort(AbortReason::Expired).await;
                    Failure::new("the code expired: run `ferry pair` again for a new one")
                }
                Some(reply) => Failure::new(format!(
                    "{} received the settings but did not say whether it joined; see `ferry \
                     devices` there",
                    reply.name
                )),
            });
        };
        if progress.confirmed {
            // The code is right: the exchange may outlive the code's time.
            deadline = deadline.max(Instant::now() + EXCHANGE);
            events.say(&Event::Answered, "The other device has the code…\n");
        }
        match progress.message {
            Some(Message::Reply(mut reply)) => {
                reply.name = printable(&reply.name);
                let by = match vouch(home, config, &reply).await {
                    Ok(by) => by,
                    Err(failure) => {
                        // Tell the other device rather than leave it waiting.
                        channel.abort(AbortReason::Failed).await;
                        return Err(failure);
                    }
                };
                let device = by
                    .device_id
                    .parse()
                    .map_err(|_| Failure::new("attesting the new device gave a malformed id"))?;
                let bundle = Bundle {
                    sync_key: *key.expose_bytes(),
                    store: store.clone(),
                    credentials: credentials.clone(),
                    relay: config.settings.relay.clone().or(paths.relay.clone()),
                    device,
                    name: by.name,
                };
                channel.send(&Message::Bundle(bundle))?;
                joining = Some(reply);
            }
            Some(Message::Outcome(outcome)) => {
                let Some(reply) = joining else {
                    return Err(Failure::new(
                        "the other device answered before it was sent anything; run `ferry \
                         pair` again",
                    ));
                };
                if !outcome.joined {
                    return Err(Failure::new(format!(
                        "{} received the settings but could not use them: {}",
                        reply.name, outcome.detail
                    )));
                }
                let device_id = reply.device.to_string();
                events.say(
                    &Event::Joined {
                        device_id: device_id.clone(),
                        name: &reply.name,
                    },
                    format_args!(
                        "{} joined (device {}…). It can now see your history.\n",
                        reply.name,
                        &device_id[..8]
                    ),
                );
                return Ok(());
            }
            _ => {}
        }
    }
}

/// Attests the joining device on this one: here, or in the agent when one runs.
async fn vouch(home: &Home, config: &Config, reply: &Reply) -> Result<Vouched, Failure> {
    let command = DataCommand::Devices {
        action: Some(DevicesAction::Vouch {
            device: reply.device.to_string(),
            name: reply.name.clone(),
            keys: reply.keys.to_hex(),
        }),
    };
    let mut out = Output::new(true);
    super::run_data(home.clone(), config.clone(), command, &mut out).await?;
    eprint!("{}", out.stderr);
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Failure::new(format!("attesting the new device gave no answer: {e}")))
}

/// A device name from the other side, fit to show and keep: one line, at most 64 characters.
fn printable(name: &str) -> String {
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
        .trim()
        .to_owned();
    if name.is_empty() {
        "new device".to_owned()
    } else {
        name
    }
}

/// The QR code of `uri` for a terminal, or nothing.
fn qr(uri: &str, off: bool) -> String {
    if off || std::env::var("FERRY_QR").is_ok_and(|v| v == "0") || !std::io::stdout().is_terminal()
    {
        return String::new();
    }
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let drawn = code
                .render::<qrcode::render::unicode::Dense1x2>()
                .dark_color(qrcode::render::unicode::Dense1x2::Light)
                .light_color(qrcode::render::unicode::Dense1x2::Dark)
                .build();
            format!("{drawn}\n")
        }
        Err(_) => String::new(),
    }
}

/// `ferry join` with a code: receives the settings from the device that shows it.
pub(crate) async fn join(
    home: Home,
    config: Config,
    args: JoinArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    if let Some(existing) = config.settings.store.as_deref() {
        return Err(Failure::new(format!(
            "this device is already set up with the store {existing} (in {}); use another \
             --home for a second repository",
            config.user_file.display()
        )));
    }
    let typed = match &args.code {
        Some(code) => zeroize::Zeroizing::new(code.clone()),
        None => prompt::line("Pairing code: ", "the pairing code")?,
    };
    let (code, relay_in_code) =
        PairingCode::parse(&typed).map_err(|e| Failure::usage(e.to_string()))?;
    let paths = Paths::choose(args.relay.as_deref(), relay_in_code, &config)?;
    let started = Instant::now();
    let identity = Identity::generate()?;
    let device_id = DeviceId::generate()?;
    let name = args
        .name
        .clone()
        .or_else(|| config.settings.device_name.clone())
        .unwrap_or_else(setup::default_name);

    let mut channel = Channel::open(&paths, &code, Role::Join).await?;
    if std::io::stderr().is_terminal() && !out.json {
        eprintln!("Waiting for the device that shows the code…");
    }
    let mut deadline = started + args.wait;
    let bundle = loop {
        let Some(progress) = channel.next_unless_cancelled(deadline).await? else {
            channel.abort(AbortReason::Cancelled).await;
            return Err(Failure::new(if channel.session.answered() {
                "the other device stopped answering; run `ferry pair` there again".to_owned()
            } else {
                format!(
                    "no device answered the code within {} ({}): it may have expired or been \
                     used already, or the other device is elsewhere (another relay, another \
                     network); run `ferry pair` there again",
                    humantime::format_duration(args.wait),
                    paths.described(),
                )
            }));
        };
        if progress.confirmed {
            deadline = Instant::now() + EXCHANGE;
            channel.send(&Message::Reply(Reply {
                device: device_id,
                name: name.clone(),
                keys: identity.public(),
            }))?;
        }
        if let Some(Message::Bundle(bundle)) = progress.message {
            break bundle;
        }
    };
    let round_trips = channel.bursts;

    let setup = Setup {
        store: bundle.store.clone(),
        relay: bundle.relay.clone().or(paths.relay.clone()),
        name: Some(name),
        key: KeySource::Paired(SyncKey::from_bytes(bundle.sync_key)),
        code: ShowCode::Print,
        paired: Some(Paired {
            credentials: bundle.credentials.clone(),
            identity,
            device: device_id,
            by: printable(&bundle.name),
        }),
    };
    let installed = setup::install(home, config, setup).await;
    let outcome = match &installed {
        Ok(_) => Outcome {
            joined: true,
            detail: String::new(),
        },
        Err(failure) => Outcome {
            joined: false,
            detail: failure.message.clone(),
        },
    };
    // The outcome goes out whatever happened; the first sync needs no answer.
    let told = channel.send(&Message::Outcome(outcome));
    let (device, done) = installed?;
    told?;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        round_trips, "paired: key installed and repository opened"
    );
    channel.flush().await;
    let done: SetUp = setup::first_sync(device, done).await?;
    out.report(&done);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn names_from_the_other_side_are_made_printable() {
        assert_eq!(printable("desktop"), "desktop");
        assert_eq!(printable(" evil\u{1b}[2Jname\n"), "evil[2Jname");
        assert_eq!(printable("\n\t"), "new device");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
    }
}
