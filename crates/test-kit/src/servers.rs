//! Real storage servers, started in this process (or as a child process) on 127.0.0.1 and
//! stopped on drop.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use ferry_store::url::{Provider, S3Location, WebDavLocation};
use ferry_store::{S3Credentials, WebDavCredentials};

/// Aborts a server task when dropped.
pub struct Running {
    task: JoinHandle<()>,
    root: tempfile::TempDir,
    /// The origins whose pages may call the server (an S3 server's CORS rule).
    cors: Origins,
}

/// The origins a CORS rule lets in.
type Origins = Arc<Mutex<BTreeSet<String>>>;

impl Running {
    /// The folder the server keeps its files in.
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    /// Lets pages from `origin` (`http://127.0.0.1:PORT`) call the server, as a bucket's CORS
    /// rule does (S3 servers; none lets any page in until told).
    pub fn allow_origin(&self, origin: &str) {
        self.cors.lock().unwrap().insert(origin.to_owned());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The S3 server's access key id.
pub const ACCESS_KEY: &str = "AKIDFERRYTEST";
/// Its secret.
pub const SECRET_KEY: &str = "ferry-test-secret-key";
/// A second access key the server takes, as a person makes one to replace the first.
pub const SECOND_ACCESS_KEY: &str = "AKIDFERRYSECOND";
/// Its secret.
pub const SECOND_SECRET_KEY: &str = "ferry-test-second-secret";
/// The bucket it holds.
pub const BUCKET: &str = "ferry-test";

/// An S3 server (s3s-fs, which checks SigV4 signatures) with the bucket [`BUCKET`].
pub async fn s3() -> (Running, S3Location) {
    s3_failing_first(0).await
}

/// [`s3`], but the first `failures` requests get `503 Slow Down`.
pub async fn s3_failing_first(failures: usize) -> (Running, S3Location) {
    start_s3(failures, &[]).await
}

/// [`s3`], but the operations named (`PutObject`, `ListObjectsV2`…) are denied.
pub async fn s3_denying(operations: &'static [&'static str]) -> (Running, S3Location) {
    start_s3(0, operations).await
}

async fn start_s3(failures: usize, denied: &'static [&'static str]) -> (Running, S3Location) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(BUCKET)).unwrap();
    let fs = s3s_fs::FileSystem::new(root.path()).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    let mut auth = s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY);
    auth.register(SECOND_ACCESS_KEY.into(), SECOND_SECRET_KEY.into());
    builder.set_auth(auth);
    builder.set_access(Deny(denied));
    let cors = Origins::default();
    let service = Flaky {
        inner: builder.build(),
        failures_left: Arc::new(AtomicUsize::new(failures)),
        cors: cors.clone(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let http =
            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
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
    (Running { task, root, cors }, location)
}

/// Access control that denies some operations to everyone, as a bucket policy would.
struct Deny(&'static [&'static str]);

#[async_trait::async_trait]
impl s3s::access::S3Access for Deny {
    async fn check(&self, cx: &mut s3s::access::S3AccessContext<'_>) -> s3s::S3Result<()> {
        if cx.credentials().is_none() || self.0.contains(&cx.s3_op().name()) {
            return Err(s3s::s3_error!(
                AccessDenied,
                "denied by the test's bucket policy"
            ));
        }
        Ok(())
    }
}

/// The S3 service, answering `503 Slow Down` to its first requests, and CORS as a bucket with
/// a rule for the origins in `cors` does (AWS's behaviour: a preflight from another origin is
/// refused with 403; a request from an allowed one is answered with `Access-Control-Allow-Origin`).
#[derive(Clone)]
struct Flaky {
    inner: s3s::service::S3Service,
    failures_left: Arc<AtomicUsize>,
    cors: Origins,
}

impl Flaky {
    /// The request's `Origin`, when the CORS rule lets it in.
    fn allowed_origin(
        &self,
        request: &http::Request<hyper::body::Incoming>,
    ) -> Option<http::HeaderValue> {
        let origin = request.headers().get(http::header::ORIGIN)?;
        let allowed = self.cors.lock().unwrap().contains(origin.to_str().ok()?);
        allowed.then(|| origin.clone())
    }

    /// The answer to a CORS preflight.
    fn preflight(&self, request: &http::Request<hyper::body::Incoming>) -> s3s::HttpResponse {
        use http::header::*;
        let method = request
            .headers()
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .unwrap_or("");
        let allowed = self
            .allowed_origin(request)
            .filter(|_| ["GET", "HEAD", "PUT", "DELETE"].contains(&method));
        let Some(origin) = allowed else {
            let mut response = http::Response::new(s3s::Body::from(
                "<Error><Code>AccessForbidden</Code><Message>CORSResponse: This CORS request is \
                 not allowed.</Message></Error>"
                    .to_owned(),
            ));
            *response.status_mut() = http::StatusCode::FORBIDDEN;
            return response;
        };
        let mut response = http::Response::new(s3s::Body::empty());
        let headers = response.headers_mut();
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            http::HeaderValue::from_static("GET, HEAD, PUT, DELETE"),
        );
        if let Some(asked) = request.headers().get(ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        headers.insert(
            ACCESS_CONTROL_MAX_AGE,
            http::HeaderValue::from_static("3600"),
        );
        headers.insert(VARY, http::HeaderValue::from_static("Origin"));
        response
    }
}

type Reply = Pin<Box<dyn Future<Output = Result<s3s::HttpResponse, s3s::HttpError>> + Send>>;

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Flaky {
    type Response = s3s::HttpResponse;
    type Error = s3s::HttpError;
    type Future = Reply;

    fn call(&self, request: http::Request<hyper::body::Incoming>) -> Reply {
        if request.method() == http::Method::OPTIONS {
            let response = self.preflight(&request);
            return Box::pin(async move { Ok(response) });
        }
        let origin = self.allowed_origin(&request);
        let fail = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            let mut response = http::Response::new(s3s::Body::from(
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
                    .to_owned(),
            ));
            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
            return Box::pin(async move { Ok(response) });
        }
        let answer = hyper::service::Service::call(&self.inner, request);
        Box::pin(async move {
            let mut response = answer.await?;
            if let Some(origin) = origin {
                let headers = response.headers_mut();
                headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.insert(
                    http::header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    http::HeaderValue::from_static("ETag"),
                );
                headers.insert(http::header::VARY, http::HeaderValue::from_static("Origin"));
            }
            Ok(response)
        })
    }
}

/// The S3 server's credentials.
pub fn credentials() -> S3Credentials {
    S3Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SECRET_KEY.into(),
    }
}

/// A server that accepts connections and never answers.
pub async fn silent() -> (Running, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let root = tempfile::tempdir().unwrap();
    (
        Running {
            task,
            root,
            cors: Origins::default(),
        },
        format!("http://{addr}"),
    )
}

/// The WebDAV server's user.
pub const DAV_USER: &str = "ferry";
/// Its password.
pub const DAV_PASSWORD: &str = "dav-test-password";
/// `Basic base64("ferry:dav-test-password")`.
const DAV_AUTHORIZATION: &str = "Basic ZmVycnk6ZGF2LXRlc3QtcGFzc3dvcmQ=";

/// How the in-process WebDAV server wants its clients to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DavLogin {
    /// Basic only.
    Basic,
    /// Digest only (RFC 7616 with MD5 and qop=auth); a Basic login is refused.
    Digest,
    /// A hostile server: every request is refused with `challenge`.
    Refusing(&'static str),
}

/// The nonce of the Digest server; a new one every [`NONCE_USES`] requests, as servers rotate
/// them.
const NONCE_USES: usize = 25;

/// A WebDAV server (dav-server on a local folder) behind Basic authentication, holding the
/// collection `users/me/`; the first `failures` requests get `503 Service Unavailable`.
pub async fn webdav(failures: usize) -> (Running, WebDavLocation) {
    start_webdav(failures, Quirk::None, DavLogin::Basic).await
}

/// [`webdav`], but every PROPFIND is answered `207` with a body that is not XML.
pub async fn webdav_with_broken_listings() -> (Running, WebDavLocation) {
    start_webdav(0, Quirk::BrokenListings, DavLogin::Basic).await
}

/// [`webdav`], but every MKCOL that makes its folder is answered `403`, as Apache answers the
/// writer that loses a race to make a folder another writer is making.
pub async fn webdav_losing_folder_races() -> (Running, WebDavLocation) {
    start_webdav(0, Quirk::FolderRaceLost, DavLogin::Basic).await
}

/// [`webdav`], behind Digest authentication only, with a nonce that goes stale.
pub async fn webdav_digest() -> (Running, WebDavLocation) {
    start_webdav(0, Quirk::None, DavLogin::Digest).await
}

/// [`webdav`], refusing every request with the `WWW-Authenticate` value `challenge`.
pub async fn webdav_refusing(challenge: &'static str) -> (Running, WebDavLocation) {
    start_webdav(0, Quirk::None, DavLogin::Refusing(challenge)).await
}

/// How the test WebDAV server departs from what dav-server does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quirk {
    None,
    /// Every PROPFIND answered with a body that is not XML.
    BrokenListings,
    /// Every MKCOL answered `403`, after the folder was made.
    FolderRaceLost,
}

/// Whether `request` carries a Digest login for [`DAV_USER`] with [`DAV_PASSWORD`] under `nonce`.
fn digest_authorized(request: &http::Request<hyper::body::Incoming>, nonce: &str) -> bool {
    let Some(value) = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Ok(sent) = digest_auth::AuthorizationHeader::parse(value) else {
        return false;
    };
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if sent.username != DAV_USER || sent.nonce != nonce || sent.uri != path {
        return false;
    }
    let mut context = digest_auth::AuthContext::new(DAV_USER, DAV_PASSWORD, path);
    context.method = digest_auth::HttpMethod::from(request.method().as_str().to_owned());
    let mut expected = sent.clone();
    expected.digest(&context);
    expected.response == sent.response
}

async fn start_webdav(failures: usize, quirk: Quirk, login: DavLogin) -> (Running, WebDavLocation) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("users/me")).unwrap();
    let handler = dav_server::DavHandler::builder()
        .filesystem(dav_server::localfs::LocalFs::new(
            root.path(),
            false,
            false,
            false,
        ))
        .locksystem(dav_server::fakels::FakeLs::new())
        .build_handler();
    let failures_left = Arc::new(AtomicUsize::new(failures));
    let requests = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = socket.set_nodelay(true);
            let (handler, failures_left, requests) =
                (handler.clone(), failures_left.clone(), requests.clone());
            let service = hyper::service::service_fn(move |request| {
                let fail = failures_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let nonce = format!(
                    "ferry-nonce-{}",
                    requests.fetch_add(1, Ordering::SeqCst) / NONCE_USES
                );
                let trouble = if fail {
                    Some(http::StatusCode::SERVICE_UNAVAILABLE)
                } else {
                    None
                };
                dav_answer(handler.clone(), request, login, nonce, trouble, quirk)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    let location = WebDavLocation {
        url: format!("http://{addr}/users/me/"),
        user: Some(DAV_USER.into()),
    };
    (
        Running {
            task,
            root,
            cors: Origins::default(),
        },
        location,
    )
}

/// The test WebDAV server's answer to one request: `trouble` when the server is set to fail
/// it, `401` with `login`'s challenge when the request is not logged in, what `quirk` changes,
/// and otherwise what dav-server does.
async fn dav_answer(
    handler: dav_server::DavHandler,
    request: http::Request<hyper::body::Incoming>,
    login: DavLogin,
    nonce: String,
    trouble: Option<http::StatusCode>,
    quirk: Quirk,
) -> Result<http::Response<dav_server::body::Body>, std::convert::Infallible> {
    let (authorized, challenge) = match login {
        DavLogin::Basic => (
            request
                .headers()
                .get(http::header::AUTHORIZATION)
                .is_some_and(|v| v.as_bytes() == DAV_AUTHORIZATION.as_bytes()),
            "Basic realm=\"ferry\"".to_owned(),
        ),
        DavLogin::Digest => (
            digest_authorized(&request, &nonce),
            format!(
                "Digest realm=\"ferry\", qop=\"auth\", algorithm=MD5, \
                 nonce=\"{nonce}\", opaque=\"ferry-opaque\""
            ),
        ),
        DavLogin::Refusing(challenge) => (false, challenge.to_owned()),
    };
    let respond = |status: http::StatusCode, body: String| {
        let mut response = http::Response::new(dav_server::body::Body::from(body));
        *response.status_mut() = status;
        if status == http::StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_str(&challenge).unwrap(),
            );
        }
        Ok(response)
    };
    let refuse = |status: http::StatusCode| {
        respond(status, status.canonical_reason().unwrap_or("").to_owned())
    };
    if let Some(status) = trouble {
        return refuse(status);
    }
    if !authorized {
        return refuse(http::StatusCode::UNAUTHORIZED);
    }
    let method = request.method().as_str().to_owned();
    if quirk == Quirk::BrokenListings && method == "PROPFIND" {
        return respond(
            http::StatusCode::MULTI_STATUS,
            "<multistatus><response><href>/users/me/x</hr".to_owned(),
        );
    }
    let answer = handler.handle(request).await;
    if quirk == Quirk::FolderRaceLost && method == "MKCOL" {
        return refuse(http::StatusCode::FORBIDDEN);
    }
    Ok(answer)
}

/// nginx with its WebDAV modules (`dav_methods` and the dav-ext module's PROPFIND), serving a
/// folder behind Basic authentication, as one process (no master, so it keeps the user that
/// started it and stops with a kill) on 127.0.0.1; stopped on drop.
/// `None` (the caller skips) when nginx is not installed, outside CI; under CI=true a missing
/// nginx is a failure (scripts/test.sh installs it).
pub fn nginx() -> Option<(Process, WebDavLocation)> {
    let installed = std::path::Path::new("/usr/sbin/nginx").exists()
        && std::path::Path::new(NGINX_DAV_MODULE).exists();
    if !installed {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "nginx and its dav-ext module are missing: scripts/test.sh installs them"
        );
        eprintln!("skipping: nginx is not installed (scripts/test.sh installs it)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("root/users/me")).unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let hash = std::process::Command::new("openssl")
        .args(["passwd", "-apr1", DAV_PASSWORD])
        .output()
        .expect("the openssl command is needed (scripts/test.sh installs it)");
    assert!(hash.status.success());
    let hash = String::from_utf8(hash.stdout).unwrap();
    std::fs::write(
        dir.path().join("htpasswd"),
        format!("{DAV_USER}:{}\n", hash.trim()),
    )
    .unwrap();
    // nginx cannot listen on port 0: take a free port, and try again if another process took
    // it first.
    for _ in 0..10 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if let Some(child) = start_nginx(dir.path(), port) {
            let location = WebDavLocation {
                url: format!("http://127.0.0.1:{port}/users/me/"),
                user: Some(DAV_USER.into()),
            };
            return Some((Process { child, dir }, location));
        }
    }
    panic!("nginx did not start: see its error log");
}

/// The nginx module that answers PROPFIND.
const NGINX_DAV_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so";

/// nginx serving `{prefix}/root` on `port`, once it accepts connections; `None` when it stopped
/// (the port was taken) or did not come up within ten seconds.
fn start_nginx(prefix: &std::path::Path, port: u16) -> Option<std::process::Child> {
    let config = format!(
        "load_module {NGINX_DAV_MODULE};
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/tmp;
  proxy_temp_path {prefix}/tmp;
  fastcgi_temp_path {prefix}/tmp;
  uwsgi_temp_path {prefix}/tmp;
  scgi_temp_path {prefix}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {prefix}/root;
    client_max_body_size 0;
    location / {{
      auth_basic ferry;
      auth_basic_user_file {prefix}/htpasswd;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      dav_access user:rw;
    }}
  }}
}}
",
        prefix = prefix.display(),
    );
    let config_path = prefix.join("nginx.conf");
    std::fs::write(&config_path, config).unwrap();
    let mut child = std::process::Command::new("/usr/sbin/nginx")
        .arg("-e")
        .arg(prefix.join("error.log"))
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A server running as its own process, killed on drop.
pub struct Process {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Process {
    /// The folder it serves.
    pub fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The WebDAV server's credentials.
pub fn dav_credentials() -> WebDavCredentials {
    WebDavCredentials {
        user: DAV_USER.into(),
        password: DAV_PASSWORD.into(),
    }
}
