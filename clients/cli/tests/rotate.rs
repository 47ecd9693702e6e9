//! `ferry devices remove` and `ferry key rotate` with real `ferry` processes: the others move
//! to the new key by themselves (at their next command, or their agent at its next poll), the
//! removed device is told and writes nothing more, and nothing happens without a confirmation.

mod common;

use std::time::Duration;

use common::{Backend, Device, eventually, storage};

/// "laptop" makes the repository; "desk" and "phone" join and the laptop vouches for both.
fn household(storage: &common::Storage) -> (Device, Device, Device, String) {
    let laptop = Device::new();
    let code = laptop.init(storage, "laptop");
    let desk = Device::new();
    desk.join(storage, &code, "desk").ok();
    let phone = Device::new();
    phone.join(storage, &code, "phone").ok();
    laptop.run(&["sync"]).ok();
    laptop.run(&["devices", "vouch", "desk", "--yes"]).ok();
    laptop.run(&["devices", "vouch", "phone", "--yes"]).ok();
    laptop.run(&["copy", "before the rotation"]).ok();
    for device in [&desk, &phone] {
        device.run(&["sync"]).ok();
    }
    (laptop, desk, phone, code)
}

fn recovery_code(device: &Device) -> String {
    device
        .run(&["key", "show", "--yes"])
        .ok()
        .stdout
        .trim()
        .to_owned()
}

#[test]
fn removing_a_device_moves_the_others_by_themselves_and_shuts_it_out() {
    let storage = storage(Backend::S3);
    let (laptop, desk, phone, code) = household(&storage);

    // Without a terminal to ask on, nothing happens: the plan is shown, --yes is asked for.
    let asked = laptop.run(&["devices", "remove", "phone"]);
    assert_eq!(asked.code, 2, "{}", asked.stderr);
    for shown in [
        "Removed (they cannot read",
        "phone",
        "Given the new key:",
        "desk",
        "--yes",
    ] {
        assert!(asked.stderr.contains(shown), "{shown}: {}", asked.stderr);
    }
    assert_eq!(recovery_code(&laptop), code);

    let removed = laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    for said in [
        "Removed phone from the repository: the new key (generation 2) went to laptop, desk",
        "not printed here (not a terminal)",
        "What Ferry cannot do",
    ] {
        assert!(removed.stdout.contains(said), "{said}: {}", removed.stdout);
    }
    let new_code = recovery_code(&laptop);
    assert_ne!(new_code, code);

    // The desk moves at its next command, and keeps the new key.
    let synced = desk.run(&["sync"]).ok();
    assert!(
        synced
            .stderr
            .contains("The repository has a new key (generation 2")
            && synced.stderr.contains("by laptop"),
        "{}",
        synced.stderr
    );
    assert_eq!(recovery_code(&desk), new_code);
    laptop.run(&["copy", "after the rotation"]).ok();
    let texts = desk.history_texts();
    assert!(
        texts.contains(&"after the rotation".to_owned())
            && texts.contains(&"before the rotation".to_owned()),
        "{texts:?}"
    );
    desk.run(&["copy", "from the desk, after"]).ok();
    assert!(
        laptop
            .history_texts()
            .contains(&"from the desk, after".to_owned())
    );

    // The phone is told who removed it and what to do.
    let refused = phone.run(&["sync"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("this device was removed from the repository on")
            && refused.stderr.contains("by laptop")
            && refused.stderr.contains("pair it from another device"),
        "{}",
        refused.stderr
    );
    assert_eq!(recovery_code(&phone), code, "the phone got nothing");
    assert!(!laptop.history_texts().iter().any(|t| t.contains("phone")));

    // The phone stays out of the next rotation, which asks for nothing more.
    let again = laptop.json(&["key", "rotate", "--yes"]);
    assert_eq!(again["generation"], 3, "{again}");
    let given: Vec<&str> = again["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(given, ["laptop", "desk"], "{again}");
    desk.run(&["sync"]).ok();
    assert_eq!(recovery_code(&desk), recovery_code(&laptop));
}

#[test]
fn an_agent_follows_a_new_key_by_itself_and_goes_on_syncing() {
    let storage = storage(Backend::Folder);
    let (laptop, desk, phone, _) = household(&storage);
    let agent = common::start_agent(&desk, None, &[("FERRY_SYNC_POLL_INTERVAL", "1s".into())]);
    let _logs = common::LogsOnFailure(vec![&desk]);
    laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    let new_code = recovery_code(&laptop);
    eventually(Duration::from_secs(30), "the desk's agent to move", || {
        common::agent_log(&desk)
            .contains("the agent starts again on it")
            .then_some(())
    });
    laptop.run(&["copy", "to the agent on the new key"]).ok();
    eventually(
        Duration::from_secs(30),
        "the copy to reach the desk",
        || {
            desk.history_texts()
                .contains(&"to the agent on the new key".to_owned())
                .then_some(())
        },
    );
    // What the desk records goes out under the new key.
    desk.run(&["copy", "from the desk's agent"]).ok();
    eventually(
        Duration::from_secs(30),
        "the desk's copy to reach the laptop",
        || {
            laptop
                .history_texts()
                .contains(&"from the desk's agent".to_owned())
                .then_some(())
        },
    );
    common::stop_agent(agent);
    assert_eq!(recovery_code(&desk), new_code);
    let _ = phone;
}
