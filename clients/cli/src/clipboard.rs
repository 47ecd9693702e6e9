//! Clips and the desktop clipboard, both ways: what a copy seen on the clipboard records, and
//! what the clipboard is given for a clip (the agent placing another device's copy, `ferry pick`
//! placing the chosen one, `ferry copy` placing what it recorded).

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

use ferry_clipboard::Clip;
use ferry_core::{Body, ClipContent};

use crate::cli::CopyArgs;
use crate::device::Device;
use crate::error::Failure;

/// What a copy seen on the clipboard records.
pub(crate) fn content(clip: &Clip) -> ClipContent {
    match clip {
        Clip::Text(text) => ClipContent::Text(text.clone()),
        Clip::Png(png) => ClipContent::image("image/png", Body::Inline(png.clone())),
    }
}

/// Content as the clipboard takes it: text (rich text as its plain form), or a PNG image
/// (fetched when only its blob's id is here); `None` for what a clipboard does not hold.
pub(crate) async fn clip(
    device: &mut Device,
    content: ClipContent,
) -> Result<Option<Clip>, Failure> {
    Ok(Some(match content {
        ClipContent::Text(text) => Clip::Text(text),
        ClipContent::RichText(rich) => Clip::Text(rich.plain),
        ClipContent::Image(image) if image.mime == "image/png" => match image.body {
            Body::Inline(bytes) => Clip::Png(bytes),
            Body::Blob { id, .. } => Clip::Png(device.engine.blob(id).await?),
        },
        _ => return Ok(None),
    }))
}

/// Clip `prefix` (an id or a unique prefix of one) as the clipboard takes it; see [`clip`].
pub(crate) async fn chosen(device: &mut Device, prefix: &str) -> Result<Clip, Failure> {
    let id = device.find_clip(prefix)?;
    let content = device.clip_content(&id)?;
    let what = describe(&content);
    clip(device, content).await?.ok_or_else(|| {
        Failure::new(format!(
            "clip {id} is {what}: the clipboard takes text and PNG images; save it with \
             `ferry paste {id} --output PATH`"
        ))
    })
}

/// What a clip holds, in a few words: "text", "an image (image/webp)", "the file a.pdf".
pub(crate) fn describe(content: &ClipContent) -> String {
    match content {
        ClipContent::Text(_) => "text".into(),
        ClipContent::RichText(_) => "rich text".into(),
        ClipContent::Image(image) => format!("an image ({})", image.mime),
        ClipContent::File(file) => format!("the file {}", file.name),
    }
}

/// Whether this process has a desktop clipboard: always on Windows and macOS, else when it
/// runs in an X11 or Wayland session.
pub(crate) fn display_here() -> bool {
    cfg!(any(windows, target_os = "macos"))
        || ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

/// What `ferry copy` puts on the clipboard: its text or its PNG image (a file stays in the
/// history only).
pub(crate) fn of_copy(args: &CopyArgs) -> Result<Option<Clip>, Failure> {
    if let Some(path) = &args.image {
        let png = std::fs::read(path).map_err(crate::error::file_error(path, "read"))?;
        return Ok(Some(Clip::Png(png)));
    }
    Ok(args
        .file
        .is_none()
        .then(|| Clip::Text(args.text.clone().unwrap_or_default())))
}

/// Places `clip` on this clipboard for a command that then ends: through a `ferry serve-clip`
/// process that serves it until something else is copied (on X11 and Wayland a clipboard lives
/// in its owner's process), returning once it is there; on Windows and macOS the system keeps
/// it.
pub(crate) fn place_detached(clip: &Clip) -> Result<(), Failure> {
    let failed = |why: &str| {
        Failure::new(format!(
            "the clip could not be placed on the clipboard: {}",
            why.trim().trim_start_matches("ferry: ")
        ))
    };
    if cfg!(any(windows, target_os = "macos")) {
        return ferry_clipboard::serve(clip, || {}).map_err(|e| failed(&e.to_string()));
    }
    let (flag, bytes) = match clip {
        Clip::Text(text) => (None, text.as_bytes()),
        Clip::Png(png) => (Some("--png"), png.as_slice()),
    };
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(format!("could not find the ferry program: {e}")))?;
    let mut command = Command::new(exe);
    command
        .arg("serve-clip")
        .args(flag)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .map_err(|e| Failure::new(format!("could not start `ferry serve-clip`: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(bytes)
            .map_err(|e| Failure::new(format!("could not hand the clip over: {e}")))?;
    }
    let mut line = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = BufReader::new(stdout).read_line(&mut line);
    }
    if line.trim() == "placed" {
        return Ok(());
    }
    let mut why = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut stderr, &mut why);
    }
    let _ = child.wait();
    Err(failed(&why))
}
