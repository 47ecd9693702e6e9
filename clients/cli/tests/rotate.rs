//! `ferry devices remove` and `ferry key rotate` with real `ferry` processes: the others move
//! to the new key by themselves (at their next command, or their agent at its next poll), the
//! removed device is told and writes nothing more, and nothing happens without a confirmation.

mod common;

use std::time::Duration;

use common::{Backend, Device, eventually, recovery_code, storage};

/// "laptop" makes the repository; "desk" and "phone" join and the laptop vouches for both.
fn household(storage: &common::Storage) -> (Device, Device, Device, String) {
    common::household_on(storage, None)
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
    // The laptop's status shows the rotation under way.
    let status = laptop.run(&["status"]).ok();
    assert!(
        status.stdout.contains("generation 2 (new key made on ")
            && status
                .stdout
                .contains("by laptop): 1 of 2 devices moved; not moved to it yet: desk"),
        "{}",
        status.stdout
    );

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

#[test]
fn through_the_relay_the_others_hear_of_a_new_key_and_go_on_on_its_topic() {
    let storage = storage(Backend::S3);
    let relay = common::relay(&storage);
    let (laptop, desk, phone, _) = common::household_on(&storage, Some(&relay.url()));
    // Polls too rare to matter: what moves, moves through the relay.
    let slow = [("FERRY_SYNC_POLL_INTERVAL", "300s".to_owned())];
    let laptops = common::start_agent(&laptop, None, &slow);
    let desks = common::start_agent(&desk, None, &slow);
    let _logs = common::LogsOnFailure(vec![&laptop, &desk]);
    // Run by the laptop's agent, which starts again on the new key.
    laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    for device in [&laptop, &desk] {
        eventually(
            Duration::from_secs(30),
            "the agent to start again on the new key",
            || {
                common::agent_log(device)
                    .contains("the agent starts again on it")
                    .then_some(())
            },
        );
    }
    laptop.run(&["copy", "through the relay, new topic"]).ok();
    eventually(
        Duration::from_secs(30),
        "the copy to reach the desk",
        || {
            desk.history_texts()
                .contains(&"through the relay, new topic".to_owned())
                .then_some(())
        },
    );
    common::stop_agent(desks);
    common::stop_agent(laptops);
    assert_eq!(recovery_code(&desk), recovery_code(&laptop));
    let _ = phone;
}

#[test]
fn over_the_lan_the_others_move_and_the_removed_device_is_refused_at_the_handshake() {
    let storage = storage(Backend::S3);
    let (laptop, desk, phone, _) = household(&storage);
    let port = common::free_port();
    let slow = ("FERRY_SYNC_POLL_INTERVAL", "1h".to_owned());
    let to_laptop = ("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let laptops = common::start_agent(
        &laptop,
        None,
        &[slow.clone(), ("FERRY_LAN_PORT", port.to_string())],
    );
    let desks = common::start_agent(&desk, None, &[slow.clone(), to_laptop.clone()]);
    let phones = common::start_agent(&phone, None, &[slow, to_laptop]);
    let _logs = common::LogsOnFailure(vec![&laptop, &desk, &phone]);
    let peers = |device: &Device| desk_peers(device);
    eventually(
        Duration::from_secs(30),
        "both connected to the laptop",
        || (peers(&laptop).len() == 2).then_some(()),
    );
    laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    // The desk's next handshake with the laptop fails (another key): it looks at the storage,
    // moves, and connects again under the new key; the phone stays refused.
    eventually(
        Duration::from_secs(30),
        "the desk to move and connect again",
        || {
            (common::agent_log(&desk).contains("the agent starts again on it")
                && peers(&laptop) == ["desk"])
            .then_some(())
        },
    );
    laptop.run(&["copy", "over the LAN, new key"]).ok();
    eventually(Duration::from_secs(30), "the copy on the desk", || {
        desk.history_texts()
            .contains(&"over the LAN, new key".to_owned())
            .then_some(())
    });
    eventually(
        Duration::from_secs(30),
        "the phone told it was removed",
        || {
            common::agent_log(&phone)
                .contains("this device was removed from the repository")
                .then_some(())
        },
    );
    assert_eq!(peers(&laptop), ["desk"]);
    for agent in [phones, desks, laptops] {
        common::stop_agent(agent);
    }
}

/// The devices `device`'s agent is connected to over the LAN, by name.
fn desk_peers(device: &Device) -> Vec<String> {
    device.json(&["status"])["lan"]["peers"]
        .as_array()
        .map(|peers| {
            peers
                .iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn what_cannot_be_done_is_refused_before_anything_is_written() {
    let storage = storage(Backend::Folder);
    let (laptop, _desk, phone, code) = household(&storage);
    let itself = laptop.run(&["devices", "remove", "laptop", "--yes"]);
    assert_eq!(itself.code, 2, "{}", itself.stderr);
    assert!(
        itself.stderr.contains("cannot remove itself"),
        "{}",
        itself.stderr
    );
    let from_env = laptop.run_full(
        &["key", "rotate", "--yes"],
        None,
        &[("FERRY_KEY", code.clone())],
    );
    assert_eq!(from_env.code, 1, "{}", from_env.stderr);
    assert!(
        from_env.stderr.contains("unset FERRY_KEY"),
        "{}",
        from_env.stderr
    );
    assert_eq!(recovery_code(&laptop), code, "nothing changed");
    laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    let again = laptop.run(&["devices", "remove", "phone", "--yes"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("phone was removed by an earlier new key already"),
        "{}",
        again.stderr
    );
    let _ = phone;
}

/// The rotating process killed at 20 moments spread over its run: each time, running the
/// command again finishes the job (or says it was done), and the others end on the key the
/// laptop holds.
#[test]
fn a_rotation_killed_at_any_point_is_finished_by_running_it_again() {
    use std::time::Instant;
    let storage = storage(Backend::S3);
    // How long one takes, uninterrupted.
    let (laptop, _, _, _) = household(&storage);
    let started = Instant::now();
    laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    let whole = started.elapsed();
    for point in 0..20u32 {
        let storage = common::storage(Backend::S3);
        let (laptop, desk, phone, code) = household(&storage);
        let mut rotating =
            laptop.command_with(&["devices", "remove", "phone", "--yes"], &storage.env);
        rotating
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = common::spawn(&mut rotating);
        std::thread::sleep(whole * point / 20);
        let _ = child.kill();
        let _ = child.wait();
        let again = laptop.run_full(&["devices", "remove", "phone", "--yes"], None, &storage.env);
        assert!(
            again.code == 0
                || again
                    .stderr
                    .contains("removed by an earlier new key already"),
            "point {point}: {}",
            again.stderr
        );
        let key = recovery_code(&laptop);
        assert_ne!(key, code, "point {point}: the laptop holds the new key");
        desk.run(&["sync"]).ok();
        assert_eq!(recovery_code(&desk), key, "point {point}");
        laptop.run(&["copy", "after"]).ok();
        assert!(
            desk.history_texts().contains(&"after".to_owned()),
            "point {point}"
        );
        let refused = phone.run(&["sync"]);
        assert!(
            refused.stderr.contains("was removed from the repository"),
            "point {point}: {}",
            refused.stderr
        );
    }
}

#[test]
fn two_devices_removing_each_other_are_settled_by_the_person_on_each_device() {
    let storage = storage(Backend::Folder);
    let (laptop, desk, phone, _) = household(&storage);
    // The phone, in a thief's hands, removes the others; the person removes it on the laptop.
    phone
        .run(&["devices", "remove", "laptop", "desk", "--yes"])
        .ok();
    let removed = laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    assert!(
        removed.stdout.contains("Removed phone"),
        "{}",
        removed.stdout
    );
    // The desk sees two devices remove each other and asks the person.
    let disputed = desk.run(&["sync"]);
    assert_eq!(disputed.code, 1, "{}", disputed.stderr);
    assert!(
        disputed.stderr.contains("devices removed each other")
            && disputed.stderr.contains("`ferry devices remove DEVICE`"),
        "{}",
        disputed.stderr
    );
    let settled = desk.run(&["devices", "remove", "phone", "--yes"]).ok();
    assert!(
        settled.stdout.contains("moved to the new key laptop made"),
        "{}",
        settled.stdout
    );
    assert_eq!(recovery_code(&desk), recovery_code(&laptop));
    laptop.run(&["copy", "settled"]).ok();
    assert!(desk.history_texts().contains(&"settled".to_owned()));
}

#[test]
fn finishing_deletes_the_earlier_generation_once_the_devices_moved() {
    let storage = storage(Backend::S3);
    let (laptop, desk, phone, code) = household(&storage);
    // A device nobody vouched for, given the key by name.
    let stray = Device::new();
    stray.join(&storage, &code, "stray").ok();
    laptop.run(&["sync"]).ok();
    let first = laptop.run(&["key", "rotate", "--finish"]);
    assert_eq!(first.code, 2, "{}", first.stderr);
    assert!(
        first.stderr.contains("on its first key"),
        "{}",
        first.stderr
    );
    let remove = ["devices", "remove", "phone", "--include", "stray", "--yes"];
    laptop.run(&remove).ok();
    let early = laptop.run(&["key", "rotate", "--finish"]);
    assert_eq!(early.code, 1, "{}", early.stderr);
    assert!(
        early.stderr.contains("not moved to the current key yet: "),
        "{}",
        early.stderr
    );
    for name in ["desk", "stray"] {
        assert!(early.stderr.contains(name), "{name}: {}", early.stderr);
    }
    desk.run(&["sync"]).ok();
    let still = laptop.run(&["key", "rotate", "--finish"]);
    assert!(
        still
            .stderr
            .contains("not moved to the current key yet: stray"),
        "{}",
        still.stderr
    );
    stray.run(&["sync"]).ok();
    let finished = laptop.json(&["key", "rotate", "--finish"]);
    assert_eq!(finished["emptied"][0]["folder"], "ferry/v1/", "{finished}");
    assert!(
        finished["emptied"][0]["objects"].as_u64().unwrap() > 0,
        "{finished}"
    );
    // What was there before is still everywhere, and a new device joins with the new code.
    let texts = laptop.history_texts();
    assert!(texts.contains(&"before the rotation".to_owned()));
    assert_eq!(desk.history_texts(), texts);
    let tablet = Device::new();
    let code = recovery_code(&laptop);
    tablet
        .run_full(
            &[
                "join",
                "--store",
                &storage.url,
                "--recovery-code",
                &code,
                "--name",
                "tablet",
            ],
            None,
            &storage.env,
        )
        .ok();
    assert_eq!(tablet.history_texts(), texts);
    // The removed phone finds nothing where it was, and is told what to do.
    let gone = phone.run(&["sync"]);
    assert_eq!(gone.code, 1, "{}", gone.stderr);
    assert!(
        gone.stderr.contains("pair this device again"),
        "{}",
        gone.stderr
    );
    // It can leave (its history cannot be read any more), and be set up again.
    let export = phone.run(&["leave", "--export", "/nonexistent/history.json"]);
    assert_eq!(export.code, 1, "{}", export.stderr);
    assert!(
        export.stderr.contains("--drop-history"),
        "{}",
        export.stderr
    );
    let left = phone.run(&["leave", "--drop-history"]).ok();
    assert!(
        left.stderr.contains("without telling the others"),
        "{}",
        left.stderr
    );
    let code = recovery_code(&laptop);
    let again = phone.join(&storage, &code, "phone again");
    assert_eq!(again.code, 0, "{}", again.stderr);
}

#[test]
fn a_passphrase_repository_gets_a_new_passphrase_and_the_old_one_opens_nothing_new() {
    let storage = storage(Backend::S3);
    let with = |passphrase: &str| {
        let mut env = storage.env.clone();
        env.push(("FERRY_PASSPHRASE", passphrase.to_owned()));
        env
    };
    let old = with("the old passphrase");
    let laptop = Device::new();
    let init = [
        "init",
        "--store",
        &storage.url,
        "--passphrase",
        "--name",
        "laptop",
    ];
    laptop.run_full(&init, None, &old).ok();
    let join = |device: &Device, name: &str, env: &[(&'static str, String)]| {
        let args = [
            "join",
            "--store",
            &storage.url,
            "--passphrase",
            "--name",
            name,
        ];
        device.run_full(&args, None, env)
    };
    let (desk, phone) = (Device::new(), Device::new());
    join(&desk, "desk", &old).ok();
    join(&phone, "phone", &old).ok();
    laptop.run(&["sync"]).ok();
    laptop.run(&["devices", "vouch", "desk", "--yes"]).ok();
    laptop.run(&["devices", "vouch", "phone", "--yes"]).ok();
    laptop.run(&["copy", "before the new passphrase"]).ok();

    // A new key needs a new passphrase, and not the one in use.
    let without = laptop.run(&["devices", "remove", "phone", "--yes"]);
    assert_eq!(without.code, 2, "{}", without.stderr);
    assert!(
        without.stderr.contains("--passphrase"),
        "{}",
        without.stderr
    );
    let remove = ["devices", "remove", "phone", "--passphrase", "--yes"];
    let again = [("FERRY_NEW_PASSPHRASE", "the old passphrase".to_owned())];
    let same = laptop.run_full(&remove, None, &again);
    assert_eq!(same.code, 2, "{}", same.stderr);
    assert!(
        same.stderr.contains("the passphrase in use now"),
        "{}",
        same.stderr
    );
    let new = [("FERRY_NEW_PASSPHRASE", "a brand new passphrase".to_owned())];
    let removed = laptop.run_full(&remove, None, &new).ok();
    assert!(
        removed
            .stdout
            .contains("The new passphrase opens the repository"),
        "{}",
        removed.stdout
    );
    assert!(
        !removed.stdout.contains("recovery code ("),
        "{}",
        removed.stdout
    );
    laptop.run(&["copy", "after the new passphrase"]).ok();

    // The desk follows by itself; a new device joins with the new passphrase, not the old.
    desk.run(&["sync"]).ok();
    assert!(
        desk.history_texts()
            .contains(&"after the new passphrase".to_owned())
    );
    let tablet = Device::new();
    join(&tablet, "tablet", &with("a brand new passphrase")).ok();
    let texts = tablet.history_texts();
    assert!(
        texts.contains(&"before the new passphrase".to_owned()),
        "{texts:?}"
    );
    assert!(
        texts.contains(&"after the new passphrase".to_owned()),
        "{texts:?}"
    );
    let stranger = Device::new();
    let refused = join(&stranger, "stranger", &old);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("moved to a newer one"),
        "{}",
        refused.stderr
    );
    let _ = phone;
}

#[test]
fn a_device_away_across_two_new_keys_follows_both_by_itself() {
    let storage = storage(Backend::Folder);
    let (laptop, desk, phone, _) = household(&storage);
    desk.run(&["copy", "from the desk, before"]).ok();
    // The desk is away while the laptop removes the phone, then makes another key.
    laptop.run(&["devices", "remove", "phone", "--yes"]).ok();
    laptop.run(&["copy", "between the keys"]).ok();
    let again = laptop.json(&["key", "rotate", "--yes"]);
    assert_eq!(again["generation"], 3, "{again}");
    laptop.run(&["copy", "after both"]).ok();
    let synced = desk.run(&["sync"]).ok();
    assert!(synced.stderr.contains("(generation 3"), "{}", synced.stderr);
    assert_eq!(recovery_code(&desk), recovery_code(&laptop));
    let texts = desk.history_texts();
    for text in ["from the desk, before", "between the keys", "after both"] {
        assert!(texts.contains(&text.to_owned()), "{text}: {texts:?}");
    }
    desk.run(&["copy", "from the desk, after"]).ok();
    assert!(
        laptop
            .history_texts()
            .contains(&"from the desk, after".to_owned())
    );
    let _ = phone;
}
