//! Real pub/sub brokers for the relay's scale-out: `redis-server` and `nats-server` (installed by
//! scripts/test.sh) as child processes on a free 127.0.0.1 port, killed on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a broker gets to start listening.
const START: Duration = Duration::from_secs(20);

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `redis-server`.
    Redis,
    /// `nats-server`.
    Nats,
}

/// A broker server process on 127.0.0.1.
pub struct Broker {
    kind: Kind,
    port: u16,
    password: Option<String>,
    /// The CA, certificate and key when the server speaks TLS only.
    tls: Option<[PathBuf; 3]>,
    /// A configuration file for the server.
    config: Option<PathBuf>,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Broker {
    /// A broker anyone on 127.0.0.1 may use.
    pub fn start(kind: Kind) -> Broker {
        Broker::start_with(kind, None, false)
    }

    /// A broker that wants `password` (Redis: `requirepass`; NATS: user "ferry"), and speaks
    /// only TLS with a certificate from a CA of its own when `tls`.
    pub fn start_with(kind: Kind, password: Option<&str>, tls: bool) -> Broker {
        Broker::launch(kind, password, tls, None)
    }

    /// A `nats-server` that reads `config` (its address and port still come from flags).
    pub fn nats_with_config(config: &str) -> Broker {
        Broker::launch(Kind::Nats, None, false, Some(config))
    }

    fn launch(kind: Kind, password: Option<&str>, tls: bool, config: Option<&str>) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let config = config.map(|text| {
            let path = dir.path().join("server.conf");
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut broker = Broker {
            kind,
            port,
            password: password.map(str::to_owned),
            tls: tls.then(|| crate::tls::certificates(dir.path())),
            config,
            child: None,
            dir,
        };
        broker.run();
        broker
    }

    fn run(&mut self) {
        let port = self.port.to_string();
        let mut command = match self.kind {
            Kind::Redis => {
                let mut command = Command::new(program("redis-server"));
                command.args(["--bind", "127.0.0.1", "--save", ""]);
                match &self.tls {
                    None => command.args(["--port", &port]),
                    Some([ca, cert, key]) => command
                        .args([
                            "--port",
                            "0",
                            "--tls-port",
                            &port,
                            "--tls-auth-clients",
                            "no",
                        ])
                        .arg("--tls-ca-cert-file")
                        .arg(ca)
                        .arg("--tls-cert-file")
                        .arg(cert)
                        .arg("--tls-key-file")
                        .arg(key),
                };
                command
                    .args(["--appendonly", "no", "--dir"])
                    .arg(self.dir.path());
                if let Some(password) = &self.password {
                    command.args(["--requirepass", password]);
                }
                command
            }
            Kind::Nats => {
                let mut command = Command::new(program("nats-server"));
                if let Some(config) = &self.config {
                    command.arg("-c").arg(config);
                }
                command.args(["-a", "127.0.0.1", "-p", &port]);
                if let Some([_, cert, key]) = &self.tls {
                    command.args(["--tls", "--tlscert"]).arg(cert);
                    command.arg("--tlskey").arg(key);
                }
                if let Some(password) = &self.password {
                    command.args(["--user", "ferry", "--pass", password]);
                }
                command
            }
        };
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let child = self.child.insert(child);
        let deadline = Instant::now() + START;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let exited = child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("server.log"));
                panic!("{:?} did not start: {exited:?}\n{log:?}", self.kind);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server without closing its sockets (SIGSTOP): it hangs, as a wedged or
    /// partitioned broker does.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the server runs").to_string();
        let status = Command::new("kill").args([signal, &pid]).status().unwrap();
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }

    /// Which broker this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password it wants, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The CA that signed its certificate, when it speaks TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|[ca, ..]| ca.as_path())
    }

    /// The process id of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The URL a relay reaches it by (`--broker`), with the user name but never the password.
    pub fn url(&self) -> String {
        let port = self.port;
        let user = match (self.kind, &self.password) {
            (Kind::Nats, Some(_)) => "ferry@",
            _ => "",
        };
        let scheme = match (self.kind, self.tls.is_some()) {
            (Kind::Redis, false) => "redis",
            (Kind::Redis, true) => "rediss",
            (Kind::Nats, false) => "nats",
            (Kind::Nats, true) => "tls",
        };
        format!("{scheme}://{user}127.0.0.1:{port}")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server program: on PATH, or where Debian installs it (`nats-server` is in /usr/sbin).
fn program(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed; scripts/test.sh installs it"))
}
