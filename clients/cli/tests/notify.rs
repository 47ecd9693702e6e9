//! Desktop notifications against a real notification daemon: `dunst` on an Xvfb display, in a
//! D-Bus session of the test's own, prints every notification it receives; the agent tells it
//! about a new device, a damaged object and storage that keeps failing, once per cause, never
//! with a clip's text, and says nothing with `notify.enabled = false`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Backend, Device, Display, agent_log, eventually, have, start_agent, stop_agent};

const WAIT: Duration = Duration::from_secs(20);

/// A D-Bus session with dunst serving notifications on `display`, both stopped on drop.
struct Daemon {
    address: String,
    printed: PathBuf,
    bus: Child,
    dunst: Child,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(display: &Display) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("dbus-daemon starts");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_owned();
        let printed = dir.path().join("dunst.out");
        let dunst = Command::new("dunst")
            .arg("-print")
            .env("DISPLAY", &display.name)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(std::fs::File::create(&printed).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst starts");
        let daemon = Daemon {
            address,
            printed,
            bus,
            dunst,
            _dir: dir,
        };
        eventually(WAIT, "dunst on the session bus", || {
            Command::new("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.Notifications",
                    "/org/freedesktop/Notifications",
                    "org.freedesktop.Notifications.GetServerInformation",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &daemon.address)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .ok()?
                .success()
                .then_some(())
        });
        daemon
    }

    /// Everything dunst printed.
    fn printed(&self) -> String {
        std::fs::read_to_string(&self.printed).unwrap_or_default()
    }

    /// The summaries of the notifications received so far.
    fn summaries(&self) -> Vec<String> {
        self.printed()
            .lines()
            .filter_map(|line| line.trim().strip_prefix("summary: '"))
            .map(|rest| rest.trim_end_matches('\'').to_owned())
            .collect()
    }

    /// Waits for a notification whose summary starts with `start`; returns its whole entry.
    fn received(&self, start: &str) -> String {
        eventually(WAIT, &format!("a notification `{start}…`"), || {
            let printed = self.printed();
            let at = printed.find(&format!("summary: '{start}"))?;
            let end = printed[at..].find('}').map_or(printed.len(), |e| at + e);
            Some(printed[at..end].to_owned())
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.dunst.kill();
        let _ = self.dunst.wait();
        let _ = self.bus.kill();
        let _ = self.bus.wait();
    }
}

/// Waits until `device`'s agent has logged `line` `more` times beyond `seen`.
fn logged_more(device: &Device, line: &str, seen: usize, more: usize) {
    eventually(WAIT, &format!("{more} more `{line}`"), || {
        (agent_log(device).matches(line).count() >= seen + more).then_some(())
    });
}

#[test]
fn the_agent_tells_the_desktop_what_needs_the_person_once_per_cause() {
    if !have("Xvfb") || !have("dunst") || !have("dbus-daemon") {
        return;
    }
    let display = Display::start();
    let daemon = Daemon::start(&display);
    let common::Pair {
        storage,
        a,
        b,
        code,
        ..
    } = common::pair(Backend::Folder, false);
    let _logs = common::LogsOnFailure(vec![&b]);
    let env = [
        ("DBUS_SESSION_BUS_ADDRESS", daemon.address.clone()),
        ("FERRY_NOTIFY_AFTER", "1s".to_owned()),
        ("FERRY_SYNC_POLL_INTERVAL", "300ms".to_owned()),
    ];
    let agent = start_agent(&b, None, &env);

    // A device joins with the sync key alone.
    let c = Device::new();
    c.join(&storage, &code, "gamma").ok();
    let joined = daemon.received("Ferry: a new device joined, gamma");
    assert!(joined.contains("sync key alone"), "{joined}");

    // A's next segment is damaged in storage before B reads it (B is paused meanwhile).
    b.run(&["pause"]).ok();
    a.run(&["copy", "a clip whose text stays private"]).ok();
    let status = a.json(&["status"]);
    let root = PathBuf::from(storage.url.strip_prefix("file://").unwrap());
    let segment = root.join(format!(
        "ferry/v1/log/{}/{:016x}",
        status["tag"].as_str().unwrap(),
        status["last_seq"].as_u64().unwrap()
    ));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[80] ^= 4;
    std::fs::write(&segment, &bytes).unwrap();
    b.run(&["resume"]).ok();
    let damaged = daemon.received("Ferry set aside a damaged object");
    assert!(damaged.contains("ferry status"), "{damaged}");

    // The storage goes away (a file where its folder was): said once it has failed for a
    // second, and only once.
    let moved = root.with_extension("away");
    std::fs::rename(&root, &moved).unwrap();
    std::fs::write(&root, "not a folder").unwrap();
    let failing = daemon.received("Ferry cannot sync with its storage");
    assert!(failing.contains("kept on this device"), "{failing}");
    let failures = agent_log(&b).matches("fetch failed").count();
    logged_more(&b, "fetch failed", failures, 5);
    let summaries = daemon.summaries();
    assert_eq!(
        summaries
            .iter()
            .filter(|s| s.starts_with("Ferry cannot sync"))
            .count(),
        1,
        "{summaries:?}"
    );
    assert!(!daemon.printed().contains("stays private"));
    stop_agent(agent);

    // Off: nothing is said, neither of a new device nor of failing storage.
    std::fs::remove_file(&root).unwrap();
    std::fs::rename(&moved, &root).unwrap();
    let mut quiet = env.to_vec();
    quiet.push(("FERRY_NOTIFY_ENABLED", "false".to_owned()));
    let said = agent_log(&b).matches("notification").count();
    let agent = start_agent(&b, None, &quiet);
    let d = Device::new();
    d.join(&storage, &code, "delta").ok();
    eventually(WAIT, "delta in B's roster", || {
        b.json(&["devices"])
            .to_string()
            .contains("delta")
            .then_some(())
    });
    std::fs::rename(&root, &moved).unwrap();
    std::fs::write(&root, "not a folder").unwrap();
    let failures = agent_log(&b).matches("fetch failed").count();
    logged_more(&b, "fetch failed", failures, 8);
    assert_eq!(agent_log(&b).matches("notification").count(), said);
    assert_eq!(daemon.summaries().len(), summaries.len());
    stop_agent(agent);
    std::fs::remove_file(&root).unwrap();
    std::fs::rename(&moved, &root).unwrap();
}
