//! Traffic control end to end, on the real S3 test server with a relay: a 16 MiB file copied on
//! a device whose agent keeps to 2 MiB/s takes its eight seconds, while a text copied during it
//! reaches the other device before the file is whole in storage; the download limit holds a
//! paste the same way.

mod common;

use std::time::{Duration, Instant};

use common::{Backend, Device, Rng, eventually, pair, start_agent, stop_agent};

const MIB: usize = 1024 * 1024;

/// Random bytes (xorshift), so nothing compresses or pads them away.
fn noise(len: usize) -> Vec<u8> {
    Rng::new(0x2545_f491_4f6c_dd1d).bytes(len)
}

/// Whether `device` logged its blob as uploaded whole.
fn blob_uploaded(device: &Device) -> bool {
    device
        .run(&["log", "--kind", "blob"])
        .ok()
        .stdout
        .lines()
        .any(|line| line.contains("up") && line.contains("ok"))
}

#[test]
fn a_large_file_keeps_to_the_limit_and_a_copy_does_not_wait_behind_it() {
    let mut pair = pair(Backend::S3, true);
    let _relay = pair.relay.take().unwrap();
    let (a, b) = (&pair.a, &pair.b);
    let _logs = common::LogsOnFailure(vec![a, b]);
    let slow_poll = ("FERRY_SYNC_POLL_INTERVAL", "60s".to_owned());
    let agent_a = start_agent(
        a,
        None,
        &[
            slow_poll.clone(),
            ("FERRY_SYNC_UPLOAD_LIMIT", "2MiB/s".to_owned()),
        ],
    );
    let agent_b = start_agent(b, None, &[slow_poll]);

    let file = a.home().join("big.bin");
    let content = noise(16 * MIB);
    std::fs::write(&file, &content).unwrap();
    let started = Instant::now();
    let id = a
        .run(&["copy", "--file", file.to_str().unwrap()])
        .ok()
        .stdout;
    let id = id.trim();
    a.run(&["copy", "typed while the file goes out"]).ok();

    // The text reaches B through the relay while the file is still on its way.
    eventually(Duration::from_secs(30), "the text on B", || {
        b.history_texts()
            .contains(&"typed while the file goes out".to_owned())
            .then_some(())
    });
    assert!(
        !blob_uploaded(a),
        "the text came only after the whole file: {:?}",
        started.elapsed()
    );
    // Until the file is whole, B says it is on its way.
    let early = b.run(&["paste", id, "--output", "/dev/null"]);
    assert_eq!(early.code, 1, "{early:?}");
    assert!(
        early.stderr.contains("still on its way"),
        "{}",
        early.stderr
    );

    let out = b.home().join("big.out");
    eventually(Duration::from_secs(60), "the file on B", || {
        let pasted = b.run(&["paste", id, "--output", out.to_str().unwrap()]);
        (pasted.code == 0).then_some(())
    });
    let took = started.elapsed();
    assert_eq!(std::fs::read(&out).unwrap(), content);
    assert!(blob_uploaded(a));
    // 16 MiB (and the seals' few bytes) at 2 MiB/s: eight seconds at least.
    assert!(took >= Duration::from_millis(7900), "{took:?}");
    stop_agent(agent_b);
    stop_agent(agent_a);

    // Coming in: a paste on a device with a 4 MiB/s download limit takes its four seconds.
    let c = Device::new();
    c.join(&pair.storage, &pair.code, "gamma").ok();
    let out = c.home().join("big.out");
    let started = Instant::now();
    c.run_full(
        &["paste", id, "--output", out.to_str().unwrap()],
        None,
        &[("FERRY_SYNC_DOWNLOAD_LIMIT", "4MiB/s".to_owned())],
    )
    .ok();
    let took = started.elapsed();
    assert_eq!(std::fs::read(&out).unwrap(), content);
    assert!(took >= Duration::from_millis(3900), "{took:?}");
}
