//! The failure stories every storage backend must tell the same way: each backend's test makes
//! the failure its own way (its own server, wrong credentials, a missing root) and hands the
//! store to one of these, which checks what the store reports.

use std::time::{Duration, Instant};

use ferry_store::{ANY_SIZE, RetryPolicy, Store, StoreError};

/// Credentials the server refuses: unauthorized, not worth a retry, and the secret never in
/// the message.
pub async fn wrong_credentials_are_unauthorized(store: &dyn Store, secret: &str) {
    let err = store.get("ferry/v1/repo", ANY_SIZE).await.unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_transient());
    assert!(!err.to_string().contains(secret), "{err}");
}

/// A root that is not there: misconfigured, naming what is missing.
pub async fn a_missing_root_is_misconfigured(store: &dyn Store, missing: &str) {
    let err = store.list("", None, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Misconfigured(_)), "{err:?}");
    assert!(err.to_string().contains(missing), "{err}");
    assert!(!store.probe().await.is_ok());
}

/// Nothing listens at `endpoint`: unreachable, worth a retry, said with the endpoint and the
/// system's reason, not the HTTP client's layers.
pub async fn nothing_listening_is_unreachable(store: &dyn Store, endpoint: &str) {
    let err = store.get("ferry/v1/repo", ANY_SIZE).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    let said = err.to_string();
    assert!(
        said.contains(&format!(
            "at {endpoint} cannot be reached (Connection refused"
        )),
        "{said}"
    );
    for layer in ["dispatch failure", "client error", "tcp connect error"] {
        assert!(!said.contains(layer), "{said}");
    }
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A server that accepts and never answers (the store's request timeout is short): a transient
/// failure, within seconds.
pub async fn a_server_that_hangs_times_out_as_transient(store: &dyn Store) {
    let started = Instant::now();
    let err = store.get("ferry/v1/repo", ANY_SIZE).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A server that fails the first two requests and then answers: a transient failure each
/// time, retried until the object is stored (three attempts), and then readable.
pub async fn a_server_failing_twice_is_retried_to_success(store: &dyn Store) {
    let mut attempts = 0;
    fast_retry()
        .run(|| {
            attempts += 1;
            store.put_new("ferry/v1/repo", b"header".to_vec())
        })
        .await
        .unwrap();
    assert_eq!(attempts, 3, "two failures, then success");
    assert_eq!(
        store.get("ferry/v1/repo", ANY_SIZE).await.unwrap(),
        b"header"
    );
}

/// Retries quick enough for a test.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        first_delay: Duration::from_millis(10),
        ..RetryPolicy::DEFAULT
    }
}
