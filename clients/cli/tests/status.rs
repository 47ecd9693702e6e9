//! `ferry status` tells what is really happening, from a running agent: that it runs, whether
//! the storage answers and since when, how the relay connection stands, and each problem with
//! its time, marked resolved once its cause is gone. Real `ferry` processes, a folder
//! repository taken away (and not made again meanwhile) and given back, and a real relay
//! stopped.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{Backend, LogsOnFailure, eventually, pair, start_agent, stop_agent};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn status_follows_a_storage_outage_and_a_relay_that_stops() {
    let mut pair = pair(Backend::Folder, true);
    let relay = pair.relay.take().unwrap();
    let a = &pair.a;
    let _logs = LogsOnFailure(vec![a]);
    let fast = [("FERRY_SYNC_POLL_INTERVAL", "300ms".to_owned())];
    let agent = start_agent(a, None, &fast);
    let status = || a.json(&["status"]);

    // All well: the agent runs, the storage answers, the relay is connected.
    eventually(WAIT, "the relay connected", || {
        (status()["relay_state"]["state"] == "connected").then_some(())
    });
    let text = a.run(&["status"]).ok().stdout;
    assert!(text.contains("\nagent     running (pid "), "{text}");
    assert!(text.contains(": answering for "), "{text}");
    assert!(text.contains(": connected for "), "{text}");
    assert!(!text.contains("error "), "{text}");
    // The agent keeps its memory (history, keys) out of core files.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.0.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(fields[4..6], ["0", "0"], "{core}");

    // The storage goes away (moved, as a drive unmounted): failing, since when, and why; and
    // nothing is written where it was.
    let root = PathBuf::from(pair.storage.url.strip_prefix("file://").unwrap());
    let away = root.with_extension("away");
    std::fs::rename(&root, &away).unwrap();
    a.run(&["copy", "during the outage"]).ok();
    let during = eventually(WAIT, "the storage to be failing", || {
        let now = status();
        let unresolved = |what: &str| {
            now["problems"].as_array().unwrap().iter().any(|p| {
                p["message"].as_str().unwrap().starts_with(what) && p["resolved_ms"].is_null()
            })
        };
        (now["storage"]["answering"] == false
            && unresolved("upload failed")
            && unresolved("fetch failed"))
        .then_some(now)
    });
    assert!(
        during["storage"]["since_ms"].as_u64().unwrap() > 0,
        "{during}"
    );
    assert!(
        !root.exists(),
        "the folder was made again while it was away"
    );
    let text = a.run(&["status"]).ok().stdout;
    assert!(text.contains(": failing for "), "{text}");
    assert!(
        text.contains("it is not there: unmounted, moved or deleted"),
        "{text}"
    );
    assert!(text.contains("\nerror     "), "{text}");
    assert!(
        text.contains("\n          what is recorded waits on this device; last upload "),
        "{text}"
    );

    // Back: answering again, the copy sent, and each problem shown as resolved.
    std::fs::rename(&away, &root).unwrap();
    let after = eventually(WAIT, "every problem to be resolved", || {
        let now = status();
        let problems = now["problems"].as_array().unwrap().clone();
        (now["storage"]["answering"] == true
            && now["pending_ops"] == 0
            && !problems.is_empty()
            && problems.iter().all(|p| !p["resolved_ms"].is_null()))
        .then_some(now)
    });
    assert!(after["last_upload_ms"].as_u64().is_some(), "{after}");
    let text = a.run(&["status"]).ok().stdout;
    assert!(text.contains(": answering for "), "{text}");
    assert!(!text.contains("\nerror     "), "{text}");
    assert!(text.contains("\nresolved  "), "{text}");
    assert!(text.contains("(fine again for "), "{text}");

    // The relay stops: not connected, since when, and the next try.
    pair.storage.runtime.block_on(relay.stop()).unwrap();
    let lost = eventually(WAIT, "the relay to be missed", || {
        let now = status();
        (now["relay_state"]["state"] == "waiting").then_some(now)
    });
    let since = lost["relay_state"]["since_ms"].as_u64().unwrap();
    let next_try = lost["relay_state"]["retry_at_ms"].as_u64().unwrap();
    // Attempts go on; "not connected for" still counts from the loss.
    let later = eventually(WAIT, "another attempt", || {
        let now = status();
        let retry_at = now["relay_state"]["retry_at_ms"].as_u64();
        retry_at.is_some_and(|at| at > next_try).then_some(now)
    });
    assert_eq!(
        later["relay_state"]["since_ms"].as_u64(),
        Some(since),
        "{later}"
    );
    let text = a.run(&["status"]).ok().stdout;
    assert!(text.contains(": not connected for "), "{text}");
    assert!(text.contains("; polling meanwhile"), "{text}");

    // Without the agent, status says so, and what the command itself found.
    stop_agent(agent);
    let text = a.run(&["status"]).ok().stdout;
    assert!(text.contains("\nagent     not running: "), "{text}");
    assert!(
        text.contains(": answering just now; last upload "),
        "{text}"
    );
    let now: Value = a.json(&["status"]);
    assert_eq!(now["agent"]["running"], false, "{now}");
}
