//! The device's upkeep from the command line: the recovery code's export, where secrets live,
//! the user service, and `ferry doctor`'s checklist.

mod common;

use common::{Backend, Device, storage};

#[test]
fn key_export_is_private_and_config_layers_show_their_source() {
    let device = Device::new();
    let storage = storage(Backend::Folder);
    let code = device.init(&storage, "one");
    assert_eq!(
        device.run(&["key", "show", "--yes"]).ok().stdout.trim(),
        code
    );
    let file = device.home().join("key.txt");
    device
        .run(&["key", "export", "--output", file.to_str().unwrap()])
        .ok();
    assert!(std::fs::read_to_string(&file).unwrap().contains(&code));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The recovery code never lands in the config file.
    let config = std::fs::read_to_string(device.home().join("config.toml")).unwrap();
    assert!(!config.contains(&code[..10]), "{config}");

    let base = device.home().join("base.toml");
    std::fs::write(
        &base,
        "[sync]\npoll_interval = \"1m\"\nconflict = \"keep_both\"\n",
    )
    .unwrap();
    let base_arg = base.to_str().unwrap();
    device
        .run(&["config", "set", "sync.poll_interval", "10s"])
        .ok();
    let get = |key: &str, extra: &[(&'static str, String)]| {
        let out = device
            .run_full(
                &["--base-config", base_arg, "--json", "config", "get", key],
                None,
                extra,
            )
            .ok()
            .stdout;
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            value["value"].as_str().unwrap().to_owned(),
            value["source"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(get("sync.poll_interval", &[]).0, "10s");
    assert_eq!(
        get("sync.conflict", &[]),
        ("keep_both".into(), format!("base config {base_arg}"))
    );
    let env = [("FERRY_SYNC_POLL_INTERVAL", "2s".to_owned())];
    assert_eq!(
        get("sync.poll_interval", &env),
        ("2s".into(), "environment FERRY_SYNC_POLL_INTERVAL".into())
    );
    let listing = device.run(&["config", "ls"]).ok().stdout;
    assert!(
        listing.contains("# this device") && listing.contains("# synced (--synced)"),
        "{listing}"
    );
}

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs it under dbus-run-session with gnome-keyring"]
fn secrets_live_in_the_keychain_by_default() {
    let storage = storage(Backend::S3);
    let a = Device::with_keychain();
    let b = Device::with_keychain();
    let code = a.init(&storage, "alpha");
    b.join(&storage, &code, "beta").ok();
    for device in [&a, &b] {
        assert!(!device.home().join("secrets.json").exists());
        let config = std::fs::read_to_string(device.home().join("config.toml")).unwrap();
        assert!(!config.contains(common::servers::SECRET_KEY), "{config}");
        assert!(!config.contains(&code[..10]), "{config}");
    }
    // No credentials in the environment now: the S3 secret and the key come from the keychain.
    a.run(&["copy", "kept in the keychain"]).ok();
    assert_eq!(b.run(&["paste"]).ok().stdout, "kept in the keychain");
    assert_eq!(a.run(&["key", "show", "--yes"]).ok().stdout.trim(), code);
    let doctor = a.run(&["doctor"]);
    assert!(
        doctor
            .stdout
            .contains("ok    secrets: the sync key is in the OS keychain"),
        "{}",
        doctor.stdout
    );
}

#[test]
fn service_install_writes_the_unit_and_says_when_systemd_is_out_of_reach() {
    let device = Device::new();
    let config = device.home().join("xdg-config");
    let empty_path = device.home().join("no-programs");
    std::fs::create_dir_all(&empty_path).unwrap();
    // No systemctl on PATH: nothing on this machine is touched.
    let env = [
        ("XDG_CONFIG_HOME", config.display().to_string()),
        ("PATH", empty_path.display().to_string()),
    ];
    let ran = device.run_full(&["service", "install"], None, &env);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("systemctl could not be run")
            && ran.stderr.contains("the service file is in place"),
        "{}",
        ran.stderr
    );
    // This ferry is the one cargo built: said, since `cargo clean` would take it away.
    assert!(
        ran.stderr.contains("in a build folder that `cargo clean`")
            && ran.stderr.contains("scripts/install.sh"),
        "{}",
        ran.stderr
    );
    let unit = std::fs::read_to_string(config.join("systemd/user/ferry.service")).unwrap();
    let exec = format!(
        "ExecStart={} --home {} agent\n",
        common::FERRY,
        device.home().display()
    );
    assert!(unit.contains(&exec), "{unit}");
    // An installed ferry on PATH is the one the service starts.
    let installed = device.home().join("installed");
    std::fs::create_dir_all(&installed).unwrap();
    std::fs::write(installed.join("ferry"), "#!/bin/sh\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let runnable = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(installed.join("ferry"), runnable).unwrap();
    }
    let env = [
        env[0].clone(),
        (
            "PATH",
            format!("{}:{}", empty_path.display(), installed.display()),
        ),
    ];
    let ran = device.run_full(&["service", "install"], None, &env);
    assert!(
        ran.stderr.contains(&format!(
            "the service starts the installed {}",
            installed.join("ferry").display()
        )),
        "{}",
        ran.stderr
    );
    let unit = std::fs::read_to_string(config.join("systemd/user/ferry.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStart={} --home",
            installed.join("ferry").display()
        )),
        "{unit}"
    );
    let status = device.run_full(&["service", "status"], None, &env).ok();
    assert!(
        status.stdout.starts_with("installed: ")
            && status
                .stdout
                .contains("log: journalctl --user -u ferry.service"),
        "{}",
        status.stdout
    );
    device.run_full(&["service", "uninstall"], None, &env).ok();
    assert!(!config.join("systemd/user/ferry.service").exists());
}

/// A server that replaces an object a write-once put names (nginx ignores `If-None-Match`)
/// passes with a warning that says what it allows.
#[test]
fn doctor_warns_when_the_server_ignores_conditional_writes() {
    let Some(storage) = common::nginx_webdav() else {
        return;
    };
    let device = Device::new();
    let args = ["init", "--store", &storage.url, "--name", "one"];
    device.run_full(&args, None, &storage.env).ok();
    let ran = device.run(&["doctor"]);
    let line = ran
        .stdout
        .lines()
        .find(|line| line.contains("write-once"))
        .unwrap_or_else(|| panic!("{}", ran.stdout));
    assert!(
        line.starts_with("warn  storage: write-once: the server ignores If-None-Match"),
        "{line}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&device.run(&["--json", "doctor"]).stdout).unwrap();
    let row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["check"] == "storage: write-once")
        .unwrap();
    assert_eq!(
        (row["ok"].as_bool(), row["warning"].as_bool()),
        (Some(true), Some(true))
    );
}

#[test]
fn doctor_walks_the_checklist_in_order_and_names_each_fix() {
    let storage = storage(Backend::Folder);
    let device = Device::new();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let relay = format!("ws://{}", closed.local_addr().unwrap());
    drop(closed);
    device
        .run(&[
            "init",
            "--store",
            &storage.url,
            "--name",
            "one",
            "--relay",
            &relay,
        ])
        .ok();
    let ran = device.run(&["doctor"]);
    assert_eq!(ran.code, 1, "{}", ran.stdout);
    let checks: Vec<(&str, &str)> = ran
        .stdout
        .lines()
        .map(|line| {
            let (state, rest) = line.split_once(char::is_whitespace).unwrap();
            (state, rest.trim_start().split(':').next().unwrap())
        })
        .collect();
    assert_eq!(
        checks,
        [
            ("ok", "config"),
            ("ok", "secrets"),
            ("ok", "storage"),
            ("ok", "storage"),
            ("ok", "storage"),
            ("ok", "storage"),
            ("ok", "storage"),
            ("ok", "key"),
            ("ok", "devices"),
            ("FAIL", "relay"),
            ("info", "browser"),
            ("FAIL", "clipboard"),
            ("FAIL", "agent"),
            ("warn", "lan"),
        ],
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("sync still works by polling"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("start it with `ferry agent`"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("warn  lan: not checked: the agent runs the LAN path, and it is not running"),
        "{}",
        ran.stdout
    );
    assert_eq!(ran.stderr.trim(), "ferry: 3 of 14 checks failed");
    assert!(
        ran.stdout
            .contains("ok    storage: write-once: an existing object is never replaced"),
        "{}",
        ran.stdout
    );
    // Every check ends its line, the last one too, so the summary never runs into it.
    assert!(ran.stdout.ends_with("\n"), "{:?}", ran.stdout);

    // With the agent running, its check and then the LAN's are the last lines, whole.
    let agent = common::start_agent(&device, None, &[]);
    let ran = device.run(&["doctor"]);
    assert!(
        ran.stdout.contains("\nok    agent: running\n"),
        "{:?}",
        ran.stdout
    );
    let lan = ran.stdout.lines().last().unwrap();
    assert!(
        lan.starts_with("warn  lan: no peers connected (listening on 0.0.0.0:")
            && lan.ends_with("discovery is off and 0 lan.peers are set"),
        "{:?}",
        ran.stdout
    );
    common::stop_agent(agent);

    // A LAN path turned off is something the person chose: said, neither warned of nor failed.
    let ran = device.run_full(&["doctor"], None, &[("FERRY_LAN_ENABLED", "false".into())]);
    let lan = ran.stdout.lines().last().unwrap();
    assert_eq!(
        lan, "info  lan: off (lan.enabled = false)",
        "{}",
        ran.stdout
    );

    // With the key of another repository, the key check says so.
    let other = Device::new();
    other
        .run(&[
            "init",
            "--store",
            &format!("{}-other", storage.url),
            "--name",
            "x",
        ])
        .ok();
    let foreign: serde_json::Value =
        serde_json::from_slice(&std::fs::read(other.home().join("secrets.json")).unwrap()).unwrap();
    let code = foreign["sync-key"].as_str().unwrap().to_owned();
    let ran = device.run_full(&["doctor"], None, &[("FERRY_KEY", code)]);
    assert!(
        ran.stdout
            .contains("FAIL  key: this repository was written with key"),
        "{}",
        ran.stdout
    );
}

/// `ferry devices` lists the roster with each device's key; a device that joined with the
/// sync key alone is flagged by `status` and `doctor`, and the identity stays in the secret
/// store, never in the config.
#[test]
fn the_roster_lists_every_device_and_flags_those_that_joined_with_the_key_alone() {
    let pair = common::pair(Backend::Folder, false);
    let (a, b) = (&pair.a, &pair.b);
    a.run(&["sync"]).ok();
    let listed: serde_json::Value =
        serde_json::from_str(&a.run(&["--json", "devices"]).ok().stdout).unwrap();
    let members = listed.as_array().unwrap();
    assert_eq!(members.len(), 2, "{listed}");
    let alpha = &members[0];
    assert_eq!(
        (alpha["name"].as_str(), alpha["this_device"].as_bool()),
        (Some("alpha"), Some(true))
    );
    assert_eq!(
        alpha["unpaired"], false,
        "the device that made the repository"
    );
    let beta = &members[1];
    assert_eq!(beta["name"], "beta");
    assert_eq!(beta["unpaired"], true);
    assert_eq!(beta["registered"], true);
    let fingerprint = beta["fingerprint"].as_str().unwrap();
    assert_eq!(fingerprint.len(), 19, "{fingerprint}");

    // B sees the same key for itself as A has registered for it.
    let own: serde_json::Value =
        serde_json::from_str(&b.run(&["--json", "devices"]).ok().stdout).unwrap();
    assert_eq!(own[0]["fingerprint"].as_str(), Some(fingerprint));
    assert_eq!(beta["last_seq"], 1, "{listed}");
    let seen = beta["last_seen_ms"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(seen <= now && now - seen < 600_000, "{seen} {now}");
    let plain = a.run(&["devices"]).ok().stdout;
    assert!(plain.starts_with("* alpha"), "{plain}");
    assert!(plain.contains("last heard "), "{plain}");
    assert!(plain.contains(&format!("key {fingerprint}")), "{plain}");

    let status = a.run(&["status"]).ok().stdout;
    assert!(
        status.contains("unpaired  beta was not added by a known device")
            && status.contains("`ferry devices vouch beta`"),
        "{status}"
    );
    let doctor = a.run(&["doctor"]).stdout;
    let line = doctor
        .lines()
        .find(|line| line.contains("devices:"))
        .unwrap_or_else(|| panic!("{doctor}"));
    assert!(
        line.starts_with("warn  devices: beta was not added"),
        "{line}"
    );
    assert!(doctor.contains("this device's identity (key "), "{doctor}");

    // beta itself is told, and a name that reads as an id is refused at setup.
    let own = b.run(&["status"]).ok().stdout;
    assert!(
        own.contains("unpaired  this device was not added by a known device"),
        "{own}"
    );
    let hex = Device::new().run_full(
        &[
            "init",
            "--store",
            &format!("{}-x", pair.storage.url),
            "--name",
            "abcd1234",
        ],
        None,
        &pair.storage.env,
    );
    assert_eq!(hex.code, 2, "{}", hex.stderr);
    // beta's own word does not count: it cannot vouch, and asks nobody without a terminal.
    let refused = b.run(&["devices", "vouch", "alpha", "--yes"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("this device's own membership does not hold"),
        "{}",
        refused.stderr
    );
    let asked = a.run(&["devices", "vouch", "beta"]);
    assert_eq!(asked.code, 2, "{}", asked.stderr);
    assert!(
        asked
            .stderr
            .contains(&format!("has the key fingerprint {fingerprint}"))
            && asked.stderr.contains("on a terminal, or with --yes"),
        "{}",
        asked.stderr
    );
    let itself = a.run(&["devices", "vouch", "alpha", "--yes"]);
    assert_eq!(itself.code, 2, "{}", itself.stderr);
    // alpha, the first device, vouches for beta once its fingerprint is compared: asked on a
    // terminal, "no" changes nothing, "y" vouches.
    for (answer, said) in [
        ("n", "nothing was vouched for"),
        ("y", "Vouched for beta ("),
    ] {
        let terminal = common::Terminal::start(&a.shell_line(&["devices", "vouch", "beta"]));
        let asked = terminal.wait_for("Vouch? [y/N]");
        assert!(
            asked.contains(&format!("has the key fingerprint {fingerprint}")),
            "{asked}"
        );
        terminal.type_line(answer);
        let screen = terminal.wait_for("exit status");
        assert!(screen.contains(said), "{screen}");
        let unpaired = a.json(&["devices"])[1]["unpaired"].as_bool();
        assert_eq!(unpaired, Some(answer == "n"), "{screen}");
    }
    for device in [a, b] {
        device.run(&["sync"]).ok();
        let listed = device.json(&["devices"]);
        let beta = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "beta")
            .unwrap();
        assert_eq!(
            (beta["unpaired"].as_bool(), beta["added_by"].as_str()),
            (Some(false), Some("alpha")),
            "{listed}"
        );
        assert_eq!(beta["membership"], "attested", "{listed}");
        assert!(!device.run(&["status"]).ok().stdout.contains("unpaired"));
    }
    assert!(a.run(&["doctor"]).stdout.contains("ok    devices:"));

    let config = std::fs::read_to_string(b.home().join("config.toml")).unwrap();
    assert!(!config.contains("identity"), "{config}");
    let secrets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.home().join("secrets.json")).unwrap()).unwrap();
    assert_eq!(secrets["device-identity"].as_str().map(str::len), Some(128));
}

/// A thief with the recovery code alone joins two devices that attest each other (through the
/// hidden command `ferry pair` uses, as a modified client would) and one that attests itself:
/// none of them counts as added, on any device, and `status` flags each. Their renames of the
/// real device do not stick either.
#[test]
fn devices_vouching_for_each_other_without_a_chain_to_the_first_device_stay_flagged() {
    let pair = common::pair(Backend::Folder, false);
    let (desk, laptop) = (&pair.a, &pair.b);
    desk.run(&["devices", "vouch", "beta", "--yes"]).ok();
    let thieves = [Device::new(), Device::new(), Device::new()];
    for (thief, name) in thieves.iter().zip(["spare", "backup laptop", "loner"]) {
        thief.join(&pair.storage, &pair.code, name).ok();
    }
    let identity = |device: &Device| {
        let own = device.json(&["devices"]);
        let own = own
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["this_device"] == true)
            .unwrap()
            .clone();
        own["device"].as_str().unwrap().to_owned()
    };
    let keys = |device: &Device| {
        let secrets: serde_json::Value =
            serde_json::from_slice(&std::fs::read(device.home().join("secrets.json")).unwrap())
                .unwrap();
        let secret = secrets["device-identity"].as_str().unwrap();
        let bytes: Vec<u8> = (0..64)
            .map(|i| u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        ferry_protocol::Identity::from_secret_bytes(&bytes.try_into().unwrap())
            .public()
            .to_hex()
    };
    let (spare, backup, loner) = (&thieves[0], &thieves[1], &thieves[2]);
    spare.run(&["sync"]).ok();
    backup.run(&["sync"]).ok();
    spare
        .run(&["devices", "attest", &identity(backup), &keys(backup)])
        .ok();
    backup
        .run(&["devices", "attest", &identity(spare), &keys(spare)])
        .ok();
    loner
        .run(&["devices", "attest", &identity(loner), &keys(loner)])
        .ok();
    backup
        .run(&["devices", "rename", "alpha", "old tablet"])
        .ok();

    for device in [desk, laptop] {
        device.run(&["sync"]).ok();
        let listed = device.json(&["devices"]);
        let membership = |name: &str| {
            let member = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["name"] == name);
            let member = member.unwrap_or_else(|| panic!("{name}: {listed}"));
            (
                member["membership"].as_str().unwrap().to_owned(),
                member["unpaired"].as_bool().unwrap(),
            )
        };
        assert_eq!(membership("alpha"), ("first".to_owned(), false), "{listed}");
        assert_eq!(
            membership("beta"),
            ("attested".to_owned(), false),
            "{listed}"
        );
        assert_eq!(
            membership("spare"),
            ("unchained".to_owned(), true),
            "{listed}"
        );
        assert_eq!(
            membership("backup laptop"),
            ("unchained".to_owned(), true),
            "{listed}"
        );
        assert_eq!(
            membership("loner"),
            ("unattested".to_owned(), true),
            "{listed}"
        );
        let plain = device.run(&["devices"]).ok().stdout;
        assert!(
            plain.contains("vouched for only by spare, whose own membership does not hold"),
            "{plain}"
        );
        let status = device.run(&["status"]).ok().stdout;
        for name in ["spare", "backup laptop", "loner"] {
            assert!(
                status.contains(&format!("unpaired  {name} was not added")),
                "{status}"
            );
        }
    }
}
