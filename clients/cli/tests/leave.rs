//! `ferry leave` with real `ferry` processes: the history exported or dropped, the others
//! told, nothing of the repository left on the device, and `ferry join` working again on the
//! same home; refusals that change nothing.

mod common;

use common::{Backend, Device, storage};

/// A repository on S3 with "laptop" and "desktop" set up on it, a clip from each.
fn two_devices() -> (common::Storage, Device, Device, String) {
    let storage = storage(Backend::S3);
    let laptop = Device::new();
    let code = laptop.init(&storage, "laptop");
    let desktop = Device::new();
    desktop.join(&storage, &code, "desktop").ok();
    laptop.run(&["copy", "from laptop"]).ok();
    desktop.run(&["copy", "from desktop"]).ok();
    (storage, laptop, desktop, code)
}

#[test]
fn a_device_leaves_keeping_its_history_and_joins_again() {
    let (storage, laptop, desktop, code) = two_devices();
    let old_id = desktop.json(&["status"])["device"]
        .as_str()
        .unwrap()
        .to_owned();
    let export = desktop.home().join("kept.json");
    let left = desktop.json(&["leave", "--export", export.to_str().unwrap()]);
    assert_eq!(left["clips"], 2, "{left}");
    assert_eq!(left["told_the_others"], true, "{left}");
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    let texts: Vec<&str> = kept
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|clip| clip["text"].as_str())
        .collect();
    assert_eq!(texts, ["from desktop", "from laptop"]);

    // Nothing of the repository is left here.
    let files = desktop.files();
    assert!(
        !files.iter().any(|f| f.starts_with("ferry.db")),
        "{files:?}"
    );
    let secrets = std::fs::read_to_string(desktop.home().join("secrets.json")).unwrap();
    assert!(!secrets.contains(&code), "the recovery code stayed");
    let config = std::fs::read_to_string(desktop.home().join("config.toml")).unwrap();
    assert!(
        !config
            .lines()
            .any(|l| l.starts_with("store") || l.starts_with("relay")),
        "{config}"
    );
    let status = desktop.run(&["status"]);
    assert_eq!(status.code, 1);
    assert!(status.stderr.contains("not set up"), "{}", status.stderr);

    // The others show it as left.
    let listed = laptop.run(&["devices"]).ok().stdout;
    let line = listed.lines().find(|l| l.contains("desktop")).unwrap();
    assert!(line.contains("left"), "{listed}");

    // And it joins again, as a new device.
    desktop.join(&storage, &code, "desktop").ok();
    let new_id = desktop.json(&["status"])["device"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(new_id, old_id);
    assert!(desktop.history_texts().contains(&"from desktop".to_owned()));
}

#[test]
fn leaving_without_a_choice_for_the_history_changes_nothing() {
    let (_storage, _laptop, desktop, _) = two_devices();
    let before = desktop.files();
    let ran = desktop.run(&["leave"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(ran.stderr.contains("--export FILE"), "{}", ran.stderr);
    assert_eq!(desktop.files(), before);
    assert_eq!(desktop.history_texts().len(), 2);

    // An existing file is not overwritten.
    let export = desktop.home().join("config.toml");
    let ran = desktop.run(&["leave", "--export", export.to_str().unwrap()]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert_eq!(desktop.history_texts().len(), 2);
}

#[test]
fn a_device_leaves_dropping_its_history_and_init_names_leave_until_then() {
    let (storage, _laptop, desktop, _) = two_devices();
    let ran = desktop.run_full(&["init", "--store", &storage.url], None, &storage.env);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("ferry leave"), "{}", ran.stderr);
    let left = desktop.json(&["leave", "--drop-history"]);
    assert_eq!(left["exported_to"], serde_json::Value::Null);
    assert!(
        !desktop
            .files()
            .iter()
            .any(|f| f.ends_with(".json") && f != "secrets.json")
    );
    // A new repository here now.
    let other = common::storage(Backend::Folder);
    desktop.init(&other, "desktop");
    assert!(desktop.history_texts().is_empty());
}

#[test]
fn a_device_whose_agent_runs_does_not_leave() {
    let (_storage, _laptop, desktop, _) = two_devices();
    let agent = common::start_agent(&desktop, None, &[]);
    let ran = desktop.run(&["leave", "--drop-history"]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("ferry stop"), "{}", ran.stderr);
    common::stop_agent(agent);
    assert_eq!(desktop.history_texts().len(), 2);
}

#[test]
fn the_device_holding_a_folder_repository_leaves_only_when_told_twice() {
    let storage = storage(Backend::Folder);
    let laptop = Device::new();
    laptop.init(&storage, "laptop");
    let ran = laptop.run(&["leave", "--drop-history"]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("holds the repository"),
        "{}",
        ran.stderr
    );
    let left = laptop.json(&["leave", "--drop-history", "--yes"]);
    assert!(left["kept_folder"].is_string(), "{left}");
    // The repository itself is still there.
    assert!(storage.files().join("ferry/v1/repo").exists());
}

/// On a terminal, `ferry leave` asks what happens to the history: a path typed there is where
/// it goes.
#[test]
fn on_a_terminal_leave_asks_where_the_history_goes() {
    if !common::have("tmux") {
        return;
    }
    let (_storage, laptop, desktop, _code) = two_devices();
    let kept = desktop.home().join("typed.json");
    let terminal = common::Terminal::start(&desktop.shell_line(&["leave"]));
    terminal.wait_for("Keep this device's history (1 clip)?");
    terminal.type_line(kept.to_str().unwrap());
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
    assert!(
        screen.contains("This device left the repository"),
        "{screen}"
    );
    let kept: serde_json::Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    assert_eq!(kept.as_array().unwrap().len(), 1, "{kept}");
    let listed = laptop.run(&["devices"]).ok().stdout;
    let line = listed.lines().find(|l| l.contains("desktop")).unwrap();
    assert!(line.contains("left"), "{listed}");
}
