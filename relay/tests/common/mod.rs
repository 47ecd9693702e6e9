//! What the relay tests share: a relay on loopback, WebSocket peers that can come from different
//! loopback addresses, and the HTTP endpoints.

#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::{ErrorCode, Event, MAX_DATA, Request};
use ferry_relay::{Config, RunningRelay};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{WebSocketStream, client_async};

pub const WAIT: Duration = Duration::from_secs(5);
pub const QUIET: Duration = Duration::from_millis(300);

pub fn topic(n: u8) -> TopicId {
    TopicId([n; 32])
}

pub fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

pub async fn relay(config: Config) -> RunningRelay {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    RunningRelay::start(config).await.unwrap()
}

pub async fn tcp_from(source: IpAddr, relay: &RunningRelay) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(relay.local_addr()).await.unwrap()
}

pub struct Peer {
    pub ws: WebSocketStream<TcpStream>,
}

impl Peer {
    pub async fn connect(relay: &RunningRelay) -> Peer {
        Peer::connect_from(loopback(1), relay).await
    }

    pub async fn connect_from(source: IpAddr, relay: &RunningRelay) -> Peer {
        let stream = tcp_from(source, relay).await;
        let (ws, _) = client_async(relay.url(), stream).await.unwrap();
        Peer { ws }
    }

    pub async fn send(&mut self, request: Request) {
        self.send_text(&request.to_json()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn subscribe(&mut self, topic: TopicId) {
        self.send(Request::Subscribe {
            topic,
            reference: Some(1),
        })
        .await;
        assert_eq!(self.event().await, Event::Ok { reference: 1 });
    }

    pub async fn publish(&mut self, topic: TopicId, data: &[u8]) {
        self.send(Request::Publish {
            topic,
            data: data.to_vec(),
            reference: None,
        })
        .await;
    }

    /// The next event, skipping pings.
    pub async fn event(&mut self) -> Event {
        loop {
            let frame = timeout(WAIT, self.ws.next())
                .await
                .expect("no event in time");
            match frame.expect("connection ended").expect("connection failed") {
                Message::Text(text) => return Event::parse(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Asserts nothing arrives for a while.
    pub async fn quiet(&mut self) {
        if let Ok(Some(Ok(Message::Text(text)))) = timeout(QUIET, self.ws.next()).await {
            panic!("unexpected event {text}");
        }
    }

    pub async fn error(&mut self) -> (ErrorCode, Option<u64>) {
        match self.event().await {
            Event::Error {
                code, reference, ..
            } => (code, reference),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Reads until the relay closes; returns the close code.
    pub async fn closed(&mut self) -> Option<CloseCode> {
        loop {
            match timeout(WAIT, self.ws.next())
                .await
                .expect("not closed in time")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

pub async fn http_get(relay: &RunningRelay, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(relay.local_addr()).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// SPEC §8.2's refusals, each with its code, on a relay configured with `max_topics: 2`; the
/// connection keeps working after every one. Uses topics `first`, `first + 1` and `first + 2`.
pub async fn refuses_each_bad_request(relay: &RunningRelay, first: u8) {
    let mut peer = Peer::connect(relay).await;

    peer.send_text("{not json").await;
    assert_eq!(peer.error().await, (ErrorCode::BadFrame, None));

    peer.send_text(r#"{"type":"sub","topic":"nope","ref":3}"#)
        .await;
    assert_eq!(peer.error().await, (ErrorCode::BadFrame, Some(3)));

    peer.send_text(r#"{"type":"hello","ref":4,"extra":true}"#)
        .await;
    assert_eq!(peer.error().await, (ErrorCode::UnknownType, Some(4)));

    peer.send(Request::Publish {
        topic: topic(first),
        data: vec![0; MAX_DATA + 1],
        reference: Some(5),
    })
    .await;
    assert_eq!(peer.error().await, (ErrorCode::TooLarge, Some(5)));

    peer.ws.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(peer.error().await, (ErrorCode::BadFrame, None));

    peer.subscribe(topic(first)).await;
    peer.subscribe(topic(first + 1)).await;
    peer.subscribe(topic(first + 1)).await; // already held: not counted twice
    peer.send(Request::Subscribe {
        topic: topic(first + 2),
        reference: Some(6),
    })
    .await;
    assert_eq!(peer.error().await, (ErrorCode::TooManyTopics, Some(6)));

    // Unknown fields are ignored, and the connection still works after every refusal.
    let mut other = Peer::connect(relay).await;
    other.subscribe(topic(first + 1)).await;
    let json = format!(
        r#"{{"type":"pub","topic":"{}","data":"AQI=","future":{{"x":1}}}}"#,
        topic(first + 1)
    );
    peer.send_text(&json).await;
    assert_eq!(
        other.event().await,
        Event::Message {
            topic: topic(first + 1),
            data: vec![1, 2]
        }
    );

    let (_, metrics) = http_get(relay, "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "ferry_relay_rejections_total{reason=\"bad_frame\"}"
        ),
        3
    );
    assert_eq!(
        metric(
            &metrics,
            "ferry_relay_rejections_total{reason=\"unknown_type\"}"
        ),
        1
    );
    assert_eq!(
        metric(
            &metrics,
            "ferry_relay_rejections_total{reason=\"too_many_topics\"}"
        ),
        1
    );
}
