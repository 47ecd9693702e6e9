//! A LAN of its own for the tests of nearby devices: network namespaces joined by a bridge,
//! with addresses in 10.47.0.0/24 that exist only inside them. Each host has its loopback and
//! one interface on the bridge, and nothing else: the machine's own network (and so the
//! storage and relay servers the tests run on its 127.0.0.1) is out of reach until a test
//! [`Host::forward`]s a port in. Every namespace is deleted on drop (and ones left behind by a
//! killed test run are deleted by the next).
//!
//! Making namespaces takes root: [`Network::create`] is `None` elsewhere, and under `CI=true`
//! it fails instead.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What every namespace these tests make is named after.
const PREFIX: &str = "ferry-test-";

/// A bridge in a namespace of its own, and hosts on it.
pub struct Network {
    bridge: String,
    hosts: Vec<Host>,
}

/// One machine on the test LAN: a network namespace with an address on the bridge.
pub struct Host {
    namespace: String,
    addr: Ipv4Addr,
}

impl Network {
    /// A bridge with `hosts` hosts on it, at 10.47.0.1, 10.47.0.2, …; `None` (said on stderr)
    /// where namespaces cannot be made, which under `CI=true` is a failure.
    pub fn create(hosts: usize) -> Option<Network> {
        if let Err(why) = usable() {
            let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(!in_ci, "network namespaces are needed: {why}");
            eprintln!("skipping: {why}");
            return None;
        }
        remove_abandoned();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "{PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let bridge = format!("{id}-bridge");
        // From here on, whatever was made is deleted on drop, also when a step fails.
        let mut network = Network {
            bridge: bridge.clone(),
            hosts: Vec::new(),
        };
        ip(&["netns", "add", &bridge]);
        ip(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &bridge, "link", "set", "br0", "up"]);
        for n in 0..hosts {
            let host = Host {
                namespace: format!("{id}-host{n}"),
                addr: Ipv4Addr::new(10, 47, 0, n as u8 + 1),
            };
            ip(&["netns", "add", &host.namespace]);
            network.hosts.push(host);
            let (ns, port) = (&network.hosts[n].namespace, format!("port{n}"));
            ip(&[
                "-n", &bridge, "link", "add", &port, "type", "veth", "peer", "name", "lan0",
                "netns", ns,
            ]);
            ip(&["-n", &bridge, "link", "set", &port, "master", "br0", "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", "lan0", "up"]);
            let addr = format!("{}/24", network.hosts[n].addr);
            ip(&["-n", ns, "addr", "add", &addr, "dev", "lan0"]);
        }
        Some(network)
    }

    /// The `n`th host.
    pub fn host(&self, n: usize) -> &Host {
        &self.hosts[n]
    }

    /// Makes the bridge stop passing multicast between hosts, as Wi-Fi with client isolation
    /// or a mesh network does: mDNS goes nowhere, unicast still flows.
    pub fn block_multicast(&self) {
        for n in 0..self.hosts.len() {
            let port = format!("port{n}");
            let args = [
                "-n",
                &self.bridge,
                "link",
                "set",
                "dev",
                &port,
                "mcast_flood",
                "off",
            ];
            run("bridge", &args);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in &self.hosts {
            delete(&host.namespace);
        }
        delete(&self.bridge);
    }
}

impl Host {
    /// The host's address on the bridge.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// `program` run inside this host's namespace (it keeps the filesystem, so a Unix socket,
    /// an X display's or an agent's, works across).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace])
            .arg(program);
        command
    }

    /// [`Host::command`] on a machine that also has a disk of its own: each of `hidden` (the
    /// folders of another machine) is covered by an empty tmpfs in the program's mount
    /// namespace, so nothing there can be read or written from it.
    pub fn command_hiding(
        &self,
        program: impl AsRef<std::ffi::OsStr>,
        hidden: &[&Path],
    ) -> Command {
        let mut command = self.command("unshare");
        command.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            r#"while [ "$1" != -- ]; do mount -t tmpfs ferry-hidden "$1" || exit 125; shift; done; shift; exec "$@""#,
            "sh",
        ]);
        command.args(hidden).arg("--").arg(program);
        command
    }

    /// Makes `127.0.0.1:port` inside this host reach `127.0.0.1:port` of the machine (a server
    /// the test runs there) until the returned forwarder is dropped: two `socat`s joined by a
    /// Unix socket in `dir`, since only the filesystem is shared.
    pub fn forward(&self, port: u16, dir: &Path) -> Forward {
        self.forward_at(Ipv4Addr::LOCALHOST, port, dir)
    }

    /// [`Host::forward`] at this host's address on the bridge: the machine's server, as one
    /// this host serves to the whole LAN at `addr():port`.
    pub fn serve_on_lan(&self, port: u16, dir: &Path) -> Forward {
        self.forward_at(self.addr, port, dir)
    }

    fn forward_at(&self, at: Ipv4Addr, port: u16, dir: &Path) -> Forward {
        let socket = dir.join(format!("forward-{}-{at}-{port}.sock", self.addr));
        let _ = std::fs::remove_file(&socket);
        let outside = spawn(Command::new("socat").args([
            format!("UNIX-LISTEN:{},fork", socket.display()),
            format!("TCP:127.0.0.1:{port}"),
        ]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "socat did not open {socket:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let inside = spawn(self.command("socat").args([
            format!("TCP-LISTEN:{port},bind={at},reuseaddr,fork"),
            format!("UNIX-CONNECT:{}", socket.display()),
        ]));
        // Listening once a connection from inside is accepted.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .command("socat")
            .args(["-u", "/dev/null", &format!("TCP:{at}:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
        {
            assert!(
                Instant::now() < deadline,
                "the forwarder in {} did not listen",
                self.namespace
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Forward {
            processes: vec![inside, outside],
        }
    }
}

/// A port forwarded into a host; closed on drop.
pub struct Forward {
    processes: Vec<Child>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

fn spawn(command: &mut Command) -> Child {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat starts (scripts/test.sh installs it)")
}

/// Why namespaces cannot be made here, if they cannot.
fn usable() -> Result<(), String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if !root {
        return Err("making network namespaces takes root".into());
    }
    for program in ["ip", "socat"] {
        let found = Command::new(program)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(format!(
                "{program} is missing (scripts/test.sh installs it)"
            ));
        }
    }
    Ok(())
}

fn ip(args: &[&str]) {
    run("ip", args);
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .expect("iproute2 runs");
    assert!(
        output.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn delete(namespace: &str) {
    let _ = Command::new("ip")
        .args(["netns", "delete", namespace])
        .stderr(Stdio::null())
        .status();
}

/// Deletes the namespaces of test runs whose process is gone (killed before their drops ran).
fn remove_abandoned() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            delete(&name);
        }
    }
}
