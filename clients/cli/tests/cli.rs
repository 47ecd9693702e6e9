//! The `ferry` command line, run as a real process against real storage servers on 127.0.0.1:
//! every command's happy path, two devices sharing on every backend, commands sent to a running
//! agent, copies made offline, the relay, and passphrases. (The failures are in `errors.rs`,
//! the device's upkeep in `admin.rs`.)

mod common;

use std::time::Duration;

use common::{Backend, Device, eventually, noise_png, per_backend, storage};

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
        assert_eq!(fields[1], "", "not pinned: {history}");
        assert_eq!(fields[3..], ["alpha", "second clip"], "{backend:?}");
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
        // Down a pipe the bytes go as they are (on a terminal they are refused: see
        // `binary_clips_are_refused_on_a_terminal`).
        assert_eq!(b.run(&["paste"]).ok().stdout_bytes, image);
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
                .contains("\tup\tsegment\talpha\t")
        );
        // `--device` takes a device's name or id as `ferry devices` shows them; rows name it.
        let alpha_id = b.json(&["devices"])[1]["device"].as_str().unwrap().to_owned();
        for which in ["alpha", &alpha_id[..6]] {
            let from_alpha = b.run(&["log", "--device", which]).ok().stdout;
            assert!(!from_alpha.is_empty(), "{which}");
            assert!(
                from_alpha.lines().all(|l| l.contains("\tdown\t")
                    && l.split('\t').nth(3) == Some("alpha")),
                "{which}: {from_alpha}"
            );
        }
        let nobody = b.run(&["log", "--device", "gamma"]);
        assert_eq!(nobody.code, 2, "{nobody:?}");
        assert!(nobody.stderr.contains("no device is named or numbered \"gamma\""));
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
    let agent = common::start_agent(&a, None, &[]);
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
        let mut socket = common::connect_agent(&a);
        socket
            .write_all(b"{\"command\": \"rm -rf /\"}\n\xff\xfe")
            .unwrap();
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
        second.stderr.contains("an agent is already running for ")
            && second.stderr.contains(&format!("(pid {})", agent.0.id()))
            && second.stderr.contains("`ferry stop` first"),
        "{}",
        second.stderr
    );
    // The agent uploaded it: B sees it.
    assert_eq!(b.run(&["paste"]).ok().stdout, "through the agent");
    // SIGTERM: a clean stop.
    common::stop_agent(agent);
    let text = std::fs::read_to_string(&log).unwrap();
    // Windows always has a clipboard.
    #[cfg(unix)]
    assert_eq!(
        text.matches("no clipboard is available").count(),
        1,
        "{text}"
    );
    #[cfg(windows)]
    assert!(text.contains("AddClipboardFormatListener"), "{text}");
    assert!(!a.home().join("agent.sock").exists());
    // Without the agent, commands run here again.
    assert!(
        a.run(&["history"])
            .ok()
            .stdout
            .contains("through the agent")
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
    /// Exactly this output, and nothing on stderr.
    Prints(&'static str),
}

use Expect::{Omits, Prints, Shows, Succeeds};

/// Every command's happy path on one device, in order, as data: the arguments, then what the
/// output must hold (`{id}` is the first clip's id prefix).
const HAPPY_PATH: &[(&[&str], Expect)] = &[
    (&["copy", "alpha text"], Succeeds),
    (&["copy", "beta text"], Succeeds),
    (&["history", "--limit", "1"], Shows("beta text")),
    (&["pin", "{id}"], Shows("Pinned clip {id}.")),
    (&["--json", "history"], Shows("\"pinned\":true")),
    (&["--json", "history"], Shows("\"kind\":\"text\"")),
    (&["unpin", "{id}"], Shows("Unpinned clip {id}.")),
    (&["--json", "history"], Shows("\"pinned\":false")),
    (
        &["rm", "{id}"],
        Shows("Moved clip {id} to the trash (`ferry restore {id}` brings it back)."),
    ),
    (&["history"], Omits("alpha text")),
    (&["trash"], Shows("alpha text")),
    (&["restore", "{id}"], Shows("Restored clip {id}.")),
    (&["history", "--search", "alpha"], Shows("alpha text")),
    (
        &["collection", "create", "work"],
        Shows("Collection work created."),
    ),
    (
        &["collection", "add", "work", "{id}"],
        Shows("Added clip {id} to work."),
    ),
    (&["collection", "ls"], Shows("work\t1 clip\n")),
    (
        &["collection", "rename", "work", "job"],
        Shows("Collection work is now job."),
    ),
    (&["collection", "show", "job"], Shows("alpha text")),
    (
        &["collection", "remove", "job", "{id}"],
        Shows("Took clip {id} out of job (it stays in the history)."),
    ),
    (&["collection", "ls"], Shows("job\t0 clips")),
    (
        &["collection", "rm", "job"],
        Shows("Collection job deleted (its clips stay in the history)."),
    ),
    (&["collection", "ls"], Omits("job")),
    (
        &["alias", "set", "addr", "1 Main St"],
        Shows("Alias addr set."),
    ),
    (
        &["--quiet", "alias", "set", "addr", "1 Main St"],
        Prints(""),
    ),
    (
        &["--json", "-q", "alias", "set", "addr", "1 Main St"],
        Prints("{\"done\":\"alias set\",\"what\":\"addr\"}\n"),
    ),
    (&["alias", "ls"], Shows("addr\t1 Main St")),
    (&["alias", "get", "addr"], Shows("1 Main St")),
    (&["alias", "rm", "addr"], Shows("Alias addr removed.")),
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
    // Any column, as shown: here the device's name.
    (
        &["log", "--search", "solo", "--limit", "1"],
        Shows("\tup\tsegment\tsolo\t"),
    ),
    (&["config", "ls"], Shows("relay = \"\"\t(not set)")),
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
        let with_id = |text: &str| text.replace("{id}", &id);
        match expected {
            Succeeds => {}
            Shows(text) => assert!(
                ran.stdout.contains(&with_id(text)),
                "{args:?}: {}",
                ran.stdout
            ),
            Omits(text) => assert!(!ran.stdout.contains(text), "{args:?}: {}", ran.stdout),
            Prints(text) => assert_eq!((ran.stdout.as_str(), ran.stderr.as_str()), (*text, "")),
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
    assert!(
        ran.stderr
            .contains("not recorded: matches the clipboard.exclude pattern ^secret-"),
        "{}",
        ran.stderr
    );
    assert!(
        !ran.stderr.contains("token-123"),
        "the refused text was quoted: {}",
        ran.stderr
    );
    // Over the size limit, in sizes people read, naming the setting.
    device
        .run(&["config", "set", "clipboard.max_bytes", "1KiB"])
        .ok();
    let ran = device.run(&["copy", &"y".repeat(2000)]);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains(
            "not recorded: 2.0 KiB is over clipboard.max_bytes (1.0 KiB): raise it to sync \
             copies this large"
        ),
        "{}",
        ran.stderr
    );
    // Every line of the transfer log has its eight columns, `-` where there is nothing.
    let log = device.run(&["log"]).ok().stdout;
    assert!(
        log.lines().all(|line| line.split('\t').count() == 8),
        "{log}"
    );
    // The recovery code written to a file is confirmed like any other change.
    let file = device.home().join("code.txt");
    let file = file.to_str().unwrap();
    let ran = device.run(&["--json", "-q", "key", "export", "--output", file]);
    assert_eq!(
        (ran.code, ran.stdout, ran.stderr),
        (
            0,
            format!("{{\"done\":\"exported\",\"what\":{file:?}}}\n"),
            String::new()
        )
    );
    let ran = device.run(&["key", "export", "--output", &format!("{file}.2")]);
    assert_eq!(
        ran.stdout,
        format!("Wrote the recovery code to {file}.2 (mode 0600).\n")
    );
}

/// The machine's name as the system itself states it: the kernel's host name on Linux, the
/// computer name Windows puts in every process's environment (NetBIOS: upper case, at most 15
/// characters).
fn machine_name() -> String {
    if cfg!(windows) {
        std::env::var("COMPUTERNAME").expect("Windows names the computer in COMPUTERNAME")
    } else {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .expect("the kernel names the host")
            .trim()
            .to_owned()
    }
}

#[test]
fn a_device_set_up_without_a_name_is_named_after_the_machine() {
    let storage = storage(Backend::Folder);
    let device = Device::new();
    let ran = device
        .run_full(
            &["--json", "init", "--store", &storage.url],
            None,
            &storage.env,
        )
        .ok();
    let answer: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    let name = answer["name"].as_str().unwrap().to_owned();
    let machine = machine_name();
    assert_ne!(name, "device", "the machine's name was not found");
    let netbios = |text: &str| {
        text.to_ascii_uppercase()
            .chars()
            .take(15)
            .collect::<String>()
    };
    assert_eq!(netbios(&name), netbios(&machine), "{name} on {machine}");
    // Every device shows it.
    let status = device.json(&["status"]);
    assert_eq!(status["device_name"], name.as_str());
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
        ran.stderr
            .contains("that passphrase does not open this repository (it gives key ")
            && ran.stderr.contains("Type it again (case and spaces count)"),
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

/// `ferry stop` (how the agent is stopped where there are no signals, as on Windows): the
/// agent answers, sends what is pending, and exits cleanly; with no agent it says so.
#[test]
fn ferry_stop_stops_the_agent_after_it_sends_what_is_pending() {
    let storage = storage(Backend::Folder);
    let a = Device::new();
    let b = Device::new();
    let code = a.init(&storage, "alpha");
    b.join(&storage, &code, "beta").ok();
    let agent = common::start_agent(&a, None, &[]);
    a.run(&["copy", "just before the stop"]).ok();
    common::stop_agent_with_command(&a, agent);
    let log = common::agent_log(&a);
    assert!(log.contains("asked to stop"), "{log}");
    assert!(log.contains("stopping: uploading what is pending"), "{log}");
    assert!(!a.home().join("agent.sock").exists());
    assert_eq!(b.run(&["paste"]).ok().stdout, "just before the stop");
    let again = a.run(&["stop"]).ok();
    assert!(
        again.stderr.contains("no agent is running"),
        "{}",
        again.stderr
    );
}

/// `ferry agent --log-file` (what the service runs on Windows and macOS, where nothing keeps a
/// service's standard error): the agent's lines go to that file, plain, and none to stderr.
/// Starts `device`'s agent with `--log-file log` and its standard error in a file (not a pipe:
/// on Windows another test's child may inherit a pipe's end and hold it); returns when its
/// socket is there, with the file.
fn agent_logging_to(
    device: &Device,
    log: &std::path::Path,
) -> (common::Running, std::path::PathBuf) {
    let stderr_file = device.home().join("agent-stderr.txt");
    let _ = std::fs::remove_file(device.home().join("agent.sock"));
    let mut command = device.command(&["agent", "--log-file", log.to_str().unwrap()]);
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .unwrap();
    let agent = common::Running(child);
    eventually(Duration::from_secs(30), "the agent's socket", || {
        device.home().join("agent.sock").exists().then_some(())
    });
    (agent, stderr_file)
}

#[test]
fn the_agent_logs_to_the_file_it_is_given() {
    let storage = storage(Backend::Folder);
    let a = Device::new();
    a.init(&storage, "alpha");
    let log = a.home().join("logs").join("agent.log");
    let (mut agent, stderr_file) = agent_logging_to(&a, &log);
    a.run(&["copy", "a line the log never holds"]).ok();
    let stopped = a.run(&["--json", "stop"]).ok();
    assert_eq!(
        stopped.stdout, "{\"done\":\"stopping\",\"what\":\"the agent\"}\n",
        "{stopped:?}"
    );
    assert!(agent.0.wait().unwrap().success());
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert_eq!(stderr, "");

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("agent running"), "{text}");
    assert!(
        text.contains("stopping: uploading what is pending"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text}");
    assert!(!text.contains("a line the log never holds"), "{text}");
}

/// A log file that cannot be made (its folder is a file): the agent says so on stderr, logs
/// there instead, and runs as usual.
#[test]
fn an_agent_whose_log_file_cannot_be_made_logs_to_stderr_and_says_why() {
    let storage = storage(Backend::Folder);
    let a = Device::new();
    a.init(&storage, "alpha");
    let blocker = a.home().join("not-a-folder");
    std::fs::write(&blocker, "a file where the log's folder would go").unwrap();
    let log = blocker.join("agent.log");
    let (mut agent, stderr_file) = agent_logging_to(&a, &log);
    a.run(&["stop"]).ok();
    assert!(agent.0.wait().unwrap().success());
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert!(
        stderr.contains(&format!(
            "the log file {} could not be opened",
            log.display()
        )) && stderr.contains("logging to standard error instead")
            && stderr.contains("agent running"),
        "{stderr}"
    );
}

/// The README's pipeline, as written there, on a history with a pinned clip: the first column
/// is an id whatever the marks. (A POSIX shell's pipeline: not run under Wine.)
#[cfg(unix)]
#[test]
fn the_readme_pipeline_pastes_a_pinned_clip() {
    let pair = common::pair(Backend::Folder, false);
    let a = &pair.a;
    a.run(&["copy", "ssh deploy@prod.example.org"]).ok();
    a.run(&["copy", "something else"]).ok();
    let id = a.json(&["history"])[1]["id"].as_str().unwrap().to_owned();
    a.run(&["pin", &id[..8]]).ok();
    let line = a.run(&["history"]).ok().stdout;
    assert!(line.contains(&format!("{}\t*\t", &id[..12])), "{line}");
    let home = common::quote(&a.home().display().to_string());
    let ferry = format!("{} --home {home}", common::FERRY);
    let pipeline = format!("{ferry} history | grep ssh | cut -f1 | xargs {ferry} paste");
    let ran = std::process::Command::new("sh")
        .args(["-c", &pipeline])
        .envs(a.env.iter().map(|(key, value)| (key, value)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{pipeline}\n{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "ssh deploy@prod.example.org"
    );
}

/// On a terminal, an image or a file is refused with the way to get it; text is shown.
/// (A tmux terminal: not run under Wine.)
#[cfg(unix)]
#[test]
fn binary_clips_are_refused_on_a_terminal() {
    if !common::have("tmux") {
        return;
    }
    let pair = common::pair(Backend::Folder, false);
    let a = &pair.a;
    let path = a.home().join("picture.png");
    std::fs::write(&path, noise_png(40, 30)).unwrap();
    a.run(&["copy", "--image", path.to_str().unwrap()]).ok();
    let terminal = common::Terminal::start(&a.shell_line(&["paste"]));
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 1"), "{screen}");
    assert!(
        screen.contains("write it to a file with --output PATH, or send it down a pipe"),
        "{screen}"
    );
}
