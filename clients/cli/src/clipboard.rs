//! Clips and the desktop clipboard, both ways: what a copy seen on the clipboard records, and
//! what the clipboard is given for a clip (the agent placing another device's copy, `ferry pick`
//! placing the chosen one).

use ferry_clipboard::Clip;
use ferry_core::{Body, ClipContent};

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
