//! Clips: `copy`, `paste`, `history`, `pin`/`unpin`, `rm`/`restore`, `trash`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use ferry_core::{Body, ClipContent, ClipId, ClipView, DataKind, DeviceId, Op};
use ferry_store::StoreError;
use ferry_sync::SyncError;
use serde::Serialize;

use crate::cli::{CopyArgs, HistoryArgs, PasteArgs};
use crate::clipboard::describe;
use crate::device::Device;
use crate::error::{Failure, file_error};
use crate::output::{Done, Lines, Output, age, size};
use crate::pause::Pause;

/// A clip's id, as `copy` answers.
#[derive(Serialize)]
pub(crate) struct Copied {
    id: String,
}

impl fmt::Display for Copied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.id)
    }
}

/// One clip as `history`, `trash` and `collection show` list it.
#[derive(Serialize)]
pub(crate) struct Clip {
    id: String,
    kind: &'static str,
    text: Option<String>,
    preview: String,
    bytes: u64,
    device: String,
    device_name: String,
    first_copied_ms: u64,
    last_used_ms: u64,
    pinned: bool,
    favourite: bool,
    trashed_ms: Option<u64>,
}

impl Clip {
    /// `view`, with its device as `names` (what this device calls each) says.
    fn new(names: &BTreeMap<DeviceId, String>, view: &ClipView<'_>) -> Clip {
        Clip {
            id: view.id.to_string(),
            kind: view.content.kind().as_str(),
            text: view.content.text().map(str::to_owned),
            preview: preview(view.content),
            bytes: view.content.size(),
            device: view.source().to_string(),
            device_name: names
                .get(&view.source())
                .cloned()
                .unwrap_or_else(|| view.source().short()),
            first_copied_ms: view.first.wall_ms(),
            last_used_ms: view.last_used.wall_ms(),
            pinned: view.pinned,
            favourite: view.favourite,
            trashed_ms: view.trashed_at.map(|t| t.wall_ms()),
        }
    }
}

impl fmt::Display for Clip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pin mark in a column of its own: the first column stays an id for `cut -f1`.
        let pin = if self.pinned { "*" } else { "" };
        write!(
            f,
            "{}\t{pin}\t{}\t{}\t{}",
            &self.id[..12],
            age(self.last_used_ms),
            self.device_name,
            self.preview
        )
    }
}

/// A list of clips.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Clips(Vec<Clip>);

impl Clips {
    pub(crate) fn new(device: &Device, views: &[ClipView<'_>]) -> Clips {
        let names = device.device_names(views.iter().map(ClipView::source));
        Clips(views.iter().map(|view| Clip::new(&names, view)).collect())
    }
}

impl fmt::Display for Clips {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Lines(&self.0).fmt(f)
    }
}

/// Reads standard input for `copy` without TEXT, and makes paths absolute, so the command can
/// run in another process (the agent).
pub(crate) fn prepare_copy(args: &mut CopyArgs, cwd: &Path, place: bool) -> Result<(), Failure> {
    if args.text.is_none() && args.file.is_none() && args.image.is_none() {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| Failure::new(format!("standard input could not be read: {e}")))?;
        args.text = Some(String::from_utf8(bytes).map_err(|_| {
            Failure::new("standard input is not UTF-8 text; copy binary data with --file PATH")
        })?);
    }
    for path in [&mut args.file, &mut args.image].into_iter().flatten() {
        *path = cwd.join(&*path);
    }
    args.place = place && !args.no_place && crate::clipboard::display_here();
    Ok(())
}

fn content_from(args: CopyArgs) -> Result<ClipContent, Failure> {
    let read = |path: &Path| std::fs::read(path).map_err(file_error(path, "read"));
    if let Some(path) = args.image {
        let bytes = read(&path)?;
        if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(Failure::new(format!(
                "{} is not a PNG image; copy other files with --file",
                path.display()
            )));
        }
        return Ok(ClipContent::image("image/png", Body::Inline(bytes)));
    }
    if let Some(path) = args.file {
        let bytes = read(&path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let mime = mime_of(&name);
        return Ok(ClipContent::file(name, mime, Body::Inline(bytes)));
    }
    Ok(ClipContent::Text(args.text.unwrap_or_default()))
}

fn mime_of(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match extension.as_deref() {
        Some("txt" | "md") => "text/plain",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("pdf") => "application/pdf",
        Some("json") => "application/json",
        Some("html" | "htm") => "text/html",
        _ => "application/octet-stream",
    }
}

/// `ferry copy`.
pub(crate) fn copy(device: &mut Device, args: CopyArgs) -> Result<Copied, Failure> {
    let content = content_from(args)?;
    if let Some(reason) = device.config.settings.filters().refuses(&content) {
        return Err(Failure::new(format!(
            "not recorded: {reason} (`ferry config ls` lists the clipboard settings)"
        )));
    }
    let fallback = ClipId::for_content(&device.keys.names, &content);
    // The recorded clip's id: large content is named by its blob, not by its bytes.
    let id = match device.engine.copy(content)? {
        Some(Op {
            action: ferry_core::Action::Copy { clip, .. },
            ..
        }) => clip,
        _ => fallback,
    };
    Ok(Copied { id: id.to_string() })
}

/// What `ferry pin|unpin|rm|restore` does to a clip.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Mark {
    Pin,
    Unpin,
    Rm,
    Restore,
}

/// `ferry pin|unpin|rm|restore`: records the mark on the clip, and confirms it.
pub(crate) fn mark(
    device: &mut Device,
    id: &str,
    mark: Mark,
    out: &mut Output,
) -> Result<(), Failure> {
    let clip = device.find_clip(id)?;
    device
        .engine
        .record(DataKind::Clips, |replica, _, now| match mark {
            Mark::Pin => replica.set_pinned(clip, true, now),
            Mark::Unpin => replica.set_pinned(clip, false, now),
            Mark::Rm => replica.delete(clip, now),
            Mark::Restore => replica.restore(clip, now),
        })?;
    let short = clip.short();
    out.done(&match mark {
        Mark::Pin => Done::new("pinned", clip, format!("Pinned clip {short}.")),
        Mark::Unpin => Done::new("unpinned", clip, format!("Unpinned clip {short}.")),
        Mark::Rm => Done::new(
            "trashed",
            clip,
            format!("Moved clip {short} to the trash (`ferry restore {short}` brings it back)."),
        ),
        Mark::Restore => Done::new("restored", clip, format!("Restored clip {short}.")),
    });
    Ok(())
}

/// `ferry paste`: the clip's bytes on stdout, or in a file.
pub(crate) async fn paste(
    device: &mut Device,
    args: PasteArgs,
    out: &mut Output,
) -> Result<(), Failure> {
    // While sync is paused, what this device has is what is shown.
    if !args.offline
        && Pause::current(&device.home).is_none()
        && let Err(error) = device.engine.fetch().await
    {
        out.note(format!(
            "warning: could not fetch new clips ({error}); showing what this device has"
        ));
    }
    let state = device.engine.state_for(DataKind::Clips);
    let id = match &args.id {
        Some(prefix) => device.find_clip(prefix)?,
        None => state
            .newest()
            .map(|view| view.id)
            .ok_or_else(|| Failure::new("the history is empty: copy something first"))?,
    };
    let content = state
        .clip(&id)
        .map(|view| view.content.clone())
        .ok_or_else(|| Failure::new(format!("clip {id} has no content on this device")))?;
    let bytes = match content.body() {
        Some(Body::Inline(bytes)) => bytes.clone(),
        Some(Body::Blob { id: blob, len }) => match device.engine.blob(*blob).await {
            Ok(bytes) => bytes,
            Err(SyncError::Store(StoreError::NotFound { .. })) => {
                return Err(Failure::new(format!(
                    "clip {id} ({}) is still on its way: the device that copied it is \
                     uploading it; try again shortly",
                    size(*len)
                )));
            }
            Err(error) => return Err(error.into()),
        },
        // Text, or the plain form of rich text.
        None => content.text().unwrap_or_default().as_bytes().to_vec(),
    };
    let binary = matches!(content, ClipContent::Image(_) | ClipContent::File(_));
    match args.output {
        Some(path) => std::fs::write(&path, &bytes).map_err(file_error(&path, "written")),
        None if binary && args.to_terminal => Err(Failure::new(format!(
            "clip {id} is {} ({}), not text to show here: write it to a file with --output \
             PATH, or send it down a pipe",
            describe(&content),
            size(bytes.len() as u64)
        ))),
        None => {
            out.raw(&bytes);
            Ok(())
        }
    }
}

/// `ferry paste` takes a path relative to where it was run.
pub(crate) fn prepare_paste(args: &mut PasteArgs, cwd: &Path) {
    args.to_terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    if let Some(path) = &mut args.output {
        *path = cwd.join(&*path);
    }
}

/// `ferry history`.
pub(crate) fn history(device: &Device, args: HistoryArgs) -> Result<Clips, Failure> {
    let state = device.engine.state_for(DataKind::Clips);
    let views: Vec<ClipView<'_>> = match &args.search {
        Some(query) => device
            .engine
            .search(query, args.limit)?
            .iter()
            .filter_map(|id| state.clip(id))
            .filter(|view| view.trashed_at.is_none())
            .collect(),
        None => state.history(None, args.limit),
    };
    Ok(Clips::new(device, &views))
}

/// Copies clip `id` (or a unique prefix) again: it moves to the top of the history on every
/// device. What choosing it in `ferry pick` records.
pub(crate) fn reuse(device: &mut Device, prefix: &str) -> Result<ClipId, Failure> {
    let id = device.find_clip(prefix)?;
    let content = device.clip_content(&id)?;
    device
        .engine
        .record(DataKind::Clips, |r, names, now| r.copy(names, content, now))?;
    Ok(id)
}

/// `ferry trash`.
pub(crate) fn trash(device: &Device) -> Clips {
    Clips::new(device, &device.engine.state_for(DataKind::Clips).trash())
}

/// One line of preview: the first line of text, or what the content is.
pub(crate) fn preview(content: &ClipContent) -> String {
    let text = match content {
        ClipContent::Text(text) => text,
        ClipContent::RichText(rich) => &rich.plain,
        ClipContent::Image(image) => {
            return format!("[{}, {}]", image.mime, size(image.body.len()));
        }
        ClipContent::File(file) => {
            return format!("[file {}, {}]", file.name, size(file.body.len()));
        }
    };
    let mut line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    if text.trim().chars().count() > 80 {
        line.push('…');
    }
    line
}
