//! The agent on Windows' own clipboard: this test program, itself a Windows program (run under
//! Wine by scripts/test.sh), copies with arboard as any other program would; the agent's format
//! listener sees each copy and records it, and content marked as excluded (the formats password
//! managers set: ExcludeClipboardContentFromMonitorProcessing, CanIncludeInClipboardHistory and
//! CanUploadToCloudClipboard set to 0) is never recorded.

#![cfg(windows)]

mod common;

use std::sync::Mutex;
use std::time::Duration;

use arboard::SetExtWindows;
use common::{Backend, Device, eventually, start_agent, stop_agent, storage};

/// One clipboard for the whole test program: the tests that copy take turns.
static CLIPBOARD: Mutex<()> = Mutex::new(());

fn history(device: &Device) -> String {
    device.run(&["history"]).ok().stdout
}

#[test]
fn the_format_listener_records_copies_and_skips_what_is_excluded() {
    let _turn = CLIPBOARD.lock().unwrap_or_else(|p| p.into_inner());
    let storage = storage(Backend::Folder);
    let device = Device::new();
    device.init(&storage, "windows");
    // doctor names the watcher before the agent runs.
    let doctor = device.run(&["doctor"]).stdout;
    assert!(
        doctor.contains(
            "copies are seen through Windows clipboard events (AddClipboardFormatListener)"
        ),
        "{doctor}"
    );
    let _logs = common::LogsOnFailure(vec![&device]);
    let agent = start_agent(&device, None, &[]);
    let log = || common::agent_log(&device);
    eventually(Duration::from_secs(30), "the clipboard watcher", || {
        log().contains("AddClipboardFormatListener").then_some(())
    });
    let mut clipboard = arboard::Clipboard::new().unwrap();

    clipboard.set_text("copied in another program").unwrap();
    eventually(Duration::from_secs(30), "the copy in the history", || {
        history(&device)
            .contains("copied in another program")
            .then_some(())
    });

    // Each way a password manager keeps content out, then a plain copy after them: once it is
    // recorded, the excluded ones had their turn before it.
    for n in 0..3 {
        let set = clipboard.set();
        let set = match n {
            0 => set.exclude_from_monitoring(),
            1 => set.exclude_from_history(),
            _ => set.exclude_from_cloud(),
        };
        set.text(format!("password {n}")).unwrap();
        eventually(Duration::from_secs(30), "the secret to be seen", || {
            (log()
                .matches("a password manager marked it as secret")
                .count()
                > n)
                .then_some(())
        });
    }
    clipboard.set_text("after the secrets").unwrap();
    eventually(
        Duration::from_secs(30),
        "the copy after the secrets",
        || history(&device).contains("after the secrets").then_some(()),
    );
    let history = history(&device);
    assert!(!history.contains("password"), "{history}");
    stop_agent(agent);
}

/// `ferry service` on Windows: an entry in the user's Run key starts the agent at logon with no
/// console window (conhost --headless); install starts it now too, status sees it run, and
/// uninstall stops it and removes the entry.
#[test]
fn the_service_is_a_run_key_entry_that_starts_and_stops_the_agent() {
    // Its agent watches the clipboard too.
    let _turn = CLIPBOARD.lock().unwrap_or_else(|p| p.into_inner());
    let storage = storage(Backend::Folder);
    let device = Device::new();
    device.init(&storage, "windows");
    let query = || {
        std::process::Command::new("reg")
            .args([
                "query",
                r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run",
                "/v",
                "Ferry",
            ])
            .output()
            .unwrap()
    };
    // The agent it starts inherits the handles Windows lets a child inherit, a pipe among
    // them: its output goes to a file, as in a console, or the read would wait for the agent.
    let said = device.home().join("install.txt");
    let file = std::fs::File::create(&said).unwrap();
    let installed = device
        .command(&["service", "install"])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .status()
        .unwrap();
    let said = std::fs::read_to_string(&said).unwrap();
    assert!(installed.success() && said.contains("runs now"), "{said}");
    let entry = String::from_utf8_lossy(&query().stdout).into_owned();
    assert!(entry.contains("conhost.exe --headless"), "{entry}");
    assert!(entry.contains("ferry.exe"), "{entry}");
    // Nothing keeps a Run-key program's standard error: the agent logs to a file in the home.
    let log = device.home().join("agent.log");
    assert!(
        entry
            .trim_end()
            .ends_with(&format!(" agent --log-file {}", log.display())),
        "{entry}"
    );
    eventually(Duration::from_secs(30), "the agent to run", || {
        let status = device.run(&["service", "status"]).ok().stdout;
        status.contains("state: running").then_some(())
    });
    let status = device.run(&["service", "status"]).ok().stdout;
    assert!(
        status.contains(&format!("log: {}", log.display())),
        "{status}"
    );
    eventually(Duration::from_secs(30), "the agent's log", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("agent running").then_some(())
    });

    let removed = device.run(&["service", "uninstall"]).ok();
    assert!(removed.stderr.contains("removed"), "{}", removed.stderr);
    assert!(!query().status.success());
    eventually(Duration::from_secs(30), "the agent to stop", || {
        (!device.home().join("agent.sock").exists()).then_some(())
    });
    let status = device.run(&["service", "status"]).ok().stdout;
    assert!(status.contains("not installed"), "{status}");
}

/// The file that names the agent's pipe, overwritten with another pipe's name: a command says so
/// at once rather than wait for the database the agent holds.
#[test]
fn a_pipe_name_that_is_not_ferrys_is_refused_at_once() {
    let _turn = CLIPBOARD.lock().unwrap_or_else(|p| p.into_inner());
    let storage = storage(Backend::Folder);
    let device = Device::new();
    device.init(&storage, "windows");
    let _logs = common::LogsOnFailure(vec![&device]);
    let agent = start_agent(&device, None, &[]);
    let file = device.home().join("agent.sock");
    let name = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, r"\\.\pipe\somebody-else").unwrap();

    // Not "another Ferry command holds …", after 30 s of waiting for the lock.
    let ran = device.run(&["history"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("cannot lead to the agent")
            && ran.stderr.contains("not a Ferry agent's"),
        "{}",
        ran.stderr
    );

    std::fs::write(&file, name).unwrap();
    stop_agent(agent);
}
