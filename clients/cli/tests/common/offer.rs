//! `ferry pair` as a person runs it: started, its code read off, the other device's join left
//! to the test, its events and its end collected.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use ferry_protocol::pairing::PairingCode;
use serde_json::Value;

use super::{Device, Running, netns};

/// What `ferry --json pair` prints, line by line, as it happens.
pub struct Offer {
    pub process: Running,
    /// Reads the events from the process's standard output until it ends.
    reader: std::thread::JoinHandle<()>,
    events: mpsc::Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    pub code: String,
    pub uri: String,
    /// The page a browser opens to join (`--browser`).
    pub link: Option<String>,
}

impl Offer {
    pub fn start(device: &Device, args: &[&str]) -> Offer {
        Offer::start_in(None, device, args, &[])
    }

    /// [`Offer::start`] inside `host`'s network namespace when given, with `extra` variables.
    pub fn start_in(
        host: Option<&netns::Host>,
        device: &Device,
        args: &[&str],
        extra: &[(&'static str, String)],
    ) -> Offer {
        let mut all = vec!["--json", "pair"];
        all.extend(args);
        let mut child = device
            .command_in(host, &all, extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (sender, events) = mpsc::channel::<Value>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(serde_json::from_str(&line).unwrap());
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            collected.lock().unwrap().push_str(&text);
        });
        let first = events
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("`ferry pair` showed no code: {}", stderr.lock().unwrap()));
        assert_eq!(first["event"], "code", "{first}");
        Offer {
            process: Running(child),
            reader,
            events,
            stderr,
            code: first["code"].as_str().unwrap().to_owned(),
            uri: first["uri"].as_str().unwrap().to_owned(),
            link: first["link"].as_str().map(str::to_owned),
        }
    }

    pub fn parsed(&self) -> PairingCode {
        PairingCode::parse(&self.code).unwrap().0
    }

    /// Waits for the process to end: its exit code, and the events after the code.
    pub fn finish(mut self) -> (i32, Vec<Value>, String) {
        let status = super::eventually(Duration::from_secs(30), "`ferry pair` to end", || {
            self.process.0.try_wait().unwrap()
        });
        // The process's output ended with it: the reader has read every line once it ends.
        self.reader.join().unwrap();
        let events = self.events.try_iter().collect();
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code().unwrap_or(-1), events, stderr)
    }

    /// Waits for the process to fail, as it must: the reason its last event gives.
    pub fn failed(self) -> String {
        let (code, events, stderr) = self.finish();
        assert_eq!(code, 1, "{stderr}");
        let last = events.last().unwrap();
        assert_eq!(last["event"], "failed", "{events:?}");
        last["reason"].as_str().unwrap().to_owned()
    }
}
