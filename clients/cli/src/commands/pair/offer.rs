//! `ferry pair`: shows a code, attests the device that types it, and sends it what it needs.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_protocol::pairing::{
    AbortReason, Bundle, Credentials, Message, Outcome, PairingCode, Reply, Role,
};
use ferry_protocol::{DeviceId, SyncKey};
use ferry_store::url::StoreUrl;
use serde::Serialize;
use tokio::time::Instant;
use tracing::warn;

use super::channel::{Channel, EXCHANGE, Paths};
use super::printable;
use crate::cli::{DataCommand, DevicesAction, PairArgs};
use crate::commands::devices::{self, Vouched};
use crate::config::{self, Config};
use crate::device::{self, Device};
use crate::error::Failure;
use crate::home::Home;
use crate::ipc::{self, Format};
use crate::output::{Events, Output, as_text, sanitized};

/// What `ferry pair` says as it goes.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event<'a> {
    Code {
        code: String,
        uri: &'a str,
        /// The page a browser opens to join (`ferry pair --browser`).
        #[serde(skip_serializing_if = "Option::is_none")]
        link: Option<&'a str>,
        expires_at: u64,
    },
    Answered,
    Joined {
        #[serde(with = "as_text")]
        device_id: DeviceId,
        name: &'a str,
        /// What the new device could not do but joined anyway (reach the relay).
        #[serde(skip_serializing_if = "Option::is_none")]
        warning: Option<&'a str>,
    },
    Failed {
        reason: &'a str,
    },
}

/// `ferry pair`: shows a code, and sends what the device that types it needs.
pub(crate) async fn offer(
    home: Home,
    config: Config,
    args: PairArgs,
    json: bool,
) -> Result<(), Failure> {
    let events = Events::new(json);
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
    // The repository's relay when this device has none of its own.
    let mut config = config.clone();
    if config.settings.relay.is_none() {
        match crate::commands::config::relay_in_use(home, &config).await {
            Ok(relay) => config.settings.relay = relay.map(|(url, _)| url),
            Err(failure) => warn!(
                error = %failure.message,
                "the repository's relay could not be read: pairing without it"
            ),
        }
    }
    let config = &config;
    // A browser pairs only through the relay that serves its page: said before anything else.
    let page = match args.browser {
        true => Some(browser_page(
            &store,
            args.relay.as_deref().or(config.settings.relay.as_deref()),
        )?),
        false => None,
    };
    let paths = Paths::choose(args.relay.as_deref(), None, config)?;
    let sent = Sent::gather(home, config, store)?;
    if sent.held_here {
        serving(home, config).await?;
    }
    let code = PairingCode::generate()?;
    let mut channel = Channel::open(&paths, &code, Role::Offer).await?;
    show_code(events, &code, args, &paths, page.as_deref());
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
                channel.send(&Message::Bundle(sent.bundle(by, &paths)))?;
                joining = Some(reply);
            }
            Some(Message::Outcome(outcome)) => return joined(events, joining, &outcome),
            _ => {}
        }
    }
}

/// What the new device is sent: the sync key, the storage and its credentials.
struct Sent {
    key: SyncKey,
    store: String,
    credentials: Credentials,
    /// The relay this device uses, if any.
    relay: Option<String>,
    /// Whether the repository is in this device's folder: the others reach it through this
    /// device.
    held_here: bool,
}

impl Sent {
    /// Gathers it from this device's settings and secrets for its `store`, before any code is
    /// shown: a device that could not send it fails here, not after the other side typed the
    /// code.
    fn gather(home: &Home, config: &Config, store: String) -> Result<Sent, Failure> {
        let url = device::parse_store(&store)?;
        let secrets = device::secrets(home, config);
        Ok(Sent {
            key: device::sync_key(&secrets)?,
            credentials: device::credentials_for(&url, config, &secrets)?,
            held_here: matches!(url, StoreUrl::Folder(_)),
            store,
            relay: config.settings.relay.clone(),
        })
    }

    /// The bundle for the device `by` attested: the relay is this device's, else the one it
    /// pairs through. A repository in this device's folder is sent as held by this device
    /// (`lan://…`), without a relay that only this machine reaches.
    fn bundle(&self, by: Vouched, paths: &Paths) -> Bundle {
        let relay = self.relay.clone().or(paths.relay.clone());
        let (store, relay) = match self.held_here {
            true => (
                StoreUrl::Held(by.device_id.to_string()).to_string(),
                relay.filter(|url| !config::on_this_machine(url)),
            ),
            false => (self.store.clone(), relay),
        };
        Bundle {
            sync_key: *self.key.expose_bytes(),
            store,
            credentials: self.credentials.clone(),
            relay,
            device: by.device_id,
            name: by.name,
        }
    }
}

/// Whether this device's agent serves its folder repository on the LAN, as the new device
/// will need from its first sync on; said before any code is shown.
async fn serving(home: &Home, config: &Config) -> Result<(), Failure> {
    let store = config.settings.store.as_deref().unwrap_or_default();
    let why = if !config.settings.lan_enabled {
        "the LAN path is off here (lan.enabled = false): turn it on with `ferry config set \
         lan.enabled true`, start the agent,"
    } else if ipc::send(home, &DataCommand::Status, Format::Json)
        .await?
        .is_none()
    {
        "its agent is not running: start it (`ferry agent`, or `ferry service install` to start \
         it at each login)"
    } else {
        return Ok(());
    };
    Err(Failure::new(format!(
        "this device holds the repository in a folder ({store}), and the new device reaches it \
         through this device's agent on the LAN, but {why} and pair again"
    )))
}

/// The page a browser joins through: the one the relay serves, on the relay's own origin.
/// Refused at once for a repository a browser cannot reach (only an S3-compatible bucket
/// answers a page), or without a relay.
fn browser_page(store: &str, relay: Option<&str>) -> Result<String, Failure> {
    let kind = match device::parse_store(store)? {
        StoreUrl::S3(_) => None,
        StoreUrl::WebDav(_) => Some("on a WebDAV server"),
        StoreUrl::Folder(_) | StoreUrl::Held(_) => Some("a folder on a computer"),
    };
    if let Some(kind) = kind {
        return Err(Failure::new(format!(
            "a browser reaches only an S3-compatible bucket, and this repository is {kind}: \
             move it to one first (`ferry store move s3://BUCKET/PREFIX?endpoint=…`, with the \
             bucket's keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), then pair the \
             browser"
        )));
    }
    let origin = relay.and_then(crate::relay::page_origin).ok_or_else(|| {
        Failure::new(
            "a browser pairs only through a relay that serves its page (started with `--web \
             DIR`), and this device uses none: give one with `--relay wss://relay.example`, or \
             set it (`ferry config set relay.url wss://relay.example`)",
        )
    })?;
    Ok(format!("{origin}/app/"))
}

/// Shows the code, its QR code on a terminal, and what to do with it: the command for the new
/// device names the relay, unless only this machine reaches it (the LAN carries the pairing);
/// for a browser, the link to `page` with the code in its fragment (never sent to a server).
fn show_code(
    events: &Events,
    code: &PairingCode,
    args: &PairArgs,
    paths: &Paths,
    page: Option<&str>,
) {
    let uri = code.uri(paths.relay.as_deref());
    let link = page.map(|page| format!("{page}#pair={}", code.normalised()));
    let todo = match &link {
        Some(link) => {
            let reach = if link.starts_with("https://") {
                ""
            } else if paths.relay.as_deref().is_some_and(config::on_this_machine) {
                " (this link opens on this machine only: for a phone, pair through the relay's \
                 public address, `ferry pair --browser --relay wss://relay.example`)"
            } else {
                " (a phone keeps the clipboard and offline use to HTTPS pages: serve the relay \
                 over HTTPS and pair with `--relay wss://…`)"
            };
            let scan = match args.no_qr || events.json() {
                true => "",
                false => " (or scan the QR code)",
            };
            format!(
                "In the browser, open {link}{scan} and tap Join{reach}; the page then says what \
                 it can do there."
            )
        }
        None => {
            let join = match paths.relay.as_deref() {
                Some(url) if !config::on_this_machine(url) => format!("ferry join --relay {url}"),
                _ => "ferry join".to_owned(),
            };
            format!(
                "On the new device run `{join}` and type the code (four letters of each word \
                 are enough)."
            )
        }
    };
    let expires_at = SystemTime::now() + args.expires;
    events.say(
        &Event::Code {
            code: code.to_string(),
            uri: &uri,
            link: link.as_deref(),
            expires_at: expires_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        },
        format_args!(
            "Pairing code: {code}     (expires in {}; one try)\n{}{todo}\nWaiting for the \
             other device {}…\n",
            humantime::format_duration(Duration::from_secs(args.expires.as_secs())),
            qr(link.as_deref().unwrap_or(&uri), args.no_qr || events.json()),
            match (&link, &paths.relay) {
                // A browser comes through the relay alone.
                (Some(_), Some(relay)) => format!("through the relay at {relay}"),
                _ => paths.described(),
            },
        ),
    );
}

/// What the joining device's outcome means here: it joined, or why it could not.
fn joined(events: &Events, joining: Option<Reply>, outcome: &Outcome) -> Result<(), Failure> {
    let Some(reply) = joining else {
        return Err(Failure::new(
            "the other device answered before it was sent anything; run `ferry pair` again",
        ));
    };
    if !outcome.joined {
        return Err(Failure::new(format!(
            "{} received the settings but could not use them: {}",
            reply.name,
            sanitized(&outcome.detail, 600)
        )));
    }
    let warning = Some(sanitized(&outcome.detail, 600)).filter(|said| !said.trim().is_empty());
    events.say(
        &Event::Joined {
            device_id: reply.device,
            name: &reply.name,
            warning: warning.as_deref(),
        },
        format_args!(
            "{} joined (device {}…). It can now see your history.\n",
            reply.name,
            reply.device.short(),
        ),
    );
    if let Some(warning) = &warning
        && !events.json()
    {
        eprintln!("warning: {} says: {warning}", reply.name);
    }
    Ok(())
}

/// Attests the joining device: on this device opened here, or in the agent when one holds it.
async fn vouch(home: &Home, config: &Config, reply: &Reply) -> Result<Vouched, Failure> {
    let lock = match device::try_lock(home)? {
        Some(lock) => lock,
        None => {
            let command = DataCommand::Devices {
                action: Some(DevicesAction::Attest {
                    device: reply.device.to_string(),
                    keys: reply.keys.to_hex(),
                }),
            };
            match ipc::send(home, &command, Format::Json).await? {
                Some(answer) => {
                    eprint!("{}", answer.stderr);
                    let stdout = answer.result()?;
                    return serde_json::from_slice(&stdout).map_err(|e| {
                        Failure::new(format!("the agent answered the attestation oddly: {e}"))
                    });
                }
                // Another command holds the lock: wait for it.
                None => device::lock(home, Duration::from_secs(30))?,
            }
        }
    };
    let mut device = Device::open(home.clone(), config.clone(), lock, device::INTERACTIVE).await?;
    let vouched = devices::attest(&mut device, reply.device, reply.keys)?;
    let mut out = Output::new(false);
    crate::commands::held_while_paused(&device, &mut out);
    crate::commands::send_now(&mut device, &mut out).await;
    eprint!("{}", out.stderr);
    Ok(vouched)
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
