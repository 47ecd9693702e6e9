//! What a clip holds, and the ids of clips and collections.

use serde::{Deserialize, Serialize};

use ferry_protocol::{BlobId, NamesKey};

/// A clip's id: a keyed hash of its content, so the same content copied on any device is one
/// clip (copying it again only moves it to the top of the history).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClipId(pub [u8; 16]);

impl ClipId {
    /// The id of `content` under this repository's names key.
    pub fn for_content(names: &NamesKey, content: &ClipContent) -> ClipId {
        let encoded = postcard::to_allocvec(content).expect("postcard encodes clip content");
        ClipId(names.clip_id(&encoded))
    }
}

/// A collection's id: random, made when the collection is created.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CollectionId(pub [u8; 16]);

ferry_protocol::hex_id!(ClipId, 16);
ferry_protocol::hex_id!(CollectionId, 16);

/// Bytes held in the operation itself, or in a blob stored beside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Body {
    /// Small content, carried inline.
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Large content, stored as `blob/<id>/…` chunks.
    Blob {
        /// The blob.
        id: BlobId,
        /// Its length in bytes.
        len: u64,
    },
}

impl Body {
    /// Length of the content in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Body::Inline(bytes) => bytes.len() as u64,
            Body::Blob { len, .. } => *len,
        }
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The immutable content of a clip.
///
/// Text is by far the most common kind, so it is held inline and the rarer kinds are boxed:
/// the enum stays 24 bytes, which a history of 100,000 text clips feels as 7 MB less memory.
/// (Boxing changes nothing on the wire: a variant holding a struct encodes as its fields.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClipContent {
    /// Plain text.
    Text(String),
    /// Rich text (HTML) with its plain-text fallback.
    RichText(Box<RichText>),
    /// An image.
    Image(Box<Image>),
    /// A small file.
    File(Box<FileClip>),
}

/// Rich text (HTML) with its plain-text fallback.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RichText {
    /// The HTML.
    pub html: String,
    /// What to paste where rich text is not accepted.
    pub plain: String,
}

/// An image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Image {
    /// Its media type, for example `image/png`.
    pub mime: String,
    /// The image bytes.
    pub body: Body,
}

/// A small file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileClip {
    /// Its file name.
    pub name: String,
    /// Its media type.
    pub mime: String,
    /// The file bytes.
    pub body: Body,
}

/// The kinds of clip content, for filters and display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContentKind {
    /// Plain text.
    Text,
    /// Rich text.
    RichText,
    /// An image.
    Image,
    /// A file.
    File,
}

crate::spelled!(pub ContentKind, "kind of clip", {
    Text = "text",
    RichText = "rich_text",
    Image = "image",
    File = "file",
});

impl ClipContent {
    /// Rich text with its plain-text fallback.
    pub fn rich_text(html: impl Into<String>, plain: impl Into<String>) -> ClipContent {
        ClipContent::RichText(Box::new(RichText {
            html: html.into(),
            plain: plain.into(),
        }))
    }

    /// An image of media type `mime`.
    pub fn image(mime: impl Into<String>, body: Body) -> ClipContent {
        ClipContent::Image(Box::new(Image {
            mime: mime.into(),
            body,
        }))
    }

    /// A file called `name`, of media type `mime`.
    pub fn file(name: impl Into<String>, mime: impl Into<String>, body: Body) -> ClipContent {
        ClipContent::File(Box::new(FileClip {
            name: name.into(),
            mime: mime.into(),
            body,
        }))
    }

    /// The bytes of an image or file.
    pub fn body(&self) -> Option<&Body> {
        match self {
            ClipContent::Image(image) => Some(&image.body),
            ClipContent::File(file) => Some(&file.body),
            ClipContent::Text(_) | ClipContent::RichText(_) => None,
        }
    }

    /// The bytes of an image or file, to change.
    pub fn body_mut(&mut self) -> Option<&mut Body> {
        match self {
            ClipContent::Image(image) => Some(&mut image.body),
            ClipContent::File(file) => Some(&mut file.body),
            ClipContent::Text(_) | ClipContent::RichText(_) => None,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ContentKind {
        match self {
            ClipContent::Text(_) => ContentKind::Text,
            ClipContent::RichText(_) => ContentKind::RichText,
            ClipContent::Image(_) => ContentKind::Image,
            ClipContent::File(_) => ContentKind::File,
        }
    }

    /// Size of the content in bytes (both forms, for rich text).
    pub fn size(&self) -> u64 {
        match self {
            ClipContent::Text(text) => text.len() as u64,
            ClipContent::RichText(rich) => (rich.html.len() + rich.plain.len()) as u64,
            ClipContent::Image(image) => image.body.len(),
            ClipContent::File(file) => file.body.len(),
        }
    }

    /// Text to show or search: the text itself, the plain fallback, or the file name.
    pub fn text(&self) -> Option<&str> {
        match self {
            ClipContent::Text(text) => Some(text),
            ClipContent::RichText(rich) => Some(&rich.plain),
            ClipContent::File(file) => Some(&file.name),
            ClipContent::Image(_) => None,
        }
    }
}
