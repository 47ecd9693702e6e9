//! The command line describing itself: shell completions and manual pages, generated from the
//! same definitions as the parser ([`Cli`]), so they cannot fall behind it.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use serde::Serialize;

use crate::cli::Cli;
use crate::error::Failure;
use crate::output::Output;

/// Prints the completion script for `shell`. (Written through [`Output`]: the generator itself
/// panics when standard output is closed early, as by `| head`.)
pub(crate) fn completions(shell: Shell, out: &mut Output) {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut script);
    out.raw(&script);
}

/// The pages `ferry man` wrote.
#[derive(Serialize)]
struct Pages {
    folder: PathBuf,
    pages: Vec<String>,
}

impl fmt::Display for Pages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Wrote {} manual pages into {} (ferry.1 and one per command).",
            self.pages.len(),
            self.folder.display()
        )?;
        writeln!(
            f,
            "Read one with: man -l {}",
            self.folder.join("ferry.1").display()
        )
    }
}

/// Writes `ferry.1` and a page per command (`ferry-copy.1`, …) into `folder`.
pub(crate) fn man_pages(folder: &Path, out: &mut Output) -> Result<(), Failure> {
    let cannot = |error: std::io::Error| {
        Failure::new(format!(
            "cannot write the manual pages into {}: {error}",
            folder.display()
        ))
    };
    std::fs::create_dir_all(folder).map_err(cannot)?;
    clap_mangen::generate_to(Cli::command(), folder).map_err(cannot)?;
    let mut pages: Vec<String> = std::fs::read_dir(folder)
        .map_err(cannot)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("ferry") && name.ends_with(".1"))
        .collect();
    pages.sort();
    out.report(&Pages {
        folder: folder.to_owned(),
        pages,
    });
    Ok(())
}
