//! Logging in to a WebDAV server as it asks: the first request goes without credentials, and
//! the server's `WWW-Authenticate` challenge chooses Digest (preferred: the password never
//! crosses the wire) or Basic; a Digest server's fresh nonce (a stale one, or a restart) is
//! taken up the same way.

use std::fmt;
use std::sync::Mutex;

use digest_auth::{AuthContext, HttpMethod, WwwAuthenticateHeader};
use reqwest_dav::re_exports::reqwest::{self, Method, Response, Url, header};

use super::BACKEND;
use crate::StoreError;

/// A user and password for the server. Whether they go as Digest or Basic is the server's
/// choice, read from its challenge.
#[derive(Clone)]
pub struct WebDavCredentials {
    /// The user name.
    pub user: String,
    /// The password (or app password).
    pub password: String,
}

impl fmt::Debug for WebDavCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDavCredentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The most challenges one request answers: the first (how to log in) and a fresh nonce.
pub(super) const CHALLENGES: usize = 2;

/// How one request was authenticated: what a 401 to it is judged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sent {
    /// Without credentials.
    Unasked,
    /// With Basic.
    Basic,
    /// With a Digest answer to this nonce.
    Digest(String),
}

/// How requests are authenticated, as learned from the server's challenges.
enum Scheme {
    /// Nothing learned yet: requests go without credentials until the server asks for them.
    Unasked,
    /// The server asked for Basic.
    Basic,
    /// The server asked for Digest with this challenge (nonce, realm, qop…).
    Digest(Box<WwwAuthenticateHeader>),
}

/// The login of one store: its credentials, and how the server asked for them.
pub(super) struct Login {
    credentials: Option<WebDavCredentials>,
    scheme: Mutex<Scheme>,
}

impl Login {
    pub(super) fn new(credentials: Option<WebDavCredentials>) -> Login {
        Login {
            credentials,
            scheme: Mutex::new(Scheme::Unasked),
        }
    }

    /// Whether credentials were given.
    pub(super) fn given(&self) -> bool {
        self.credentials.is_some()
    }

    /// Adds the login the server asked for, if it asked; says which.
    pub(super) fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        method: &Method,
        url: &Url,
    ) -> Result<(reqwest::RequestBuilder, Sent), StoreError> {
        let Some(login) = &self.credentials else {
            return Ok((request, Sent::Unasked));
        };
        let mut scheme = self
            .scheme
            .lock()
            .map_err(|_| StoreError::Misconfigured("the WebDAV login state is broken".into()))?;
        Ok(match &mut *scheme {
            Scheme::Unasked => (request, Sent::Unasked),
            Scheme::Basic => (
                request.basic_auth(&login.user, Some(&login.password)),
                Sent::Basic,
            ),
            Scheme::Digest(challenge) => {
                let mut uri = url.path().to_owned();
                if let Some(query) = url.query() {
                    uri = format!("{uri}?{query}");
                }
                let mut context = AuthContext::new(&login.user, &login.password, uri);
                context.method = HttpMethod::from(method.as_str().to_owned());
                let answer = challenge.respond(&context).map_err(|e| {
                    StoreError::Misconfigured(format!(
                        "{BACKEND}'s Digest challenge cannot be answered: {e}"
                    ))
                })?;
                (
                    request.header(header::AUTHORIZATION, answer.to_header_string()),
                    Sent::Digest(challenge.nonce.clone()),
                )
            }
        })
    }

    /// Reads the challenges of a 401 to a request authenticated as `sent`. True when sending it
    /// again would authenticate otherwise (another scheme, or a fresh Digest nonce), so it can
    /// succeed. Judged against the request, not against what is known now: requests run
    /// concurrently, and another may have learned the fresh nonce first.
    pub(super) fn learn(&self, response: &Response, sent: &Sent) -> bool {
        if self.credentials.is_none() {
            return false;
        }
        let challenges: Vec<&str> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let starts = |text: &str, scheme: &str| {
            text.trim_start()
                .get(..scheme.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
        };
        let Ok(mut scheme) = self.scheme.lock() else {
            return false;
        };
        if let Some(digest) = challenges.iter().find(|c| starts(c, "Digest")) {
            return match digest_auth::parse(digest) {
                Ok(challenge) => {
                    let fresh = *sent != Sent::Digest(challenge.nonce.clone());
                    let known =
                        matches!(&*scheme, Scheme::Digest(known) if known.nonce == challenge.nonce);
                    if !known {
                        *scheme = Scheme::Digest(Box::new(challenge));
                    }
                    fresh
                }
                Err(_) => false,
            };
        }
        // Basic only where it is asked for by name (or the server names no scheme at all): the
        // password is not sent to a server that asked for something else.
        let basic = challenges.is_empty() || challenges.iter().any(|c| starts(c, "Basic"));
        if !basic || *sent == Sent::Basic {
            return false;
        }
        *scheme = Scheme::Basic;
        true
    }
}
