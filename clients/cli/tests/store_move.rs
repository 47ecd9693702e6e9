//! `ferry store move` and `ferry key rotate --new-credentials` with real `ferry` processes: the
//! repository goes to other storage (or is reached with new credentials) under a new key, and
//! every other device follows by itself, its agent at its next poll, a device that was away
//! at its next command.

mod common;

use std::time::Duration;

use common::{Backend, Device, eventually, recovery_code, storage};

/// The store setting in `device`'s config file.
fn store_of(device: &Device) -> String {
    let config = std::fs::read_to_string(device.home().join("config.toml")).unwrap();
    let table: toml::Table = config.parse().unwrap();
    table["store"].as_str().unwrap().to_owned()
}

#[test]
fn a_folder_repository_moves_to_a_bucket_or_a_webdav_server_and_every_device_follows() {
    for to in [Backend::S3, Backend::WebDav] {
        let from = storage(Backend::Folder);
        let (laptop, desk, phone, code) = common::household_on(&from, None);
        let there = storage(to);
        let agent = common::start_agent(&desk, None, &[("FERRY_SYNC_POLL_INTERVAL", "1s".into())]);
        let _logs = common::LogsOnFailure(vec![&desk]);
        phone.run(&["copy", "from the phone, before"]).ok();

        // Without a terminal, the plan is shown and --yes asked for; nothing moves.
        let asked = laptop.run_full(&["store", "move", &there.url], None, &there.env);
        assert_eq!(asked.code, 2, "{to:?}: {}", asked.stderr);
        assert_eq!(store_of(&laptop), from.url);
        let moved = laptop
            .run_full(&["store", "move", &there.url, "--yes"], None, &there.env)
            .ok();
        assert!(
            moved.stdout.contains("Moved the repository to"),
            "{to:?}: {}",
            moved.stdout
        );
        assert!(
            moved.stdout.contains("The old storage is left as it was"),
            "{}",
            moved.stdout
        );
        assert_eq!(store_of(&laptop), there.url);
        let new_code = recovery_code(&laptop);
        assert_ne!(new_code, code);

        // The desk's agent follows by itself, and goes on syncing there.
        eventually(Duration::from_secs(30), "the desk's agent to move", || {
            (store_of(&desk) == there.url).then_some(())
        });
        laptop.run(&["copy", "after the move"]).ok();
        eventually(
            Duration::from_secs(30),
            "the copy to reach the desk",
            || {
                desk.history_texts()
                    .contains(&"after the move".to_owned())
                    .then_some(())
            },
        );
        common::stop_agent(agent);
        assert_eq!(recovery_code(&desk), new_code);

        // The phone has not moved: the old storage is not emptied yet.
        let early = laptop.run(&["key", "rotate", "--finish"]);
        assert_eq!(early.code, 1, "{}", early.stderr);
        assert!(
            early
                .stderr
                .contains("not moved to the current key yet: phone"),
            "{}",
            early.stderr
        );
        let old = from.url.strip_prefix("file://").unwrap().to_owned();
        assert!(std::path::Path::new(&old).join("ferry/v1/repo").exists());

        // The phone was away: it follows at its next command.
        let synced = phone.run(&["sync"]).ok();
        assert!(
            synced
                .stderr
                .contains("The repository has a new key and storage (generation 2"),
            "{}",
            synced.stderr
        );
        assert_eq!(store_of(&phone), there.url);
        let texts = laptop.history_texts();
        for text in [
            "before the rotation",
            "from the phone, before",
            "after the move",
        ] {
            assert!(
                texts.contains(&text.to_owned()),
                "{to:?}: {text} missing: {texts:?}"
            );
        }
        assert_eq!(desk.history_texts(), texts);
        assert_eq!(phone.history_texts(), texts);

        // A new device joins it there with the new recovery code; the old storage is left.
        let tablet = Device::new();
        tablet
            .run_full(
                &[
                    "join",
                    "--store",
                    &there.url,
                    "--recovery-code",
                    &new_code,
                    "--name",
                    "tablet",
                ],
                None,
                &there.env,
            )
            .ok();
        assert_eq!(tablet.history_texts(), texts);
        assert!(std::path::Path::new(&old).join("ferry/v1/repo").exists());
        // And it is no place for another repository.
        let other = Device::new();
        let refused = other.run_full(
            &["init", "--store", &there.url, "--name", "other"],
            None,
            &there.env,
        );
        assert_ne!(refused.code, 0, "{}", refused.stdout);
        // Now every device moved: the folder the laptop was on is emptied.
        let finished = laptop.run(&["key", "rotate", "--finish"]).ok();
        assert!(finished.stdout.contains("Emptied"), "{}", finished.stdout);
        assert!(!std::path::Path::new(&old).join("ferry/v1/repo").exists());
    }
}

#[test]
fn what_a_move_cannot_do_is_refused_before_anything_is_written() {
    let from = storage(Backend::Folder);
    let (laptop, _, _, code) = common::household_on(&from, None);
    let there = storage(Backend::S3);
    let wrong = [
        ("AWS_ACCESS_KEY_ID", "AKIDNOBODY".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "wrong".to_owned()),
    ];
    let other = tempfile::tempdir().unwrap();
    let folder = format!("file://{}", other.path().display());
    for (args, env, said) in [
        (
            vec!["store", "move", &there.url, "--yes"],
            &wrong[..],
            "does not allow everything",
        ),
        (
            vec!["store", "move", &there.url, "--yes"],
            &[][..],
            "AWS_ACCESS_KEY_ID",
        ),
        (
            vec!["store", "move", &folder, "--yes"],
            &[][..],
            "is a folder",
        ),
        (
            vec!["store", "move", &from.url, "--yes"],
            &[][..],
            "is a folder",
        ),
        (
            vec!["key", "rotate", "--new-credentials", "--yes"],
            &[][..],
            "takes no credentials",
        ),
    ] {
        let ran = laptop.run_full(&args, None, env);
        assert_ne!(ran.code, 0, "{args:?}");
        assert!(
            ran.stderr.contains(said),
            "{args:?}: {said}: {}",
            ran.stderr
        );
        assert_eq!(recovery_code(&laptop), code, "{args:?}");
        assert_eq!(store_of(&laptop), from.url);
    }
    // A storage that holds a repository already.
    let taken = Device::new();
    taken.init(&there, "elsewhere");
    let ran = laptop.run_full(&["store", "move", &there.url, "--yes"], None, &there.env);
    assert!(
        ran.stderr.contains("holds a Ferry repository already"),
        "{}",
        ran.stderr
    );
    assert_eq!(recovery_code(&laptop), code);
}

#[test]
fn a_move_killed_at_any_point_is_finished_by_running_it_again() {
    use std::time::Instant;
    // How long one takes, uninterrupted.
    let from = storage(Backend::Folder);
    let there = storage(Backend::S3);
    let (laptop, _, _, _) = common::household_on(&from, None);
    let started = Instant::now();
    laptop
        .run_full(&["store", "move", &there.url, "--yes"], None, &there.env)
        .ok();
    let whole = started.elapsed();
    for point in 0..12u32 {
        let from = storage(Backend::Folder);
        let there = storage(Backend::S3);
        let (laptop, desk, _, code) = common::household_on(&from, None);
        let mut moving = laptop.command_with(&["store", "move", &there.url, "--yes"], &there.env);
        moving
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = common::spawn(&mut moving);
        std::thread::sleep(whole * point / 12);
        let _ = child.kill();
        let _ = child.wait();
        // Run again: it finishes (or was done), and the laptop is on the new storage.
        let again = laptop.run_full(&["store", "move", &there.url, "--yes"], None, &there.env);
        assert_eq!(again.code, 0, "point {point}: {}", again.stderr);
        assert_eq!(store_of(&laptop), there.url, "point {point}");
        let key = recovery_code(&laptop);
        assert_ne!(key, code, "point {point}");
        desk.run(&["sync"]).ok();
        assert_eq!(recovery_code(&desk), key, "point {point}");
        assert_eq!(store_of(&desk), there.url, "point {point}");
        laptop.run(&["copy", "after"]).ok();
        assert!(
            desk.history_texts().contains(&"after".to_owned()),
            "point {point}"
        );
    }
}

#[test]
fn new_storage_credentials_go_to_every_device_with_a_new_key() {
    let storage = storage(Backend::S3);
    let (laptop, desk, _, code) = common::household_on(&storage, None);
    let second = [
        (
            "AWS_ACCESS_KEY_ID",
            ferry_test_kit::servers::SECOND_ACCESS_KEY.to_owned(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY",
            ferry_test_kit::servers::SECOND_SECRET_KEY.to_owned(),
        ),
    ];
    // The credentials in use are no new ones.
    let same = laptop.run_full(
        &["key", "rotate", "--new-credentials", "--yes"],
        None,
        &storage.env,
    );
    assert_eq!(same.code, 2, "{}", same.stderr);
    assert!(same.stderr.contains("in use already"), "{}", same.stderr);
    assert_eq!(recovery_code(&laptop), code);
    let ran = laptop
        .run_full(
            &["key", "rotate", "--new-credentials", "--yes"],
            None,
            &second,
        )
        .ok();
    let given = ran.stdout.lines().next().unwrap_or_default();
    assert!(
        given.starts_with("Handed the new storage credentials to laptop"),
        "{}",
        ran.stdout
    );
    assert!(
        given.contains("desk") && given.contains("phone"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("Replace the old credentials at your provider"),
        "{}",
        ran.stdout
    );
    let key_id = |device: &Device| {
        let config = std::fs::read_to_string(device.home().join("config.toml")).unwrap();
        let table: toml::Table = config.parse().unwrap();
        table["s3"]["access_key_id"].as_str().unwrap().to_owned()
    };
    assert_eq!(key_id(&laptop), ferry_test_kit::servers::SECOND_ACCESS_KEY);
    desk.run(&["sync"]).ok();
    assert_eq!(key_id(&desk), ferry_test_kit::servers::SECOND_ACCESS_KEY);
    assert_eq!(store_of(&desk), storage.url);
    assert_ne!(recovery_code(&desk), code);
    assert_eq!(recovery_code(&desk), recovery_code(&laptop));
    desk.run(&["copy", "with the new credentials"]).ok();
    assert!(
        laptop
            .history_texts()
            .contains(&"with the new credentials".to_owned())
    );
}

#[test]
fn the_default_setup_moves_to_a_bucket_and_a_device_away_learns_of_it_from_the_old_holder() {
    let storage = storage(Backend::Folder);
    let relay = common::relay(&storage);
    let port = common::free_port();
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
    laptop.run(&["copy", "before the move"]).ok();
    let poll = [("FERRY_SYNC_POLL_INTERVAL", "1s".to_owned())];
    let agent_a = common::start_agent(&laptop, None, &poll);
    let desktop = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let phone = Device::new().with("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"));
    let _logs = common::LogsOnFailure(vec![&laptop, &desktop, &phone]);
    common::pair_through(&laptop, &desktop, &relay.url(), "desktop");
    common::pair_through(&laptop, &phone, &relay.url(), "phone");
    assert!(store_of(&phone).starts_with("lan://"));
    phone.run(&["copy", "from the phone, before"]).ok();
    let agent_b = common::start_agent(&desktop, None, &poll);

    // The desktop, which reaches the folder through the laptop, moves the repository.
    let there = common::storage(Backend::S3);
    let moved = desktop
        .run_full(&["store", "move", &there.url, "--yes"], None, &there.env)
        .ok();
    assert!(
        moved.stdout.contains("Moved the repository to"),
        "{}",
        moved.stdout
    );
    assert_eq!(store_of(&desktop), there.url);
    eventually(
        Duration::from_secs(30),
        "the laptop's agent to move",
        || (store_of(&laptop) == there.url).then_some(()),
    );
    laptop.run(&["copy", "from the laptop, after"]).ok();
    eventually(
        Duration::from_secs(30),
        "the laptop's copy on the desktop",
        || {
            desktop
                .history_texts()
                .contains(&"from the laptop, after".to_owned())
                .then_some(())
        },
    );

    // The phone was away: the laptop still serves its old folder, where the phone learns of
    // the move; then it goes to the bucket by itself.
    let synced = phone.run(&["sync"]).ok();
    assert!(
        synced
            .stderr
            .contains("The repository has a new key and storage (generation 2"),
        "{}",
        synced.stderr
    );
    assert_eq!(store_of(&phone), there.url);
    let texts = desktop.history_texts();
    for text in [
        "before the move",
        "from the phone, before",
        "from the laptop, after",
    ] {
        assert!(
            texts.contains(&text.to_owned()),
            "{text} missing: {texts:?}"
        );
    }
    assert_eq!(phone.history_texts(), texts);
    phone.run(&["copy", "from the phone, after"]).ok();
    eventually(
        Duration::from_secs(30),
        "the phone's copy on the laptop",
        || {
            laptop
                .history_texts()
                .contains(&"from the phone, after".to_owned())
                .then_some(())
        },
    );
    common::stop_agent(agent_b);
    common::stop_agent(agent_a);

    // Every device moved: the laptop empties the folder it held and serves it no more.
    let finished = laptop.run(&["key", "rotate", "--finish"]).ok();
    assert!(finished.stdout.contains("Emptied"), "{}", finished.stdout);
    assert!(!storage.files().join("ferry/v1/repo").exists());
    let config = std::fs::read_to_string(laptop.home().join("config.toml")).unwrap();
    assert!(!config.contains("store_before"), "{config}");
    laptop.run(&["copy", "after finishing"]).ok();
    phone.run(&["sync"]).ok();
    assert!(
        phone
            .history_texts()
            .contains(&"after finishing".to_owned())
    );
}
