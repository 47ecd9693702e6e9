//! `ferry sync`, `ferry status`, `ferry log`: moving data, and what moved.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_core::DataKind;
use ferry_sync::{DryRun, FetchReport, Planned, Transfer, UploadReport};
use serde::Serialize;

use crate::cli::LogArgs;
use crate::device::Device;
use crate::error::Failure;
use crate::output::{Lines, Output, age, size};

/// What a sync moved.
#[derive(Serialize)]
struct Synced {
    uploaded: Moved,
    fetched: Moved,
}

#[derive(Serialize)]
struct Moved {
    segments: u64,
    ops: u64,
    bytes: u64,
    /// Damaged objects set aside (fetches only).
    #[serde(skip_serializing_if = "Option::is_none")]
    quarantined: Option<u64>,
}

impl fmt::Display for Synced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "uploaded {} segments ({} changes), fetched {} segments ({} changes)",
            self.uploaded.segments, self.uploaded.ops, self.fetched.segments, self.fetched.ops
        )?;
        match self.fetched.quarantined {
            Some(n) if n > 0 => {
                writeln!(f, "{n} damaged objects were set aside: see `ferry status`")
            }
            _ => Ok(()),
        }
    }
}

/// What a sync would move.
#[derive(Serialize)]
struct Plan {
    upload: Vec<Object>,
    download: Vec<Object>,
}

#[derive(Serialize)]
struct Object {
    name: String,
    ops: u64,
    bytes: u64,
}

impl From<Planned> for Object {
    fn from(planned: Planned) -> Object {
        Object {
            name: planned.name,
            ops: planned.ops,
            bytes: planned.bytes,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.upload {
            writeln!(f, "upload\t{}\t{} ops\t{}", o.name, o.ops, size(o.bytes))?;
        }
        for o in &self.download {
            writeln!(f, "download\t{}\t{}", o.name, size(o.bytes))?;
        }
        if self.upload.is_empty() && self.download.is_empty() {
            writeln!(f, "nothing to sync")?;
        }
        Ok(())
    }
}

/// `ferry sync [--dry-run]`.
pub(crate) async fn sync(
    device: &mut Device,
    dry_run: bool,
    out: &mut Output,
) -> Result<(), Failure> {
    if dry_run {
        let DryRun { upload, download } = device.engine.dry_run().await?;
        out.report(&Plan {
            upload: upload.into_iter().map(Object::from).collect(),
            download: download.into_iter().map(Object::from).collect(),
        });
        return Ok(());
    }
    let (up, down): (UploadReport, FetchReport) = device.engine.sync().await?;
    out.report(&Synced {
        uploaded: Moved {
            segments: up.segments,
            ops: up.ops,
            bytes: up.bytes,
            quarantined: None,
        },
        fetched: Moved {
            segments: down.segments,
            ops: down.ops,
            bytes: down.bytes,
            quarantined: Some(down.quarantined),
        },
    });
    Ok(())
}

/// Where this device stands.
#[derive(Serialize)]
struct Status {
    device: String,
    device_name: String,
    tag: String,
    store: String,
    relay: String,
    clips: usize,
    pending_ops: u64,
    pending_segments: u64,
    last_seq: u64,
    last_upload_ms: Option<u64>,
    last_fetch_ms: Option<u64>,
    peers: Vec<Peer>,
    quarantined: Vec<Quarantined>,
    recent_errors: Vec<String>,
}

#[derive(Serialize)]
struct Peer {
    device: String,
    name: String,
    seq: u64,
    ops: u64,
}

#[derive(Serialize)]
struct Quarantined {
    name: String,
    reason: String,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "device    {} ({})", self.device_name, self.device)?;
        writeln!(f, "store     {}", self.store)?;
        match self.relay.as_str() {
            "" => writeln!(f, "relay     none (polling)")?,
            relay => writeln!(f, "relay     {relay}")?,
        }
        writeln!(f, "clips     {}", self.clips)?;
        writeln!(
            f,
            "pending   {} changes, {} segments",
            self.pending_ops, self.pending_segments
        )?;
        for p in &self.peers {
            writeln!(
                f,
                "peer      {}: segment {}, {} changes",
                p.name, p.seq, p.ops
            )?;
        }
        for q in &self.quarantined {
            writeln!(f, "damaged   {}: {}", q.name, q.reason)?;
        }
        for error in &self.recent_errors {
            writeln!(f, "error     {error}")?;
        }
        Ok(())
    }
}

fn time_ms(time: Option<SystemTime>) -> Option<u64> {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

/// `ferry status`.
pub(crate) fn status(device: &Device, out: &mut Output) -> Result<(), Failure> {
    let status = device.engine.status()?;
    let settings = &device.config.settings;
    out.report(&Status {
        device: status.device.to_string(),
        device_name: device.device_name(&status.device),
        tag: status.tag.to_string(),
        store: settings.store.clone().unwrap_or_default(),
        relay: settings.relay.clone().unwrap_or_default(),
        clips: device.engine.state_for(DataKind::Clips).stats().clips,
        pending_ops: status.pending_ops,
        pending_segments: status.pending_segments,
        last_seq: status.last_seq,
        last_upload_ms: time_ms(status.last_upload),
        last_fetch_ms: time_ms(status.last_fetch),
        peers: status
            .peers
            .iter()
            .map(|p| Peer {
                device: p.device.to_string(),
                name: device.device_name(&p.device),
                seq: p.seq,
                ops: p.ops,
            })
            .collect(),
        quarantined: status
            .quarantined
            .into_iter()
            .map(|(name, reason)| Quarantined { name, reason })
            .collect(),
        recent_errors: status.recent_errors,
    });
    Ok(())
}

/// The transfer log, newest first.
#[derive(Serialize)]
#[serde(transparent)]
struct Log(Vec<Line>);

#[derive(Serialize)]
#[serde(transparent)]
struct Line(Transfer);

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}\t{}",
            age(t.at_ms),
            t.direction,
            t.kind,
            t.name.as_deref().unwrap_or_default(),
            size(t.bytes),
            t.outcome
        )?;
        match &t.detail {
            Some(detail) => write!(f, "\t{detail}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lines(&self.0).fmt(f)
    }
}

/// How many lines of the transfer log `ferry log` searches.
const LOG_WINDOW: usize = 100_000;

/// `ferry log`.
pub(crate) fn log(device: &Device, args: LogArgs, out: &mut Output) -> Result<(), Failure> {
    let matches = |t: &Transfer| {
        let device_matches = args.device.as_deref().is_none_or(|wanted| {
            t.device
                .as_deref()
                .is_some_and(|tag| tag.starts_with(wanted))
        });
        let text_matches = args.search.as_deref().is_none_or(|query| {
            [
                t.name.as_deref(),
                t.detail.as_deref(),
                Some(t.outcome.as_str()),
            ]
            .into_iter()
            .flatten()
            .any(|field| field.contains(query))
        });
        device_matches && args.kind.is_none_or(|kind| t.kind == kind) && text_matches
    };
    let lines = device
        .engine
        .transfers(LOG_WINDOW)?
        .into_iter()
        .filter(matches)
        .take(args.limit)
        .map(Line)
        .collect();
    out.report(&Log(lines));
    Ok(())
}
