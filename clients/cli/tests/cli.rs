//! The `ferry` command line, run as a real process against real storage servers on 127.0.0.1:
//! every command's happy path, and the main errors with their exact messages.

mod common;

use std::time::Duration;

use common::{Backend, Device, Running, eventually, noise_png, per_backend, storage};

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
                 store kind `ftp:`: use file://, s3:// or webdav+https://\n",
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
                 {home}/config.toml); use another --home for a second repository\n",
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
        ran.stderr.contains("this repository was written with key")
            && ran
                .stderr
                .contains("join it with its recovery code or passphrase"),
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
    assert!(ran.stderr.contains("Connection refused"), "{}", ran.stderr);
}

per_backend! {
    #[test]
    fn two_devices_share_clips_aliases_and_settings_on_every_backend(backend) {
        let storage = storage(backend);
        let a = Device::new();
        let b = Device::new();
        let code = a.init(&storage, "alpha");
        b.join(&storage, &code, "beta").ok();

        // Text through standard input and as an argument.
        let id = a
            .run_with_input(&["copy"], Some(b"first line\nsecond line\n"))
            .ok()
            .stdout
            .trim()
            .to_owned();
        assert_eq!(
            b.run(&["paste"]).ok().stdout,
            "first line\nsecond line\n",
            "{backend:?}"
        );
        a.run(&["copy", "second clip"]).ok();
        let history = b.run(&["history"]).ok().stdout;
        let lines: Vec<&str> = history.lines().collect();
        assert_eq!(lines.len(), 2, "{backend:?}: {history}");
        let fields: Vec<&str> = lines[0].split('\t').collect();
        assert_eq!(fields[2..], ["alpha", "second clip"], "{backend:?}");
        assert!(
            lines[1].ends_with("\talpha\tfirst line second line"),
            "{history}"
        );

        // Flags, trash and search, made on B and seen on A.
        b.run(&["pin", &id[..8]]).ok();
        b.run(&["rm", &id[..8]]).ok();
        assert!(a.run(&["history"]).ok().stdout.lines().count() == 1);
        assert!(a.run(&["trash"]).ok().stdout.contains("first line"));
        a.run(&["restore", &id[..8]]).ok();
        let found = b.run(&["history", "--search", "second"]).ok().stdout;
        assert_eq!(found.lines().count(), 2, "{found}");
        b.run(&["sync"]).ok();

        // Aliases, collections and synced settings.
        a.run(&["alias", "set", "sig", "Best,\nA"]).ok();
        assert_eq!(b.run(&["alias", "get", "sig"]).ok().stdout, "Best,\nA");
        b.run(&["sync"]).ok();
        b.run(&["collection", "create", "work"]).ok();
        b.run(&["collection", "add", "work", &id[..8]]).ok();
        a.run(&["sync"]).ok();
        assert!(
            a.run(&["collection", "show", "work"])
                .ok()
                .stdout
                .contains("first line")
        );
        a.run(&["config", "set", "--synced", "clipboard.max_bytes", "1MiB"])
            .ok();
        b.run(&["sync"]).ok();
        let got = b
            .run(&["--json", "config", "get", "clipboard.max_bytes"])
            .ok()
            .stdout;
        let got: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["value"], "1MiB");
        assert_eq!(got["source"], "synced");

        // An image through a blob, written to a file on the other side.
        let image = noise_png(300, 200);
        let path = a.home().join("picture.png");
        std::fs::write(&path, &image).unwrap();
        a.run(&["copy", "--image", path.to_str().unwrap()]).ok();
        let ran = b.run(&["paste"]);
        assert_eq!(ran.code, 1);
        assert!(
            ran.stderr.contains("write it to a file with --output PATH"),
            "{}",
            ran.stderr
        );
        let out = b.home().join("out.png");
        b.run(&["paste", "--output", out.to_str().unwrap()]).ok();
        assert_eq!(std::fs::read(&out).unwrap(), image, "{backend:?}");

        // Status, log and a dry run say where things stand.
        let status: serde_json::Value =
            serde_json::from_str(&b.run(&["--json", "status"]).ok().stdout).unwrap();
        assert_eq!(status["device_name"], "beta");
        assert_eq!(status["peers"][0]["name"], "alpha");
        assert_eq!(status["pending_ops"], 0);
        assert!(
            a.run(&["log", "--kind", "segment"])
                .ok()
                .stdout
                .contains("\tup\tsegment\t")
        );
        a.run(&["copy", "not yet"]).ok();
        b.run(&["sync", "--dry-run"]).ok();
    }
}

#[test]
fn commands_run_in_the_agent_while_it_holds_the_database() {
    let storage = storage(Backend::Folder);
    let a = Device::new();
    let b = Device::new();
    let code = a.init(&storage, "alpha");
    b.join(&storage, &code, "beta").ok();
    // Headless: no DISPLAY, so the agent syncs only, with one warning.
    let log = a.home().join("agent.log");
    let mut agent = a.command(&["agent"]);
    agent.stderr(std::fs::File::create(&log).unwrap());
    let mut agent = Running(agent.spawn().unwrap());
    eventually(Duration::from_secs(20), "the agent's socket", || {
        a.home().join("agent.sock").exists().then_some(())
    });
    a.run(&["copy", "through the agent"]).ok();
    assert!(
        a.run(&["history"])
            .ok()
            .stdout
            .contains("through the agent")
    );
    // Garbage on the agent's socket gets a usage error back, and the agent carries on.
    {
        use std::io::{BufRead, Write};
        let mut socket =
            std::os::unix::net::UnixStream::connect(a.home().join("agent.sock")).unwrap();
        socket
            .write_all(b"{\"command\": \"rm -rf /\"}\n\xff\xfe")
            .unwrap();
        socket.shutdown(std::net::Shutdown::Write).unwrap();
        let mut header = String::new();
        std::io::BufReader::new(socket)
            .read_line(&mut header)
            .unwrap();
        let reply: serde_json::Value = serde_json::from_str(&header).unwrap();
        assert_eq!(reply["code"], 2, "{header}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains("could not read the command"),
            "{header}"
        );
    }
    assert!(
        a.run(&["history"])
            .ok()
            .stdout
            .contains("through the agent")
    );
    // A second agent on the same home refuses to start.
    let second = a.run(&["agent"]);
    assert_eq!(second.code, 1);
    assert!(
        second.stderr.contains("an agent is already running"),
        "{}",
        second.stderr
    );
    // The agent uploaded it: B sees it.
    assert_eq!(b.run(&["paste"]).ok().stdout, "through the agent");
    // SIGTERM: a clean stop.
    let pid = agent.0.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("no clipboard is available").count(),
        1,
        "{text}"
    );
    assert!(!a.home().join("agent.sock").exists());
    // Without the agent, commands run here again.
    assert!(
        a.run(&["history"])
            .ok()
            .stdout
            .contains("through the agent")
    );
}

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
    let unit = std::fs::read_to_string(config.join("systemd/user/ferry.service")).unwrap();
    let exec = format!(
        "ExecStart={} --home {} agent\n",
        common::FERRY,
        device.home().display()
    );
    assert!(unit.contains(&exec), "{unit}");
    let status = device.run_full(&["service", "status"], None, &env).ok();
    assert!(
        status.stdout.starts_with("installed: "),
        "{}",
        status.stdout
    );
    device.run_full(&["service", "uninstall"], None, &env).ok();
    assert!(!config.join("systemd/user/ferry.service").exists());
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
            ("ok", "key"),
            ("FAIL", "relay"),
            ("FAIL", "clipboard"),
            ("FAIL", "agent"),
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
    assert_eq!(ran.stderr.trim(), "ferry: 3 of 10 checks failed");
    // Every check ends its line, the last one too, so the summary never runs into it.
    assert!(ran.stdout.ends_with("\n"), "{:?}", ran.stdout);

    // With the agent running, its check is the last line and is whole.
    let agent = common::start_agent(&device, None, &[]);
    let ran = device.run(&["doctor"]);
    assert!(
        ran.stdout.ends_with("ok    agent: running\n"),
        "{:?}",
        ran.stdout
    );
    common::stop_agent(agent);

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

/// What a step of the happy path must print.
enum Expect {
    /// Nothing in particular: only that it succeeds.
    Succeeds,
    /// Output holding this text.
    Shows(&'static str),
    /// Output without this text (what a removal removed).
    Omits(&'static str),
}

use Expect::{Omits, Shows, Succeeds};

/// Every command's happy path on one device, in order, as data: the arguments, then what the
/// output must hold (`{id}` is the first clip's id prefix).
const HAPPY_PATH: &[(&[&str], Expect)] = &[
    (&["copy", "alpha text"], Succeeds),
    (&["copy", "beta text"], Succeeds),
    (&["history", "--limit", "1"], Shows("beta text")),
    (&["pin", "{id}"], Succeeds),
    (&["--json", "history"], Shows("\"pinned\":true")),
    (&["--json", "history"], Shows("\"kind\":\"text\"")),
    (&["unpin", "{id}"], Succeeds),
    (&["--json", "history"], Shows("\"pinned\":false")),
    (&["rm", "{id}"], Succeeds),
    (&["history"], Omits("alpha text")),
    (&["trash"], Shows("alpha text")),
    (&["restore", "{id}"], Succeeds),
    (&["history", "--search", "alpha"], Shows("alpha text")),
    (&["collection", "create", "work"], Succeeds),
    (&["collection", "add", "work", "{id}"], Succeeds),
    (&["collection", "ls"], Shows("work\t1 clips")),
    (&["collection", "rename", "work", "job"], Succeeds),
    (&["collection", "show", "job"], Shows("alpha text")),
    (&["collection", "remove", "job", "{id}"], Succeeds),
    (&["collection", "ls"], Shows("job\t0 clips")),
    (&["collection", "rm", "job"], Succeeds),
    (&["collection", "ls"], Omits("job")),
    (&["alias", "set", "addr", "1 Main St"], Succeeds),
    (&["alias", "ls"], Shows("addr\t1 Main St")),
    (&["alias", "get", "addr"], Shows("1 Main St")),
    (&["alias", "rm", "addr"], Succeeds),
    (&["alias", "ls"], Omits("addr")),
    (
        &["config", "set", "clipboard.exclude", "^secret-"],
        Succeeds,
    ),
    (&["config", "get", "clipboard.exclude"], Shows("^secret-")),
    (&["config", "unset", "clipboard.exclude"], Succeeds),
    (
        &["--json", "config", "get", "clipboard.exclude"],
        Shows("\"value\":\"\",\"source\":\"default\""),
    ),
    (
        &["config", "set", "--synced", "retention.trash_days", "7"],
        Succeeds,
    ),
    (
        &["--json", "config", "get", "retention.trash_days"],
        Shows("\"source\":\"synced\""),
    ),
    (
        &["config", "unset", "--synced", "retention.trash_days"],
        Succeeds,
    ),
    (
        &["--json", "config", "get", "retention.trash_days"],
        Shows("\"value\":\"30\",\"source\":\"default\""),
    ),
    (
        &["config", "ls"],
        Shows("sync.poll_interval = \"30s\"\t(default)"),
    ),
    (&["sync", "--dry-run"], Shows("nothing to sync")),
    (&["sync"], Shows("uploaded 0 segments")),
    (&["status"], Shows("clips     2")),
    (&["log", "--search", "ok", "--limit", "1"], Shows("\tok")),
    (
        &["--json", "log", "--kind", "segment", "--limit", "1"],
        Shows("\"direction\":\"up\""),
    ),
    (&["paste"], Shows("beta text")),
];

#[test]
fn every_command_has_a_happy_path() {
    let storage = storage(Backend::Folder);
    let device = Device::new();
    device.init(&storage, "solo");
    let mut id = String::new();
    for (args, expected) in HAPPY_PATH {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "{id}" { id.as_str() } else { a })
            .collect();
        let ran = device.run(&args);
        assert_eq!(ran.code, 0, "{args:?}: {}", ran.stderr);
        match expected {
            Succeeds => {}
            Shows(text) => assert!(ran.stdout.contains(text), "{args:?}: {}", ran.stdout),
            Omits(text) => assert!(!ran.stdout.contains(text), "{args:?}: {}", ran.stdout),
        }
        if id.is_empty() && args == ["copy", "alpha text"] {
            id = ran.stdout.trim()[..8].to_owned();
        }
    }
    // A clip that the synced exclusion pattern refuses is not recorded, and says why.
    device
        .run(&["config", "set", "--synced", "clipboard.exclude", "^secret-"])
        .ok();
    let ran = device.run(&["copy", "secret-token-123"]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("not recorded"), "{}", ran.stderr);
    assert!(
        !ran.stderr.contains("token-123"),
        "the refused text was quoted: {}",
        ran.stderr
    );
}

#[test]
fn a_copy_while_the_storage_is_unreachable_is_queued_and_sent_later() {
    let storage = storage(Backend::S3);
    let a = Device::new();
    let b = Device::new();
    let code = a.init(&storage, "alpha");
    b.join(&storage, &code, "beta").ok();
    // The same bucket, but nothing answers on that port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let endpoint = storage
        .url
        .split("endpoint=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let offline = storage
        .url
        .replace(endpoint, &format!("http://127.0.0.1:{port}"));
    let env = [("FERRY_STORE", offline)];
    let ran = a.run_full(&["copy", "written offline"], None, &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("recorded on this device; it goes out with the next `ferry sync`"),
        "{}",
        ran.stderr
    );
    let history = a.run_full(&["history"], None, &env);
    assert!(
        history.stdout.contains("written offline"),
        "{}",
        history.stdout
    );
    assert!(
        history.stderr.contains("could not fetch new data"),
        "{}",
        history.stderr
    );
    assert!(b.run(&["history"]).ok().stdout.is_empty());
    // Back online: the next sync sends it.
    a.run(&["sync"]).ok();
    assert_eq!(b.run(&["paste"]).ok().stdout, "written offline");
    // A device that never opened the repository does not start offline.
    let c = Device::new();
    let offline = &env[0].1;
    let ran = c.run_full(
        &["join", "--store", offline, "--recovery-code", &code],
        None,
        &storage.env,
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("Connection refused"), "{}", ran.stderr);
    assert_eq!(c.files(), Vec::<String>::new());
}

#[test]
fn a_copy_from_the_command_line_reaches_a_running_agent_through_the_relay() {
    let pair = common::pair(Backend::S3, true);
    let (a, b) = (&pair.a, &pair.b);
    // B polls only every minute: what arrives sooner came by the relay.
    let agent = common::start_agent(b, None, &[("FERRY_SYNC_POLL_INTERVAL", "60s".into())]);
    eventually(Duration::from_secs(10), "B's agent on the relay", || {
        common::agent_log(b)
            .contains("relay: subscribed")
            .then_some(())
    });
    a.run(&["copy", "from a script"]).ok();
    eventually(Duration::from_secs(10), "the clip in B's agent", || {
        let history = b.run(&["history"]);
        history.stdout.contains("from a script").then_some(())
    });
    common::stop_agent(agent);
}

#[test]
fn a_passphrase_makes_the_key_and_a_wrong_one_writes_nothing() {
    let storage = storage(Backend::Folder);
    let a = Device::new().with("FERRY_PASSPHRASE", "correct horse battery staple");
    let ran = a
        .run(&[
            "--json",
            "init",
            "--store",
            &storage.url,
            "--passphrase",
            "--name",
            "alpha",
        ])
        .ok();
    let json: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert!(json["recovery_code"].is_string(), "{json}");
    a.run(&["copy", "behind a passphrase"]).ok();

    // The passphrase read from standard input, as a person types it.
    let b = Device::new();
    let ran = b.run_with_input(
        &[
            "join",
            "--store",
            &storage.url,
            "--passphrase",
            "--name",
            "beta",
        ],
        Some(b"correct horse battery staple\n"),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(b.run(&["paste"]).ok().stdout, "behind a passphrase");
    // Both derived the same key: the same recovery code.
    assert_eq!(
        a.run(&["key", "show", "--yes"]).ok().stdout,
        b.run(&["key", "show", "--yes"]).ok().stdout
    );

    let c = Device::new().with("FERRY_PASSPHRASE", "correct horse battery stapler");
    let ran = c.run(&["join", "--store", &storage.url, "--passphrase"]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("this repository was written with key"),
        "{}",
        ran.stderr
    );
    assert_eq!(c.files(), Vec::<String>::new());
    // A repository made from a random key cannot be joined with a passphrase.
    let (_dir, other) = storage_other_repository();
    let ran = c.run(&["join", "--store", &other, "--passphrase"]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("was not made from a passphrase"),
        "{}",
        ran.stderr
    );
}

/// Another folder repository made with a random key: its folder (removed on drop) and URL.
fn storage_other_repository() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("repo").display());
    Device::new().run(&["init", "--store", &url]).ok();
    (dir, url)
}
