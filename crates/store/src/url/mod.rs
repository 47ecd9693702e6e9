//! Store URLs, parsed in one place:
//!
//! ```text
//! file:///home/me/Sync/ferry                       a folder (a bare absolute path works too)
//! s3://bucket/prefix?region=eu-west-1              AWS S3
//! s3://bucket/prefix?endpoint=https://…&region=…&path_style=true     any S3-compatible server
//! s3://bucket?provider=r2&account=<account id>     a provider preset (see `Provider`)
//! webdav+https://user@host/remote.php/dav/files/me/ferry
//! webdav+http://user@localhost:8080/ferry          plain HTTP only on this machine
//! lan://<device id>                                the folder repository of that device, on the LAN
//! ```
//!
//! A URL never carries a secret: one with a password or key in it is refused with a message
//! saying where the secret goes instead, so a URL can be logged, shown and stored in a config
//! file as it is.

use std::fmt;
use std::path::PathBuf;

use url::Url;

use crate::StoreError;

mod provider;

use provider::Preset;
pub use provider::Provider;

/// Where a repository is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A local folder.
    Folder(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Location),
    /// A WebDAV collection.
    WebDav(WebDavLocation),
    /// The folder repository of another device, reached over the LAN (that device serves it:
    /// `ferry_protocol::held`), by its device id: 32 lowercase hex digits. Opened by the
    /// application, which runs the LAN, not by [`crate::open`].
    Held(String),
}

/// An S3 bucket and the settings to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// The provider whose preset filled the endpoint.
    pub provider: Provider,
    /// The bucket.
    pub bucket: String,
    /// The folder in the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// The endpoint, e.g. `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// Whether to address the bucket in the path (`endpoint/bucket/key`) rather than the host
    /// name (`bucket.endpoint/key`).
    pub path_style: bool,
}

/// A WebDAV collection and the user to log in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebDavLocation {
    /// The collection's `http(s)://` URL, ending in `/`.
    pub url: String,
    /// The user name, if the URL names one.
    pub user: Option<String>,
}

fn bad(message: impl Into<String>) -> StoreError {
    StoreError::Misconfigured(message.into())
}

impl StoreUrl {
    /// Parses a store URL.
    pub fn parse(text: &str) -> Result<StoreUrl, StoreError> {
        let text = text.trim();
        // A bare absolute path: `/srv/ferry`, or on Windows `C:\Users\me\Ferry`.
        if text.starts_with('/') || std::path::Path::new(text).is_absolute() {
            return Ok(StoreUrl::Folder(PathBuf::from(text)));
        }
        let url = Url::parse(text).map_err(|e| {
            bad(format!(
                "`{text}` is not a store URL ({e}): use file:///path, s3://bucket/prefix or \
                 webdav+https://user@host/path"
            ))
        })?;
        if url.password().is_some() {
            return Err(bad(
                "the store URL contains a password: remove it and keep the password in the \
                 keychain (`ferry init` asks for it) or in FERRY_WEBDAV_PASSWORD / \
                 AWS_SECRET_ACCESS_KEY",
            ));
        }
        match url.scheme() {
            "file" => parse_file(&url),
            "lan" => parse_held(&url),
            "s3" => parse_s3(&url).map(StoreUrl::S3),
            "webdav+https" | "webdav+http" | "webdavs" | "webdav" => {
                parse_webdav(&url).map(StoreUrl::WebDav)
            }
            other => Err(bad(format!(
                "unknown store kind `{other}:`: use file://, s3://, webdav+https:// or lan://"
            ))),
        }
    }
}

fn parse_file(url: &Url) -> Result<StoreUrl, StoreError> {
    if url
        .host_str()
        .is_some_and(|h| !h.is_empty() && h != "localhost")
    {
        return Err(bad(
            "a file:// URL names a folder on this machine: write file:///path (three slashes)",
        ));
    }
    file_path(url)
        .map(StoreUrl::Folder)
        .ok_or_else(|| bad(format!("`{url}` is not a folder path")))
}

/// The folder a `file://` URL names.
#[cfg(any(unix, windows, target_os = "wasi"))]
fn file_path(url: &Url) -> Option<PathBuf> {
    url.to_file_path().ok()
}

/// The folder a `file://` URL names, as written: a browser has no folders of its own, and
/// only says which folder another device uses.
#[cfg(not(any(unix, windows, target_os = "wasi")))]
fn file_path(url: &Url) -> Option<PathBuf> {
    Some(PathBuf::from(percent_decode(url.path())))
}

fn parse_held(url: &Url) -> Result<StoreUrl, StoreError> {
    let id = url.host_str().unwrap_or("").to_ascii_lowercase();
    let plain = url.path().trim_matches('/').is_empty() && url.query().is_none();
    match id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && plain {
        true => Ok(StoreUrl::Held(id)),
        false => Err(bad(format!(
            "`{url}` does not name a device: a lan:// URL is lan:// and the 32 hex digits of \
             the device id that holds the repository (`ferry devices` shows them)"
        ))),
    }
}

/// The settings an `s3://` URL's query may give.
#[derive(Default)]
struct S3Settings {
    provider: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    account: Option<String>,
    path_style: Option<bool>,
}

impl S3Settings {
    fn from_query(url: &Url) -> Result<S3Settings, StoreError> {
        let mut settings = S3Settings::default();
        for (key, value) in url.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "provider" => settings.provider = Some(value),
                "endpoint" => settings.endpoint = Some(value),
                "region" => settings.region = Some(value),
                "account" => settings.account = Some(value),
                "path_style" => {
                    settings.path_style = Some(match value.as_str() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        _ => return Err(bad(format!("path_style={value}: use true or false"))),
                    })
                }
                other => {
                    return Err(bad(format!(
                        "unknown setting `{other}` in the s3:// URL: the settings are provider, \
                         endpoint, region, account and path_style"
                    )));
                }
            }
        }
        Ok(settings)
    }
}

fn parse_s3(url: &Url) -> Result<S3Location, StoreError> {
    if !url.username().is_empty() {
        return Err(bad(
            "the store URL contains an access key: remove it and set AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, or store them in the keychain with `ferry init`",
        ));
    }
    let bucket = url.host_str().unwrap_or("").to_owned();
    check_bucket(&bucket)?;
    let prefix = url.path().trim_matches('/').to_owned();

    let S3Settings {
        provider: provider_name,
        endpoint,
        region,
        account,
        path_style,
    } = S3Settings::from_query(url)?;

    let preset = match (&provider_name, &endpoint) {
        (Some(name), _) => Preset::named(name).ok_or_else(|| {
            bad(format!(
                "unknown provider `{name}`: known are {}",
                Preset::names().join(", ")
            ))
        })?,
        (None, Some(_)) => Preset::of(Provider::Generic),
        (None, None) => Preset::of(Provider::Aws),
    };
    let region = match (region, preset.region) {
        (Some(region), _) => region,
        (None, Some(default)) => default.to_owned(),
        (None, None) => {
            return Err(bad(format!(
                "the {} preset needs the bucket's region: add ?region=… to the URL",
                preset.names[0]
            )));
        }
    };
    let endpoint = match (endpoint, preset.endpoint) {
        (Some(endpoint), _) => endpoint,
        (None, Some(template)) => {
            if template.contains("{account}") && account.is_none() {
                return Err(bad(format!(
                    "the {} preset needs the account id: add ?account=… to the URL",
                    preset.names[0]
                )));
            }
            template
                .replace("{region}", &region)
                .replace("{account}", account.as_deref().unwrap_or(""))
        }
        (None, None) => {
            return Err(bad(format!(
                "the {} preset needs the server's address: add ?endpoint=https://… to the URL",
                preset.names[0]
            )));
        }
    };
    let parsed = Url::parse(&endpoint)
        .map_err(|e| bad(format!("the endpoint `{endpoint}` is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the endpoint `{endpoint}` must start with https:// (or http:// for a local server)"
        )));
    }
    Ok(S3Location {
        provider: preset.provider,
        bucket,
        prefix,
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        region,
        path_style: path_style.unwrap_or(preset.path_style),
    })
}

/// Bucket names as S3 defines them: 3 to 63 lowercase letters, digits, dots and hyphens,
/// starting and ending with a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), StoreError> {
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge_ok(bucket.chars().next())
        && edge_ok(bucket.chars().last());
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "`{bucket}` is not a bucket name: 3 to 63 lowercase letters, digits, dots and \
             hyphens (write s3://bucket/prefix)"
        )))
    }
}

fn parse_webdav(url: &Url) -> Result<WebDavLocation, StoreError> {
    let host = url.host_str().unwrap_or("");
    if host.is_empty() {
        return Err(bad(
            "the WebDAV URL has no server: write webdav+https://user@host/path",
        ));
    }
    let secure = matches!(url.scheme(), "webdav+https" | "webdavs");
    let local = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    if !secure && !local {
        return Err(bad(format!(
            "webdav+http would send the password to {host} unencrypted: use webdav+https \
             (plain http is accepted only for localhost)"
        )));
    }
    let mut target = format!("{}://{host}", if secure { "https" } else { "http" });
    if let Some(port) = url.port() {
        target.push_str(&format!(":{port}"));
    }
    target.push_str(url.path());
    if !target.ends_with('/') {
        target.push('/');
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("the WebDAV URL must not have `?` or `#` parts"));
    }
    let user = (!url.username().is_empty()).then(|| percent_decode(url.username()));
    Ok(WebDavLocation { url: target, user })
}

/// Decodes `%xx` escapes (in user names with `@` or `:`, and in WebDAV hrefs).
pub(crate) fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Windows paths as file:///C:/Users/…; elsewhere the path as it is.
            #[cfg(windows)]
            StoreUrl::Folder(path) => match Url::from_file_path(path) {
                Ok(url) => write!(f, "{url}"),
                Err(()) => write!(f, "file://{}", path.display()),
            },
            #[cfg(not(windows))]
            StoreUrl::Folder(path) => write!(f, "file://{}", path.display()),
            StoreUrl::S3(s3) => write!(
                f,
                "s3://{}/{}?endpoint={}&region={}&path_style={}",
                s3.bucket, s3.prefix, s3.endpoint, s3.region, s3.path_style
            ),
            StoreUrl::WebDav(dav) => {
                let (scheme, rest) = dav.url.split_once("://").unwrap_or(("https", &dav.url));
                match &dav.user {
                    Some(user) => write!(f, "webdav+{scheme}://{user}@{rest}"),
                    None => write!(f, "webdav+{scheme}://{rest}"),
                }
            }
            StoreUrl::Held(device) => write!(f, "lan://{device}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_anywhere_and_bad_ones_stay() {
        assert_eq!(percent_decode("me%40home"), "me@home");
        assert_eq!(percent_decode("ends%41"), "endsA");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
        assert_eq!(percent_decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn a_held_repository_is_named_by_its_holders_device_id() {
        let id = "00112233445566778899aabbccddeeff";
        let url = StoreUrl::parse(&format!("lan://{id}")).unwrap();
        assert_eq!(url, StoreUrl::Held(id.into()));
        assert_eq!(url.to_string(), format!("lan://{id}"));
        assert_eq!(StoreUrl::parse(&url.to_string()).unwrap(), url);
        for bad in [
            "lan://",
            "lan://laptop",
            "lan://0011",
            "lan://00112233445566778899aabbccddeefg",
            &format!("lan://{id}/folder"),
            &format!("lan://{id}?x=1"),
        ] {
            assert!(
                err(bad).contains("does not name a device"),
                "{bad}: {}",
                err(bad)
            );
        }
    }

    fn s3(text: &str) -> S3Location {
        match StoreUrl::parse(text).unwrap() {
            StoreUrl::S3(s3) => s3,
            other => panic!("{other:?}"),
        }
    }

    fn err(text: &str) -> String {
        StoreUrl::parse(text).unwrap_err().to_string()
    }

    #[test]
    #[cfg(windows)]
    fn windows_folders() {
        let folder = StoreUrl::Folder(r"C:\Users\me\My Ferry".into());
        assert_eq!(folder.to_string(), "file:///C:/Users/me/My%20Ferry");
        assert_eq!(StoreUrl::parse(&folder.to_string()).unwrap(), folder);
        assert_eq!(StoreUrl::parse(r"C:\Users\me\My Ferry").unwrap(), folder);
    }

    #[test]
    #[cfg(unix)]
    fn folders() {
        assert_eq!(
            StoreUrl::parse("file:///home/me/ferry").unwrap(),
            StoreUrl::Folder("/home/me/ferry".into())
        );
        assert_eq!(
            StoreUrl::parse("/srv/ferry").unwrap(),
            StoreUrl::Folder("/srv/ferry".into())
        );
        assert!(err("file://server/share").contains("three slashes"));
    }

    #[test]
    fn aws_by_default() {
        let loc = s3("s3://my-bucket/some/prefix/?region=eu-west-1");
        assert_eq!(loc.provider, Provider::Aws);
        assert_eq!(loc.bucket, "my-bucket");
        assert_eq!(loc.prefix, "some/prefix");
        assert_eq!(loc.endpoint, "https://s3.eu-west-1.amazonaws.com");
        assert!(!loc.path_style);
        assert_eq!(s3("s3://my-bucket").region, "us-east-1");
    }

    #[test]
    fn any_endpoint_is_generic_and_path_style() {
        let loc = s3("s3://bucket/p?endpoint=http://127.0.0.1:9000&region=local");
        assert_eq!(loc.provider, Provider::Generic);
        assert_eq!(loc.endpoint, "http://127.0.0.1:9000");
        assert_eq!(loc.region, "local");
        assert!(loc.path_style);
        assert!(!s3("s3://bucket?endpoint=http://x&path_style=false").path_style);
    }

    #[test]
    fn presets_fill_endpoints() {
        let cases = [
            (
                "provider=r2&account=abc123",
                "https://abc123.r2.cloudflarestorage.com",
                "auto",
            ),
            (
                "provider=b2&region=us-west-004",
                "https://s3.us-west-004.backblazeb2.com",
                "us-west-004",
            ),
            (
                "provider=wasabi&region=eu-central-1",
                "https://s3.eu-central-1.wasabisys.com",
                "eu-central-1",
            ),
            ("provider=storj", "https://gateway.storjshare.io", "us1"),
            (
                "provider=do&region=nyc3",
                "https://nyc3.digitaloceanspaces.com",
                "nyc3",
            ),
            (
                "provider=linode&region=us-east-1",
                "https://us-east-1.linodeobjects.com",
                "us-east-1",
            ),
            (
                "provider=vultr&region=ewr1",
                "https://ewr1.vultrobjects.com",
                "ewr1",
            ),
            ("provider=scaleway", "https://s3.fr-par.scw.cloud", "fr-par"),
            (
                "provider=minio&endpoint=https://minio.home:9000",
                "https://minio.home:9000",
                "us-east-1",
            ),
            (
                "provider=idrive&endpoint=https://x.idrivee2-1.com",
                "https://x.idrivee2-1.com",
                "us-east-1",
            ),
        ];
        for (query, endpoint, region) in cases {
            let loc = s3(&format!("s3://bucket?{query}"));
            assert_eq!(loc.endpoint, endpoint, "{query}");
            assert_eq!(loc.region, region, "{query}");
        }
    }

    #[test]
    fn missing_or_wrong_settings_say_what_to_add() {
        assert!(err("s3://bucket?provider=r2").contains("account"));
        assert!(err("s3://bucket?provider=b2").contains("region"));
        assert!(err("s3://bucket?provider=minio").contains("endpoint"));
        assert!(err("s3://bucket?provider=nope").contains("unknown provider"));
        assert!(err("s3://bucket?regoin=x").contains("unknown setting `regoin`"));
        assert!(err("s3://Bad_Bucket").contains("not a bucket name"));
        assert!(err("s3://ab").contains("not a bucket name"));
        assert!(err("s3://bucket?endpoint=ftp://x").contains("https://"));
        assert!(err("s3://bucket?path_style=maybe").contains("true or false"));
        assert!(err("ftp://x").contains("unknown store kind"));
        assert!(err("not a url").contains("not a store URL"));
    }

    #[test]
    fn secrets_in_urls_are_refused_without_being_repeated() {
        let message = err("s3://AKIASECRET:hunter2@bucket/p");
        assert!(message.contains("password"), "{message}");
        assert!(!message.contains("hunter2"));
        let message = err("s3://AKIAKEYID@bucket/p");
        assert!(message.contains("AWS_ACCESS_KEY_ID"), "{message}");
        assert!(!message.contains("AKIAKEYID"));
        let message = err("webdav+https://me:hunter2@dav.example/x");
        assert!(!message.contains("hunter2"));
    }

    #[test]
    fn webdav() {
        let StoreUrl::WebDav(loc) = StoreUrl::parse(
            "webdav+https://me%40home@cloud.example:8443/remote.php/dav/files/me/ferry",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            loc.url,
            "https://cloud.example:8443/remote.php/dav/files/me/ferry/"
        );
        assert_eq!(loc.user.as_deref(), Some("me@home"));
        let StoreUrl::WebDav(local) = StoreUrl::parse("webdav+http://127.0.0.1:8080/dav").unwrap()
        else {
            panic!()
        };
        assert_eq!(local.url, "http://127.0.0.1:8080/dav/");
        assert_eq!(local.user, None);
        assert!(err("webdav+http://dav.example/x").contains("unencrypted"));
        assert!(err("webdav+https://dav.example/x?y=1").contains("`?`"));
    }

    #[test]
    fn display_round_trips() {
        let folder = if cfg!(windows) {
            "file:///C:/srv/ferry"
        } else {
            "file:///srv/ferry"
        };
        for text in [
            folder,
            "s3://bucket/pre?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
            "webdav+https://me@dav.example/ferry/",
        ] {
            let parsed = StoreUrl::parse(text).unwrap();
            assert_eq!(
                StoreUrl::parse(&parsed.to_string()).unwrap(),
                parsed,
                "{text}"
            );
        }
    }
}
