//! Settings change while agents run, with real `ferry` processes: what `ferry config set` or
//! `unset` changes (in this device's file or synced) is in force in the running agent before
//! the next copy, a synced change reaches the other device's agent as soon as it merges, and
//! each change says what it is now, where it comes from and when it applies.

mod common;

use std::time::Duration;

use common::{Backend, LogsOnFailure, eventually, pair, start_agent, stop_agent};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_synced_exclusion_is_in_force_on_every_running_agent_before_the_next_copy() {
    let pair = pair(Backend::S3, true);
    let (a, b) = (&pair.a, &pair.b);
    let _logs = LogsOnFailure(vec![a, b]);
    let agent_a = start_agent(a, None, &[]);
    let agent_b = start_agent(b, None, &[]);

    let set = a
        .run(&[
            "config",
            "set",
            "--synced",
            "clipboard.exclude",
            "^sk_live_",
        ])
        .ok();
    assert_eq!(
        set.stdout,
        "clipboard.exclude = ^sk_live_ (synced); in force now\n"
    );
    let copied = a.run(&["copy", "sk_live_on_alpha"]);
    assert!(
        !a.history_texts().contains(&"sk_live_on_alpha".to_owned()),
        "{copied:?}"
    );

    // The other agent takes it up as soon as the change reaches it (through the relay).
    eventually(WAIT, "beta's agent to hold the exclusion", || {
        let got = b.json(&["config", "get", "clipboard.exclude"]);
        (got["value"] == "^sk_live_" && got["source"] == "synced").then_some(())
    });
    b.run(&["copy", "sk_live_on_beta"]);
    b.run(&["copy", "an ordinary copy"]).ok();
    let texts = b.history_texts();
    assert!(texts.contains(&"an ordinary copy".to_owned()), "{texts:?}");
    assert!(!texts.contains(&"sk_live_on_beta".to_owned()), "{texts:?}");

    // Unset for all: copies are recorded again.
    let unset = a
        .run(&["config", "unset", "--synced", "clipboard.exclude"])
        .ok();
    assert!(
        unset.stdout.ends_with("; in force now\n"),
        "{}",
        unset.stdout
    );
    a.run(&["copy", "sk_live_after_unset"]).ok();
    assert!(
        a.history_texts()
            .contains(&"sk_live_after_unset".to_owned())
    );
    stop_agent(agent_b);
    stop_agent(agent_a);
}

#[test]
fn a_setting_in_this_devices_file_reaches_its_running_agent_or_says_when_it_applies() {
    let pair = pair(Backend::S3, false);
    let a = &pair.a;
    let _logs = LogsOnFailure(vec![a]);
    let file = a.home().join("config.toml");

    // No agent: the file changes, and the next agent starts with it.
    let set = a.run(&["config", "set", "sync.poll_interval", "45s"]).ok();
    assert_eq!(
        set.stdout,
        format!(
            "sync.poll_interval = 45s (config {}); the agent starts with it\n",
            file.display()
        )
    );

    let agent = start_agent(a, None, &[]);
    let set = a.run(&["config", "set", "sync.poll_interval", "2s"]).ok();
    assert_eq!(
        set.stdout,
        format!(
            "sync.poll_interval = 2s (config {}); in force now\n",
            file.display()
        )
    );
    let got = a.json(&["config", "get", "sync.poll_interval"]);
    assert_eq!(got["value"], "2s", "{got}");
    eventually(WAIT, "the agent's log to say so", || {
        common::agent_log(a)
            .contains("settings changed now=[\"sync.poll_interval\"]")
            .then_some(())
    });

    // What the running agent cannot take up is said, and so is a layer above the file that
    // still decides (the tests' devices set FERRY_LAN_PORT).
    let set = a.run(&["config", "set", "lan.port", "47293"]).ok();
    assert_eq!(
        set.stdout,
        "lan.port = 0 (environment FERRY_LAN_PORT); that layer wins over the one just \
         changed: change or remove it there\n"
    );
    let set = a.run(&["config", "set", "lan.peers", "127.0.0.1:9"]).ok();
    assert!(
        set.stdout.ends_with(
            "; the running agent takes it up when it restarts (`ferry stop`, then start it)\n"
        ),
        "{}",
        set.stdout
    );
    let unset = a
        .run(&["--json", "config", "unset", "sync.poll_interval"])
        .ok();
    let unset: serde_json::Value = serde_json::from_str(unset.stdout.trim()).unwrap();
    assert_eq!(unset["value"], "30s", "{unset}");
    assert_eq!(unset["source"], "default", "{unset}");
    assert_eq!(unset["applies"], "now", "{unset}");
    stop_agent(agent);
}
