//! `ferry service`: run the agent as a user service — a systemd user unit on Linux, a launchd
//! agent on macOS.

use std::path::PathBuf;
use std::process::Command;

use crate::cli::ServiceAction;
use crate::error::Failure;
use crate::home::Home;

const UNIT: &str = "ferry.service";

fn unit_path() -> Result<PathBuf, Failure> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| Failure::new("HOME is not set: cannot find the user's service folder"))?;
    Ok(config.join("systemd/user").join(UNIT))
}

/// The unit: the agent of this home, restarted if it fails.
fn unit(home: &Home, explicit_home: bool) -> Result<String, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(format!("the path of this program is unknown: {e}")))?;
    let mut exec = format!("{} agent", exe.display());
    if explicit_home {
        exec = format!("{} --home {} agent", exe.display(), home.data.display());
    }
    Ok(format!(
        "[Unit]\n\
         Description=Ferry clipboard sync agent\n\
         After=graphical-session.target network-online.target\n\
         PartOf=graphical-session.target\n\
         \n\
         [Service]\n\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    ))
}

fn systemctl(args: &[&str]) -> Result<String, Failure> {
    let output = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .map_err(|e| {
            Failure::new(format!(
                "systemctl could not be run ({e}); start the agent another way, e.g. `ferry agent` \
                 from your session's autostart"
            ))
        })?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if output.status.success() || args.first() == Some(&"status") {
        Ok(text)
    } else {
        Err(Failure::new(format!(
            "systemctl --user {} failed: {}",
            args.join(" "),
            text.trim()
        )))
    }
}

pub(crate) fn run(home: &Home, action: ServiceAction, explicit_home: bool) -> Result<(), Failure> {
    if cfg!(target_os = "macos") {
        return Err(Failure::new(
            "on macOS, add a launchd agent running `ferry agent` (~/Library/LaunchAgents); \
             `ferry service` manages systemd user units",
        ));
    }
    let path = unit_path()?;
    match action {
        ServiceAction::Install => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    Failure::new(format!("{} could not be created: {e}", parent.display()))
                })?;
            }
            std::fs::write(&path, unit(home, explicit_home)?).map_err(|e| {
                Failure::new(format!("{} could not be written: {e}", path.display()))
            })?;
            println!("wrote {}", path.display());
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", "--now", UNIT])?;
            println!("the agent runs now and at every login (`ferry service status`)");
            Ok(())
        }
        ServiceAction::Uninstall => {
            if path.exists() {
                let _ = systemctl(&["disable", "--now", UNIT]);
                std::fs::remove_file(&path).map_err(|e| {
                    Failure::new(format!("{} could not be removed: {e}", path.display()))
                })?;
                let _ = systemctl(&["daemon-reload"]);
                println!("removed {}", path.display());
            } else {
                println!(
                    "no service is installed ({} does not exist)",
                    path.display()
                );
            }
            Ok(())
        }
        ServiceAction::Status => {
            if !path.exists() {
                println!("not installed (install with `ferry service install`)");
                return Ok(());
            }
            println!("installed: {}", path.display());
            print!("{}", systemctl(&["status", "--no-pager", UNIT])?);
            Ok(())
        }
    }
}
