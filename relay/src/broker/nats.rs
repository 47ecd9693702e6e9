//! The NATS backend: one connection that publishes on each partition's subject and subscribes to
//! all of them with one wildcard. The server sends an instance none of its own publishes
//! (`no_echo`).

use std::path::PathBuf;
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::{Client, ConnectErrorKind, ConnectOptions, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;

use super::{Backend, BrokerError, Link, Outgoing, UNTRUSTED, untrusted};
use crate::RelayError;
use crate::config::{Config, Secret};

pub(crate) struct Nats {
    /// The URL without its user name.
    url: String,
    user: Option<String>,
    password: Option<Secret>,
    ca: Option<PathBuf>,
    credentials: Option<PathBuf>,
    subjects: Vec<String>,
    wildcard: String,
    /// A subject outside the partitions that nobody answers: a request there comes back as "no
    /// responders" from the server itself, a round trip.
    probe: String,
    patience: Duration,
}

impl Nats {
    pub(crate) fn new(
        url: &str,
        config: &Config,
        subjects: Vec<String>,
    ) -> Result<Nats, RelayError> {
        for (path, flag) in [
            (&config.broker_ca, "--broker-ca"),
            (&config.broker_credentials, "--broker-credentials"),
        ] {
            if let Some(path) = path {
                std::fs::read(path).map_err(|error| {
                    RelayError::Broker(format!("cannot read {} ({flag}): {error}", path.display()))
                })?;
            }
        }
        let (scheme, rest) = url.split_once("://").unwrap_or(("nats", url));
        let (user, host) = match rest.rsplit_once('@') {
            Some((user, host)) => (Some(user.to_owned()), host),
            None => (None, rest),
        };
        let wildcard = subjects
            .first()
            .and_then(|first| first.rsplit_once('.'))
            .map(|(prefix, _)| format!("{prefix}.*"))
            .unwrap_or_default();
        let probe = format!("{}.probe", config.broker_namespace);
        Ok(Nats {
            url: format!("{scheme}://{host}"),
            user,
            password: config.broker_password.clone(),
            ca: config.broker_ca.clone(),
            credentials: config.broker_credentials.clone(),
            subjects,
            wildcard,
            probe,
            patience: config.broker_timeout,
        })
    }

    async fn options(&self) -> Result<ConnectOptions, BrokerError> {
        let mut options = ConnectOptions::new()
            .name("ferry-relay")
            .no_echo()
            .connection_timeout(self.patience)
            .request_timeout(Some(self.patience))
            .ping_interval(self.patience * 2)
            // One quick retry inside the client; after that the subscription ends and the
            // driver reconnects with its own jittered backoff.
            .max_reconnects(1)
            .reconnect_delay_callback(|_| Duration::from_millis(100));
        if self.url.starts_with("tls://") {
            options = options.require_tls(true);
        }
        if let Some(ca) = &self.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some(path) = &self.credentials {
            options = options.credentials_file(path).await.map_err(|error| {
                BrokerError(format!(
                    "cannot read the NATS credentials {}: {error} (--broker-credentials)",
                    path.display()
                ))
            })?;
        }
        match (&self.user, &self.password) {
            (Some(user), Some(Secret(password))) => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            (None, Some(Secret(token))) => options = options.token(token.clone()),
            (Some(_), None) => {
                return Err(BrokerError(
                    "the broker URL names a user but FERRY_RELAY_BROKER_PASSWORD is not set".into(),
                ));
            }
            (None, None) => {}
        }
        Ok(options)
    }
}

pub(crate) struct NatsLink {
    client: Client,
    messages: Subscriber,
    subjects: Vec<String>,
    probe: String,
}

impl Backend for Nats {
    type Link = NatsLink;

    async fn connect(&self) -> Result<NatsLink, BrokerError> {
        let url = &self.url;
        let client = self.options().await?.connect(url).await.map_err(|error| {
            let fix = match error.kind() {
                ConnectErrorKind::Authentication | ConnectErrorKind::AuthorizationViolation => {
                    "the server refused the credentials: check FERRY_RELAY_BROKER_PASSWORD, \
                     the user in --broker, or --broker-credentials"
                }
                ConnectErrorKind::Tls => UNTRUSTED,
                _ if untrusted(&error) => UNTRUSTED,
                _ => "check --broker and that nats-server runs",
            };
            BrokerError(format!("NATS at {url}: connecting failed ({error}); {fix}"))
        })?;
        let messages = client
            .subscribe(self.wildcard.clone())
            .await
            .map_err(|error| BrokerError(format!("NATS at {url}: subscribing failed ({error})")))?;
        let mut link = NatsLink {
            client,
            messages,
            subjects: self.subjects.clone(),
            probe: self.probe.clone(),
        };
        // The server handles a connection's commands in order: once the probe is answered, the
        // subscription is in place and the instance may say it is connected.
        link.ping().await?;
        Ok(link)
    }
}

impl Link for NatsLink {
    async fn publish(&mut self, batch: &[Outgoing]) -> Result<(), BrokerError> {
        for outgoing in batch {
            let subject = self.subjects[outgoing.partition].clone();
            let payload = Bytes::copy_from_slice(&outgoing.envelope);
            self.client
                .publish(subject, payload)
                .await
                .map_err(|error| BrokerError(format!("NATS publish failed: {error}")))?;
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<Vec<u8>, BrokerError> {
        match self.messages.next().await {
            Some(message) => Ok(message.payload.to_vec()),
            None => Err(BrokerError("the NATS connection closed".into())),
        }
    }

    async fn ping(&mut self) -> Result<(), BrokerError> {
        let probe = self.client.request(self.probe.clone(), Bytes::new()).await;
        match probe {
            Err(error) if error.kind() != RequestErrorKind::NoResponders => {
                Err(BrokerError(format!("NATS did not answer a probe: {error}")))
            }
            _ => Ok(()),
        }
    }
}
