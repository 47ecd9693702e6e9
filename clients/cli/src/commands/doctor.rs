//! `ferry doctor`: the troubleshooting checklist, in order, each line saying ok or what to do.

use std::fmt;
use std::time::Duration;

use ferry_protocol::SyncKey;
use ferry_relay_client::{ClientConfig, RelayClient, State};
use ferry_secrets::Secrets;
use ferry_store::RetryPolicy;
use serde::Serialize;

use crate::cli::DataCommand;
use crate::commands;
use crate::commands::sync::Lan;
use crate::config::Config;
use crate::device;
use crate::error::Failure;
use crate::held::{Line, Role};
use crate::home::Home;
use crate::ipc::{self, Format, Reply};
use crate::output::{Lines, Output};

struct Check {
    name: &'static str,
    result: Result<String, String>,
    /// How a check that passed is marked.
    mark: Mark,
}

/// How a check that passed is marked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// All is well.
    Ok,
    /// Something the person chose, said so (a path turned off).
    Info,
    /// Passed, with something to know.
    Warning,
}

/// The checks made so far, in order.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, name: &'static str, result: Result<String, String>) {
        self.0.push(Check {
            name,
            result,
            mark: Mark::Ok,
        });
    }

    /// A check that passed with something to know.
    fn warn(&mut self, name: &'static str, detail: String) {
        self.0.push(Check {
            name,
            result: Ok(detail),
            mark: Mark::Warning,
        });
    }

    /// Something the person set that is neither wrong nor worrying, such as a path turned off.
    fn info(&mut self, name: &'static str, detail: String) {
        self.0.push(Check {
            name,
            result: Ok(detail),
            mark: Mark::Info,
        });
    }
}

/// The checklist's outcome.
#[derive(Serialize)]
#[serde(transparent)]
struct Report(Vec<Row>);

#[derive(Serialize)]
struct Row {
    check: &'static str,
    ok: bool,
    warning: bool,
    /// Neither a failure nor a warning: something set so (a path turned off).
    info: bool,
    detail: String,
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match (self.ok, self.warning, self.info) {
            (false, _, _) => "FAIL",
            (true, true, _) => "warn",
            (true, false, true) => "info",
            (true, false, false) => "ok  ",
        };
        write!(f, "{mark}  {}: {}", self.check, self.detail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lines(&self.0).fmt(f)
    }
}

/// `ferry doctor`: fails when any check fails, after printing them all.
pub(crate) async fn run(home: &Home, config: &Config, out: &mut Output) -> Result<(), Failure> {
    let rows: Vec<Row> = checks(home, config)
        .await
        .into_iter()
        .map(|check| {
            let (ok, detail) = match check.result {
                Ok(detail) => (true, detail),
                Err(detail) => (false, detail),
            };
            Row {
                check: check.name,
                ok,
                warning: check.mark == Mark::Warning,
                info: check.mark == Mark::Info,
                detail,
            }
        })
        .collect();
    let failed = rows.iter().filter(|row| !row.ok).count();
    let total = rows.len();
    out.report(&Report(rows));
    match failed {
        0 => Ok(()),
        n => Err(Failure::new(format!("{n} of {total} checks failed"))),
    }
}

async fn checks(home: &Home, config: &Config) -> Vec<Check> {
    let mut checks = Checks::default();
    let Some(url_text) = config.settings.store.as_deref() else {
        checks.add(
            "config",
            Err(format!(
                "no store is set in {}: run `ferry init --store URL` or `ferry join`",
                config.user_file.display()
            )),
        );
        return checks.0;
    };
    checks.add(
        "config",
        Ok(format!(
            "store {url_text} (from {})",
            config.user_file.display()
        )),
    );
    let secrets = device::secrets(home, config);
    let key = secrets_found(&secrets, &mut checks);
    storage(home, config, url_text, &secrets, key.as_ref(), &mut checks).await;
    let relay_url = match commands::config::relay_in_use(home, config).await {
        Err(why) => {
            checks.warn(
                "relay",
                format!(
                    "the repository's relay setting could not be read: {}",
                    why.message
                ),
            );
            None
        }
        Ok(None) => {
            checks.add(
                "relay",
                Ok(format!(
                    "none configured: this device polls the storage every {:?}",
                    config.settings.poll_interval
                )),
            );
            None
        }
        Ok(Some((url, synced))) => {
            let said = |said: String| match synced {
                true => format!("{said} (the repository's relay, synced)"),
                false => said,
            };
            checks.add("relay", relay(&url).await.map(said).map_err(said));
            Some(url)
        }
    };
    match (ferry_store::StoreUrl::parse(url_text), &relay_url) {
        (Ok(ferry_store::StoreUrl::S3(location)), Some(relay)) => {
            browser(&location, relay, &mut checks).await;
        }
        (Ok(ferry_store::StoreUrl::S3(_)), None) => checks.info(
            "browser",
            "a browser pairs through a relay that serves its page (`ferry-relay --web DIR`), \
             and this device uses none"
                .into(),
        ),
        _ => checks.info(
            "browser",
            "a browser reaches only an S3-compatible bucket (`ferry store move s3://…` moves \
             the repository to one)"
                .into(),
        ),
    }
    checks.add(
        "clipboard",
        match ferry_clipboard::Writer::open().and_then(|_| ferry_clipboard::Watcher::probe()) {
            Ok(source) => Ok(format!("available; copies are seen through {source}")),
            Err(error) => Err(error.to_string()),
        },
    );
    let status = ipc::send(home, &DataCommand::Status, Format::Json).await;
    checks.add(
        "agent",
        match &status {
            Ok(Some(_)) => Ok("running".into()),
            Ok(None) => {
                Err("not running: start it with `ferry agent` or `ferry service install`".into())
            }
            Err(failure) => Err(failure.message.clone()),
        },
    );
    lan(status.ok().flatten().as_ref(), config, &mut checks);
    checks.0
}

/// The sync key and this device's identity, as the secret store holds them.
fn secrets_found(secrets: &Secrets, checks: &mut Checks) -> Option<SyncKey> {
    match device::sync_key(secrets) {
        Ok(key) => {
            let identity = match secrets.get(ferry_secrets::Secret::DeviceIdentity) {
                Ok(Some(text)) => match ferry_protocol::Identity::from_hex(&text) {
                    Ok(identity) => Ok(format!(
                        ", and this device's identity (key {})",
                        identity.public().fingerprint()
                    )),
                    Err(_) => Err(
                        "this device's identity key is damaged: join the repository again with \
                         `ferry join`"
                            .to_owned(),
                    ),
                },
                Ok(None) => Ok("; this device's identity is made at its next start".to_owned()),
                Err(error) => Err(error.to_string()),
            };
            checks.add(
                "secrets",
                identity
                    .map(|identity| format!("the sync key is in {}{identity}", secrets.describe())),
            );
            Some(key)
        }
        Err(failure) => {
            checks.add("secrets", Err(failure.message));
            None
        }
    }
}

/// Whether the storage lets this device list, write, read and delete, honours write-once, and
/// opens with the key; then the roster.
async fn storage(
    home: &Home,
    config: &Config,
    url_text: &str,
    secrets: &Secrets,
    key: Option<&SyncKey>,
    checks: &mut Checks,
) {
    let store = device::parse_store(url_text)
        .and_then(|url| device::open_store(&url, config, secrets, device::CreateFolder::No));
    let store = match (store, key) {
        (Ok((store, held)), Some(key)) => {
            let identity = device::identity(secrets)
                .or_else(|_| ferry_protocol::Identity::generate().map_err(Failure::from));
            if let Ok(identity) = identity {
                let identity = std::sync::Arc::new(identity);
                crate::held::reach(&held, home, config, &key.keys(), &identity).await;
            }
            if let Role::Reaches(line) = &held
                && !holder(line, checks).await
            {
                return;
            }
            Ok(store)
        }
        (store, _) => store.map(|(store, _)| store),
    };
    match store {
        Err(failure) => checks.add("storage", Err(failure.message)),
        Ok(store) => {
            let probe = tokio::time::timeout(Duration::from_secs(30), store.probe()).await;
            match probe {
                Err(_) => checks.add("storage", Err("the storage did not answer within 30 s: check the URL, the network and the server".into())),
                Ok(report) => {
                    for (name, result) in [
                        ("storage: list", &report.list),
                        ("storage: write", &report.write),
                        ("storage: read", &report.read),
                        ("storage: delete", &report.delete),
                    ] {
                        checks.add(name, result.clone().map(|()| "allowed".into()).map_err(|e| e.to_string()));
                    }
                    match report.write_once {
                        Some(true) => checks.add("storage: write-once", Ok("an existing object is never replaced".into())),
                        Some(false) => checks.warn("storage: write-once", "the server ignores If-None-Match and replaces existing objects: anyone with write access to the storage can overwrite an object before a device writes it; prefer a server that honours conditional writes".into()),
                        None => {}
                    }
                    if let Some(key) = key {
                        let keys = key.keys();
                        let found = ferry_sync::generation::locate(&*store, &RetryPolicy::DEFAULT, |_| Ok(keys.clone())).await;
                        let opened_fine = found.is_ok();
                        match found {
                            // A newer key is there: this device has not moved to it yet.
                            Ok((located, _)) if !located.successors.is_empty() => checks.warn("key", format!(
                                "opens generation {} of the repository (key {}), which has a newer key: this device moves to it at its next sync (`ferry sync`), unless it was removed",
                                located.generation, located.header.key_id
                            )),
                            found => checks.add("key", found.map(|(located, _)| match located.generation {
                                1 => format!("opens the repository (key {})", located.header.key_id),
                                n => format!("opens the repository (key {}, generation {n})", located.header.key_id),
                            }).map_err(|e| e.to_string())),
                        }
                        if opened_fine {
                            devices(home, config, checks).await;
                            generation(home, config, checks).await;
                        }
                    }
                }
            }
        }
    }
}

/// Whether the device holding the repository answers on the LAN, said either way.
async fn holder(line: &Line, checks: &mut Checks) -> bool {
    let holder = line.holder().short();
    // The line's own LAN needs a moment to find the holder.
    let reached = line.wait_for_holder().await;
    match reached {
        true => checks.add(
            "storage",
            Ok(format!("held by device {holder}, reached on the LAN")),
        ),
        false => checks.add(
            "storage",
            Err(format!(
                "held by device {holder}, which is not reachable on the LAN: its agent must run \
                 (on that machine: `ferry agent` or `ferry service install`), both machines must \
                 be on one network, and where multicast does not pass, lan.peers must name it"
            )),
        ),
    }
    reached
}

/// The LAN path as the agent runs it (from the agent's `status`): the nearby devices connected,
/// or why there are none.
fn lan(status: Option<&Reply>, config: &Config, checks: &mut Checks) {
    if !config.settings.lan_enabled {
        return checks.info("lan", "off (lan.enabled = false)".into());
    }
    let Some(status) = status else {
        return checks.warn(
            "lan",
            "not checked: the agent runs the LAN path, and it is not running".into(),
        );
    };
    let lan = serde_json::from_slice::<serde_json::Value>(&status.stdout)
        .ok()
        .and_then(|status| serde_json::from_value::<Lan>(status["lan"].clone()).ok());
    match lan {
        None => checks.add(
            "lan",
            Err("the agent did not say how its LAN path is".into()),
        ),
        Some(lan) if !lan.running() => checks.add("lan", Err(lan.to_string())),
        Some(lan) if lan.peers.is_empty() => checks.warn("lan", lan.to_string()),
        Some(lan) => checks.add("lan", Ok(lan.to_string())),
    }
}

/// The roster as `ferry devices` shows it (through the agent when it runs): every device should
/// be one somebody added.
async fn devices(home: &Home, config: &Config, checks: &mut Checks) {
    let mut out = Output::new(true);
    let listed = commands::run_data(
        home.clone(),
        config.clone(),
        DataCommand::Devices { action: None },
        &mut out,
    )
    .await
    .map_err(|failure| failure.message)
    .and_then(|()| {
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .map_err(|e| format!("the device list did not read back: {e}"))
    });
    let members = match listed {
        Ok(members) => members,
        Err(error) => return checks.add("devices", Err(error)),
    };
    let names = |flag: &str, wanted: bool| -> Vec<String> {
        members
            .iter()
            .filter(|m| m[flag].as_bool() == Some(wanted) && m["this_device"] != true)
            .filter_map(|m| m["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (unpaired, unregistered) = (names("unpaired", true), names("registered", false));
    if !unpaired.is_empty() {
        checks.warn(
            "devices",
            format!(
                "{} {} not added by a known device (joined with the sync key alone): if \
                 nobody you know set {} up, the key is loose; if yours, `ferry devices vouch \
                 NAME` says so (see `ferry devices`)",
                unpaired.join(", "),
                if unpaired.len() == 1 { "was" } else { "were" },
                if unpaired.len() == 1 { "it" } else { "them" }
            ),
        );
    } else if !unregistered.is_empty() {
        checks.warn(
            "devices",
            format!(
                "{} runs an older Ferry and does not sign what it writes: upgrade it",
                unregistered.join(", ")
            ),
        );
    } else {
        checks.add(
            "devices",
            Ok(format!(
                "{}, each signs what it writes",
                crate::output::counted(members.len() as u64, "device")
            )),
        );
    }
}

/// The repository's key after the first: which devices have not moved to it yet.
async fn generation(home: &Home, config: &Config, checks: &mut Checks) {
    let mut out = Output::new(true);
    let status = commands::run_data(home.clone(), config.clone(), DataCommand::Status, &mut out)
        .await
        .ok()
        .and_then(|()| serde_json::from_slice::<serde_json::Value>(&out.stdout).ok());
    let Some(key) = status.as_ref().map(|status| &status["key"]) else {
        return;
    };
    let Some(generation) = key["generation"].as_u64() else {
        return;
    };
    let by = key["made_by"]
        .as_str()
        .map(|by| format!(", made by {by}"))
        .unwrap_or_default();
    let waiting: Vec<&str> = key["not_moved"]
        .as_array()
        .map(|names| names.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    if waiting.is_empty() {
        checks.add(
            "new key",
            Ok(format!(
                "generation {generation}{by}: every device that holds moved to it"
            )),
        );
    } else {
        checks.warn(
            "new key",
            format!(
                "generation {generation}{by}: not moved yet: {} (each moves at its next sync \
                 once it runs; one that never comes back can be removed with `ferry devices \
                 remove`)",
                waiting.join(", ")
            ),
        );
    }
}

/// Whether the browser page that `relay` serves may use the bucket at `location`: its CORS
/// rule, checked with the preflights a browser sends; when it does not, the rule to add.
async fn browser(location: &ferry_store::url::S3Location, relay: &str, checks: &mut Checks) {
    let Some(origin) = crate::relay::page_origin(relay) else {
        return;
    };
    let allowed = ferry_store::cors::check(location, &origin, Duration::from_secs(10)).await;
    let rule = format!(
        "(AWS, Cloudflare R2, Backblaze B2 and most S3 providers take it through their S3 \
         API):\n      aws s3api put-bucket-cors --endpoint-url {} --bucket {} \
         --cors-configuration '{}'\n      (MinIO: start the server with \
         MINIO_API_CORS_ALLOW_ORIGIN={origin})",
        location.endpoint,
        location.bucket,
        ferry_store::cors::rule(&origin)
    );
    let page = format!("the page at {origin}/app/");
    match allowed {
        Err(error) => checks.warn(
            "browser",
            format!("the bucket's CORS rule could not be checked: {error}"),
        ),
        Ok(allowed) if allowed.read && allowed.write => checks.add(
            "browser",
            Ok(format!(
                "the bucket's CORS rule lets {page} read and write it"
            )),
        ),
        Ok(allowed) if allowed.read => checks.warn(
            "browser",
            format!(
                "the bucket's CORS rule lets {page} read it, not write to it (PUT with \
                 If-None-Match, and DELETE), which sending from the page needs (the preflights \
                 were refused: {}); this rule allows both {rule}",
                allowed.refused.join("; ")
            ),
        ),
        Ok(allowed) => checks.warn(
            "browser",
            format!(
                "the bucket's CORS rule does not let {page} read it (the preflights were \
                 refused: {}): a browser paired with this repository cannot use it until the \
                 bucket's administrator adds this rule {rule}",
                allowed.refused.join("; ")
            ),
        ),
    }
}

async fn relay(url: &str) -> Result<String, String> {
    let (client, _deliveries) = RelayClient::start(ClientConfig::new(url))
        .map_err(|e| format!("the relay URL does not work: {e}"))?;
    let mut status = client.watch();
    let connected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if status.borrow().state == State::Connected {
                return;
            }
            if status.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    match connected {
        Ok(()) if client.status().state == State::Connected => Ok(format!("connected to {url}")),
        _ => Err(format!(
            "{url} did not accept a connection within 5 s ({}); check the URL and that the relay runs; sync still works by polling",
            client
                .status()
                .last_error
                .unwrap_or_else(|| "no answer".into())
        )),
    }
}
