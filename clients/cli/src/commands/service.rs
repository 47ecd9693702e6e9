//! `ferry service`: run the agent as a user service — a systemd user unit on Linux, a launchd
//! agent on macOS, an entry in the user's Run key on Windows (started at logon, without a
//! console window, and stopped with `ferry stop`). Where no journal keeps the service's
//! standard error (Windows, macOS), its agent logs to `agent.log` in the home.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::cli::ServiceAction;
use crate::error::{Failure, file_error};
use crate::home::Home;
use crate::output::Output;

/// The service manager of this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Manager {
    /// systemd, as the user's manager (`systemctl --user`).
    Systemd,
    /// launchd, as a per-user agent (`launchctl`).
    Launchd,
}

const UNIT: &str = "ferry.service";
const LABEL: &str = "org.ferry.agent";
/// The Run key, and the value that holds the agent's command line.
const RUN_KEY: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";
const RUN_VALUE: &str = "Ferry";

impl Manager {
    fn here() -> Manager {
        if cfg!(target_os = "macos") {
            Manager::Launchd
        } else {
            Manager::Systemd
        }
    }

    /// Where the service file goes.
    fn path(self) -> Result<PathBuf, Failure> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let missing = || Failure::new("HOME is not set: cannot find the user's service folder");
        Ok(match self {
            Manager::Systemd => std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| home.map(|h| h.join(".config")))
                .ok_or_else(missing)?
                .join("systemd/user")
                .join(UNIT),
            Manager::Launchd => home
                .ok_or_else(missing)?
                .join("Library/LaunchAgents")
                .join(format!("{LABEL}.plist")),
        })
    }

    /// The service file: the agent of this home, restarted when it fails.
    fn file(self, program: &[String]) -> String {
        match self {
            Manager::Systemd => {
                let exec: Vec<String> = program.iter().map(|a| systemd_quote(a)).collect();
                format!(
                    "[Unit]\n\
                     Description=Ferry clipboard sync agent\n\
                     After=graphical-session.target network-online.target\n\
                     PartOf=graphical-session.target\n\
                     \n\
                     [Service]\n\
                     ExecStart={}\n\
                     Restart=on-failure\n\
                     RestartSec=5\n\
                     \n\
                     [Install]\n\
                     WantedBy=default.target\n",
                    exec.join(" ")
                )
            }
            Manager::Launchd => {
                let arguments: String = program
                    .iter()
                    .map(|a| format!("        <string>{}</string>\n", xml_escape(a)))
                    .collect();
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                     <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
                     \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
                     <plist version=\"1.0\">\n\
                     <dict>\n    <key>Label</key>\n    <string>{LABEL}</string>\n\
                     \x20   <key>ProgramArguments</key>\n    <array>\n{arguments}    </array>\n\
                     \x20   <key>RunAtLoad</key>\n    <true/>\n\
                     \x20   <key>KeepAlive</key>\n    <dict>\n        <key>SuccessfulExit</key>\n        <false/>\n    </dict>\n\
                     </dict>\n</plist>\n"
                )
            }
        }
    }

    fn control(self, args: &[&str]) -> Result<String, Failure> {
        match self {
            Manager::Systemd => control("systemctl", &[&["--user"][..], args].concat()),
            Manager::Launchd => control("launchctl", args),
        }
    }
}

/// Runs a service manager's command; its output, or why it failed.
fn control(program: &str, args: &[&str]) -> Result<String, Failure> {
    let output = Command::new(program).args(args).output().map_err(|e| {
        Failure::new(format!(
            "{program} could not be run ({e}); start `ferry agent` from your session's \
             autostart instead"
        ))
    })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        Ok(text)
    } else {
        Err(Failure::new(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            text.trim()
        )))
    }
}

/// Quotes an argument for systemd's ExecStart.
fn systemd_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=+@".contains(c))
    {
        return arg.to_owned();
    }
    let escaped = arg
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    format!("\"{escaped}\"")
}

/// Quotes an argument for a Windows command line (as `CommandLineToArgvW` splits it).
fn windows_quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    let mut quoted = String::from('"');
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            // Backslashes before a quote are doubled, and the quote escaped.
            '"' => {
                quoted.extend(std::iter::repeat_n('\\', backslashes + 1));
                backslashes = 0;
            }
            _ => backslashes = 0,
        }
        quoted.push(c);
    }
    // So are those before the closing quote.
    quoted.extend(std::iter::repeat_n('\\', backslashes));
    quoted.push('"');
    quoted
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// This program, as a service should start it: an installed `ferry` (the first on PATH)
/// rather than one in a cargo build folder, which `cargo clean` or the next build empties;
/// with what to say about the choice.
fn program() -> Result<(PathBuf, Option<String>), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(format!("the path of this program is unknown: {e}")))?;
    // Cargo keeps its fingerprints beside what it builds.
    let built = exe
        .parent()
        .is_some_and(|folder| folder.join(".fingerprint").is_dir());
    if !built {
        return Ok((exe, None));
    }
    let name = format!("ferry{}", std::env::consts::EXE_SUFFIX);
    let installed = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .filter(|folder| folder.is_absolute())
        .map(|folder| folder.join(&name))
        .find(|candidate| runnable(candidate));
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    Ok(match installed {
        Some(installed) if !same(&installed, &exe) => {
            let said = format!(
                "the service starts the installed {}, not this build's {}",
                installed.display(),
                exe.display()
            );
            (installed, Some(said))
        }
        _ => {
            let said = format!(
                "warning: the service starts {}, in a build folder that `cargo clean` or the \
                 next build empties: install Ferry (`scripts/install.sh`), then run `ferry \
                 service install` again",
                exe.display()
            );
            (exe, Some(said))
        }
    })
}

/// Whether `path` is a file this user may run.
fn runnable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// `ferry [--home DIR]`, with the program's absolute path (see [`program`]).
fn ferry(home: &Home, explicit_home: bool) -> Result<Vec<String>, Failure> {
    let (exe, _) = program()?;
    let mut program = vec![exe.display().to_string()];
    if explicit_home {
        program.extend(["--home".to_owned(), home.data.display().to_string()]);
    }
    Ok(program)
}

/// The agent's command line, as the service runs it.
fn agent(home: &Home, explicit_home: bool) -> Result<Vec<String>, Failure> {
    let mut program = ferry(home, explicit_home)?;
    program.push("agent".to_owned());
    if let Some(log) = log_file(home) {
        program.extend(["--log-file".to_owned(), log.display().to_string()]);
    }
    Ok(program)
}

/// Where the service's agent logs. Nothing keeps a Run-key program's or a launchd agent's
/// standard error, so there it is a file in the home; systemd keeps it in the journal.
fn log_file(home: &Home) -> Option<PathBuf> {
    (cfg!(windows) || cfg!(target_os = "macos")).then(|| home.data.join("agent.log"))
}

/// How to read the service's log, for `ferry service status`.
fn log_place(home: &Home) -> String {
    match log_file(home) {
        Some(path) => path.display().to_string(),
        None => format!("journalctl --user -u {UNIT}"),
    }
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(file_error(parent, "created"))?;
    }
    std::fs::write(path, text).map_err(file_error(path, "written"))
}

/// Whether the service is installed, and its state.
#[derive(Serialize)]
struct Status {
    path: String,
    installed: bool,
    /// What the service manager says (`active`, `loaded`, or why it is not running).
    state: Option<String>,
    /// Where its agent's log is read: a file, or the command that shows it.
    log: Option<String>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.installed {
            return writeln!(f, "not installed (install with `ferry service install`)");
        }
        writeln!(f, "installed: {}", self.path)?;
        if let Some(state) = &self.state {
            writeln!(f, "state: {state}")?;
        }
        match &self.log {
            Some(log) => writeln!(f, "log: {log}"),
            None => Ok(()),
        }
    }
}

/// `ferry service install|uninstall|status`; what it does is said on stderr as it goes.
pub(crate) fn run(
    home: &Home,
    action: ServiceAction,
    explicit_home: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    if cfg!(windows) {
        return run_key(home, action, explicit_home, out);
    }
    let manager = Manager::here();
    let path = manager.path()?;
    let path_text = path.display().to_string();
    match action {
        ServiceAction::Install => {
            if let (_, Some(said)) = program()? {
                out.note(said);
            }
            write(&path, &manager.file(&agent(home, explicit_home)?))?;
            out.note(format!("wrote {path_text}"));
            let started = match manager {
                Manager::Systemd => manager
                    .control(&["daemon-reload"])
                    .and_then(|_| manager.control(&["enable", "--now", UNIT])),
                Manager::Launchd => manager.control(&["load", "-w", &path_text]),
            };
            started.map_err(|failure| {
                Failure::new(format!(
                    "{}; the service file is in place: it starts at the next login, or run \
                     `ferry agent` now",
                    failure.message
                ))
            })?;
            out.note("the agent runs now and at every login (`ferry service status`)");
        }
        ServiceAction::Uninstall => {
            if !path.exists() {
                out.note(format!(
                    "no service is installed ({path_text} does not exist)"
                ));
                return Ok(());
            }
            // Stopping may fail when it was not running; the file goes either way.
            let _ = match manager {
                Manager::Systemd => manager.control(&["disable", "--now", UNIT]),
                Manager::Launchd => manager.control(&["unload", "-w", &path_text]),
            };
            std::fs::remove_file(&path).map_err(file_error(&path, "removed"))?;
            if manager == Manager::Systemd {
                let _ = manager.control(&["daemon-reload"]);
            }
            out.note(format!("removed {path_text}"));
        }
        ServiceAction::Status => {
            let installed = path.exists();
            let state = installed.then(|| {
                let state = match manager {
                    Manager::Systemd => manager.control(&["is-active", UNIT]),
                    Manager::Launchd => manager.control(&["list", LABEL]).map(|_| "loaded".into()),
                };
                match state {
                    Ok(state) => state.trim().to_owned(),
                    Err(failure) => format!("not running ({})", failure.message),
                }
            });
            out.report(&Status {
                path: path_text,
                installed,
                state,
                log: installed.then(|| log_place(home)),
            });
        }
    }
    Ok(())
}

/// `ferry service` on Windows: the Run key's value, written and removed with `reg`; the
/// agent started now without a console window, and stopped with `ferry stop`.
fn run_key(
    home: &Home,
    action: ServiceAction,
    explicit_home: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    let entry = format!(r"{RUN_KEY}\{RUN_VALUE}");
    let installed = || control("reg", &["query", RUN_KEY, "/v", RUN_VALUE]).is_ok();
    let running = || matches!(crate::device::try_lock(home), Ok(None));
    let program = agent(home, explicit_home)?;
    match action {
        ServiceAction::Install => {
            if let (_, Some(said)) = self::program()? {
                out.note(said);
            }
            let line = run_key_line(&program);
            control(
                "reg",
                &[
                    "add", RUN_KEY, "/v", RUN_VALUE, "/t", "REG_SZ", "/d", &line, "/f",
                ],
            )?;
            out.note(format!("wrote {entry}: {line}"));
            if !running() {
                start_unseen(&program)?;
            }
            out.note("the agent runs now and at every logon (`ferry service status`)");
        }
        ServiceAction::Uninstall => {
            if !installed() {
                out.note(format!("no service is installed ({entry} does not exist)"));
                return Ok(());
            }
            if running() {
                let ferry = ferry(home, explicit_home)?;
                let _ = Command::new(&ferry[0])
                    .args(&ferry[1..])
                    .arg("stop")
                    .output();
            }
            control("reg", &["delete", RUN_KEY, "/v", RUN_VALUE, "/f"])?;
            out.note(format!("removed {entry}"));
        }
        ServiceAction::Status => {
            let installed = installed();
            let state = installed.then(|| match running() {
                true => "running".to_owned(),
                false => "not running (it starts at the next logon, or now with `ferry agent`)"
                    .to_owned(),
            });
            out.report(&Status {
                path: entry,
                installed,
                state,
                log: installed.then(|| log_place(home)),
            });
        }
    }
    Ok(())
}

/// The Run key's command line: conhost without a window runs the console program unseen.
fn run_key_line(program: &[String]) -> String {
    let root = std::env::var("SystemRoot").unwrap_or_else(|_| r"C:\Windows".into());
    let conhost = format!(r"{root}\System32\conhost.exe");
    [conhost.as_str(), "--headless"]
        .into_iter()
        .chain(program.iter().map(String::as_str))
        .map(windows_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts `program` (the agent) detached from this console, with no window of its own.
fn start_unseen(program: &[String]) -> Result<(), Failure> {
    let mut command = Command::new(&program[0]);
    command
        .args(&program[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
        const CREATE_NO_WINDOW: u32 = 0x0800_0000;
        command.creation_flags(CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW);
    }
    command.spawn().map(drop).map_err(|e| {
        Failure::new(format!(
            "the agent could not be started ({e}); it starts at the next logon, or run \
             `ferry agent` now"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> Vec<String> {
        [
            "/opt/my ferry/ferry",
            "--home",
            "/home/me/.ferry & co",
            "agent",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn the_systemd_unit_quotes_paths_with_spaces() {
        let unit = Manager::Systemd.file(&program());
        assert!(
            unit.contains(
                "ExecStart=\"/opt/my ferry/ferry\" --home \"/home/me/.ferry & co\" agent\n"
            ),
            "{unit}"
        );
        assert!(unit.contains("Restart=on-failure"));
    }

    /// The Debian package's user unit is the one `ferry service install` writes for the
    /// packaged program, so either way of starting the agent starts the same thing.
    #[test]
    fn the_packaged_user_unit_is_the_one_service_install_writes() {
        let packaged = include_str!("../../debian/ferry.service");
        let written = Manager::Systemd.file(&["/usr/bin/ferry".to_owned(), "agent".to_owned()]);
        assert_eq!(packaged, written);
    }

    #[test]
    fn the_run_key_line_quotes_as_windows_splits_it() {
        let quoted = [
            (
                r"C:\Program Files\ferry.exe",
                r#""C:\Program Files\ferry.exe""#,
            ),
            ("agent", "agent"),
            ("", r#""""#),
            (r#"say "hi""#, r#""say \"hi\"""#),
            (r#"a\"b"#, r#""a\\\"b""#),
            (r"C:\My Ferry\", r#""C:\My Ferry\\""#),
        ];
        for (arg, expected) in quoted {
            assert_eq!(windows_quote(arg), expected, "{arg}");
        }
        let line = run_key_line(&program());
        assert!(
            line.ends_with(
                r#"conhost.exe --headless "/opt/my ferry/ferry" --home "/home/me/.ferry & co" agent"#
            ),
            "{line}"
        );
    }

    #[test]
    fn the_launchd_plist_escapes_its_arguments() {
        let plist = Manager::Launchd.file(&program());
        assert!(
            plist.contains("<string>/home/me/.ferry &amp; co</string>"),
            "{plist}"
        );
        assert!(
            plist.contains("<key>Label</key>\n    <string>org.ferry.agent</string>"),
            "{plist}"
        );
        assert!(
            plist.contains("<key>RunAtLoad</key>\n    <true/>"),
            "{plist}"
        );
    }
}
