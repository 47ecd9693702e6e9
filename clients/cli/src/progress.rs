//! Progress bars for large content on a terminal: bytes, rate and time left while an image or a
//! file over 1 MiB goes to or comes from the storage. A bar starts where its first chunk leaves
//! it (a download that resumes, past what it held) and counts its rate from there. Nothing is
//! drawn when standard error is not a terminal or with `--json`.

use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_protocol::BlobId;
use ferry_sync::transfer::Route;
use ferry_sync::{Progress, ProgressFn};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::cli::DataCommand;
use crate::home::Home;
use crate::ipc::{self, Format};
use crate::output::size;

/// How far the agent is with this device's large content going out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Uploading {
    /// Whether any is still to go.
    pub(crate) pending: bool,
    /// The blob moving now, as the last chunk left it.
    pub(crate) moving: Option<Moving>,
}

/// One blob on its way out.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Moving {
    pub(crate) blob: BlobId,
    pub(crate) done: u64,
    pub(crate) total: u64,
}

impl fmt::Display for Uploading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pending, &self.moving) {
            (false, _) => writeln!(f, "nothing to upload"),
            (true, Some(moving)) => writeln!(
                f,
                "uploading: {} of {}",
                size(moving.done),
                size(moving.total)
            ),
            (true, None) => writeln!(f, "uploading"),
        }
    }
}

/// While an agent uploads what `ferry copy` gave it, asks it how far it is and draws the bar,
/// until nothing is left to go (or the agent stops answering).
pub(crate) async fn follow_agent(home: &Home, meter: &ProgressFn) {
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let Ok(Some(reply)) = ipc::send(home, &DataCommand::Uploading, Format::Json).await else {
            return;
        };
        let Ok(uploading) = serde_json::from_slice::<Uploading>(&reply.stdout) else {
            return;
        };
        if let Some(moving) = uploading.moving {
            meter(&Progress {
                blob: moving.blob,
                direction: Route::Up,
                done: if uploading.pending {
                    moving.done
                } else {
                    moving.total
                },
                total: moving.total,
            });
        }
        if !uploading.pending {
            return;
        }
    }
}

/// How often [`follow_agent`] asks.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// Smaller content goes by too fast for a bar.
const SHOWN_FROM: u64 = 1024 * 1024;

/// The bar being drawn, and for which blob.
type Drawn = Option<(BlobId, ProgressBar)>;

/// An observer that draws a bar on standard error, or `None` where none is drawn.
pub(crate) fn meter(json: bool) -> Option<ProgressFn> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let drawn: Arc<Mutex<Drawn>> = Arc::new(Mutex::new(None));
    Some(Arc::new(move |progress: &Progress| {
        let mut drawn = drawn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        show(&mut drawn, progress);
    }))
}

fn show(drawn: &mut Drawn, progress: &Progress) {
    if progress.total < SHOWN_FROM {
        return;
    }
    let bar = match drawn {
        Some((blob, bar)) if *blob == progress.blob => bar,
        _ => {
            let bar =
                ProgressBar::with_draw_target(Some(progress.total), ProgressDrawTarget::stderr())
                    .with_style(style());
            // It starts where the first chunk left it (past what a resumed download held
            // already): the rate counts from here.
            bar.set_position(progress.done);
            bar.reset_eta();
            &mut drawn.insert((progress.blob, bar)).1
        }
    };
    bar.set_position(progress.done);
    if progress.done >= progress.total {
        bar.finish();
        *drawn = None;
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{wide_bar} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta} left",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}
