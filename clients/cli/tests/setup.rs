//! Setting a device up as a person and an administrator would: secrets typed at a prompt or
//! piped, never taken from where others can read them; storage credentials and folders; the
//! first run of the agent as a service. Each test pins a problem found by running Ferry for real.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{Backend, Device, Terminal, eventually, storage};

/// The recovery code of a fresh repository on a folder, and the folder's URL.
fn repository() -> (common::Storage, String) {
    let storage = storage(Backend::Folder);
    let code = Device::new().init(&storage, "owner");
    (storage, code)
}

#[test]
fn join_reads_the_recovery_code_from_standard_input_and_never_needs_it_as_an_argument() {
    let (storage, code) = repository();
    let device = Device::new();
    let ran = device.run_with_input(
        &["join", "--store", &storage.url, "--name", "piped"],
        Some(format!("{code}\n").as_bytes()),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        !ran.stdout.contains(&code) && !ran.stderr.contains(&code),
        "{ran:?}"
    );

    // Nothing on standard input: a usage error, and nothing written.
    let empty = Device::new();
    let ran = empty.run_with_input(&["join", "--store", &storage.url], Some(b""));
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert_eq!(
        ran.stderr,
        "ferry: no recovery code was given: type it at the prompt, or give it as the first line \
         of standard input\n"
    );
    assert_eq!(empty.files(), Vec::<String>::new());

    // The help says why the prompt is better than the argument.
    let help = Device::new().run(&["join", "--help"]).ok().stdout;
    assert!(help.contains("stays in the shell's history"), "{help}");
}

/// Regression: the `join` command `init` prints was not quoted, so a store URL with `&` (as S3
/// URLs have) broke when pasted into a shell.
#[test]
fn the_join_command_init_prints_can_be_pasted_into_a_shell() {
    let storage = storage(Backend::S3);
    assert!(storage.url.contains('&'), "{}", storage.url);
    let owner = Device::new();
    let ran = owner.run_full(&["init", "--store", &storage.url], None, &storage.env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let code = ran
        .stdout
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 77 && line.matches('-').count() == 12)
        .unwrap()
        .to_owned();
    assert!(
        ran.stdout.contains("Next: start the agent"),
        "{}",
        ran.stdout
    );
    let device = Device::new();
    let joined = paste_join_line(&ran.stdout, &device, &storage.env, &code);
    assert!(joined.contains("joined the repository"), "{joined}");
}

/// Runs the `ferry join` line that `printed` shows as pasted into a shell, with `device`'s
/// home and `env`, typing `typed`; what it printed.
fn paste_join_line(
    printed: &str,
    device: &Device,
    env: &[(&'static str, String)],
    typed: &str,
) -> String {
    let line = printed
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("ferry join "))
        .unwrap_or_else(|| panic!("no join command in\n{printed}"));
    let pasted = line.replacen(
        "ferry",
        &format!("{} --home {}", common::FERRY, device.home().display()),
        1,
    );
    let ferry = device.command_with(&[], env);
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(&pasted).env_clear();
    for (key, value) in ferry.get_envs() {
        if let Some(value) = value {
            shell.env(key, value);
        }
    }
    let mut child = shell
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{typed}").unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{pasted}\n{stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A passphrase repository with a relay: the line `init` prints asks for the passphrase and
/// names the relay, so the new device hears copies at once rather than at its next poll.
#[test]
fn the_join_line_of_a_passphrase_repository_brings_its_relay_along() {
    let storage = storage(Backend::S3);
    let relay = common::relay(&storage);
    let owner = Device::new();
    let mut env = storage.env.clone();
    env.push(("FERRY_PASSPHRASE", "correct horse battery".to_owned()));
    let ran = owner.run_full(
        &[
            "init",
            "--store",
            &storage.url,
            "--relay",
            &relay.url(),
            "--passphrase",
        ],
        None,
        &env,
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let device = Device::new();
    let joined = paste_join_line(&ran.stdout, &device, &storage.env, "correct horse battery");
    assert!(joined.contains("joined the repository"), "{joined}");
    let status = device.json(&["status"]);
    assert_eq!(status["relay"], relay.url().as_str(), "{status}");
    // Polls a minute apart: a copy that arrives sooner came by the relay.
    let slow = [("FERRY_SYNC_POLL_INTERVAL", "60s".to_owned())];
    let agent_owner = common::start_agent(&owner, None, &slow);
    let agent_device = common::start_agent(&device, None, &slow);
    eventually(Duration::from_secs(20), "the relay subscriptions", || {
        common::agent_log(&device)
            .contains("relay: subscribed")
            .then_some(())
    });
    owner.run(&["copy", "through the relay"]).ok();
    eventually(
        Duration::from_secs(30),
        "the copy on the new device",
        || {
            device
                .history_texts()
                .contains(&"through the relay".to_owned())
                .then_some(())
        },
    );
    common::stop_agent(agent_device);
    common::stop_agent(agent_owner);
}

#[test]
fn join_asks_for_the_recovery_code_on_a_terminal_without_echoing_it() {
    if !common::have("tmux") {
        return;
    }
    let (storage, code) = repository();
    let device = Device::new();
    let terminal = Terminal::start(&format!(
        "FERRY_SECRET_STORE=file {} --home {} join --store {} --name typed",
        common::FERRY,
        device.home().display(),
        storage.url
    ));
    terminal.wait_for("Recovery code:");
    terminal.type_line(&code);
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
    assert!(screen.contains("joined the repository"), "{screen}");
    assert!(
        !screen.contains(&code[..10]),
        "the code was echoed:\n{screen}"
    );
}

#[test]
fn pairing_on_two_terminals_draws_the_qr_code_and_asks_for_the_code() {
    if !common::have("tmux") {
        return;
    }
    let storage = storage(Backend::S3);
    let relay = common::relay(&storage);
    let laptop = Device::new();
    laptop.init_with_relay(&storage, "laptop", Some(&relay.url()));
    laptop.run(&["copy", "typed on laptop"]).ok();
    let shows = Terminal::start(&format!(
        "FERRY_SECRET_STORE=file {} --home {} pair",
        common::FERRY,
        laptop.home().display(),
    ));
    let screen = shows.wait_for("Waiting for the other device");
    assert!(
        screen.contains('█') || screen.contains('▀'),
        "no QR code:\n{screen}"
    );
    let code = screen
        .lines()
        .find_map(|line| line.strip_prefix("Pairing code: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no code on\n{screen}"))
        .to_owned();
    let short = ferry_protocol::pairing::PairingCode::parse(&code)
        .unwrap()
        .0
        .short()
        .to_uppercase();

    let desktop = Device::new();
    let types = Terminal::start(&format!(
        "FERRY_SECRET_STORE=file {} --home {} join --relay {} --name desktop",
        common::FERRY,
        desktop.home().display(),
        relay.url()
    ));
    types.wait_for("Pairing code:");
    let parts: Vec<&str> = short.split('-').collect();
    // A word off the list is asked for again: nothing was used up.
    types.type_line(&format!("{} ZZZZ {}", parts[0], parts[2]));
    common::eventually(
        std::time::Duration::from_secs(30),
        "the code asked again",
        || (types.screen().matches("Pairing code:").count() == 2).then_some(()),
    );
    // Tab completes a word from the four letters that name it (and puts the hyphen).
    types.type_text(&format!("{} {}", parts[0], parts[1]));
    types.press(&["Tab"]);
    types.type_text(parts[2]);
    types.press(&["Tab"]);
    let [first, _] = ferry_protocol::pairing::PairingCode::parse(&code)
        .unwrap()
        .0
        .words();
    let first = ferry_protocol::pairing::word(first);
    let typed = parts[1];
    types.wait_for(&format!("{} {typed}{}-", parts[0], &first[typed.len()..]));
    types.press(&["Enter"]);
    let screen = types.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
    assert!(
        screen.contains("as \"desktop\", paired by laptop"),
        "{screen}"
    );
    assert!(screen.contains("Fetched 1 clip."), "{screen}");
    let screen = shows.wait_for("exit status");
    assert!(screen.contains("desktop joined"), "{screen}");
    assert!(screen.contains("exit status 0"), "{screen}");
}

#[test]
fn init_asks_for_a_new_passphrase_twice_on_a_terminal() {
    if !common::have("tmux") {
        return;
    }
    let storage = storage(Backend::Folder);
    let device = Device::new();
    let terminal = Terminal::start(&format!(
        "FERRY_SECRET_STORE=file {} --home {} init --passphrase --store {}",
        common::FERRY,
        device.home().display(),
        storage.url
    ));
    terminal.wait_for("New passphrase:");
    terminal.type_line("correct horse battery");
    terminal.wait_for("The same passphrase again:");
    terminal.type_line("correct horse battery!");
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("the two passphrases differ"), "{screen}");
    assert!(screen.contains("exit status 2"), "{screen}");
    assert!(!screen.contains("correct horse"), "echoed:\n{screen}");
    assert_eq!(device.files(), Vec::<String>::new());
}

#[test]
fn a_new_passphrase_has_eight_characters_however_it_is_given() {
    let storage = storage(Backend::Folder);
    let expected = "ferry: the passphrase must have at least 8 characters (a recovery code, the \
                    default without --passphrase, is stronger than any passphrase)\n";
    let device = Device::new();
    let args = ["init", "--store", &storage.url, "--passphrase"];
    let from_env = device.run_full(&args, None, &[("FERRY_PASSPHRASE", "short".into())]);
    let from_stdin = device.run_with_input(&args, Some(b"short\n"));
    for ran in [from_env, from_stdin] {
        assert_eq!(ran.code, 2, "{}", ran.stderr);
        assert_eq!(ran.stderr, expected);
    }
    assert_eq!(device.files(), Vec::<String>::new());
    let ran = Device::new().run_full(&args, None, &[("FERRY_PASSPHRASE", "eight ch".into())]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

/// Regression: a secrets file damaged into a bare string made the error quote it, that is, print
/// the whole recovery code (into the journal, under the agent).
#[test]
fn a_damaged_secrets_file_is_reported_without_its_content() {
    let storage = storage(Backend::Folder);
    let device = Device::new();
    let code = device.init(&storage, "one");
    let secrets = device.home().join("secrets.json");
    std::fs::write(&secrets, format!("\"{code}\"")).unwrap();
    let ran = device.run(&["paste", "--offline"]);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("is damaged"), "{}", ran.stderr);
    assert!(!ran.stderr.contains(&code[..10]), "{}", ran.stderr);
}

/// Regression: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` set for another program replaced
/// the keys saved for the device, and the refusal blamed the saved ones.
#[test]
fn saved_s3_credentials_win_over_the_environment_and_a_refusal_names_its_source() {
    let storage = storage(Backend::S3);
    let device = Device::new();
    device.init(&storage, "one");
    device.run(&["copy", "kept"]).ok();
    let elsewhere = [
        ("AWS_ACCESS_KEY_ID", "AKIDANOTHERSERVICE".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "another-service-secret".to_owned()),
    ];
    let ran = device.run_full(&["paste"], None, &elsewhere);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout, "kept");

    // A wrong secret saved for the device is named as the saved one.
    let path = device.home().join("secrets.json");
    let mut saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    saved["s3-secret-access-key"] = "not-the-secret".into();
    std::fs::write(&path, saved.to_string()).unwrap();
    let ran = device.run_full(&["sync"], None, &elsewhere);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains(
            "check the access key …TEST and its secret (saved for this device by `ferry init` \
             or `ferry join`)"
        ),
        "{}",
        ran.stderr
    );

    // On a new device, the environment's are the ones used, and named so.
    let stranger = Device::new();
    let ran = stranger.run_full(&["init", "--store", &storage.url], None, &elsewhere);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains(
            "check the access key …VICE and its secret (from AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY in the environment)"
        ),
        "{}",
        ran.stderr
    );
    for secret in ["not-the-secret", "another-service-secret"] {
        assert!(!ran.stderr.contains(secret));
    }
}

/// Regression: `init` on a WebDAV folder that did not exist failed on every server with "HTTP
/// 409 Conflict; retrying may help", and `join` said there was no repository.
#[test]
fn init_makes_missing_webdav_folders_and_join_says_a_folder_is_missing() {
    let storage = storage(Backend::WebDav);
    let nested = format!("{}new/nested/ferry", storage.url);
    let a = Device::new();
    let ran = a.run_full(
        &["--json", "init", "--store", &nested, "--name", "alpha"],
        None,
        &storage.env,
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let json: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    let code = json["recovery_code"].as_str().unwrap();
    a.run(&["copy", "in a new folder"]).ok();
    let b = Device::new();
    let ran = b.run_full(
        &["join", "--store", &nested, "--recovery-code", code],
        None,
        &storage.env,
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // A code in the arguments works, with a warning that others can read it there.
    assert!(
        ran.stderr
            .contains("visible to every user of this machine in the process list"),
        "{}",
        ran.stderr
    );
    assert_eq!(b.run(&["paste"]).ok().stdout, "in a new folder");

    let missing = format!("{}absent/ferry", storage.url);
    let c = Device::new();
    let ran = c.run_full(
        &["join", "--store", &missing, "--recovery-code", code],
        None,
        &storage.env,
    );
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("absent/ferry") && ran.stderr.contains("does not exist"),
        "{}",
        ran.stderr
    );
    assert_eq!(c.files(), Vec::<String>::new());
}

/// Regression: the command line always sent Basic logins, so a Digest-only server refused the
/// right password.
#[test]
fn a_digest_only_webdav_server_is_used_from_the_command_line() {
    let storage = common::digest_webdav();
    let a = Device::new();
    let code = a.init(&storage, "alpha");
    a.run(&["copy", "over digest"]).ok();
    let b = Device::new();
    b.join(&storage, &code, "beta").ok();
    assert_eq!(b.run(&["paste"]).ok().stdout, "over digest");
}

/// Regression: run as a service before any `init`, the agent set the device up and printed the
/// recovery code into the journal.
#[test]
fn the_agents_first_run_without_a_terminal_keeps_the_code_out_of_its_log() {
    let device = Device::new();
    let agent = common::start_agent(&device, None, &[]);
    eventually(Duration::from_secs(30), "the agent to run", || {
        common::agent_log(&device)
            .contains("agent running")
            .then_some(())
    });
    let code = device
        .run(&["key", "show", "--yes"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let log = common::agent_log(&device);
    assert!(!log.contains(&code[..10]), "{log}");
    assert!(log.contains("ferry key show --yes"), "{log}");
    common::stop_agent(agent);
}

/// A D-Bus session nobody answers: no OS keychain, as on a fresh server.
const NO_KEYCHAIN: &str = "unix:path=/nonexistent/ferry-test-bus";

#[test]
fn the_agents_first_run_on_a_machine_without_a_keychain_keeps_the_secrets_in_a_file() {
    let device = Device::with_keychain().with("DBUS_SESSION_BUS_ADDRESS", NO_KEYCHAIN);
    let agent = common::start_agent(&device, None, &[]);
    eventually(Duration::from_secs(30), "the agent to run", || {
        common::agent_log(&device)
            .contains("agent running")
            .then_some(())
    });
    let log = common::agent_log(&device);
    assert!(log.contains("No OS keychain answers here"), "{log}");
    let config = std::fs::read_to_string(device.home().join("config.toml")).unwrap();
    assert!(config.contains("secret_store = \"file\""), "{config}");
    // Later commands find the key there without being told.
    device.run(&["key", "show", "--yes"]).ok();
    common::stop_agent(agent);
}

#[test]
fn a_joiner_without_a_usable_secret_store_is_refused_before_the_code_is_used() {
    let desktop = Device::with_keychain().with("DBUS_SESSION_BUS_ADDRESS", NO_KEYCHAIN);
    // The relay is nowhere: reaching for it would mean the code was taken.
    let ran = desktop.run_with_input(
        &["join", "--relay", "ws://127.0.0.1:9/v1/ws"],
        Some(b"417-orbit-velvet\n"),
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("keychain"), "{}", ran.stderr);
    assert!(ran.stderr.contains("--secret-store file"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("relay"), "{}", ran.stderr);
}

#[test]
fn a_device_joining_while_the_storage_serves_an_older_state_is_warned_by_the_roll_call() {
    let storage = storage(Backend::S3);
    let relay = common::relay(&storage);
    let url = relay.url();
    let a = Device::new();
    let code = a.init_with_relay(&storage, "alpha", Some(&url));
    let status = |device: &Device| -> serde_json::Value {
        serde_json::from_str(&device.run(&["--json", "status"]).ok().stdout).unwrap()
    };
    let tag = status(&a)["tag"].as_str().unwrap().to_owned();
    let root = storage.files().join("ferry/v1");
    let name = |kind: &str, seq: u64| root.join(format!("{kind}/{tag}/{seq:016x}"));
    a.run(&["copy", "one"]).ok();
    a.run(&["sync"]).ok();
    let seq = status(&a)["last_seq"].as_u64().unwrap();
    let old_head = std::fs::read(name("head", seq)).unwrap();
    a.run(&["copy", "two"]).ok();
    a.run(&["sync"]).ok();
    // The storage goes back to the state before "two": that segment and its head are gone,
    // the head before it is back.
    std::fs::remove_file(name("log", seq + 1)).unwrap();
    std::fs::remove_file(name("head", seq + 1)).unwrap();
    std::fs::write(name("head", seq), old_head).unwrap();

    // Alpha's agent is up (sending only, so it does not look at the storage and put back what
    // it lost): it answers the roll call of a device joining now.
    let agent = common::start_agent(
        &a,
        None,
        &[("FERRY_SYNC_DIRECTION", "send_only".to_owned())],
    );
    eventually(
        Duration::from_secs(10),
        "alpha's agent on the relay",
        || {
            common::agent_log(&a)
                .contains("relay: subscribed")
                .then_some(())
        },
    );
    let b = Device::new();
    let joined = b.join_with_relay(&storage, &code, "beta", Some(&url)).ok();
    let warning = format!(
        "warning: alpha announced segment {} over the relay",
        seq + 1
    );
    assert!(joined.stderr.contains(&warning), "{}", joined.stderr);
    assert!(joined.stderr.contains("it may be serving an older state"));
    let shown = b.run(&["status"]).ok().stdout;
    assert!(
        shown.contains("behind    alpha announced segment"),
        "{shown}"
    );
    let behind = &status(&b)["behind"][0];
    assert_eq!(behind["applied"].as_u64(), Some(seq));
    common::stop_agent(agent);

    // Once alpha puts back what the storage lost, beta catches up and the warning goes.
    a.run(&["sync"]).ok();
    b.run(&["sync"]).ok();
    assert_eq!(status(&b)["behind"].as_array().map(Vec::len), Some(0));
}

/// A relay URL is checked where it is set: a ws:// or wss:// URL with a host, or refused
/// before anything is written; one that does not answer now is said, and kept.
#[test]
fn a_relay_is_checked_where_it_is_set() {
    let storage = storage(Backend::Folder);
    let device = Device::new();
    for bad in ["http://relay.example.org", "relay.example.org", "wss://"] {
        let ran = device.run_full(
            &["init", "--store", &storage.url, "--relay", bad],
            None,
            &storage.env,
        );
        assert_eq!(ran.code, 2, "{bad}: {}", ran.stderr);
        assert!(ran.stderr.contains("ws:// or wss://"), "{}", ran.stderr);
        assert!(!device.home().join("config.toml").exists());
    }
    // Nothing listens on port 9 of this machine.
    let ran = device
        .run_full(
            &[
                "init",
                "--store",
                &storage.url,
                "--relay",
                "ws://127.0.0.1:9",
            ],
            None,
            &storage.env,
        )
        .ok();
    assert!(
        ran.stderr.contains("cannot be reached now"),
        "{}",
        ran.stderr
    );
    let set = device.run(&["config", "set", "relay", "ftp://x"]);
    assert_eq!(set.code, 2, "{}", set.stderr);
    let set = device
        .run(&["config", "set", "relay", "ws://127.0.0.1:9/v1/ws"])
        .ok();
    assert!(
        set.stderr.contains("cannot be reached now"),
        "{}",
        set.stderr
    );
    assert_eq!(
        device.run(&["config", "get", "relay"]).ok().stdout.trim(),
        "ws://127.0.0.1:9/v1/ws"
    );
}
