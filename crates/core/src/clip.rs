//! What a clip holds, and the ids of clips and collections.

use std::fmt;

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

macro_rules! hex_display {
    ($name:ident) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for byte in self.0 {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }
    };
}

hex_display!(ClipId);
hex_display!(CollectionId);

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
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClipContent {
    /// Plain text.
    Text(String),
    /// Rich text (HTML) with its plain-text fallback.
    RichText {
        /// The HTML.
        html: String,
        /// What to paste where rich text is not accepted.
        plain: String,
    },
    /// An image.
    Image {
        /// Its media type, for example `image/png`.
        mime: String,
        /// The image bytes.
        body: Body,
    },
    /// A small file.
    File {
        /// Its file name.
        name: String,
        /// Its media type.
        mime: String,
        /// The file bytes.
        body: Body,
    },
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

impl ClipContent {
    /// Its kind.
    pub fn kind(&self) -> ContentKind {
        match self {
            ClipContent::Text(_) => ContentKind::Text,
            ClipContent::RichText { .. } => ContentKind::RichText,
            ClipContent::Image { .. } => ContentKind::Image,
            ClipContent::File { .. } => ContentKind::File,
        }
    }

    /// Size of the content in bytes (both forms, for rich text).
    pub fn size(&self) -> u64 {
        match self {
            ClipContent::Text(text) => text.len() as u64,
            ClipContent::RichText { html, plain } => (html.len() + plain.len()) as u64,
            ClipContent::Image { body, .. } | ClipContent::File { body, .. } => body.len(),
        }
    }

    /// Text to show or search: the text itself, the plain fallback, or the file name.
    pub fn text(&self) -> Option<&str> {
        match self {
            ClipContent::Text(text) => Some(text),
            ClipContent::RichText { plain, .. } => Some(plain),
            ClipContent::File { name, .. } => Some(name),
            ClipContent::Image { .. } => None,
        }
    }
}
