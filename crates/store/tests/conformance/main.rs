//! The conformance suite: one story every backend must tell the same way.
//!
//! `suite::run_all` takes any [`Store`] opened on an empty root. Each backend gets one test here
//! that starts what it needs and runs the whole suite against it; the failures every backend
//! must report alike are told once (`ferry_test_kit::failures`), each backend making them its
//! own way.

mod suite;

use ferry_test_kit::{failures, servers};

use std::sync::Arc;
use std::time::Duration;

use ferry_store::s3::Timeouts;
use ferry_store::{
    ANY_SIZE, FolderStore, S3Credentials, S3Store, Store, StoreError, WebDavCredentials,
    WebDavStore,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderStore::open(dir.path()).unwrap();
    suite::run_all(&store).await;
    suite::run_concurrent(std::sync::Arc::new(store)).await;
}

#[tokio::test]
async fn folder_missing_or_not_a_folder_is_misconfigured() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = FolderStore::open(&missing).unwrap_err();
    assert!(matches!(err, StoreError::Misconfigured(_)));
    assert!(err.to_string().contains("does not exist"), "{err}");
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let err = FolderStore::open(dir.path().join("file")).unwrap_err();
    assert!(err.to_string().contains("is a file"), "{err}");
    // `create` makes it.
    let store = FolderStore::create(&missing).unwrap();
    assert!(store.probe().await.is_ok());
}

#[tokio::test]
async fn folder_leftovers_of_a_crash_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderStore::open(dir.path()).unwrap();
    store
        .put_new("ferry/v1/repo", b"header".to_vec())
        .await
        .unwrap();
    std::fs::write(dir.path().join("ferry/v1/.repo.0123.tmp"), b"half").unwrap();
    let page = store.list("ferry/", None, 100).await.unwrap();
    let names: Vec<_> = page.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["ferry/v1/repo"]);
}

/// Regression: a listing failed with "no object named `…/head/`" when another device deleted
/// its previous head between the folder's read and the file's stat, so a fetch failed and the
/// news waited for the next poll. Objects that vanish mid-listing are simply not listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_listing_while_another_device_replaces_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FolderStore::open(dir.path()).unwrap());
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for seq in 1..=2_000u32 {
                let name = |seq: u32| format!("ferry/v1/head/device/{seq:016}");
                store.put_new(&name(seq), vec![1; 64]).await.unwrap();
                if seq > 1 {
                    store.delete(&name(seq - 1)).await.unwrap();
                }
            }
        })
    };
    let mut listings = 0;
    while !writer.is_finished() {
        let page = store.list("ferry/v1/head/", None, 1_000).await;
        let page = page.unwrap_or_else(|e| panic!("listing {listings} failed: {e}"));
        assert!(page.objects.len() <= 2, "{:?}", page.objects);
        listings += 1;
    }
    writer.await.unwrap();
    assert!(listings > 10, "only {listings} listings ran");
}

/// What is not a stored object is refused without being read: a FIFO (which would block a
/// reader until some writer came), a folder, a symbolic link; and a 2 GiB file on its size.
/// (FIFOs and the symbolic links a user makes are Unix's.)
#[cfg(unix)]
#[tokio::test]
async fn folder_reads_only_regular_files_within_their_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = FolderStore::open(dir.path()).unwrap();
    let objects = dir.path().join("ferry/v1/log/dev");
    std::fs::create_dir_all(objects.join("folder")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(objects.join("fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(objects.join("target"), b"secret elsewhere").unwrap();
    std::os::unix::fs::symlink(objects.join("target"), objects.join("link")).unwrap();
    let huge = std::fs::File::create(objects.join("huge")).unwrap();
    huge.set_len(2 << 30).unwrap();
    for (name, what) in [
        ("fifo", "a FIFO"),
        ("folder", "a folder"),
        ("link", "a symbolic link"),
    ] {
        let name = format!("ferry/v1/log/dev/{name}");
        assert_eq!(
            store.get(&name, ANY_SIZE).await.unwrap_err(),
            StoreError::NotAnObject {
                name: name.clone(),
                what
            }
        );
    }
    let refused = store
        .get("ferry/v1/log/dev/huge", 16 << 20)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::TooLarge { size, .. } if size == 2 << 30),
        "{refused:?}"
    );
    // Its size, from the file, not from reading it (a read would stop after the limit).
    assert!(
        refused.to_string().contains("2147483648 bytes"),
        "{refused}"
    );
}

#[tokio::test]
async fn folder_refuses_names_that_leave_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        FolderStore::open(dir.path().join("..").join(dir.path().file_name().unwrap())).unwrap();
    for name in [
        "../escape",
        "ferry/../../escape",
        "/etc/passwd",
        "ferry/.hidden",
    ] {
        let err = store.put(name, b"x".to_vec()).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Misconfigured(_)),
            "{name}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backend() {
    let (_server, location) = servers::s3().await;
    let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
    suite::run_all(&store).await;
    suite::run_concurrent(Arc::new(store)).await;
}

#[tokio::test]
async fn s3_wrong_credentials_are_unauthorized() {
    let (_server, location) = servers::s3().await;
    let wrong = S3Credentials {
        access_key_id: servers::ACCESS_KEY.into(),
        secret_access_key: "not-the-secret".into(),
    };
    let store = S3Store::new(&location, wrong, Timeouts::default());
    failures::wrong_credentials_are_unauthorized(&store, "not-the-secret").await;
    let unknown = S3Credentials {
        access_key_id: "AKIDUNKNOWN".into(),
        secret_access_key: "x".into(),
    };
    let store = S3Store::new(&location, unknown, Timeouts::default());
    let err = store.get("ferry/v1/repo", ANY_SIZE).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Unauthorized { .. } | StoreError::Forbidden { .. }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn s3_nothing_listening_is_unreachable() {
    let (_server, mut location) = servers::s3().await;
    location.endpoint = format!("http://127.0.0.1:{}", failures::closed_port());
    let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
    failures::nothing_listening_is_unreachable(&store, &location.endpoint).await;
}

#[tokio::test]
async fn s3_missing_bucket_is_misconfigured() {
    let (_server, mut location) = servers::s3().await;
    location.bucket = "no-such-bucket".into();
    let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
    failures::a_missing_root_is_misconfigured(&store, "no-such-bucket").await;
}

#[tokio::test]
async fn s3_a_server_that_hangs_times_out_as_transient() {
    let (_server, endpoint) = servers::silent().await;
    let (_real, mut location) = servers::s3().await;
    location.endpoint = endpoint;
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_millis(500),
    };
    let store = S3Store::new(&location, servers::credentials(), timeouts);
    failures::a_server_that_hangs_times_out_as_transient(&store).await;
}

#[tokio::test]
async fn s3_a_server_failing_twice_then_answering_is_retried_to_success() {
    let (_server, location) = servers::s3_failing_first(2).await;
    let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
    failures::a_server_failing_twice_is_retried_to_success(&store).await;
}

#[tokio::test]
async fn s3_a_throttled_request_keeps_the_servers_retry_after() {
    let (_server, location) = servers::s3_failing_first(1).await;
    let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
    let err = store.list("ferry/", None, 10).await.unwrap_err();
    assert!(err.is_transient(), "a 503 is worth retrying: {err:?}");
    assert!(
        matches!(err, StoreError::Throttled { retry_after: Some(d), .. } if d == Duration::from_secs(1)),
        "the server's Retry-After is kept: {err:?}"
    );
    assert!(
        store
            .list("ferry/", None, 10)
            .await
            .unwrap()
            .objects
            .is_empty()
    );
}

#[tokio::test]
async fn s3_probe_reports_each_missing_permission() {
    let cases: [(&'static [&'static str], [bool; 4]); 4] = [
        (&[], [true, true, true, true]),
        (&["ListObjectsV2"], [false, true, true, true]),
        (&["GetObject"], [true, true, false, true]),
        (&["DeleteObject"], [true, true, true, false]),
    ];
    for (denied, [list, write, read, delete]) in cases {
        let (_server, location) = servers::s3_denying(denied).await;
        let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
        let report = store.probe().await;
        assert_eq!(report.list.is_ok(), list, "{denied:?}: {report:?}");
        assert_eq!(report.write.is_ok(), write, "{denied:?}: {report:?}");
        assert_eq!(report.read.is_ok(), read, "{denied:?}: {report:?}");
        assert_eq!(report.delete.is_ok(), delete, "{denied:?}: {report:?}");
        for result in [&report.list, &report.read, &report.delete] {
            if let Err(err) = result {
                assert!(matches!(err, StoreError::Forbidden { .. }), "{err:?}");
                assert!(err.to_string().contains("s3:ListBucket"), "{err}");
            }
        }
    }
    let (_server, location) = servers::s3_denying(&["PutObject"]).await;
    let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
    let report = store.probe().await;
    assert!(
        matches!(report.write, Err(StoreError::Forbidden { .. })),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_deletes_many_in_one_batch_request() {
    let names: Vec<String> = (0..3).map(|n| format!("ferry/v1/batch/{n}")).collect();
    let left = async |store: &S3Store| {
        store
            .list("ferry/v1/batch/", None, 10)
            .await
            .unwrap()
            .objects
            .len()
    };
    // Single deletes refused: the batch request alone does the work.
    let (_server, location) = servers::s3_denying(&["DeleteObject"]).await;
    let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
    for name in &names {
        store.put(name, b"x".to_vec()).await.unwrap();
    }
    store.delete_many(&names).await.unwrap();
    assert_eq!(left(&store).await, 0);
    // The batch request refused as not allowed: that is an answer, not a reason to go one by
    // one, and it says which permission is missing.
    let (_server, location) = servers::s3_denying(&["DeleteObjects"]).await;
    let store = S3Store::new(&location, servers::credentials(), Timeouts::default());
    for name in &names {
        store.put(name, b"x".to_vec()).await.unwrap();
    }
    let error = store.delete_many(&names).await.unwrap_err();
    assert!(matches!(error, StoreError::Forbidden { .. }), "{error:?}");
    assert_eq!(left(&store).await, 3);
}

#[tokio::test]
async fn webdav_nothing_listening_is_unreachable() {
    let endpoint = format!("http://127.0.0.1:{}", failures::closed_port());
    let location = ferry_store::url::WebDavLocation {
        url: format!("{endpoint}/dav/"),
        user: Some("me".into()),
    };
    let store = WebDavStore::new(
        &location,
        Some(servers::dav_credentials()),
        Timeouts::default(),
    )
    .unwrap();
    failures::nothing_listening_is_unreachable(&store, &endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_backend() {
    let (_server, location) = servers::webdav(0).await;
    let store = WebDavStore::new(
        &location,
        Some(servers::dav_credentials()),
        Timeouts::default(),
    )
    .unwrap();
    suite::run_all(&store).await;
    suite::run_concurrent(Arc::new(store)).await;
}

/// nginx, a real server with its own quirks: it refuses a PUT without `Content-Length` (so an
/// empty object needs the header), wants a trailing `/` on MKCOL, answers a PUT into a missing
/// folder with 500, and ignores `If-None-Match`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_nginx_backend() {
    let Some((_server, location)) = servers::nginx() else {
        return;
    };
    let store = WebDavStore::new(
        &location,
        Some(servers::dav_credentials()),
        Timeouts::default(),
    )
    .unwrap();
    suite::run_all_with(&store, suite::WriteOnce::Ignored).await;
    suite::run_concurrent(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_digest_login_is_negotiated_and_a_stale_nonce_renewed() {
    let (_server, location) = servers::webdav_digest().await;
    let store = WebDavStore::new(
        &location,
        Some(servers::dav_credentials()),
        Timeouts::default(),
    )
    .unwrap();
    // The suite makes far more requests than one nonce lasts.
    suite::run_all(&store).await;
    let wrong = WebDavCredentials {
        password: "not-the-password".into(),
        ..servers::dav_credentials()
    };
    let store = WebDavStore::new(&location, Some(wrong), Timeouts::default())
        .unwrap()
        .with_credentials_origin("from the test");
    let err = store.get("ferry/v1/repo", ANY_SIZE).await.unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("the password of the user `ferry` (from the test)"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");
}

/// A client's first request is refused twice when the nonce it learns turns stale at once (the
/// server rotates it every so many requests): the second challenge is answered too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_a_nonce_that_turns_stale_at_the_first_answer_is_renewed() {
    let (_server, location) = servers::webdav_digest().await;
    // Each new client costs two requests (refused, answered): over more clients than a nonce
    // lasts requests, one of them answers a nonce that has just gone stale.
    for _ in 0..30 {
        let store = WebDavStore::new(
            &location,
            Some(servers::dav_credentials()),
            Timeouts::default(),
        )
        .unwrap();
        let listed = store.list("ferry/", None, 1).await;
        assert!(listed.is_ok(), "{listed:?}");
    }
}

/// A hostile or broken server's challenges never panic or loop: each ends in a typed refusal.
#[tokio::test]
async fn webdav_broken_challenges_are_refusals() {
    for challenge in [
        "Digest",
        "Digest realm=\"x\", qop=\"bogus\", nonce=\"n\"",
        "Digest realm=\"x\", algorithm=ROT13, nonce=\"n\"",
        "Digest realm=\"unterminated, nonce=\"",
        "Basic",
        "Negotiate abcdef",
        "Digest ,,,=,=\",nonce",
    ] {
        let (_server, location) = servers::webdav_refusing(challenge).await;
        let store = WebDavStore::new(
            &location,
            Some(servers::dav_credentials()),
            Timeouts::default(),
        )
        .unwrap();
        let err = store.get("ferry/v1/repo", ANY_SIZE).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Unauthorized { .. } | StoreError::Misconfigured(_)
            ),
            "{challenge}: {err:?}"
        );
        assert!(!err.to_string().contains(servers::DAV_PASSWORD));
        assert!(!err.is_transient(), "{challenge}");
    }
}

/// A store on the collection `path` below the test server's `base`, logged in.
fn store_below(base: &ferry_store::url::WebDavLocation, path: &str) -> WebDavStore {
    let location = ferry_store::url::WebDavLocation {
        url: format!("{}{path}", base.url),
        user: base.user.clone(),
    };
    WebDavStore::new(
        &location,
        Some(servers::dav_credentials()),
        Timeouts::default(),
    )
    .unwrap()
}

/// A collection whose path has a space and a letter outside ASCII (as Nextcloud folders often
/// have), on the in-process server and on nginx: every case of the suite holds there, as the
/// server's listings encode such paths in whichever way they choose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_a_root_with_a_space_and_an_accent_holds_every_case() {
    let (_dav, dav) = servers::webdav(0).await;
    let nginx = servers::nginx();
    let mut locations = vec![(dav, suite::WriteOnce::Enforced)];
    locations.extend(
        nginx
            .as_ref()
            .map(|(_, location)| (location.clone(), suite::WriteOnce::Ignored)),
    );
    for (base, write_once) in locations {
        let store = store_below(&base, "my%20folder/%C3%9Cbersicht/");
        store.create_root().await.unwrap();
        suite::run_all_with(&store, write_once).await;
        suite::run_concurrent(Arc::new(store)).await;
    }
}

/// A server that answers a MKCOL with an error although the folder is there (another writer
/// made it at the same moment: Apache answers 403, WsgiDAV 500): the write goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_a_folder_another_writer_made_first_is_used() {
    let (_server, base) = servers::webdav_losing_folder_races().await;
    let store = store_below(&base, "new/ferry/");
    store.create_root().await.unwrap();
    store
        .put_new("ferry/v1/log/abc/1", b"segment".to_vec())
        .await
        .unwrap();
    let page = store.list("ferry/v1/log/", None, 10).await.unwrap();
    assert_eq!(page.objects.len(), 1);
}

/// A new repository may name folders that do not exist yet: each missing level is made, on the
/// in-process server and on nginx; the levels that exist are left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_create_root_makes_each_missing_level() {
    let (_dav, dav) = servers::webdav(0).await;
    let nginx = servers::nginx();
    let mut locations = vec![dav];
    locations.extend(nginx.as_ref().map(|(_, location)| location.clone()));
    for base in locations {
        let store = store_below(&base, "new/deeper/ferry/");
        let err = store.list("", None, 10).await.unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        store.create_root().await.unwrap();
        store.create_root().await.unwrap();
        store.put_new("ferry/v1/repo", Vec::new()).await.unwrap();
        assert_eq!(store.get("ferry/v1/repo", ANY_SIZE).await.unwrap(), b"");
        let page = store.list("", None, 10).await.unwrap();
        assert_eq!(page.objects.len(), 1, "{}", base.url);
    }
}

#[tokio::test]
async fn webdav_wrong_password_is_unauthorized() {
    let (_server, location) = servers::webdav(0).await;
    let wrong = WebDavCredentials {
        password: "not-the-password".into(),
        ..servers::dav_credentials()
    };
    let store = WebDavStore::new(&location, Some(wrong), Timeouts::default()).unwrap();
    failures::wrong_credentials_are_unauthorized(&store, "not-the-password").await;
    let anonymous = WebDavStore::new(&location, None, Timeouts::default()).unwrap();
    let err = anonymous.list("ferry/", None, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn webdav_a_broken_listing_is_a_typed_error() {
    let (_server, location) = servers::webdav_with_broken_listings().await;
    let store = WebDavStore::new(
        &location,
        Some(servers::dav_credentials()),
        Timeouts::default(),
    )
    .unwrap();
    let err = store.list("ferry/v1/head/", None, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Transient { .. }), "{err:?}");
    assert!(
        err.to_string().contains("unreadable PROPFIND answer"),
        "{err}"
    );
    // Objects themselves still work.
    store.put_new("ferry/v1/repo", b"x".to_vec()).await.unwrap();
    assert_eq!(store.get("ferry/v1/repo", ANY_SIZE).await.unwrap(), b"x");
}

#[tokio::test]
async fn webdav_missing_collection_is_misconfigured() {
    let (_server, mut location) = servers::webdav(0).await;
    location.url = location.url.replace("/users/me/", "/users/nobody/");
    let store = WebDavStore::new(
        &location,
        Some(servers::dav_credentials()),
        Timeouts::default(),
    )
    .unwrap();
    failures::a_missing_root_is_misconfigured(&store, "users/nobody").await;
}

#[tokio::test]
async fn webdav_a_server_that_hangs_times_out_as_transient() {
    let (_server, endpoint) = servers::silent().await;
    let location = ferry_store::url::WebDavLocation {
        url: format!("{endpoint}/dav/"),
        user: None,
    };
    let timeouts = Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_millis(500),
    };
    let store = WebDavStore::new(&location, Some(servers::dav_credentials()), timeouts).unwrap();
    failures::a_server_that_hangs_times_out_as_transient(&store).await;
}

#[tokio::test]
async fn webdav_a_server_failing_twice_then_answering_is_retried_to_success() {
    let (_server, location) = servers::webdav(2).await;
    let store = WebDavStore::new(
        &location,
        Some(servers::dav_credentials()),
        Timeouts::default(),
    )
    .unwrap();
    failures::a_server_failing_twice_is_retried_to_success(&store).await;
}

/// A fresh folder name for a run against a shared external server.
fn scratch_folder() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ferry-conformance-{nanos:x}")
}

/// Whether the external server keeps objects written once (the default), or, with
/// `FERRY_TEST_WRITE_ONCE=ignored`, is known to ignore `If-None-Match` (rclone, s3rver, nginx,
/// webdav-server, dufs): then the cases that need it are left out and the others run.
fn external_write_once() -> suite::WriteOnce {
    match std::env::var("FERRY_TEST_WRITE_ONCE").as_deref() {
        Ok("ignored") => suite::WriteOnce::Ignored,
        Ok("enforced") | Err(_) => suite::WriteOnce::Enforced,
        Ok(other) => panic!("FERRY_TEST_WRITE_ONCE is `enforced` or `ignored`, not `{other}`"),
    }
}

/// The suite against an external S3 server, when `FERRY_TEST_S3_ENDPOINT`,
/// `FERRY_TEST_S3_BUCKET`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are set
/// (`FERRY_TEST_S3_REGION` defaults to us-east-1). It works in a fresh folder of the bucket and
/// removes what it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_s3_server() {
    let (Ok(endpoint), Ok(bucket), Some(credentials)) = (
        std::env::var("FERRY_TEST_S3_ENDPOINT"),
        std::env::var("FERRY_TEST_S3_BUCKET"),
        S3Credentials::from_env(),
    ) else {
        eprintln!(
            "no external S3 server configured (FERRY_TEST_S3_ENDPOINT, FERRY_TEST_S3_BUCKET)"
        );
        return;
    };
    let region = std::env::var("FERRY_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into());
    let url = format!(
        "s3://{bucket}/{}?endpoint={endpoint}&region={region}",
        scratch_folder()
    );
    let ferry_store::StoreUrl::S3(location) = ferry_store::StoreUrl::parse(&url).unwrap() else {
        unreachable!()
    };
    let store = S3Store::new(&location, credentials, Timeouts::default());
    suite::run_all_with(&store, external_write_once()).await;
    suite::run_concurrent(Arc::new(store)).await;
}

/// The suite against an external WebDAV server, when `FERRY_TEST_WEBDAV_URL` (an `http(s)://`
/// folder URL), `FERRY_TEST_WEBDAV_USER` and `FERRY_TEST_WEBDAV_PASSWORD` are set. It works in a
/// fresh sub-folder and removes the objects it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_webdav_server() {
    let (Ok(url), Ok(user), Ok(password)) = (
        std::env::var("FERRY_TEST_WEBDAV_URL"),
        std::env::var("FERRY_TEST_WEBDAV_USER"),
        std::env::var("FERRY_TEST_WEBDAV_PASSWORD"),
    ) else {
        eprintln!(
            "no external WebDAV server configured (FERRY_TEST_WEBDAV_URL, …_USER, …_PASSWORD)"
        );
        return;
    };
    let credentials = WebDavCredentials { user, password };
    let base = ferry_store::url::WebDavLocation {
        url: format!("{}/", url.trim_end_matches('/')),
        user: Some(credentials.user.clone()),
    };
    // Make the scratch folder through a store at the given URL, then work inside it.
    let folder = scratch_folder();
    let parent = WebDavStore::new(&base, Some(credentials.clone()), Timeouts::default()).unwrap();
    parent
        .put(&format!("{folder}/marker"), Vec::new())
        .await
        .unwrap();
    parent.delete(&format!("{folder}/marker")).await.unwrap();
    let location = ferry_store::url::WebDavLocation {
        url: format!("{}{folder}/", base.url),
        user: base.user.clone(),
    };
    let store = WebDavStore::new(&location, Some(credentials), Timeouts::default()).unwrap();
    suite::run_all_with(&store, external_write_once()).await;
    suite::run_concurrent(Arc::new(store)).await;
}
