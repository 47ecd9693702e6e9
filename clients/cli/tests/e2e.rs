//! End to end with real parts: two Xvfb displays are two desktops, `xclip` is the other
//! program, and two `ferry agent` processes sync through a real S3-compatible server and a real
//! relay (or a shared folder), all on 127.0.0.1. The same on Wayland: two headless sway
//! compositors, with `wl-copy` and `wl-paste` as the other programs.

// The desktops these tests start (Xvfb, sway, weston) are those of Linux and the BSDs.
#![cfg(all(unix, not(target_os = "macos")))]

mod common;

use std::time::{Duration, Instant};

use common::{
    Backend, Device, Display, Wayland, agent_log, eventually, have, noise_png, pair, pixels,
    start_agent, stop_agent,
};

const TEXT: &str = "UTF8_STRING";
const PNG: &str = "image/png";
const WAIT: Duration = Duration::from_secs(15);

/// Segments this device has written: it grows only when the device records something.
fn own_segments(device: &Device) -> u64 {
    device.json(&["status"])["last_seq"].as_u64().unwrap()
}

/// Waits for the agent of `device` to say it watches the clipboard in `mode` (it opens its
/// socket before it starts watching).
fn watching(device: &Device, mode: &str) {
    let line = format!("watching the clipboard mode={mode}");
    eventually(WAIT, &line, || {
        agent_log(device).contains(&line).then_some(())
    });
}

fn arrives(display: &Display, text: &str) {
    eventually(WAIT, &format!("`{text}` on {}", display.name), || {
        (display.paste(TEXT)? == text.as_bytes()).then_some(())
    });
}

#[test]
fn clips_cross_between_two_desktops_through_s3_and_the_relay() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let mut pair = pair(Backend::S3, true);
    let relay = pair.relay.take().unwrap();
    let (a, b) = (&pair.a, &pair.b);
    let _logs = common::LogsOnFailure(vec![a, b]);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    // Polling is slow here on purpose (a minute): what arrives fast came through the relay.
    let slow_poll = [("FERRY_SYNC_POLL_INTERVAL", "60s".to_owned())];
    let agent_a = start_agent(a, Some(&desk_a), &slow_poll);
    let mut agent_b = start_agent(b, Some(&desk_b), &slow_poll);
    let b_segments = own_segments(b);

    // Text: copied with xclip on A, read with xclip on B.
    let started = Instant::now();
    let _owner = desk_a.copy(TEXT, b"hello from desktop A");
    arrives(&desk_b, "hello from desktop A");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it came by polling, not the relay"
    );

    // An image (a blob in storage), compared pixel by pixel.
    let image = noise_png(200, 120);
    let _owner = desk_a.copy(PNG, &image);
    let want = pixels(&image);
    eventually(WAIT, "the image on B", || {
        let got = desk_b.paste(PNG)?;
        (pixels(&got) == want).then_some(())
    });

    // A password manager's secret never leaves A; the next ordinary copy does.
    let _secret = password_manager(a, &[("DISPLAY", desk_a.name.clone())]);
    let _owner = desk_a.copy(TEXT, b"after the secret");
    arrives(&desk_b, "after the secret");
    for device in [a, b] {
        let texts = device.history_texts();
        assert!(!texts.iter().any(|t| t.contains("hunter2")), "{texts:?}");
        assert!(texts.contains(&"after the secret".to_owned()), "{texts:?}");
    }

    // A copy over clipboard.max_bytes (16 MiB unless set) is not recorded, and
    // `ferry log --kind filter` says so in sizes people read, naming the setting.
    let _owner = desk_a.copy(TEXT, &vec![b'x'; 20_000_000]);
    skipped(
        a,
        "\tover clipboard.max_bytes (16.0 MiB): raise it to sync copies this large",
    );
    let _owner = desk_a.copy(TEXT, b"after the large copy");
    arrives(&desk_b, "after the large copy");

    // No echo: B placed three clips and recorded none of them.
    assert_eq!(own_segments(b), b_segments, "B recorded what it placed");

    // A clip copied while B's agent is stopped arrives when it starts.
    stop_agent(agent_b);
    let _owner = desk_a.copy(TEXT, b"while B was away");
    // Uploaded, not only recorded: B, polling slowly, finds it when it starts.
    eventually(WAIT, "A's upload", || {
        let recorded = a.history_texts().contains(&"while B was away".to_owned());
        (recorded && a.json(&["status"])["pending_segments"] == 0).then_some(())
    });
    agent_b = start_agent(b, Some(&desk_b), &slow_poll);
    arrives(&desk_b, "while B was away");

    // With the relay gone, clips still arrive by polling.
    pair.storage.runtime.block_on(relay.stop()).unwrap();
    stop_agent(agent_b);
    let fast_poll = [("FERRY_SYNC_POLL_INTERVAL", "500ms".to_owned())];
    agent_b = start_agent(b, Some(&desk_b), &fast_poll);
    let _owner = desk_a.copy(TEXT, b"no relay now");
    arrives(&desk_b, "no relay now");
    assert_eq!(own_segments(b), b_segments, "B recorded what it placed");

    stop_agent(agent_b);
    stop_agent(agent_a);
}

/// One device on a folder repository, and an Xvfb desktop (no agent yet).
fn device_on_a_desktop() -> (common::Storage, Device, Display) {
    let storage = common::storage(Backend::Folder);
    let device = Device::new();
    device.init(&storage, "desk");
    (storage, device, Display::start())
}

#[test]
fn ferry_copy_puts_the_text_on_this_clipboard_too() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let (_storage, device, desk) = device_on_a_desktop();
    let _logs = common::LogsOnFailure(vec![&device]);
    let display = [("DISPLAY", desk.name.clone())];
    let copy = |args: &[&str]| {
        let ran = device.run_full(args, None, &display).ok();
        assert_eq!(ran.stderr, "", "{args:?}");
    };

    // No agent: a `ferry serve-clip` process of its own serves it until the next copy.
    copy(&["copy", "placed by ferry copy"]);
    arrives(&desk, "placed by ferry copy");
    copy(&["copy", "--no-place", "recorded only"]);
    device
        .run(&["config", "set", "clipboard.place_copies", "false"])
        .ok();
    copy(&["copy", "recorded only, by the setting"]);
    assert_eq!(desk.paste(TEXT).unwrap(), b"placed by ferry copy");
    device
        .run(&["config", "unset", "clipboard.place_copies"])
        .ok();
    assert!(device.history_texts().contains(&"recorded only".to_owned()));

    // With an agent on this desktop, the agent places it.
    let agent = start_agent(&device, Some(&desk), &[]);
    watching(&device, "Events");
    copy(&["copy", "placed by the agent"]);
    arrives(&desk, "placed by the agent");
    let image = noise_png(40, 30);
    let path = device.home().join("small.png");
    std::fs::write(&path, &image).unwrap();
    copy(&["copy", "--image", path.to_str().unwrap()]);
    eventually(WAIT, "the image on the clipboard", || {
        (pixels(&desk.paste(PNG)?) == pixels(&image)).then_some(())
    });
    stop_agent(agent);
}

/// The README's pipelines end by placing the chosen clip: `ferry history | … | cut -f1 |
/// xargs ferry paste --place`, with a pinned clip, without an agent and with one.
#[test]
fn the_readme_pipeline_places_the_chosen_clip() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let (_storage, device, desk) = device_on_a_desktop();
    let _logs = common::LogsOnFailure(vec![&device]);
    let display = [("DISPLAY", desk.name.clone())];
    for text in [
        "ssh deploy@prod.example.org",
        "psql -h db.example.org",
        "something else",
    ] {
        device
            .run_full(&["copy", "--no-place", text], None, &display)
            .ok();
    }
    let id = device.json(&["history"])[2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    device.run(&["pin", &id[..8]]).ok();
    let home = common::quote(&device.home().display().to_string());
    let ferry = format!("{} --home {home}", common::FERRY);
    let pipeline = |word: &str| {
        format!("{ferry} history | grep {word} | cut -f1 | xargs {ferry} paste --place")
    };
    let run = |word: &str| {
        let ran = std::process::Command::new("sh")
            .args(["-c", &pipeline(word)])
            .envs(device.env.iter().map(|(key, value)| (key, value)))
            .envs(display.iter().map(|(key, value)| (key, value)))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&ran.stderr).into_owned();
        assert!(ran.status.success(), "{}\n{stderr}", pipeline(word));
        String::from_utf8_lossy(&ran.stdout).into_owned()
    };

    // No agent: a `ferry serve-clip` process serves it; it is the newest clip now.
    let said = run("ssh");
    assert_eq!(
        said,
        format!("Placed clip {} on the clipboard.\n", &id[..8])
    );
    arrives(&desk, "ssh deploy@prod.example.org");
    assert_eq!(device.history_texts()[0], "ssh deploy@prod.example.org");

    // With the agent, the agent places it.
    let agent = start_agent(&device, Some(&desk), &[]);
    watching(&device, "Events");
    run("psql");
    arrives(&desk, "psql -h db.example.org");
    assert_eq!(device.history_texts()[0], "psql -h db.example.org");
    stop_agent(agent);
}

#[test]
fn a_shared_folder_needs_no_relay_and_polling_reads_the_clipboard() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let pair = pair(Backend::Folder, false);
    let (a, b) = (&pair.a, &pair.b);
    let _logs = common::LogsOnFailure(vec![a, b]);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    // Polling every minute: the folder watcher is what makes it fast.
    let slow_poll = [("FERRY_SYNC_POLL_INTERVAL", "60s".to_owned())];
    let agent_a = start_agent(a, Some(&desk_a), &slow_poll);
    // B reads its clipboard by polling, as on desktops whose change events do not reach Ferry.
    let mut polling = slow_poll.to_vec();
    polling.push(("FERRY_CLIPBOARD_POLL", "true".to_owned()));
    let agent_b = start_agent(b, Some(&desk_b), &polling);
    watching(b, "Polling");
    let _owner = desk_a.copy(TEXT, b"over the folder");
    arrives(&desk_b, "over the folder");
    // And back the other way.
    let _owner = desk_b.copy(TEXT, b"and back");
    arrives(&desk_a, "and back");
    stop_agent(agent_a);
    stop_agent(agent_b);
}

#[test]
fn clips_cross_between_two_wayland_desktops() {
    if !have("sway") || !have("wl-copy") || !have("wl-paste") {
        return;
    }
    let pair = pair(Backend::Folder, false);
    let (a, b) = (&pair.a, &pair.b);
    let _logs = common::LogsOnFailure(vec![a, b]);
    let (desk_a, desk_b) = (Wayland::start(), Wayland::start());
    let with = |desk: &Wayland| {
        let mut env = desk.env();
        env.push(("FERRY_SYNC_POLL_INTERVAL", "60s".to_owned()));
        env
    };
    // A keeps clips up to 256 KiB, to see the limit hold on a pipe that carries more.
    let mut env_a = with(&desk_a);
    env_a.push(("FERRY_CLIPBOARD_MAX_BYTES", "262144".to_owned()));
    let agent_a = start_agent(a, None, &env_a);
    let agent_b = start_agent(b, None, &with(&desk_b));
    for device in [a, b] {
        watching(device, "Events");
    }
    // sway 1.7 offers zwlr_data_control_v1 (ext_data_control_v1 came with wlroots 0.19).
    assert!(agent_log(b).contains("source=Wayland data-control events (zwlr_data_control_v1)"));
    let b_segments = own_segments(b);
    let wayland_text = "text/plain;charset=utf-8";
    let arrives_on = |desk: &Wayland, text: &str| {
        eventually(WAIT, &format!("`{text}` on a Wayland desktop"), || {
            (desk.paste(wayland_text)? == text.as_bytes()).then_some(())
        });
    };

    let _owner = desk_a.copy(wayland_text, "hello from Wayland A".as_bytes());
    arrives_on(&desk_b, "hello from Wayland A");

    let image = noise_png(160, 90);
    let _owner = desk_a.copy(PNG, &image);
    let want = pixels(&image);
    eventually(WAIT, "the image on Wayland B", || {
        let got = desk_b.paste(PNG)?;
        (pixels(&got) == want).then_some(())
    });
    // A password manager's secret never leaves A; the next ordinary copy does.
    let _secret = password_manager(a, &desk_a.env());
    let _owner = desk_a.copy(wayland_text, "after the Wayland secret".as_bytes());
    arrives_on(&desk_b, "after the Wayland secret");
    for device in [a, b] {
        let texts = device.history_texts();
        assert!(!texts.iter().any(|t| t.contains("hunter2")), "{texts:?}");
    }

    // Over the size limit: seen, not recorded, and said where people look; the next small
    // copy is recorded.
    let _owner = desk_a.copy(wayland_text, "x".repeat(1_000_000).as_bytes());
    skipped(a, "over clipboard.max_bytes (256.0 KiB)");
    let _owner = desk_a.copy(wayland_text, "small again".as_bytes());
    arrives_on(&desk_b, "small again");
    for device in [a, b] {
        let texts = device.history_texts();
        assert!(!texts.iter().any(|t| t.starts_with("xxxx")), "{texts:?}");
    }
    // B placed four clips and recorded none.
    assert_eq!(own_segments(b), b_segments, "B recorded what it placed");

    let _owner = desk_b.copy(wayland_text, "and back from B".as_bytes());
    arrives_on(&desk_a, "and back from B");
    stop_agent(agent_a);
    stop_agent(agent_b);
}

#[test]
fn doctor_says_how_copies_are_seen_on_each_desktop() {
    if !have("sway") || !have("weston") || !have("Xvfb") {
        return;
    }
    let storage = common::storage(Backend::Folder);
    let device = Device::new();
    device.init(&storage, "desk");
    let clipboard_line = |env: &[(&'static str, String)]| {
        let doctor = device.run_full(&["doctor"], None, env);
        doctor
            .stdout
            .lines()
            .find(|line| line.contains("clipboard"))
            .unwrap_or_default()
            .to_owned()
    };
    let sway = Wayland::start();
    let line = clipboard_line(&sway.env());
    assert!(
        line.contains("copies are seen through Wayland data-control events (zwlr_data_control_v1)"),
        "{line}"
    );
    let x = Display::start();
    let line = clipboard_line(&[("DISPLAY", x.name.clone())]);
    assert!(line.contains("X11 selection events (XFixes)"), "{line}");
    // A compositor without data-control, as GNOME: the events come through its X server.
    let weston = Wayland::weston();
    let mut env = weston.env();
    env.push(("DISPLAY", x.name.clone()));
    let line = clipboard_line(&env);
    assert!(
        line.contains(
            "X11 selection events through XWayland (the Wayland compositor offers neither \
             ext_data_control_v1 nor zwlr_data_control_v1, as on GNOME)"
        ),
        "{line}"
    );
}

/// Puts a secret marked by a password manager on the clipboard of the desktop that `env` names
/// (through [`secret_owner`] in a child process), and waits for `device`'s agent to see it.
fn password_manager(device: &Device, env: &[(&str, String)]) -> common::Running {
    let owner = common::Running(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "secret_owner", "--nocapture"])
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("FERRY_TEST_SECRET", "hunter2-very-secret")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    skipped(device, "a password manager marked it as secret");
    owner
}

/// Waits for `ferry log --kind filter` on `device` to say that a copy was skipped for `reason`.
fn skipped(device: &Device, reason: &str) {
    eventually(WAIT, reason, || {
        let log = device.run(&["log", "--kind", "filter"]).ok().stdout;
        log.lines()
            .any(|line| line.contains("local\tfilter") && line.contains(reason))
            .then_some(())
    });
}

/// The password manager of the secret tests: offers text with the
/// `x-kde-passwordManagerHint: secret` target, and serves it until replaced.
#[test]
#[ignore = "run by the end-to-end tests as their password manager"]
fn secret_owner() {
    use arboard::SetExtLinux;
    let Ok(secret) = std::env::var("FERRY_TEST_SECRET") else {
        return;
    };
    // Serves the clipboard (on X11, or on Wayland when its environment names a compositor)
    // until something else is copied.
    let mut clipboard = arboard::Clipboard::new().unwrap();
    clipboard
        .set()
        .exclude_from_history()
        .wait()
        .text(secret)
        .unwrap();
}
