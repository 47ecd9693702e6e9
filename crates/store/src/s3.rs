//! A repository in an S3-compatible bucket, through `aws-sdk-s3`.
//!
//! The client is built from the store URL alone: a fixed endpoint and region, static
//! credentials, no instance-metadata or profile lookups. Request checksums are sent and response
//! checksums checked only where the operation requires them: otherwise the SDK streams uploads in
//! the `aws-chunked` encoding, which several S3-compatible servers reject or store with the chunk
//! headers as data. The SDK's own retries are off, because the sync engine retries with
//! [`RetryPolicy`](crate::RetryPolicy) across all backends alike; every attempt has a timeout.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::error::{CHECK_THE_SERVER, error_chain, root_cause};
use crate::store::{Bounded, Write};
use crate::url::S3Location;
use crate::{ListPage, MAX_PAGE, ObjectMeta, Store, StoreError};

const BACKEND: &str = "the S3 server";

const FORBIDDEN_HINT: &str = "check the bucket name and region; that the access key's policy \
    allows s3:ListBucket on the bucket (arn:aws:s3:::BUCKET) and s3:GetObject, s3:PutObject and \
    s3:DeleteObject on its objects (arn:aws:s3:::BUCKET/*); that a KMS key used for default \
    encryption lets this key use it; and that no bucket policy or organisation rule denies it \
    explicitly";

/// An access key and its secret.
#[derive(Clone)]
pub struct S3Credentials {
    /// The access key id (not secret, but not shown either).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
}

impl S3Credentials {
    /// From `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, when both are set.
    pub fn from_env() -> Option<Self> {
        Some(S3Credentials {
            access_key_id: std::env::var("AWS_ACCESS_KEY_ID").ok()?,
            secret_access_key: std::env::var("AWS_SECRET_ACCESS_KEY").ok()?,
        })
    }
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("S3Credentials(<redacted>)")
    }
}

/// An access key id as errors show it: its last four characters, enough to tell two keys apart.
fn key_hint(access_key_id: &str) -> String {
    let chars: Vec<char> = access_key_id.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

/// Timeouts of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection.
    pub connect: Duration,
    /// For one whole request, upload and download included.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(120),
        }
    }
}

/// A store in an S3 bucket, under a prefix.
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty, or the user's prefix with a trailing `/`.
    prefix: String,
    endpoint: String,
    /// The credentials, as a refusal names them.
    credentials: String,
    /// How long a whole request may take, body included.
    request_timeout: Duration,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("endpoint", &origin(&self.endpoint))
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// A store for `location`, signing with `credentials`.
    pub fn new(location: &S3Location, credentials: S3Credentials, timeouts: Timeouts) -> Self {
        let named = format!(
            "the access key {} and its secret",
            key_hint(&credentials.access_key_id)
        );
        let credentials = Credentials::new(
            credentials.access_key_id,
            credentials.secret_access_key,
            None,
            None,
            "ferry",
        );
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(location.region.clone()))
            .endpoint_url(&location.endpoint)
            .force_path_style(location.path_style)
            .credentials_provider(credentials)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeouts.connect)
                    .operation_attempt_timeout(timeouts.request)
                    .operation_timeout(timeouts.request)
                    .build(),
            )
            .build();
        let prefix = match location.prefix.trim_matches('/') {
            "" => String::new(),
            prefix => format!("{prefix}/"),
        };
        S3Store {
            client: Client::from_conf(config),
            bucket: location.bucket.clone(),
            prefix,
            endpoint: location.endpoint.clone(),
            credentials: named,
            request_timeout: timeouts.request,
        }
    }

    /// Says where the credentials came from ("saved for this device", "from
    /// AWS_ACCESS_KEY_ID…"), so that a refusal names the place to fix them.
    pub fn with_credentials_origin(mut self, origin: &str) -> Self {
        self.credentials = format!("{} ({origin})", self.credentials);
        self
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    async fn upload(&self, name: &str, bytes: Vec<u8>, write: Write) -> Result<(), StoreError> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .body(ByteStream::from(bytes));
        if write == Write::Once {
            request = request.if_none_match("*");
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.classify(e, name))
    }

    /// Reads an object of at most `limit` bytes: refused on its announced length, or as soon
    /// as its body goes past `limit`; the body must arrive within the request timeout.
    async fn download(&self, name: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
            .map_err(|e| self.classify(e, name))?;
        let expected = output.content_length().and_then(|n| u64::try_from(n).ok());
        let mut bounded = Bounded::start(name, limit, expected)?;
        let mut body = output.body;
        let read = async {
            while let Some(chunk) = body.try_next().await.map_err(|e| StoreError::Transient {
                backend: BACKEND,
                detail: format!("reading the body of {name}: {e}"),
            })? {
                bounded.push(&chunk)?;
            }
            Ok::<(), StoreError>(())
        };
        tokio::time::timeout(self.request_timeout, read)
            .await
            .map_err(|_| StoreError::Transient {
                backend: BACKEND,
                detail: format!(
                    "the body of {name} did not arrive within {:?}",
                    self.request_timeout
                ),
            })??;
        Ok(bounded.finish())
    }

    /// Sorts an SDK error into the classes the sync engine acts on.
    fn classify<E>(&self, error: SdkError<E, HttpResponse>, name: &str) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        // No connection at all: where (scheme, host and port only), and what the system
        // said, not the SDK's layers. (A request that times out midway did reach it.)
        if let SdkError::DispatchFailure(_) = error {
            return StoreError::Unreachable {
                backend: BACKEND,
                endpoint: origin(&self.endpoint),
                reason: root_cause(&error),
                fix: CHECK_THE_SERVER,
            };
        }
        let status = error.raw_response().map(|r| r.status().as_u16());
        let retry_after = error
            .raw_response()
            .and_then(|r| r.headers().get("retry-after"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let code = error.code().unwrap_or("").to_owned();
        let message = error.message().unwrap_or("").to_owned();
        let detail = match (status, code.is_empty()) {
            (Some(status), false) => format!("HTTP {status} {code}"),
            (Some(status), true) => format!("HTTP {status}"),
            (None, _) => error_chain(&error),
        };
        let detail = if message.is_empty() {
            detail
        } else {
            format!("{detail}: {message}")
        };
        match (status, code.as_str()) {
            (_, "NoSuchBucket") => StoreError::Misconfigured(format!(
                "the bucket `{}` does not exist at {}: create it, or fix the bucket name, \
                 region or endpoint in the store URL",
                self.bucket,
                origin(&self.endpoint)
            )),
            (_, "NoSuchKey") | (Some(404), _) => StoreError::NotFound { name: name.into() },
            (
                _,
                "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "NotSignedUp",
            )
            | (Some(401), _) => StoreError::Unauthorized {
                backend: BACKEND,
                detail,
                credentials: self.credentials.clone(),
            },
            (_, "PreconditionFailed") | (Some(412), _) => {
                StoreError::AlreadyExists { name: name.into() }
            }
            (_, "SlowDown" | "Throttling" | "TooManyRequests") | (Some(429 | 503), _) => {
                StoreError::Throttled {
                    backend: BACKEND,
                    retry_after,
                }
            }
            (Some(500..=599), _) => StoreError::ServerFailed {
                backend: BACKEND,
                detail,
            },
            (_, "AccessDenied" | "AllAccessDisabled" | "AccountProblem") | (Some(403), _) => {
                StoreError::Forbidden {
                    backend: BACKEND,
                    detail,
                    hint: FORBIDDEN_HINT,
                }
            }
            (_, "PermanentRedirect" | "AuthorizationHeaderMalformed") | (Some(301 | 400), _) => {
                StoreError::Misconfigured(format!(
                    "{BACKEND} refused the request ({detail}): the region or endpoint in the store \
                 URL probably does not match the bucket's"
                ))
            }
            _ => StoreError::Transient {
                backend: BACKEND,
                detail,
            },
        }
    }
}

/// Whether the server refused a `DeleteObjects` request as such (not implemented, or a
/// checksum it wants), rather than for its credentials or the bucket.
fn batch_not_taken<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    let status = error.raw_response().map(|r| r.status().as_u16());
    matches!(status, Some(400 | 405 | 411 | 501))
        || matches!(
            error.code(),
            Some(
                "NotImplemented"
                    | "XNotImplemented"
                    | "MissingContentMD5"
                    | "InvalidDigest"
                    | "BadDigest"
                    | "MethodNotAllowed"
                    | "InvalidRequest"
            )
        )
}

#[async_trait]
impl Store for S3Store {
    async fn put_new(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.upload(name, bytes, Write::Once).await
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.upload(name, bytes, Write::Replace).await
    }

    async fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        self.download(name, limit).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(prefix))
            .set_start_after(start_after.map(|after| self.key(after)))
            .max_keys(limit as i32)
            .send()
            .await
            .map_err(|e| self.classify(e, prefix))?;
        let objects: Vec<ObjectMeta> = output
            .contents()
            .iter()
            .filter_map(|object| {
                let name = object.key()?.strip_prefix(&self.prefix)?.to_owned();
                Some(ObjectMeta {
                    name,
                    size: object.size().unwrap_or(0).max(0) as u64,
                    etag: object.e_tag().map(str::to_owned),
                    modified: object
                        .last_modified()
                        .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                })
            })
            .collect();
        let next = match output.is_truncated() {
            Some(true) => objects.last().map(|o| o.name.clone()),
            _ => None,
        };
        Ok(ListPage { objects, next })
    }

    async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(name))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match self.classify(e, name) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            })
    }

    /// One `DeleteObjects` request per [`MAX_PAGE`] names. A server that does not take the
    /// batch request (some S3-compatible servers do not implement it, or want a checksum this
    /// client does not send) gets one `DeleteObject` each.
    async fn delete_many(&self, names: &[String]) -> Result<(), StoreError> {
        for batch in names.chunks(MAX_PAGE) {
            let objects = batch
                .iter()
                .map(|name| ObjectIdentifier::builder().key(self.key(name)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| StoreError::Misconfigured(format!("a delete request: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| StoreError::Misconfigured(format!("a delete request: {e}")))?;
            let sent = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await;
            match sent {
                Ok(output) => {
                    if let Some(refused) = output.errors().first() {
                        let detail = format!(
                            "`{}` was not deleted: {} {}",
                            refused.key().unwrap_or_default(),
                            refused.code().unwrap_or_default(),
                            refused.message().unwrap_or_default()
                        );
                        return Err(match refused.code() {
                            Some("AccessDenied") => StoreError::Forbidden {
                                backend: BACKEND,
                                detail,
                                hint: FORBIDDEN_HINT,
                            },
                            _ => StoreError::Transient {
                                backend: BACKEND,
                                detail,
                            },
                        });
                    }
                }
                Err(error) if batch_not_taken(&error) => {
                    for name in batch {
                        self.delete(name).await?;
                    }
                }
                Err(error) => return Err(self.classify(error, &batch[0])),
            }
        }
        Ok(())
    }
}

/// An endpoint as messages name it: scheme, host and port, never a login or a query.
fn origin(endpoint: &str) -> String {
    match url::Url::parse(endpoint) {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "the endpoint in the store URL".to_owned(),
    }
}
