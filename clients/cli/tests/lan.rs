//! Nearby devices end to end: two agents on two Xvfb desktops share an S3 repository but no
//! relay, and poll it once an hour; what crosses in seconds crossed over the LAN path, which
//! the second agent reaches through `lan.peers` on 127.0.0.1 (the tests never use mDNS on the
//! machine's network).

mod common;

use std::time::Duration;

use common::{
    Backend, Display, LogsOnFailure, eventually, free_port, have, pair, start_agent, stop_agent,
};

const TEXT: &str = "UTF8_STRING";
const WAIT: Duration = Duration::from_secs(15);

#[test]
fn a_copy_crosses_to_a_nearby_desktop_over_the_lan_once() {
    if !have("Xvfb") || !have("xclip") {
        return;
    }
    let pair = pair(Backend::S3, false);
    let (a, b) = (&pair.a, &pair.b);
    let _logs = LogsOnFailure(vec![a, b]);
    let (desk_a, desk_b) = (Display::start(), Display::start());
    let port = free_port();
    let slow_poll = ("FERRY_SYNC_POLL_INTERVAL", "1h".to_owned());
    let agent_a = start_agent(
        a,
        Some(&desk_a),
        &[slow_poll.clone(), ("FERRY_LAN_PORT", port.to_string())],
    );
    let agent_b = start_agent(
        b,
        Some(&desk_b),
        &[slow_poll, ("FERRY_LAN_PEERS", format!("127.0.0.1:{port}"))],
    );
    eventually(WAIT, "the agents connected over the LAN", || {
        let lan = b.json(&["status"])["lan"].clone();
        (lan["peers"] == serde_json::json!(["alpha"])).then_some(())
    });
    let status = a.run(&["status"]).ok().stdout;
    assert!(
        status.contains("lan       1 peer connected (beta)"),
        "{status}"
    );

    let _owner = desk_a.copy(TEXT, b"across the desk");
    eventually(WAIT, "the clip on B's desktop", || {
        (desk_b.paste(TEXT)? == b"across the desk").then_some(())
    });

    // The bucket is still the durable copy: once B polls it, the clip is there once.
    b.run(&["sync"]).ok();
    let texts: Vec<serde_json::Value> = b.json(&["history"]).as_array().unwrap().clone();
    let copies = texts
        .iter()
        .filter(|clip| clip["text"] == "across the desk")
        .count();
    assert_eq!(copies, 1, "{texts:?}");
    stop_agent(agent_b);
    stop_agent(agent_a);
}
