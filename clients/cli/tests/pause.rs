//! `ferry pause` and `ferry resume`, end to end: two agents on two Xvfb desktops sync through a
//! real S3-compatible server and a real relay; while one is paused its copies are not recorded
//! and the other's do not reach it, until it resumes (by command, or when its time runs out),
//! across a restart of its agent. And without an agent: commands keep what they record here.

mod common;

use std::time::Duration;

use common::{
    Backend, Device, Display, agent_log, eventually, have, pair, start_agent, stop_agent,
};

const TEXT: &str = "UTF8_STRING";
const WAIT: Duration = Duration::from_secs(15);

/// Waits until `device`'s agent log holds `line` more than `seen` times; returns the new count.
fn logged(device: &Device, line: &str, seen: usize) -> usize {
    eventually(WAIT, line, || {
        let count = agent_log(device).matches(line).count();
        (count > seen).then_some(count)
    })
}

/// Copies `text` on A's desktop and waits until A has uploaded it (and the relay told B).
fn copied_on_a(a: &Device, desk_a: &Display, text: &str) -> common::Running {
    let owner = desk_a.copy(TEXT, text.as_bytes());
    eventually(WAIT, "A's upload", || {
        let status = a.json(&["status"]);
        (a.history_texts().contains(&text.to_owned()) && status["pending_segments"] == 0)
            .then_some(())
    });
    owner
}

#[test]
fn a_paused_device_neither_records_nor_receives_until_it_resumes() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let mut pair = pair(Backend::S3, true);
    let _relay = pair.relay.take().unwrap();
    let (a, b) = (&pair.a, &pair.b);
    let _logs = common::LogsOnFailure(vec![a, b]);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    // Polling is slow: what arrives came through the relay, which a paused agent ignores.
    let slow_poll = [("FERRY_SYNC_POLL_INTERVAL", "60s".to_owned())];
    let _agent_a = start_agent(a, Some(&desk_a), &slow_poll);
    let mut agent_b = start_agent(b, Some(&desk_b), &slow_poll);

    let paused = b.json(&["pause"]);
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["until_ms"], serde_json::Value::Null);
    assert_eq!(
        b.json(&["status"])["paused"]["until_ms"],
        serde_json::Value::Null
    );
    let status = b.run(&["status"]).ok().stdout;
    assert!(
        status.contains("sync      paused until `ferry resume`"),
        "{status}"
    );

    // B's own copy is not recorded.
    let _owner = desk_b.copy(TEXT, b"copied on B while paused");
    logged(
        b,
        "a copy was not recorded: sync is paused on this device",
        0,
    );
    let skipped = b.run(&["log", "--kind", "filter"]).ok().stdout;
    assert!(
        skipped.contains("\tskipped\t-\tsync is paused on this device (`ferry resume`)"),
        "{skipped}"
    );
    // A's copy is announced to B, which ignores it.
    let _owner = copied_on_a(a, &desk_a, "from A while B is paused");
    let hints = logged(b, "sync is paused: a relay hint was ignored", 0);
    assert_eq!(
        desk_b.paste(TEXT).as_deref(),
        Some(&b"copied on B while paused"[..])
    );
    // An explicit sync is refused, saying why and what to do.
    let refused = b.run(&["sync"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("`ferry resume` first"),
        "{}",
        refused.stderr
    );

    // The pause outlives the agent.
    stop_agent(agent_b);
    agent_b = start_agent(b, Some(&desk_b), &slow_poll);
    assert!(b.json(&["status"])["paused"].is_object());
    let _owner = copied_on_a(a, &desk_a, "from A after B restarted");
    logged(b, "sync is paused: a relay hint was ignored", hints);
    assert!(
        !b.history_texts()
            .contains(&"from A after B restarted".to_owned()),
        "a paused agent fetched"
    );

    // Resumed: what A copied is fetched and placed at once.
    let resumed = b.json(&["resume"]);
    assert_eq!(resumed["was_paused"], true);
    eventually(WAIT, "A's clip on B after resume", || {
        (desk_b.paste(TEXT)? == b"from A after B restarted").then_some(())
    });
    assert!(b.json(&["status"])["paused"].is_null());

    // A pause with an end resumes by itself.
    let timed = b.json(&["pause", "--for", "3s"]);
    assert!(timed["until_ms"].as_u64().is_some());
    let shown = b.run(&["status"]).ok().stdout;
    assert!(shown.contains("sync      paused until "), "{shown}");
    let hints = agent_log(b)
        .matches("sync is paused: a relay hint was ignored")
        .count();
    let _owner = copied_on_a(a, &desk_a, "from A during the timed pause");
    logged(b, "sync is paused: a relay hint was ignored", hints);
    eventually(WAIT, "A's clip on B after the pause ran out", || {
        (desk_b.paste(TEXT)? == b"from A during the timed pause").then_some(())
    });

    // What B copied while paused was never recorded anywhere.
    for device in [a, b] {
        let texts = device.history_texts();
        assert!(
            !texts.contains(&"copied on B while paused".to_owned()),
            "{texts:?}"
        );
    }
    stop_agent(agent_b);
}

#[test]
fn without_an_agent_a_paused_device_keeps_what_it_records() {
    let pair = pair(Backend::Folder, false);
    let (a, b) = (&pair.a, &pair.b);
    b.run(&["pause", "--for", "1h"]).ok();
    let copied = b.run(&["copy", "kept on B"]).ok();
    assert!(
        copied.stderr.contains("sync is paused until"),
        "{}",
        copied.stderr
    );
    assert!(
        copied.stderr.contains("goes out on resume"),
        "{}",
        copied.stderr
    );
    assert_eq!(b.json(&["status"])["pending_ops"], 1);
    // A copy of A's is not fetched by B's commands either.
    a.run(&["copy", "from A"]).ok();
    assert!(!b.history_texts().contains(&"from A".to_owned()));
    let paste = b.run(&["paste"]).ok();
    assert_eq!(paste.stdout, "kept on B");

    // A pause of no length is a usage error; resuming twice is harmless.
    assert_eq!(b.run(&["pause", "--for", "0s"]).code, 2);
    assert!(b.run(&["resume"]).ok().stdout.contains("Sync resumed"));
    assert!(b.run(&["resume"]).ok().stdout.contains("not paused"));
    b.run(&["sync"]).ok();
    assert!(a.history_texts().contains(&"kept on B".to_owned()));
    assert!(b.history_texts().contains(&"from A".to_owned()));
}
