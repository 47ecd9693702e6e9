//! The README's path on machines of their own: three network namespaces on one LAN, each with
//! its own X desktop, and the second and third unable to see the first one's files. The first
//! machine runs Ferry as `scripts/run.sh` does (a relay on its own 127.0.0.1, the agent's first
//! run on the embedded default: a folder repository in its home); the second joins with the
//! code `ferry pair` shows; copies go both ways between the two clipboards through the first
//! machine; with the first machine's agent stopped the second records and queues, and what it
//! queued reaches the first machine's folder once it is back; a third machine joins through the
//! second's pairing and reaches the first. And a device that joins a shared folder without
//! being told of the relay uses the repository's, which `ferry init --relay` recorded.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Device, Display, LogsOnFailure, Offer, agent_log, eventually, have, netns, start_agent_in,
    stop_agent,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// Discovery on, at the default ports: inside the test's namespaces only.
fn on_lan() -> Vec<(&'static str, String)> {
    vec![
        ("FERRY_LAN_DISCOVERY", "true".to_owned()),
        ("FERRY_LAN_PORT", "47291".to_owned()),
    ]
}

/// One machine: a device in a host of the LAN, with its desktop when it has one.
struct Machine<'a> {
    host: &'a netns::Host,
    device: Device,
}

impl Machine<'_> {
    fn run(&self, args: &[&str], input: Option<&str>) -> common::Ran {
        self.device
            .run_in(Some(self.host), args, input.map(str::as_bytes), &on_lan())
            .ok()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(self.run(&all, None).stdout.trim()).unwrap()
    }

    fn history(&self) -> Vec<String> {
        let history = self.json(&["history"]);
        let clips = history.as_array().unwrap().iter();
        clips
            .filter_map(|clip| clip["text"].as_str().map(str::to_owned))
            .collect()
    }

    fn has(&self, text: &str) -> bool {
        self.history().iter().any(|clip| clip == text)
    }

    fn status(&self) -> Value {
        self.json(&["status"])
    }

    fn agent(&self, desktop: Option<&Display>) -> common::Running {
        start_agent_in(Some(self.host), &self.device, desktop, &on_lan())
    }

    /// `ferry pair` here and `ferry join` on `joiner`, typing the code as a person would;
    /// both sides must end well.
    fn pair(&self, joiner: &Machine, name: &str) -> Value {
        let offer = Offer::start_in(Some(self.host), &self.device, &["--no-qr"], &on_lan());
        let typed = format!("{}\n", offer.code);
        let joined = joiner.run(&["--json", "join", "--name", name], Some(&typed));
        let (status, events, stderr) = offer.finish();
        assert_eq!(status, 0, "`ferry pair` failed: {events:?}\n{stderr}");
        assert_eq!(events.last().unwrap()["event"], "joined", "{events:?}");
        serde_json::from_str(joined.stdout.trim()).unwrap()
    }
}

/// The devices whose logs are in the folder repository at `folder`.
fn writers(folder: &Path) -> usize {
    std::fs::read_dir(folder.join("ferry/v1/log"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// Waits until `desktop`'s clipboard holds `text`.
fn pasted(desktop: &Display, text: &str, what: &str) {
    eventually(WAIT, what, || {
        (desktop.paste("UTF8_STRING").as_deref() == Some(text.as_bytes())).then_some(())
    });
}

#[test]
fn the_default_setup_reaches_a_second_and_a_third_machine() {
    if !have("Xvfb") || !have("xclip") || !have("socat") || !have("unshare") {
        return;
    }
    let Some(network) = netns::Network::create(3) else {
        return;
    };
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let laptop = Machine {
        host: network.host(0),
        device: Device::new(),
    };
    let desktop = Machine {
        host: network.host(1),
        device: Device::new().apart_from(&laptop.device),
    };
    let phone = Machine {
        host: network.host(2),
        device: Device::new()
            .apart_from(&laptop.device)
            .apart_from(&desktop.device),
    };
    let _logs = LogsOnFailure(vec![&laptop.device, &desktop.device, &phone.device]);

    // The laptop, as scripts/run.sh starts it: a relay on its own 127.0.0.1, then the agent,
    // which sets the device up on the first run.
    let runtime = common::runtime();
    let relay = common::relay_on(&runtime);
    let sockets = tempfile::tempdir().unwrap();
    let _relay_on_a = laptop
        .host
        .forward(relay.local_addr().port(), sockets.path());
    let mut env = on_lan();
    env.push(("FERRY_RELAY", relay.url()));
    let agent_a = start_agent_in(Some(laptop.host), &laptop.device, Some(&desk_a), &env);
    let said = agent_log(&laptop.device);
    for line in [
        "This device holds the repository",
        "Add a device: run `ferry pair` here and `ferry join` there (they meet on this network).",
    ] {
        assert!(said.contains(line), "{said}");
    }
    let folder = laptop.device.home().join("store");
    eventually(WAIT, "the laptop's log in its folder", || {
        (writers(&folder) == 1).then_some(())
    });
    // The other machines cannot see the laptop's files.
    let listed = desktop
        .host
        .command_hiding("ls", &[laptop.device.home()])
        .arg("-A")
        .arg(laptop.device.home())
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "");

    let _copied = desk_a.copy("UTF8_STRING", b"copied on the laptop before pairing");
    eventually(WAIT, "the laptop's copy in its history", || {
        laptop
            .has("copied on the laptop before pairing")
            .then_some(())
    });

    // The desktop joins with the code the laptop shows: it is given the laptop, not a folder
    // it cannot see, and its history comes from there.
    let joined = laptop.pair(&desktop, "desktop");
    let holder = laptop.status()["device"].as_str().unwrap().to_owned();
    assert_eq!(joined["store"], format!("lan://{holder}").as_str());
    assert_eq!(
        joined["relay"],
        Value::Null,
        "the laptop's relay is its own"
    );
    assert_eq!(desktop.history(), ["copied on the laptop before pairing"]);

    // Copies go both ways between the two clipboards, through the laptop.
    let agent_b = desktop.agent(Some(&desk_b));
    eventually(WAIT, "the desktop connected to the laptop", || {
        let status = desktop.status();
        let held = status["held"].as_str()?;
        (held.starts_with("held by") && held.contains("connected")).then_some(())
    });
    let serving = laptop.status()["held"].as_str().unwrap_or("").to_owned();
    assert!(
        serving.starts_with("serving this repository to 1 device"),
        "{serving}"
    );
    let _copied = desk_a.copy("UTF8_STRING", b"from the laptop's clipboard");
    pasted(
        &desk_b,
        "from the laptop's clipboard",
        "the laptop's copy on the desktop",
    );
    let _copied = desk_b.copy("UTF8_STRING", b"from the desktop's clipboard");
    pasted(
        &desk_a,
        "from the desktop's clipboard",
        "the desktop's copy on the laptop",
    );
    eventually(WAIT, "the desktop's log in the laptop's folder", || {
        (writers(&folder) == 2).then_some(())
    });

    // The laptop's agent stops: the desktop records and queues, and says so.
    stop_agent(agent_a);
    let _copied = desk_b.copy("UTF8_STRING", b"copied while the laptop was off");
    eventually(WAIT, "the desktop to record its copy", || {
        desktop.has("copied while the laptop was off").then_some(())
    });
    eventually(WAIT, "the desktop to see the laptop gone", || {
        let status = desktop.status();
        let held = status["held"].as_str()?;
        held.contains("not reachable since").then_some(())
    });
    let status = desktop.status();
    assert_ne!(
        (&status["pending_ops"], &status["pending_segments"]),
        (&Value::from(0), &Value::from(0)),
        "{status}"
    );

    // Back: what the desktop queued reaches the laptop's clipboard and its folder.
    let agent_a = start_agent_in(Some(laptop.host), &laptop.device, Some(&desk_a), &env);
    pasted(
        &desk_a,
        "copied while the laptop was off",
        "the queued copy on the laptop",
    );
    eventually(WAIT, "nothing pending on the desktop", || {
        let status = desktop.status();
        (status["pending_ops"] == 0 && status["pending_segments"] == 0).then_some(())
    });

    // A third machine joins through the desktop's pairing; the laptop stays the holder.
    let joined = desktop.pair(&phone, "phone");
    assert_eq!(joined["store"], format!("lan://{holder}").as_str());
    assert!(phone.has("copied while the laptop was off"));
    phone.run(&["copy", "from the phone"], None);
    eventually(WAIT, "the phone's copy on the laptop", || {
        laptop.has("from the phone").then_some(())
    });
    eventually(WAIT, "the phone's log in the laptop's folder", || {
        (writers(&folder) == 3).then_some(())
    });
    stop_agent(agent_b);
    stop_agent(agent_a);
}

/// The repository's relay, served on the LAN by the first machine, is recorded by `init` for
/// all: a device that joins the shared folder with the recovery code alone (no `--relay`)
/// uses it, and `doctor` says where it came from; devices given it keep no copy of their own,
/// and `ferry pair` uses it.
#[test]
fn a_device_that_joins_without_the_relay_uses_the_repositorys() {
    let Some(network) = netns::Network::create(2) else {
        return;
    };
    let (a, b) = (network.host(0), network.host(1));
    let runtime = common::runtime();
    let relay = common::relay_on(&runtime);
    let sockets = tempfile::tempdir().unwrap();
    let port = relay.local_addr().port();
    let _relay_on_lan = a.serve_on_lan(port, sockets.path());
    let url = format!("ws://{}:{port}", a.addr());
    let shared = tempfile::tempdir().unwrap();
    let store = format!("file://{}", shared.path().display());

    let owner = Device::new();
    let made = owner
        .run_in(
            Some(a),
            &[
                "init", "--store", &store, "--relay", &url, "--name", "owner",
            ],
            None,
            &[],
        )
        .ok();
    let code = made
        .stdout
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 77 && line.matches('-').count() == 12)
        .unwrap_or_else(|| panic!("no recovery code in {}", made.stdout))
        .to_owned();
    let device = Device::new();
    let _logs = LogsOnFailure(vec![&owner, &device]);
    device
        .run_in(
            Some(b),
            &["join", "--store", &store, "--name", "other"],
            Some(format!("{code}\n").as_bytes()),
            &[],
        )
        .ok();
    let config = std::fs::read_to_string(device.home().join("config.toml")).unwrap();
    assert!(!config.contains("relay"), "{config}");

    let doctor = device.run_in(Some(b), &["--json", "doctor"], None, &[]);
    let rows: Vec<Value> = serde_json::from_str(doctor.stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", doctor.stdout, doctor.stderr));
    let row = rows.iter().find(|row| row["check"] == "relay").unwrap();
    assert_eq!(row["ok"], true, "{row}");
    assert_eq!(
        row["detail"],
        format!("connected to {url} (the repository's relay, synced)").as_str()
    );
    let status = device
        .run_in(Some(b), &["--json", "status"], None, &[])
        .ok();
    let status: Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(status["relay"], url.as_str(), "{status}");
    let agent = start_agent_in(Some(b), &device, None, &[]);
    eventually(WAIT, "the new device on the repository's relay", || {
        let log = agent_log(&device);
        (log.contains(&format!("relay: connecting relay=\"{url}"))
            && log.contains("relay: subscribed"))
        .then_some(())
    });
    stop_agent(agent);

    // The device that made the repository left the relay to it too, and pairs through it: the
    // code names it, and the new device keeps no relay of its own either.
    let config = std::fs::read_to_string(owner.home().join("config.toml")).unwrap();
    assert!(!config.contains("relay"), "{config}");
    // (It holds the folder, as far as it knows, so its agent serves it to the new device.)
    let agent = start_agent_in(Some(a), &owner, None, &on_lan());
    let phone = Device::new();
    let offer = Offer::start_in(Some(a), &owner, &["--no-qr"], &on_lan());
    assert!(
        offer.uri.ends_with(&format!("?relay={url}")),
        "{}",
        offer.uri
    );
    phone
        .run_in(
            Some(b),
            &["join", "--name", "phone"],
            Some(format!("{}\n", offer.uri).as_bytes()),
            &on_lan(),
        )
        .ok();
    let (status, events, stderr) = offer.finish();
    assert_eq!(status, 0, "{events:?}\n{stderr}");
    let config = std::fs::read_to_string(phone.home().join("config.toml")).unwrap();
    assert!(!config.contains("relay"), "{config}");
    let status = phone
        .run_in(Some(b), &["--json", "status"], None, &on_lan())
        .ok();
    let status: Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(status["relay"], url.as_str(), "{status}");
    stop_agent(agent);
}
