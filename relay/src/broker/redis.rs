//! The Redis backend: `PUBLISH` on one connection, `SUBSCRIBE` to every partition on another
//! (a subscribed Redis connection takes no other commands).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use redis::{AsyncConnectionConfig, Client, ErrorKind, IntoConnectionInfo, RedisError};

use super::{Backend, BrokerError, Link, Outgoing, UNTRUSTED, untrusted};
use crate::RelayError;
use crate::config::{Config, Secret};

pub(crate) struct Redis {
    client: Client,
    /// HOST:PORT, for messages.
    server: String,
    channels: Arc<[String]>,
    patience: Duration,
}

impl Redis {
    pub(crate) fn new(
        url: &str,
        config: &Config,
        channels: Vec<String>,
    ) -> Result<Redis, RelayError> {
        let refuse = |detail: String| RelayError::Broker(detail);
        let mut info = url
            .into_connection_info()
            .map_err(|error| refuse(format!("{url} is not a Redis URL: {error}")))?;
        let server = info.addr().to_string();
        if let Some(Secret(password)) = &config.broker_password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = match &config.broker_ca {
            None => Client::open(info),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|error| {
                    refuse(format!(
                        "cannot read the broker CA file {}: {error} (--broker-ca)",
                        path.display()
                    ))
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                Client::build_with_tls(info, certificates)
            }
        }
        .map_err(|error| refuse(format!("cannot use {url}: {error}")))?;
        Ok(Redis {
            client,
            server,
            channels: channels.into(),
            patience: config.broker_timeout,
        })
    }

    /// Says what went wrong and what to do about it; never repeats the password.
    fn explain(&self, doing: &str, error: &RedisError) -> BrokerError {
        let server = &self.server;
        // A refused AUTH is AuthenticationFailed, a refused HELLO ... AUTH is WRONGPASS; without a
        // password a server answers NOAUTH, or refuses a long command (64 channels) as an
        // "unauthenticated multibulk".
        let refused =
            error.kind() == ErrorKind::AuthenticationFailed || error.code() == Some("WRONGPASS");
        let fix = if refused {
            "the server refused the credentials: set FERRY_RELAY_BROKER_PASSWORD (and the user \
             name in --broker) to what the server expects"
        } else if error.code() == Some("NOAUTH") || error.to_string().contains("unauthenticated") {
            "the server wants a password: set FERRY_RELAY_BROKER_PASSWORD"
        } else if untrusted(error) {
            UNTRUSTED
        } else if error.is_connection_refusal() {
            "nothing listens there: check --broker and that redis-server runs"
        } else {
            "check --broker and the server's log"
        };
        BrokerError(format!(
            "Redis at {server}: {doing} failed ({error}); {fix}"
        ))
    }
}

pub(crate) struct RedisLink {
    channels: Arc<[String]>,
    publisher: MultiplexedConnection,
    sink: PubSubSink,
    messages: PubSubStream,
}

impl Backend for Redis {
    type Link = RedisLink;

    async fn connect(&self) -> Result<RedisLink, BrokerError> {
        let mut pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|error| self.explain("connecting", &error))?;
        pubsub
            .subscribe(&*self.channels)
            .await
            .map_err(|error| self.explain("subscribing", &error))?;
        let (sink, messages) = pubsub.split();
        let settings = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.patience))
            .set_response_timeout(Some(self.patience));
        let publisher = self
            .client
            .get_multiplexed_async_connection_with_config(&settings)
            .await
            .map_err(|error| self.explain("connecting", &error))?;
        Ok(RedisLink {
            channels: Arc::clone(&self.channels),
            publisher,
            sink,
            messages,
        })
    }
}

impl Link for RedisLink {
    async fn publish(&mut self, batch: &[Outgoing]) -> Result<(), BrokerError> {
        let mut pipeline = redis::pipe();
        for outgoing in batch {
            pipeline
                .cmd("PUBLISH")
                .arg(&self.channels[outgoing.partition])
                .arg(&outgoing.envelope)
                .ignore();
        }
        pipeline
            .query_async::<()>(&mut self.publisher)
            .await
            .map_err(|error| BrokerError(format!("Redis PUBLISH failed: {error}")))
    }

    async fn next(&mut self) -> Result<Vec<u8>, BrokerError> {
        match self.messages.next().await {
            Some(message) => Ok(message.get_payload_bytes().to_vec()),
            None => Err(BrokerError(
                "the Redis subscription connection closed".into(),
            )),
        }
    }

    async fn ping(&mut self) -> Result<(), BrokerError> {
        // Any answer will do: a subscribed connection answers PING with ["pong", ""].
        let lost = |error: RedisError| BrokerError(format!("Redis PING failed: {error}"));
        self.sink.ping::<redis::Value>().await.map_err(lost)?;
        redis::cmd("PING")
            .query_async::<redis::Value>(&mut self.publisher)
            .await
            .map_err(lost)?;
        Ok(())
    }
}
