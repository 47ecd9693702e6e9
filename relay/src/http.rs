//! The HTTP/1.1 part of a connection: one request head, then a WebSocket upgrade or a short
//! answer (`/healthz`, `/metrics`, errors). Parsing is pure; the caller does the I/O.

use std::net::IpAddr;

use ::http::StatusCode;
use ferry_protocol::relay::wire::WS_PATH;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The longest request head the relay reads.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// A valid WebSocket upgrade on the relay's endpoint.
    Upgrade {
        /// The `Sec-WebSocket-Accept` value to answer with.
        accept: String,
    },
    Health,
    Metrics,
    /// Another GET or HEAD: a file of the page, when the relay serves one.
    Web(crate::web::Request),
    /// Anything else: answer with this status and reason, then close.
    Refuse {
        status: StatusCode,
        reason: &'static str,
    },
}

/// A parsed request head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) route: Route,
    /// The last address in `X-Forwarded-For`, if any and valid.
    pub(crate) forwarded_for: Option<IpAddr>,
    /// Bytes the client sent after the head (WebSocket frames sent eagerly).
    pub(crate) rest: Vec<u8>,
}

/// Why no head could be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// Not HTTP, or a head over [`MAX_HEAD`].
    Malformed,
    /// The connection ended or failed first.
    Io,
}

/// Reads one request head (and whatever followed it in the same reads).
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Head, HeadError> {
    // Read straight into the heap buffer: a stack array here would live in every
    // connection's task for its whole life.
    let mut buffer = Vec::with_capacity(1024);
    loop {
        if buffer.len() >= MAX_HEAD {
            return Err(HeadError::Malformed);
        }
        if buffer.len() == buffer.capacity() {
            buffer.reserve(1024.min(MAX_HEAD - buffer.len()));
        }
        let n = stream
            .read_buf(&mut buffer)
            .await
            .map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Io);
        }
        if let Some(head) = parse(&buffer)? {
            return Ok(head);
        }
    }
}

/// Parses `bytes` as a request head; `Ok(None)` when more bytes are needed.
pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HeadError::Malformed),
    };
    let headers = &*request.headers;
    let header = |name: &'static str| {
        headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
    };
    let has_token = |name: &'static str, token: &str| {
        header(name).any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let forwarded_for = header("x-forwarded-for")
        .next_back()
        .and_then(|v| v.rsplit(',').next())
        .and_then(|ip| ip.trim().parse().ok());

    let path = request.path.unwrap_or("");
    let path = path.split('?').next().unwrap_or(path);
    let route = match (request.method, path) {
        (Some("GET"), "/healthz") => Route::Health,
        (Some("GET"), "/metrics") => Route::Metrics,
        (Some("GET"), p) if p == WS_PATH => {
            let key = header("sec-websocket-key").next();
            if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
                Route::Refuse {
                    status: StatusCode::UPGRADE_REQUIRED,
                    reason: "this endpoint speaks WebSocket only",
                }
            } else if !header("sec-websocket-version").any(|v| v.trim() == "13") {
                Route::Refuse {
                    status: StatusCode::UPGRADE_REQUIRED,
                    reason: "WebSocket version 13 is required",
                }
            } else if let Some(key) = key {
                Route::Upgrade {
                    accept: derive_accept_key(key.trim().as_bytes()),
                }
            } else {
                Route::Refuse {
                    status: StatusCode::BAD_REQUEST,
                    reason: "the upgrade has no Sec-WebSocket-Key",
                }
            }
        }
        (Some(method @ ("GET" | "HEAD")), path) => Route::Web(crate::web::Request {
            path: path.to_owned(),
            head: method == "HEAD",
            if_none_match: header("if-none-match").next().map(str::to_owned),
            gzip: takes_gzip(header("accept-encoding")),
        }),
        _ => Route::Refuse {
            status: StatusCode::METHOD_NOT_ALLOWED,
            reason: "the relay answers GET and HEAD only",
        },
    };
    Ok(Some(Head {
        route,
        forwarded_for,
        rest: bytes[length..].to_vec(),
    }))
}

/// Whether `Accept-Encoding` values take gzip (RFC 9110 §12.5.3): named, or covered by `*`,
/// with a weight above zero.
fn takes_gzip<'a>(values: impl Iterator<Item = &'a str>) -> bool {
    let (mut gzip, mut any) = (None, None);
    for coding in values.flat_map(|value| value.split(',')) {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let weight = parts
            .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match name.as_str() {
            "gzip" | "x-gzip" => gzip = Some(weight > 0.0),
            "*" => any = Some(weight > 0.0),
            _ => {}
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// The answer that completes a WebSocket upgrade.
pub(crate) fn switching_protocols(accept: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
    .into_bytes()
}

/// The answer to a connection over its address's cap.
pub(crate) fn too_many_connections() -> Vec<u8> {
    response(
        StatusCode::TOO_MANY_REQUESTS,
        "text/plain; charset=utf-8",
        "too many connections from your address; close some and retry\n",
    )
}

/// A complete answer after which the relay closes the connection.
pub(crate) fn response(status: StatusCode, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UPGRADE: &str = "GET /v1/ws HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn upgrade_answers_with_the_rfc_accept_key() {
        let head = parse(UPGRADE.as_bytes()).unwrap().unwrap();
        // RFC 6455 section 1.3's example.
        assert_eq!(
            head.route,
            Route::Upgrade {
                accept: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()
            }
        );
        assert!(head.rest.is_empty());
    }

    #[test]
    fn bytes_after_the_head_are_kept() {
        let bytes = [UPGRADE.as_bytes(), b"\x81\x85"].concat();
        assert_eq!(parse(&bytes).unwrap().unwrap().rest, b"\x81\x85");
    }

    #[test]
    fn partial_heads_wait_for_more() {
        assert!(parse(&UPGRADE.as_bytes()[..30]).unwrap().is_none());
    }

    #[test]
    fn other_requests_are_routed_or_refused() {
        let route = |text: &str| parse(text.as_bytes()).unwrap().unwrap().route;
        assert_eq!(route("GET /healthz HTTP/1.1\r\n\r\n"), Route::Health);
        assert_eq!(route("GET /metrics?x=1 HTTP/1.1\r\n\r\n"), Route::Metrics);
        assert!(matches!(
            route("GET /v1/ws HTTP/1.1\r\n\r\n"),
            Route::Refuse {
                status: StatusCode::UPGRADE_REQUIRED,
                ..
            }
        ));
        assert_eq!(
            route("HEAD /app/x.js?v=1 HTTP/1.1\r\nAccept-Encoding: br, gzip;q=0.8\r\n\r\n"),
            Route::Web(crate::web::Request {
                path: "/app/x.js".into(),
                head: true,
                if_none_match: None,
                gzip: true,
            })
        );
        assert!(matches!(
            route("POST /v1/ws HTTP/1.1\r\n\r\n"),
            Route::Refuse {
                status: StatusCode::METHOD_NOT_ALLOWED,
                ..
            }
        ));
        assert!(parse(b"\x16\x03\x01 TLS hello").is_err());
    }

    #[test]
    fn gzip_is_taken_only_with_a_weight_above_zero() {
        let takes = |value: &str| takes_gzip(std::iter::once(value));
        assert!(takes("gzip"));
        assert!(takes("br, GZIP;q=0.5"));
        assert!(takes("*"));
        assert!(!takes("gzip;q=0"));
        assert!(!takes("gzip; q=0.0, br"));
        assert!(!takes("*;q=0"));
        assert!(!takes("br, deflate"));
        assert!(!takes("*, gzip;q=0"));
        assert!(!takes(""));
    }

    #[test]
    fn forwarded_for_takes_the_last_entry() {
        let text = "GET /healthz HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.7\r\n\r\n";
        let head = parse(text.as_bytes()).unwrap().unwrap();
        assert_eq!(head.forwarded_for, Some(IpAddr::from([10, 0, 0, 7])));
        let bad = "GET /healthz HTTP/1.1\r\nX-Forwarded-For: nonsense\r\n\r\n";
        assert_eq!(parse(bad.as_bytes()).unwrap().unwrap().forwarded_for, None);
    }
}
