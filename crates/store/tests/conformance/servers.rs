//! Real servers for the suite, started in this process on 127.0.0.1 and stopped on drop.

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use ferry_store::S3Credentials;
use ferry_store::url::{Provider, S3Location};

/// Aborts a server task when dropped.
pub(crate) struct Running {
    task: JoinHandle<()>,
    _root: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) const ACCESS_KEY: &str = "AKIDFERRYTEST";
pub(crate) const SECRET_KEY: &str = "ferry-test-secret-key";
pub(crate) const BUCKET: &str = "ferry-test";

/// An S3 server (s3s-fs, which checks SigV4 signatures) with the bucket [`BUCKET`].
pub(crate) async fn s3() -> (Running, S3Location) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let http =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            let conn = http
                .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    let location = S3Location {
        provider: Provider::Generic,
        bucket: BUCKET.into(),
        prefix: "users/me".into(),
        endpoint: format!("http://{addr}"),
        region: "us-east-1".into(),
        path_style: true,
    };
    (Running { task, _root: root }, location)
}

pub(crate) fn credentials() -> S3Credentials {
    S3Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
    }
}

/// A server that accepts connections and never answers.
pub(crate) async fn silent() -> (Running, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let root = tempfile::tempdir().unwrap();
    (Running { task, _root: root }, format!("http://{addr}"))
}
