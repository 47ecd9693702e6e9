//! The relay's wire protocol: JSON text frames over one WebSocket.
//!
//! A client opens `GET /v1/ws` (an ordinary WebSocket upgrade), then sends requests:
//!
//! ```text
//! {"type":"sub",   "topic":"<64 hex>"}
//! {"type":"unsub", "topic":"<64 hex>"}
//! {"type":"pub",   "topic":"<64 hex>", "data":"<base64, at most 512 bytes decoded>"}
//! ```
//!
//! and receives events:
//!
//! ```text
//! {"type":"msg",   "topic":"<64 hex>", "data":"<base64>"}
//! {"type":"ok",    "ref":7}
//! {"type":"error", "code":"rate_limited", "message":"…", "ref":7}
//! ```
//!
//! Any request may carry `"ref": <u64>`; the relay then answers it with `ok` or `error` carrying
//! the same `ref`. Without a `ref` only failures are answered. Unknown fields are ignored in both
//! directions; a request of unknown `type` gets an `unknown_type` error and the connection stays
//! open, and a client ignores events of a type it does not know. The relay forwards a `pub` to
//! every other subscriber of the topic, never back to the publishing connection. Delivery is
//! best-effort and at most once.
//!
//! Parsing never panics: every malformed frame maps to a [`Rejection`] with its [`ErrorCode`].

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::TopicId;

/// The WebSocket endpoint of a relay.
pub const WS_PATH: &str = "/v1/ws";

/// The most bytes a published payload may hold, after base64 decoding.
pub const MAX_DATA: usize = 512;

/// A request from a client to the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Receive what others publish on `topic`.
    Subscribe {
        /// The topic.
        topic: TopicId,
        /// Echoed in the answer when present.
        reference: Option<u64>,
    },
    /// Stop receiving `topic`.
    Unsubscribe {
        /// The topic.
        topic: TopicId,
        /// Echoed in the answer when present.
        reference: Option<u64>,
    },
    /// Forward `data` to the topic's other subscribers.
    Publish {
        /// The topic.
        topic: TopicId,
        /// The opaque payload, at most [`MAX_DATA`] bytes.
        data: Vec<u8>,
        /// Echoed in the answer when present.
        reference: Option<u64>,
    },
}

/// An event from the relay to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Another connection published `data` on `topic`.
    Message {
        /// The topic.
        topic: TopicId,
        /// The payload as published.
        data: Vec<u8>,
    },
    /// The request with this `ref` succeeded.
    Ok {
        /// The request's `ref`.
        reference: u64,
    },
    /// A request failed, or the relay is about to close the connection.
    Error {
        /// What went wrong, as a machine-readable code.
        code: ErrorCode,
        /// What went wrong, for people.
        message: String,
        /// The failed request's `ref`, when it had one.
        reference: Option<u64>,
    },
    /// An event of a type this version does not know; clients ignore it.
    Unknown,
}

/// Why the relay refused a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not a valid request: not JSON, a missing or malformed field, a binary frame.
    BadFrame,
    /// The frame or its payload is over the size limit.
    TooLarge,
    /// The connection or its address is sending faster than the relay allows.
    RateLimited,
    /// The connection already has as many topics as the relay allows.
    TooManyTopics,
    /// The request's `type` is not one the relay knows.
    UnknownType,
    /// A pairing code's topic has its two devices already: someone else is at this meeting
    /// place.
    Crowded,
    /// The address holds as many pairing topics as the relay allows.
    TooManyPairings,
    /// A code this version does not know, kept as sent.
    Other(String),
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyTopics => "too_many_topics",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::Crowded => "crowded",
            ErrorCode::TooManyPairings => "too_many_pairings",
            ErrorCode::Other(code) => code,
        }
    }

    fn from_wire(code: &str) -> ErrorCode {
        match code {
            "bad_frame" => ErrorCode::BadFrame,
            "too_large" => ErrorCode::TooLarge,
            "rate_limited" => ErrorCode::RateLimited,
            "too_many_topics" => ErrorCode::TooManyTopics,
            "unknown_type" => ErrorCode::UnknownType,
            "crowded" => ErrorCode::Crowded,
            "too_many_pairings" => ErrorCode::TooManyPairings,
            other => ErrorCode::Other(other.chars().take(64).collect()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the relay refuses, with what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The error code to send.
    pub code: ErrorCode,
    /// The message to send.
    pub message: Cow<'static, str>,
    /// The request's `ref`, when it could be read.
    pub reference: Option<u64>,
}

impl Rejection {
    fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>, reference: Option<u64>) -> Self {
        Rejection {
            code,
            message: message.into(),
            reference,
        }
    }

    /// The error event that answers this rejection.
    pub fn to_event(&self) -> Event {
        Event::Error {
            code: self.code.clone(),
            message: self.message.clone().into_owned(),
            reference: self.reference,
        }
    }
}

/// Both directions share one loose shape: a `type` and optional fields. Fields that do not
/// belong to a type are ignored, as are fields nobody knows.
#[derive(Serialize, Deserialize, Default)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    topic: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    data: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    code: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    message: Option<Cow<'a, str>>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    reference: Option<u64>,
}

impl Frame<'_> {
    fn to_json(&self) -> String {
        // Serialising strings and integers into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn topic_field(topic: Option<&str>, reference: Option<u64>) -> Result<TopicId, Rejection> {
    let topic = topic.ok_or_else(|| {
        Rejection::new(ErrorCode::BadFrame, "the frame has no \"topic\"", reference)
    })?;
    topic.parse().map_err(|_| {
        Rejection::new(
            ErrorCode::BadFrame,
            "\"topic\" must be 64 lowercase hex digits",
            reference,
        )
    })
}

/// The longest base64 text that can decode to [`MAX_DATA`] bytes.
const MAX_DATA_BASE64: usize = MAX_DATA.div_ceil(3) * 4;

impl Request {
    /// Parses one text frame sent by a client.
    pub fn parse(text: &str) -> Result<Request, Rejection> {
        let frame: Frame<'_> = serde_json::from_str(text).map_err(|error| {
            let message = if error.is_data() {
                "the frame is JSON but not a request: it needs a string \"type\", and \"ref\" \
                 must be a whole number"
            } else {
                "the frame is not a JSON object"
            };
            Rejection::new(ErrorCode::BadFrame, message, None)
        })?;
        let reference = frame.reference;
        let topic = || topic_field(frame.topic.as_deref(), reference);
        match &*frame.kind {
            "sub" => Ok(Request::Subscribe {
                topic: topic()?,
                reference,
            }),
            "unsub" => Ok(Request::Unsubscribe {
                topic: topic()?,
                reference,
            }),
            "pub" => {
                let topic = topic()?;
                let data = frame.data.as_deref().ok_or_else(|| {
                    Rejection::new(ErrorCode::BadFrame, "a \"pub\" needs \"data\"", reference)
                })?;
                if data.len() > MAX_DATA_BASE64 {
                    return Err(Rejection::new(
                        ErrorCode::TooLarge,
                        format!("\"data\" may hold at most {MAX_DATA} bytes"),
                        reference,
                    ));
                }
                let data = BASE64.decode(data).map_err(|_| {
                    Rejection::new(
                        ErrorCode::BadFrame,
                        "\"data\" must be standard base64 with padding",
                        reference,
                    )
                })?;
                if data.len() > MAX_DATA {
                    return Err(Rejection::new(
                        ErrorCode::TooLarge,
                        format!("\"data\" may hold at most {MAX_DATA} bytes"),
                        reference,
                    ));
                }
                Ok(Request::Publish {
                    topic,
                    data,
                    reference,
                })
            }
            _ => Err(Rejection::new(
                ErrorCode::UnknownType,
                "the relay knows the request types \"sub\", \"unsub\" and \"pub\"",
                reference,
            )),
        }
    }

    /// The request as a JSON text frame.
    pub fn to_json(&self) -> String {
        let (kind, topic, data, reference) = match self {
            Request::Subscribe { topic, reference } => ("sub", topic, None, reference),
            Request::Unsubscribe { topic, reference } => ("unsub", topic, None, reference),
            Request::Publish {
                topic,
                data,
                reference,
            } => ("pub", topic, Some(BASE64.encode(data)), reference),
        };
        Frame {
            kind: kind.into(),
            topic: Some(topic.to_string().into()),
            data: data.map(Into::into),
            reference: *reference,
            ..Frame::default()
        }
        .to_json()
    }
}

impl Event {
    /// Parses one text frame sent by a relay. Events of unknown type parse as
    /// [`Event::Unknown`]; a frame that is not an event at all is an error.
    pub fn parse(text: &str) -> Result<Event, crate::Error> {
        let malformed = |detail: &str| crate::Error::Malformed {
            what: "relay event",
            detail: detail.to_owned(),
        };
        let frame: Frame<'_> = serde_json::from_str(text)
            .map_err(|_| malformed("not a JSON object with a \"type\""))?;
        match &*frame.kind {
            "msg" => {
                let topic = frame
                    .topic
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| malformed("no valid \"topic\""))?;
                let data = frame
                    .data
                    .as_deref()
                    .filter(|d| d.len() <= MAX_DATA_BASE64)
                    .and_then(|d| BASE64.decode(d).ok())
                    .filter(|d| d.len() <= MAX_DATA)
                    .ok_or_else(|| malformed("no valid \"data\""))?;
                Ok(Event::Message { topic, data })
            }
            "ok" => Ok(Event::Ok {
                reference: frame
                    .reference
                    .ok_or_else(|| malformed("an \"ok\" without \"ref\""))?,
            }),
            "error" => Ok(Event::Error {
                code: ErrorCode::from_wire(frame.code.as_deref().unwrap_or("")),
                message: frame
                    .message
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .take(1000)
                    .collect(),
                reference: frame.reference,
            }),
            _ => Ok(Event::Unknown),
        }
    }

    /// The event as a JSON text frame. [`Event::Unknown`] has no encoding and gives `None`.
    pub fn to_json(&self) -> Option<String> {
        let frame = match self {
            Event::Message { topic, data } => Frame {
                kind: "msg".into(),
                topic: Some(topic.to_string().into()),
                data: Some(BASE64.encode(data).into()),
                ..Frame::default()
            },
            Event::Ok { reference } => Frame {
                kind: "ok".into(),
                reference: Some(*reference),
                ..Frame::default()
            },
            Event::Error {
                code,
                message,
                reference,
            } => Frame {
                kind: "error".into(),
                code: Some(code.as_str().into()),
                message: Some(message.as_str().into()),
                reference: *reference,
                ..Frame::default()
            },
            Event::Unknown => return None,
        };
        Some(frame.to_json())
    }
}
