//! The command line describing itself: completion scripts loaded into a real `bash`, and the
//! manual pages `ferry man` writes.

use std::process::{Command, Output};

const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

fn ferry(args: &[&str]) -> Output {
    // No home, no config: these commands need neither.
    Command::new(FERRY)
        .args(args)
        .env("FERRY_HOME", "/nonexistent/ferry-home")
        .output()
        .unwrap()
}

/// What bash offers for `line` (ending where the cursor is) with ferry's completion loaded.
fn bash_offers(line: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ferry.bash");
    let generated = ferry(&["completions", "bash"]);
    assert!(generated.status.success());
    std::fs::write(&script, &generated.stdout).unwrap();
    let words: Vec<&str> = line.split(' ').collect();
    let program = format!(
        "source {script}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\n\
         COMP_POINT={point}\n_ferry ferry '{current}' '{previous}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script = script.display(),
        words = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        cword = words.len() - 1,
        point = line.len(),
        current = words[words.len() - 1],
        previous = words[words.len() - 2],
    );
    let output = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(output.status.success(), "{output:?}");
    let mut offered: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect();
    offered.sort();
    offered
}

#[test]
fn bash_completes_commands_subcommands_and_flags() {
    assert_eq!(
        bash_offers("ferry co"),
        ["collection", "completions", "config", "copy"]
    );
    assert_eq!(bash_offers("ferry pas"), ["paste"]);
    assert!(bash_offers("ferry key ").contains(&"show".to_owned()));
    assert!(bash_offers("ferry copy --fi").contains(&"--file".to_owned()));
    assert!(bash_offers("ferry completions ").contains(&"fish".to_owned()));
}

#[test]
fn every_shell_gets_a_script() {
    for (shell, marker) in [
        ("bash", "_ferry()"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
        ("elvish", "edit:completion:arg-completer[ferry]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let output = ferry(&["completions", shell]);
        assert!(output.status.success(), "{shell}: {output:?}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: {script}");
    }
    let unknown = ferry(&["completions", "tcsh"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("bash"));
}

#[test]
fn man_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("man1");
    let output = ferry(&["man", "--output", folder.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let pages: Vec<&str> = report["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|page| page.as_str().unwrap())
        .collect();
    for page in [
        "ferry.1",
        "ferry-copy.1",
        "ferry-pair.1",
        "ferry-key-show.1",
    ] {
        assert!(pages.contains(&page), "{page} missing from {pages:?}");
    }
    let main = std::fs::read_to_string(folder.join("ferry.1")).unwrap();
    assert!(main.starts_with(".ie"), "{main}");
    assert!(main.contains(".TH ferry 1"), "{main}");
    let copy = std::fs::read_to_string(folder.join("ferry-copy.1")).unwrap();
    assert!(copy.contains("\\-\\-file"), "{copy}");

    // A file where the folder should be: a clear error, nothing written.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let output = ferry(&["man", "--output", blocked.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot write the manual pages into"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&blocked).unwrap(), b"not a folder");
}
