//! `ferry pick` in a real terminal: tmux runs it, `send-keys` types a query and keys,
//! `capture-pane` reads the screen, and xclip on an Xvfb display reads what was placed: through
//! a running agent, and without one (a `ferry serve-clip` process serves the clip until
//! something else is copied).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Backend, Device, Display, Terminal, eventually, have, start_agent, stop_agent, storage,
};

const TEXT: &str = "UTF8_STRING";
const WAIT: Duration = Duration::from_secs(20);

const CLIPS: &[&str] = &[
    "the quarterly report is due friday",
    "ssh deploy@build.example.org",
    "second draft of the letter",
    "pick me from the list",
];

/// A device with a few clips in a folder repository.
fn device_with_clips() -> (common::Storage, Device) {
    let storage = storage(Backend::Folder);
    let device = Device::new();
    device.init(&storage, "desk");
    for text in CLIPS {
        device.run(&["copy", text]).ok();
    }
    (storage, device)
}

fn newest(device: &Device) -> String {
    device.json(&["history"])[0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the screen shows all of `wanted` and none of `absent` (a frame is drawn top to
/// bottom, so a capture may catch one half drawn); returns it.
fn shows(terminal: &Terminal, wanted: &[&str], absent: &[&str]) -> String {
    eventually(WAIT, &format!("{wanted:?} without {absent:?}"), || {
        let screen = terminal.screen();
        (wanted.iter().all(|w| screen.contains(w)) && !absent.iter().any(|a| screen.contains(a)))
            .then_some(screen)
    })
}

/// The shell line that runs `ferry pick --print` into a file, and that file.
fn printing(device: &Device) -> (String, std::path::PathBuf) {
    let out = device.home().join("chosen.txt");
    let line = format!(
        "{} > {}",
        device.shell_line(&["pick", "--print"]),
        common::quote(&out.display().to_string())
    );
    (line, out)
}

/// The processes serving a clip on `display` (`ferry serve-clip` with that DISPLAY).
fn servers_on(display: &Display) -> Vec<u32> {
    let wanted = format!("DISPLAY={}", display.name);
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let proc = Path::new("/proc").join(pid.to_string());
            let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
            let environ = std::fs::read(proc.join("environ")).unwrap_or_default();
            cmdline.split(|b| *b == 0).any(|arg| arg == b"serve-clip")
                && environ
                    .split(|b| *b == 0)
                    .any(|var| var == wanted.as_bytes())
        })
        .collect()
}

#[test]
fn a_query_and_enter_place_the_clip_through_the_agent() {
    if !have("tmux") || !have("Xvfb") || !have("xclip") {
        return;
    }
    let (_storage, device) = device_with_clips();
    let _logs = common::LogsOnFailure(vec![&device]);
    let desk = Display::start();
    let agent = start_agent(&device, Some(&desk), &[]);
    let terminal = Terminal::start(&device.shell_line(&["pick"]));
    let mut all = vec!["4 of 4 clips", "Esc quit"];
    all.extend_from_slice(CLIPS);
    shows(&terminal, &all, &[]);
    // Matched as fzf does: the letters of each word in order, gaps allowed.
    terminal.type_text("scnd drft");
    shows(
        &terminal,
        &["1 of 4 clips", "second draft of the letter"],
        &["pick me from the list", "ssh deploy"],
    );
    terminal.press(&["Enter"]);
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
    eventually(WAIT, "the chosen clip on the clipboard", || {
        (desk.paste(TEXT)? == b"second draft of the letter").then_some(())
    });
    // Chosen, it is the newest clip again, and the agent did not record it twice.
    assert_eq!(newest(&device), "second draft of the letter");
    assert_eq!(device.json(&["history"]).as_array().unwrap().len(), 4);
    stop_agent(agent);
}

#[test]
fn without_an_agent_a_process_serves_the_clip_until_something_else_is_copied() {
    if !have("tmux") || !have("Xvfb") || !have("xclip") {
        return;
    }
    let (_storage, device) = device_with_clips();
    let desk = Display::start();
    let line = format!("DISPLAY={} {}", desk.name, device.shell_line(&["pick"]));
    let terminal = Terminal::start(&line);
    shows(&terminal, &["4 of 4 clips (no agent)", "Esc quit"], &[]);
    // Anywhere in a clip, not only at a word's start.
    terminal.type_text("ample");
    shows(
        &terminal,
        &["1 of 4 clips", "ssh deploy@build.example.org"],
        &["second draft"],
    );
    terminal.press(&["Enter"]);
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
    assert!(screen.contains("is on the clipboard"), "{screen}");
    // The picker has exited; the clip is still there.
    assert_eq!(
        desk.paste(TEXT).as_deref(),
        Some(&b"ssh deploy@build.example.org"[..])
    );
    assert_eq!(newest(&device), "ssh deploy@build.example.org");
    assert_eq!(servers_on(&desk).len(), 1);
    // Another program's copy ends it.
    let _owner = desk.copy(TEXT, b"copied by someone else");
    eventually(WAIT, "the serving process to end", || {
        servers_on(&desk).is_empty().then_some(())
    });
}

#[test]
fn print_pin_and_trash_from_the_list() {
    if !have("tmux") {
        return;
    }
    let (_storage, device) = device_with_clips();
    let (line, out) = printing(&device);
    let terminal = Terminal::start(&line);
    shows(&terminal, &["4 of 4 clips", "Esc quit"], &[]);
    // Tab gives letters to the list: p pins the selected clip (the newest), d trashes the next.
    terminal.press(&["Tab"]);
    shows(&terminal, &["p pin"], &[]);
    terminal.press(&["p"]);
    shows(&terminal, &["pinned"], &[]);
    terminal.press(&["j", "d"]);
    shows(
        &terminal,
        &["moved to the trash", "3 of 3 clips"],
        &["second draft"],
    );
    // Back to the search line: the query finds the quarterly report, Enter prints it.
    terminal.press(&["/"]);
    terminal.type_text("quarter");
    shows(
        &terminal,
        &["1 of 3 clips", "the quarterly report"],
        &["pick me from"],
    );
    terminal.press(&["Enter"]);
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "the quarterly report is due friday"
    );
    let history = device.json(&["history"]);
    let pinned: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|clip| clip["pinned"] == true)
        .map(|clip| clip["text"].as_str().unwrap())
        .collect();
    assert_eq!(pinned, ["pick me from the list"]);
    let trash = device.json(&["trash"]);
    assert_eq!(trash[0]["text"], "second draft of the letter");

    // Esc leaves without printing or placing anything.
    std::fs::remove_file(&out).unwrap();
    let terminal = Terminal::start(&line);
    shows(&terminal, &["3 of 3 clips", "Esc quit"], &[]);
    terminal.press(&["Escape"]);
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
}

#[test]
fn aliases_are_listed_and_chosen_like_clips() {
    if !have("tmux") {
        return;
    }
    let (_storage, device) = device_with_clips();
    device
        .run(&["alias", "set", "sig", "Best regards,\nAlex"])
        .ok();
    let (line, out) = printing(&device);
    let terminal = Terminal::start(&line);
    // Listed first, before the clips; found by its value as by its name.
    shows(
        &terminal,
        &["1 alias, 4 of 4 clips", "sig: Best regards,"],
        &[],
    );
    terminal.type_text("regrds");
    shows(
        &terminal,
        &["1 alias, 0 of 4 clips", "sig: Best regards,"],
        &[],
    );
    terminal.press(&["Enter"]);
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "Best regards,\nAlex"
    );
}

#[test]
fn without_a_terminal_the_picker_says_what_to_use_instead() {
    let (_storage, device) = device_with_clips();
    // A new session has no controlling terminal.
    let ran = std::process::Command::new("setsid")
        .arg("-w")
        .arg("sh")
        .arg("-c")
        .arg(device.shell_line(&["pick"]))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert_eq!(ran.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("ferry pick needs a terminal"), "{stderr}");
    assert!(stderr.contains("ferry history"), "{stderr}");
}
