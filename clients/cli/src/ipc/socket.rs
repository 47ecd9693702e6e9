//! Where the agent takes commands, per platform: a Unix socket in the Ferry home (the folder is
//! the user's alone, the socket mode 0600), or on Windows a named pipe. A pipe's default
//! security lets other users open it for reading only, so they cannot send a command; its name
//! carries 128 random bits and is written in the home, and the agent creates it as the first
//! instance, so nobody can take the name ahead of it. [`super`] speaks the same protocol
//! over both.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::Failure;
use crate::home::Home;

/// One connection, either end.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for S {}

#[cfg(unix)]
pub(crate) use unix::{Listener, connect};
#[cfg(windows)]
pub(crate) use windows::{Listener, connect};

fn not_made(home: &Home, error: impl std::fmt::Display) -> Failure {
    Failure::new(format!(
        "the agent's socket {} could not be made: {error}",
        home.socket().display()
    ))
}

#[cfg(unix)]
mod unix {
    use tokio::net::{UnixListener, UnixStream};

    use super::{Stream, not_made};
    use crate::error::Failure;
    use crate::home::Home;

    /// The agent's end.
    pub(crate) struct Listener(UnixListener);

    impl Listener {
        /// Binds the home's socket (replacing one left by an agent that died).
        pub(crate) fn bind(home: &Home) -> Result<Listener, Failure> {
            let path = home.socket();
            // Whoever holds the lock owns the socket: an old one is from an agent that died.
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).map_err(|e| not_made(home, e))?;
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
            }
            Ok(Listener(listener))
        }

        /// The next command's connection.
        pub(crate) async fn accept(&mut self) -> std::io::Result<impl Stream> {
            Ok(self.0.accept().await?.0)
        }
    }

    /// Connects to the agent of `home`.
    pub(crate) async fn connect(home: &Home) -> std::io::Result<impl Stream> {
        UnixStream::connect(home.socket()).await
    }
}

#[cfg(windows)]
mod windows {
    use std::io;
    use std::time::Duration;

    use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeServer, ServerOptions};

    use super::{Stream, not_made};
    use crate::error::Failure;
    use crate::home::Home;

    /// Windows' "all pipe instances are busy": another command is being connected.
    const ERROR_PIPE_BUSY: i32 = 231;

    /// The agent's end: the instance the next command connects to.
    pub(crate) struct Listener {
        name: String,
        next: NamedPipeServer,
    }

    impl Listener {
        /// Creates a pipe under a new random name and writes the name in the home.
        pub(crate) fn bind(home: &Home) -> Result<Listener, Failure> {
            let mut token = [0u8; 16];
            getrandom::fill(&mut token).map_err(|e| not_made(home, e))?;
            let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
            let name = format!(r"\\.\pipe\ferry-agent-{hex}");
            let next = ServerOptions::new()
                .first_pipe_instance(true)
                .reject_remote_clients(true)
                .create(&name)
                .map_err(|e| not_made(home, e))?;
            std::fs::write(home.socket(), &name).map_err(|e| not_made(home, e))?;
            Ok(Listener { name, next })
        }

        /// The next command's connection; a new instance waits for the one after.
        pub(crate) async fn accept(&mut self) -> io::Result<impl Stream> {
            self.next.connect().await?;
            let waiting = ServerOptions::new()
                .reject_remote_clients(true)
                .create(&self.name)?;
            Ok(std::mem::replace(&mut self.next, waiting))
        }
    }

    /// Connects to the agent of `home`, waiting a moment while another command connects.
    pub(crate) async fn connect(home: &Home) -> io::Result<impl Stream> {
        let name = std::fs::read_to_string(home.socket())?;
        let name = name.trim();
        if !name.starts_with(r"\\.\pipe\ferry-agent-") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "it names a pipe that is not a Ferry agent's",
            ));
        }
        let mut busy = 0;
        loop {
            match ClientOptions::new().open(name) {
                Err(error) if error.raw_os_error() == Some(ERROR_PIPE_BUSY) && busy < 100 => {
                    busy += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                result => return result,
            }
        }
    }
}
