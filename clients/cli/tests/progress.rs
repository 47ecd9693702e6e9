//! Progress bars for large content, in a real terminal (tmux): `ferry copy --file` and
//! `ferry paste --output` of a few MiB draw bytes, rate and time left, through an agent and
//! without one; a paste cut short and run again starts its bar where it stopped; nothing is
//! drawn when standard error is not a terminal, or with `--json`.

mod common;

use std::time::Duration;

use common::{
    Backend, Device, Rng, Terminal, eventually, have, pair, quote, start_agent, stop_agent,
};

const MIB: usize = 1024 * 1024;
const WAIT: Duration = Duration::from_secs(30);

fn noise(len: usize) -> Vec<u8> {
    Rng::new(0x9e37_79b9_7f4a_7c15).bytes(len)
}

/// Runs `args` on `device` in a terminal of its own, with `env` set.
fn in_terminal(device: &Device, env: &[(&str, &str)], args: &[&str]) -> Terminal {
    let vars: Vec<String> = env
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect();
    Terminal::start(&format!("{} {}", vars.join(" "), device.shell_line(args)))
}

/// Waits until the terminal shows a bar: `x.xx MiB/4.00 MiB`, a rate and the time left.
fn shows_a_bar(terminal: &Terminal, total: &str) -> String {
    eventually(WAIT, "a progress bar", || {
        let screen = terminal.screen();
        (screen.contains(&format!("/{total}")) && screen.contains("/s") && screen.contains("left"))
            .then_some(screen)
    })
}

fn succeeded(terminal: &Terminal) {
    let screen = terminal.wait_for("exit status");
    assert!(screen.contains("exit status 0"), "{screen}");
}

#[test]
fn large_copies_and_pastes_draw_a_bar_on_a_terminal_only() {
    if !have("tmux") {
        return;
    }
    let pair = pair(Backend::Folder, false);
    let (a, b) = (&pair.a, &pair.b);
    let file = a.home().join("four.bin");
    let content = noise(4 * MIB);
    std::fs::write(&file, &content).unwrap();
    let file = file.to_str().unwrap();

    // Without an agent: the copy uploads it itself, at 2 MiB/s.
    let terminal = in_terminal(
        a,
        &[("FERRY_SYNC_UPLOAD_LIMIT", "2MiB/s")],
        &["copy", "--file", file],
    );
    shows_a_bar(&terminal, "4.00 MiB");
    succeeded(&terminal);
    let id = a.json(&["history"])[0]["id"].as_str().unwrap().to_owned();

    // A paste at 1 MiB/s, cut short after two chunks, then run again: its bar starts where
    // the first stopped.
    let out = b.home().join("four.out");
    let out = out.to_str().unwrap();
    let slow = [("FERRY_SYNC_DOWNLOAD_LIMIT", "1MiB/s")];
    let terminal = in_terminal(b, &slow, &["paste", &id, "--output", out]);
    shows_a_bar(&terminal, "4.00 MiB");
    eventually(WAIT, "two chunks", || {
        terminal
            .screen()
            .contains("2.00 MiB/4.00 MiB")
            .then_some(())
    });
    // Closing the terminal ends the paste (the next one waits for its lock if need be).
    drop(terminal);
    let terminal = in_terminal(b, &slow, &["paste", &id, "--output", out]);
    let first = shows_a_bar(&terminal, "4.00 MiB");
    assert!(!first.contains(" 0 B/4.00 MiB"), "{first}");
    assert!(
        !first.contains("1.00 MiB/4.00 MiB"),
        "the bar began at the start:\n{first}"
    );
    succeeded(&terminal);
    assert_eq!(std::fs::read(out).unwrap(), content);

    // Not a terminal, or --json: no bar.
    std::fs::remove_file(out).unwrap();
    let c = Device::new();
    c.join(&pair.storage, &pair.code, "gamma").ok();
    let piped = c.run(&["paste", &id, "--output", out]).ok();
    assert!(!piped.stderr.contains("left"), "{}", piped.stderr);
    let d = Device::new();
    d.join(&pair.storage, &pair.code, "delta").ok();
    let json_out = d.home().join("json.out");
    let terminal = in_terminal(
        &d,
        &[],
        &[
            "--json",
            "paste",
            &id,
            "--output",
            json_out.to_str().unwrap(),
        ],
    );
    succeeded(&terminal);
    assert!(!terminal.screen().contains("left"), "{}", terminal.screen());

    // Through an agent: the copy hands the file over and follows the agent's upload.
    let agent = start_agent(a, None, &[("FERRY_SYNC_UPLOAD_LIMIT", "2MiB/s".to_owned())]);
    let second = a.home().join("second.bin");
    std::fs::write(&second, noise(3 * MIB + 5)).unwrap();
    let terminal = in_terminal(a, &[], &["copy", "--file", second.to_str().unwrap()]);
    shows_a_bar(&terminal, "3.00 MiB");
    succeeded(&terminal);
    stop_agent(agent);
}
