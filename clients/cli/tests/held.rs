//! A folder repository held by one device and reached by another over the LAN, with real
//! `ferry` processes on 127.0.0.1: a device paired with the holder is given `lan://<holder>`,
//! fills its history from the holder, and copies go both ways through the holder's folder;
//! a third device paired by the second reaches the holder too; while the holder is away the
//! others record and queue, and catch up when it is back.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Backend, Device, LogsOnFailure, eventually, free_port, relay, start_agent, stop_agent, storage,
};

const WAIT: Duration = Duration::from_secs(30);

/// The devices whose logs are in the folder repository at `folder`.
fn writers(folder: &Path) -> usize {
    std::fs::read_dir(folder.join("ferry/v1/log"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[test]
fn a_device_joins_a_folder_repository_through_the_device_that_holds_it() {
    let storage = storage(Backend::Folder);
    let relay = relay(&storage);
    let port = free_port();
    let laptop = Device::new().with("FERRY_LAN_PORT", port.to_string());
    let made = laptop
        .run_full(
            &[
                "--json",
                "init",
                "--store",
                &storage.url,
                "--relay",
                &relay.url(),
                "--name",
                "laptop",
            ],
            None,
            &storage.env,
        )
        .ok();
    let made: serde_json::Value = serde_json::from_str(made.stdout.trim()).unwrap();
    let holder = made["device_id"].as_str().unwrap().to_owned();
    laptop.run(&["copy", "before pairing"]).ok();
    let agent_a = start_agent(&laptop, None, &[]);

    let desktop = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let _logs = LogsOnFailure(vec![&laptop, &desktop]);
    common::pair_through(&laptop, &desktop, &relay.url(), "desktop");

    // The joiner was given the holder, not the folder, and its history came from there.
    let config = std::fs::read_to_string(desktop.home().join("config.toml")).unwrap();
    assert!(config.contains(&format!("lan://{holder}")), "{config}");
    assert_eq!(desktop.history_texts(), ["before pairing"]);

    // Copies go both ways, and the desktop's are stored in the laptop's folder.
    let agent_b = start_agent(&desktop, None, &[]);
    let status = desktop.json(&["status"]);
    assert!(
        status["held"]
            .as_str()
            .is_some_and(|held| held.starts_with("held by laptop")),
        "{status}"
    );
    desktop.run(&["copy", "from the desktop"]).ok();
    eventually(WAIT, "the desktop's copy on the laptop", || {
        laptop
            .history_texts()
            .contains(&"from the desktop".to_owned())
            .then_some(())
    });
    let folder = storage.files();
    eventually(WAIT, "the desktop's log in the laptop's folder", || {
        (writers(&folder) == 2).then_some(())
    });
    laptop.run(&["copy", "from the laptop"]).ok();
    eventually(WAIT, "the laptop's copy on the desktop", || {
        desktop
            .history_texts()
            .contains(&"from the laptop".to_owned())
            .then_some(())
    });

    // A third device joins through the desktop's pairing: it too reaches the laptop.
    let phone = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    common::pair_through(&desktop, &phone, &relay.url(), "phone");
    let config = std::fs::read_to_string(phone.home().join("config.toml")).unwrap();
    assert!(config.contains(&format!("lan://{holder}")), "{config}");
    assert!(
        phone
            .history_texts()
            .contains(&"from the laptop".to_owned())
    );
    phone.run(&["copy", "from the phone"]).ok();
    eventually(WAIT, "the phone's copy on the laptop", || {
        laptop
            .history_texts()
            .contains(&"from the phone".to_owned())
            .then_some(())
    });
    eventually(WAIT, "the phone's log in the laptop's folder", || {
        (writers(&folder) == 3).then_some(())
    });

    // The holder goes away: the desktop records and queues, and says so.
    stop_agent(agent_a);
    desktop.run(&["copy", "while the laptop is away"]).ok();
    assert!(
        desktop
            .history_texts()
            .contains(&"while the laptop is away".to_owned())
    );
    eventually(WAIT, "the desktop to see the holder gone", || {
        let status = desktop.json(&["status"]);
        status["held"]
            .as_str()
            .is_some_and(|held| held.contains("not reachable since"))
            .then_some(())
    });

    // Back: what the desktop queued reaches the laptop and its folder.
    let agent_a = start_agent(&laptop, None, &[]);
    eventually(WAIT, "the queued copy on the laptop", || {
        laptop
            .history_texts()
            .contains(&"while the laptop is away".to_owned())
            .then_some(())
    });
    eventually(WAIT, "nothing pending on the desktop", || {
        let status = desktop.json(&["status"]);
        (status["pending_ops"] == 0 && status["pending_segments"] == 0).then_some(())
    });
    stop_agent(agent_b);
    stop_agent(agent_a);
}

#[test]
fn after_a_new_key_the_devices_away_learn_of_it_from_the_holder_and_a_removed_one_is_kept_out() {
    let storage = storage(Backend::Folder);
    let relay = relay(&storage);
    let port = free_port();
    let laptop = Device::new().with("FERRY_LAN_PORT", port.to_string());
    let init = [
        "init",
        "--store",
        &storage.url,
        "--relay",
        &relay.url(),
        "--name",
        "laptop",
    ];
    laptop.run_full(&init, None, &storage.env).ok();
    laptop.run(&["copy", "before the new key"]).ok();
    let agent = start_agent(&laptop, None, &[]);
    let desktop = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let phone = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let _logs = LogsOnFailure(vec![&laptop, &desktop, &phone]);
    common::pair_through(&laptop, &desktop, &relay.url(), "desktop");
    common::pair_through(&laptop, &phone, &relay.url(), "phone");

    // The holder removes the phone; its agent starts again on the new key.
    laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    laptop.run(&["copy", "after the new key"]).ok();

    // The desktop was away: it reaches the holder under the key it has, learns of the new
    // one in the folder, and moves.
    let synced = desktop.run(&["sync"]).ok();
    assert!(
        synced
            .stderr
            .contains("The repository has a new key (generation 2"),
        "{}",
        synced.stderr
    );
    assert!(
        desktop
            .history_texts()
            .contains(&"after the new key".to_owned())
    );
    desktop.run(&["copy", "from the desktop, after"]).ok();
    eventually(WAIT, "the desktop's copy on the laptop", || {
        laptop
            .history_texts()
            .contains(&"from the desktop, after".to_owned())
            .then_some(())
    });

    // The removed phone is not let in under either key: it reads nothing written since.
    let refused = phone.run(&["sync"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        !phone
            .history_texts()
            .contains(&"after the new key".to_owned())
    );
    stop_agent(agent);
}
