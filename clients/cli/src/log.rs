//! Where the log goes: standard error, or for an agent that has none worth reading (the
//! service on Windows and macOS) a file named by `ferry agent --log-file`, kept under a size
//! cap: past it, the file becomes `NAME.1` (the one before is dropped) and a new one starts.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing::Level;

/// How large the log file grows before it is set aside: two of them at most, a few days of an
/// agent's ordinary lines and weeks of a quiet one.
pub(crate) const LOG_FILE_LIMIT: u64 = 1024 * 1024;

/// Starts logging at `level`, to `file` when one is named (falling back to standard error,
/// with a word about it, when it cannot be opened).
pub(crate) fn init(level: Level, file: Option<&Path>) {
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_max_level(level);
    if let Some(path) = file {
        match LogFile::open(path, LOG_FILE_LIMIT) {
            Ok(file) => {
                builder
                    .with_ansi(false)
                    .with_writer(Mutex::new(file))
                    .init();
                return;
            }
            Err(error) => eprintln!(
                "ferry: the log file {} could not be opened ({error}); logging to standard \
                 error instead",
                path.display()
            ),
        }
    }
    builder
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .with_writer(io::stderr)
        .init();
}

/// A log file appended to, set aside as `NAME.1` when it passes its limit.
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    /// Its length, as far as this process wrote it.
    len: u64,
    limit: u64,
}

impl LogFile {
    pub(crate) fn open(path: &Path, limit: u64) -> io::Result<LogFile> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = append(path)?;
        let len = file.metadata()?.len();
        let mut log = LogFile {
            path: path.to_owned(),
            file,
            len,
            limit,
        };
        if log.len >= limit {
            log.set_aside();
        }
        Ok(log)
    }

    /// `NAME.1`, beside the file.
    pub(crate) fn older(path: &Path) -> PathBuf {
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(".1");
        path.with_file_name(name)
    }

    /// Renames the file to `NAME.1` and starts a new one. When that fails (another program
    /// holds it open on Windows), writing goes on where it was and is tried again after
    /// another limit's worth.
    fn set_aside(&mut self) {
        let renamed = std::fs::rename(&self.path, Self::older(&self.path));
        match renamed.and_then(|()| append(&self.path)) {
            Ok(file) => {
                self.file = file;
                self.len = 0;
            }
            Err(_) => self.len = 0,
        }
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A line is written whole into one file: the check comes before it.
        if self.len > 0 && self.len + buf.len() as u64 > self.limit {
            self.set_aside();
        }
        let written = self.file.write(buf)?;
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Opens a file for appending, readable by its owner only where permissions say so.
fn append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> Vec<u8> {
        format!("line {n:04} of the agent's log\n").into_bytes()
    }

    #[test]
    fn a_full_log_is_set_aside_whole_lines_and_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/agent.log");
        let size = line(0).len() as u64;
        let mut log = LogFile::open(&path, size * 10).unwrap();
        for n in 0..25 {
            log.write_all(&line(n)).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let older = std::fs::read_to_string(LogFile::older(&path)).unwrap();
        // Lines 0–9 filled the first file, 10–19 the second (now NAME.1, the first gone),
        // 20–24 the current one.
        assert_eq!(older.lines().count(), 10, "{older}");
        assert!(older.starts_with("line 0010"), "{older}");
        assert_eq!(current.lines().count(), 5, "{current}");
        assert!(current.starts_with("line 0020"), "{current}");
    }

    #[test]
    fn a_log_already_past_its_limit_is_set_aside_at_start_and_a_small_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        std::fs::write(&path, "an earlier run\n").unwrap();
        let mut log = LogFile::open(&path, 1024).unwrap();
        log.write_all(b"this run\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "an earlier run\nthis run\n"
        );
        drop(log);

        std::fs::write(&path, vec![b'x'; 2048]).unwrap();
        let mut log = LogFile::open(&path, 1024).unwrap();
        log.write_all(b"after a long one\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "after a long one\n"
        );
        assert_eq!(std::fs::read(LogFile::older(&path)).unwrap().len(), 2048);
    }

    #[cfg(unix)]
    #[test]
    fn only_its_owner_reads_the_log() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.log");
        LogFile::open(&path, 1024).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
