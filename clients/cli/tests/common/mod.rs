//! Shared helpers: device homes that run the real `ferry` binary, the storage backends of
//! `ferry-test-kit` as store URLs, and the X and Wayland clipboards.

#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

#[allow(unused_imports)]
pub use ferry_test_kit::random::Rng;
#[allow(unused_imports)]
pub use ferry_test_kit::{BACKENDS, Backend, Served, eventually, netns, per_backend, servers};

pub mod browser;
pub mod fill;
mod offer;
#[allow(unused_imports)]
pub use offer::Offer;

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// A repository location, and what keeps its server running.
pub struct Storage {
    pub url: String,
    /// Credentials the device needs in its environment at init/join.
    pub env: Vec<(&'static str, String)>,
    _served: Served,
    /// Runs the servers' tasks while the test thread runs commands.
    pub runtime: tokio::runtime::Runtime,
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn storage(backend: Backend) -> Storage {
    let runtime = runtime();
    let served = runtime.block_on(Served::start(backend));
    serving(runtime, served)
}

/// A WebDAV server that accepts only Digest logins.
pub fn digest_webdav() -> Storage {
    let runtime = runtime();
    let served = Served::webdav(runtime.block_on(servers::webdav_digest()));
    serving(runtime, served)
}

/// nginx's WebDAV, which ignores conditional writes; `None` where it is not installed.
pub fn nginx_webdav() -> Option<Storage> {
    let runtime = runtime();
    let served = Served::nginx()?;
    Some(serving(runtime, served))
}

impl Storage {
    /// Lets pages from `origin` call the storage server, as a bucket's CORS rule does.
    pub fn allow_origin(&self, origin: &str) {
        self._served.allow_origin(origin);
    }

    /// The port the storage server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        let endpoint = match &self._served.url {
            ferry_store::url::StoreUrl::S3(location) => location.endpoint.clone(),
            ferry_store::url::StoreUrl::WebDav(location) => location.url.clone(),
            ferry_store::url::StoreUrl::Folder(_) | ferry_store::url::StoreUrl::Held(_) => {
                panic!("a folder has no port")
            }
        };
        let authority = endpoint.split("://").nth(1).unwrap().split('/').next();
        authority
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Where the server keeps the objects on disk: the repository's files, to tamper with
    /// behind the protocol's back.
    pub fn files(&self) -> PathBuf {
        self._served.files()
    }
}

fn serving(runtime: tokio::runtime::Runtime, served: Served) -> Storage {
    Storage {
        url: served.url.to_string(),
        env: served.env(),
        _served: served,
        runtime,
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

impl Ran {
    fn from(output: Output) -> Ran {
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stdout_bytes: output.stdout,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with the output unless the command succeeded.
    pub fn ok(self) -> Ran {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// One device: a Ferry home with file secrets, and its environment.
pub struct Device {
    pub dir: tempfile::TempDir,
    pub env: Vec<(&'static str, String)>,
    /// Folders this device's machine cannot see when it runs in a network namespace (another
    /// machine's home): covered by an empty tmpfs there.
    pub hidden: Vec<PathBuf>,
}

impl Device {
    pub fn new() -> Device {
        Device {
            dir: tempfile::tempdir().unwrap(),
            env: vec![("FERRY_SECRET_STORE", "file".into())],
            hidden: Vec::new(),
        }
        .on_loopback()
    }

    /// A device that keeps its secrets in the OS keychain (the default).
    pub fn with_keychain() -> Device {
        Device {
            dir: tempfile::tempdir().unwrap(),
            env: Vec::new(),
            hidden: Vec::new(),
        }
        .on_loopback()
    }

    /// Tests talk to nothing beyond this machine: no mDNS on its network, and the LAN path on
    /// a free port (a test connects agents through `lan.peers`).
    ///
    /// Under Wine, every test program shares one clipboard: there `ferry copy` leaves it
    /// alone, or the agents of other tests would record what this one copies.
    fn on_loopback(self) -> Device {
        let device = self
            .with("FERRY_LAN_DISCOVERY", "false")
            .with("FERRY_LAN_PORT", "0");
        match cfg!(windows) {
            true => device.with("FERRY_CLIPBOARD_PLACE_COPIES", "false"),
            false => device,
        }
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// This device on a machine of its own, which cannot see `other`'s home (when it runs in
    /// a network namespace).
    pub fn apart_from(mut self, other: &Device) -> Device {
        self.hidden.push(other.home().to_owned());
        self
    }

    pub fn with(mut self, key: &'static str, value: impl Into<String>) -> Device {
        self.env.push((key, value.into()));
        self
    }

    /// `ferry --home HOME args…`, with a clean environment apart from this device's.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with(args, &[])
    }

    /// [`Device::command`] with `extra` variables.
    pub fn command_with(&self, args: &[&str], extra: &[(&'static str, String)]) -> Command {
        self.command_in(None, args, extra)
    }

    /// [`Device::command_with`], run inside `host`'s network namespace when given.
    pub fn command_in(
        &self,
        host: Option<&netns::Host>,
        args: &[&str],
        extra: &[(&'static str, String)],
    ) -> Command {
        let hidden: Vec<&Path> = self.hidden.iter().map(PathBuf::as_path).collect();
        let mut command = match host {
            Some(host) if !hidden.is_empty() => host.command_hiding(FERRY, &hidden),
            Some(host) => host.command(FERRY),
            None => Command::new(FERRY),
        };
        command.arg("--home").arg(self.home()).args(args);
        command.env_clear();
        for var in ["PATH", "HOME", "TMPDIR", "DBUS_SESSION_BUS_ADDRESS"] {
            if let Some(value) = std::env::var_os(var) {
                command.env(var, value);
            }
        }
        command.env("FERRY_LOG", "info");
        for (key, value) in self.env.iter().chain(extra) {
            command.env(key, value);
        }
        command
    }

    /// The shell command line that runs `ferry --home HOME args…` with this device's
    /// variables (for a terminal in tmux); `args` are quoted.
    pub fn shell_line(&self, args: &[&str]) -> String {
        let mut line: Vec<String> = self
            .env
            .iter()
            .map(|(key, value)| format!("{key}={}", quote(value)))
            .collect();
        line.push(FERRY.to_owned());
        line.push("--home".to_owned());
        line.push(quote(&self.home().display().to_string()));
        line.extend(args.iter().map(|arg| quote(arg)));
        line.join(" ")
    }

    /// `ferry --json args…`, which must succeed, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.run(&all).ok().stdout).unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Ran {
        self.run_full(args, None, &[])
    }

    pub fn run_with_input(&self, args: &[&str], input: Option<&[u8]>) -> Ran {
        self.run_full(args, input, &[])
    }

    pub fn run_full(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
        extra: &[(&'static str, String)],
    ) -> Ran {
        self.run_in(None, args, input, extra)
    }

    /// [`Device::run_full`], inside `host`'s network namespace when given.
    pub fn run_in(
        &self,
        host: Option<&netns::Host>,
        args: &[&str],
        input: Option<&[u8]>,
        extra: &[(&'static str, String)],
    ) -> Ran {
        let mut command = self.command_in(host, args, extra);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = spawn(&mut command);
        let mut stdin = child.stdin.take().unwrap();
        if let Some(input) = input {
            stdin.write_all(input).unwrap();
        }
        drop(stdin);
        Ran::from(child.wait_with_output().unwrap())
    }

    /// The texts in this device's history, newest first.
    pub fn history_texts(&self) -> Vec<String> {
        self.json(&["history"])
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|clip| clip["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// `ferry init` on `storage`; returns the recovery code.
    pub fn init(&self, storage: &Storage, name: &str) -> String {
        self.init_with_relay(storage, name, None)
    }

    /// `ferry init` on `storage`, with `relay` when given; returns the recovery code.
    pub fn init_with_relay(&self, storage: &Storage, name: &str, relay: Option<&str>) -> String {
        let mut args = vec!["--json", "init", "--store", &storage.url, "--name", name];
        args.extend(relay.iter().flat_map(|url| ["--relay", url]));
        let ran = self.run_full(&args, None, &storage.env).ok();
        let json: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
        json["recovery_code"].as_str().unwrap().to_owned()
    }

    /// `ferry join` on `storage` with `code`.
    pub fn join(&self, storage: &Storage, code: &str, name: &str) -> Ran {
        self.join_with_relay(storage, code, name, None)
    }

    /// `ferry join` on `storage` with `code`, and `relay` when given.
    pub fn join_with_relay(
        &self,
        storage: &Storage,
        code: &str,
        name: &str,
        relay: Option<&str>,
    ) -> Ran {
        let mut args = vec![
            "join",
            "--store",
            &storage.url,
            "--recovery-code",
            code,
            "--name",
            name,
        ];
        args.extend(relay.iter().flat_map(|url| ["--relay", url]));
        self.run_full(&args, None, &storage.env)
    }

    /// The files in the home, for "nothing was written" checks.
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.home())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// A relay on 127.0.0.1, run by the storage's runtime.
pub fn relay(storage: &Storage) -> ferry_relay::RunningRelay {
    relay_on(&storage.runtime)
}

/// A relay on 127.0.0.1, run by `runtime`.
pub fn relay_on(runtime: &tokio::runtime::Runtime) -> ferry_relay::RunningRelay {
    runtime
        .block_on(ferry_relay::RunningRelay::start(ferry_relay::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..ferry_relay::Config::default()
        }))
        .unwrap()
}

/// Two devices on one repository: `a` ("alpha") made it, `b` ("beta") joined; with a relay on
/// 127.0.0.1 when asked for.
pub struct Pair {
    pub storage: Storage,
    pub relay: Option<ferry_relay::RunningRelay>,
    pub a: Device,
    pub b: Device,
    pub code: String,
}

pub fn pair(backend: Backend, with_relay: bool) -> Pair {
    let storage = storage(backend);
    let relay = with_relay.then(|| relay(&storage));
    let url = relay.as_ref().map(ferry_relay::RunningRelay::url);
    let (a, b) = (Device::new(), Device::new());
    let code = a.init_with_relay(&storage, "alpha", url.as_deref());
    b.join_with_relay(&storage, &code, "beta", url.as_deref())
        .ok();
    Pair {
        storage,
        relay,
        a,
        b,
        code,
    }
}

/// `text` quoted for a POSIX shell.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// A TCP port on 127.0.0.1 that no one listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `command`. Under Wine, process creation now and then fails with Windows' "internal
/// error" (1359) before the program runs at all; that is tried again, a few times.
pub fn spawn(command: &mut Command) -> Child {
    const WINE_INTERNAL_ERROR: i32 = 1359;
    let mut tries = 0;
    loop {
        match command.spawn() {
            Ok(child) => return child,
            Err(error)
                if cfg!(windows)
                    && error.raw_os_error() == Some(WINE_INTERNAL_ERROR)
                    && tries < 3 =>
            {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("{command:?} did not start: {error}"),
        }
    }
}

/// A child process killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn path_of(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Whether a program is on PATH. Under CI a missing one is a failure, elsewhere the caller
/// skips (scripts/test.sh installs them).
pub fn have(program: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    if !found && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{program} is missing: scripts/test.sh installs it (see its package list)");
    }
    if !found {
        eprintln!("skipping: {program} is not installed (scripts/test.sh installs it)");
    }
    found
}

/// An Xvfb display of its own, stopped on drop.
pub struct Display {
    pub name: String,
    _server: Running,
}

impl Display {
    pub fn start() -> Display {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-noreset",
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "640x480x24",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let name = format!(":{}", line.trim());
        assert!(name.len() > 1, "Xvfb did not say which display it took");
        Display {
            name,
            _server: Running(child),
        }
    }

    fn xclip(&self, args: &[&str]) -> Command {
        let mut command = Command::new("xclip");
        command
            .env("DISPLAY", &self.name)
            .args(["-selection", "clipboard"])
            .args(args);
        command
    }

    /// Copies `bytes` as `target` with xclip, which serves it until something else is copied.
    pub fn copy(&self, target: &str, bytes: &[u8]) -> Running {
        serve(self.xclip(&["-t", target, "-i", "-quiet"]), bytes)
    }

    /// What the clipboard holds as `target`, if anything.
    pub fn paste(&self, target: &str) -> Option<Vec<u8>> {
        read_out(self.xclip(&["-t", target, "-o"]))
    }
}

/// A Wayland desktop of its own: sway on its headless backend, in a runtime directory of its
/// own, stopped on drop. sway refuses to run as root, so under root it runs as `nobody`.
pub struct Wayland {
    runtime: tempfile::TempDir,
    socket: String,
    _server: Running,
}

impl Wayland {
    pub fn start() -> Wayland {
        let runtime = tempfile::tempdir().unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let mut command = if root {
            let chown = Command::new("chown")
                .args(["nobody:nogroup"])
                .arg(runtime.path())
                .status()
                .unwrap();
            assert!(chown.success());
            let mut command = Command::new("setpriv");
            command.args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                "sway",
            ]);
            command
        } else {
            Command::new("sway")
        };
        command
            .args(["-c", "/dev/null"])
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("HOME", runtime.path())
            .env("WLR_BACKENDS", "headless")
            .env("WLR_LIBINPUT_NO_DEVICES", "1")
            .env("WLR_RENDERER", "pixman")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = Running(command.spawn().expect("sway starts"));
        let socket = eventually(Duration::from_secs(15), "sway's socket", || {
            std::fs::read_dir(runtime.path())
                .ok()?
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .find(|name| name.starts_with("wayland-") && !name.ends_with(".lock"))
        });
        Wayland {
            runtime,
            socket,
            _server: server,
        }
    }

    /// Weston on its headless backend: a compositor that offers no data-control, as GNOME
    /// does not.
    pub fn weston() -> Wayland {
        let runtime = tempfile::tempdir().unwrap();
        let socket = "wayland-weston".to_owned();
        let server = Running(
            Command::new("weston")
                .args(["--backend=headless-backend.so", "--idle-time=0"])
                .arg(format!("--socket={socket}"))
                .env("XDG_RUNTIME_DIR", runtime.path())
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("weston starts"),
        );
        eventually(Duration::from_secs(15), "weston's socket", || {
            runtime.path().join(&socket).exists().then_some(())
        });
        Wayland {
            runtime,
            socket,
            _server: server,
        }
    }

    /// What a program needs in its environment to use this desktop (and no X display).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("XDG_RUNTIME_DIR", self.runtime.path().display().to_string()),
            ("WAYLAND_DISPLAY", self.socket.clone()),
        ]
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.envs(self.env()).env_remove("DISPLAY");
        command
    }

    /// Copies `bytes` as `mime` with wl-copy, which serves it until something else is copied.
    pub fn copy(&self, mime: &str, bytes: &[u8]) -> Running {
        let mut command = self.command("wl-copy");
        command.args(["--foreground", "--type", mime]);
        serve(command, bytes)
    }

    /// What the clipboard holds as `mime`, if anything.
    pub fn paste(&self, mime: &str) -> Option<Vec<u8>> {
        let mut command = self.command("wl-paste");
        command.args(["--no-newline", "--type", mime]);
        read_out(command)
    }
}

/// Starts a clipboard tool that reads `bytes` on its standard input and serves them.
fn serve(mut command: Command, bytes: &[u8]) -> Running {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    Running(child)
}

/// The standard output of a clipboard tool that succeeded.
fn read_out(mut command: Command) -> Option<Vec<u8>> {
    let output = command.stderr(Stdio::null()).output().ok()?;
    output.status.success().then_some(output.stdout)
}

/// Starts `device`'s agent on `display` (headless when `None`), logging to `agent.log` in its
/// home, and waits for its socket.
pub fn start_agent(
    device: &Device,
    display: Option<&Display>,
    extra: &[(&'static str, String)],
) -> Running {
    start_agent_in(None, device, display, extra)
}

/// [`start_agent`] inside `host`'s network namespace when given.
pub fn start_agent_in(
    host: Option<&netns::Host>,
    device: &Device,
    display: Option<&Display>,
    extra: &[(&'static str, String)],
) -> Running {
    let _ = std::fs::remove_file(device.home().join("agent.sock"));
    let mut command = device.command_in(host, &["agent"], extra);
    if let Some(display) = display {
        command.env("DISPLAY", &display.name);
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(device.home().join("agent.log"))
        .unwrap();
    command.stdout(log.try_clone().unwrap()).stderr(log);
    let agent = Running(spawn(&mut command));
    #[cfg(windows)]
    AGENT_HOMES
        .lock()
        .unwrap()
        .push((agent.0.id(), device.home().to_owned()));
    eventually(Duration::from_secs(30), "the agent's socket", || {
        device.home().join("agent.sock").exists().then_some(())
    });
    agent
}

/// Stops an agent as a service manager would and waits for it: SIGTERM on Unix; on Windows,
/// which has no signals to send another console's process, `ferry stop` on its home.
pub fn stop_agent(agent: Running) {
    #[cfg(unix)]
    {
        let pid = agent.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    }
    #[cfg(windows)]
    {
        let homes = AGENT_HOMES.lock().unwrap();
        let (_, home) = homes
            .iter()
            .find(|(pid, _)| *pid == agent.0.id())
            .expect("an agent start_agent started");
        let stopped = Command::new(FERRY)
            .arg("--home")
            .arg(home)
            .arg("stop")
            .output()
            .unwrap();
        assert!(stopped.status.success(), "{stopped:?}");
    }
    stopped_cleanly(agent);
}

/// The homes of the agents [`start_agent_in`] started, by process id: how [`stop_agent`]
/// reaches one on Windows.
#[cfg(windows)]
static AGENT_HOMES: std::sync::Mutex<Vec<(u32, PathBuf)>> = std::sync::Mutex::new(Vec::new());

/// Stops `device`'s agent with `ferry stop` and waits for it.
pub fn stop_agent_with_command(device: &Device, agent: Running) {
    let stopped = device.run(&["stop"]).ok();
    assert_eq!(
        stopped.stdout, "The agent stops once it has sent what is pending.\n",
        "{stopped:?}"
    );
    stopped_cleanly(agent);
}

fn stopped_cleanly(mut agent: Running) {
    let status = agent.0.wait().unwrap();
    assert!(
        status.success(),
        "the agent did not stop cleanly: {status:?}"
    );
}

/// A raw connection to `device`'s agent: its Unix socket, or on Windows the named pipe that
/// its home names.
pub fn connect_agent(device: &Device) -> impl std::io::Read + std::io::Write {
    let socket = device.home().join("agent.sock");
    #[cfg(unix)]
    return std::os::unix::net::UnixStream::connect(socket).unwrap();
    #[cfg(windows)]
    {
        let pipe = std::fs::read_to_string(socket).unwrap();
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(pipe.trim())
            .unwrap()
    }
}

/// Prints the agents' logs of `devices` if the test fails while it lives (declare it after the
/// devices, so that it runs before their homes are removed): a failure on a loaded CI machine
/// then says what each agent did.
pub struct LogsOnFailure<'a>(pub Vec<&'a Device>);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (n, device) in self.0.iter().enumerate() {
                eprintln!(
                    "--- agent log of device {n} ({}):\n{}",
                    device.home().display(),
                    agent_log(device)
                );
            }
        }
    }
}

/// The agent's log so far.
pub fn agent_log(device: &Device) -> String {
    std::fs::read_to_string(device.home().join("agent.log")).unwrap_or_default()
}

/// A PNG of noise (noise does not compress, so 300 × 200 goes out as a blob).
pub fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    let seed = 0x2545_f491 ^ u64::from(width) ^ (u64::from(height) << 16);
    let pixels = Rng::new(seed).bytes((width * height * 4) as usize);
    writer.write_image_data(&pixels).unwrap();
    writer.finish().unwrap();
    out
}

/// A PNG's pixels as 8-bit RGBA, whatever its encoding.
pub fn pixels(png: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    buffer.truncate(info.buffer_size());
    let rgba = match info.color_type {
        png::ColorType::Rgba => buffer,
        png::ColorType::Rgb => buffer
            .chunks(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => panic!("unexpected colour type {other:?}"),
    };
    (info.width, info.height, rgba)
}

/// A terminal of its own in tmux (a server on a socket of its own), removed on drop.
pub struct Terminal {
    socket: String,
}

impl Terminal {
    /// Runs `command` in a shell in a new terminal; the shell says its exit status after it.
    pub fn start(command: &str) -> Terminal {
        let socket = format!("ferry-test-{}-{:x}", std::process::id(), rand_suffix());
        let script = format!("{command}; echo \"exit status $?\"; sleep 60");
        let status = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-x", "200", "-y", "40"])
            .arg(script)
            .status()
            .unwrap();
        assert!(status.success(), "tmux started");
        Terminal { socket }
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J"])
    }

    /// Waits until the screen shows `text`; returns the screen.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out after 30s waiting for {text:?} on the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `text` as it is, without Enter.
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }

    /// Presses keys by tmux's names: `Enter`, `Tab`, `Escape`, `C-p`, `Down`…
    pub fn press(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    pub fn type_line(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
        self.tmux(&["send-keys", "Enter"]);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// "laptop" makes the repository on `storage`; "desk" and "phone" join (with `relay` for
/// each, when given) and the laptop vouches for both; the laptop copies one clip, which
/// the others fetch. The recovery code is the last item.
pub fn household_on(storage: &Storage, relay: Option<&str>) -> (Device, Device, Device, String) {
    let laptop = Device::new();
    let code = laptop.init_with_relay(storage, "laptop", relay);
    let desk = Device::new();
    desk.join_with_relay(storage, &code, "desk", relay).ok();
    let phone = Device::new();
    phone.join_with_relay(storage, &code, "phone", relay).ok();
    laptop.run(&["sync"]).ok();
    laptop.run(&["devices", "vouch", "desk", "--yes"]).ok();
    laptop.run(&["devices", "vouch", "phone", "--yes"]).ok();
    laptop.run(&["copy", "before the rotation"]).ok();
    for device in [&desk, &phone] {
        device.run(&["sync"]).ok();
    }
    (laptop, desk, phone, code)
}

pub fn recovery_code(device: &Device) -> String {
    device
        .run(&["key", "show", "--yes"])
        .ok()
        .stdout
        .trim()
        .to_owned()
}

/// `ferry pair` on `device` and `ferry join` on `joiner` (named `name`) through `relay`, both
/// ending well.
pub fn pair_through(device: &Device, joiner: &Device, relay: &str, name: &str) {
    let offer = offer::Offer::start(device, &["--no-qr"]);
    joiner
        .run_with_input(
            &["--json", "join", "--relay", relay, "--name", name],
            Some(format!("{}\n", offer.code).as_bytes()),
        )
        .ok();
    let (status, events, stderr) = offer.finish();
    assert_eq!(status, 0, "ferry pair failed: {events:?}\n{stderr}");
}
