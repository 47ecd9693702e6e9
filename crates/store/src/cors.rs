//! Whether a web page may use a bucket: the CORS preflights a browser sends before it reads
//! and writes objects, sent from here, and the rule that lets the page in.
//!
//! A bucket answers a page only for the origins its CORS rule names. The page reads with
//! presigned GETs (a "simple" request: no preflight, but the answer must carry
//! `Access-Control-Allow-Origin`) and writes with PUTs that carry `If-None-Match` (preflighted).
//! A preflight of each shows what the bucket's rule allows; buckets answer a preflight from
//! the rule alone, without credentials.

use std::time::Duration;

use reqwest_dav::re_exports::reqwest::{self, Method, header};

use crate::StoreError;
use crate::url::S3Location;

/// What the page's requests need, besides the origin.
const METHODS: [&str; 4] = ["GET", "HEAD", "PUT", "DELETE"];

/// What a bucket's CORS rule allows pages from one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// How each refused preflight was answered (`GET …: 403, no Access-Control-Allow-Origin`).
    pub refused: Vec<String>,
    /// Reads (GET).
    pub read: bool,
    /// Write-once writes (PUT with `If-None-Match`) and deletes (of the page's older heads).
    pub write: bool,
}

/// Sends the preflights a page from `origin` (`https://relay.example`) triggers to the
/// repository's header in the bucket at `location`, and says what the bucket allows it.
pub async fn check(
    location: &S3Location,
    origin: &str,
    timeout: Duration,
) -> Result<Allowed, StoreError> {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| StoreError::Misconfigured(format!("no HTTP client: {e}")))?;
    let url = object_url(location, "ferry/v1/repo")?;
    let mut refused = Vec::new();
    let read = preflight(&http, &url, origin, "GET", None, &mut refused).await?;
    let put = preflight(
        &http,
        &url,
        origin,
        "PUT",
        Some("if-none-match"),
        &mut refused,
    )
    .await?;
    let delete = preflight(&http, &url, origin, "DELETE", None, &mut refused).await?;
    Ok(Allowed {
        refused,
        read,
        write: put && delete,
    })
}

/// Whether the bucket lets a page from `origin` send `method` (with the header `asks`); how it
/// refused, added to `refused`.
async fn preflight(
    http: &reqwest::Client,
    url: &str,
    origin: &str,
    method: &str,
    asks: Option<&str>,
    refused: &mut Vec<String>,
) -> Result<bool, StoreError> {
    let mut request = http
        .request(Method::OPTIONS, url)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, method);
    if let Some(asks) = asks {
        request = request.header(header::ACCESS_CONTROL_REQUEST_HEADERS, asks);
    }
    let response = request
        .send()
        .await
        .map_err(|error| StoreError::Unreachable {
            backend: "S3",
            endpoint: origin_of(url),
            reason: crate::error::root_cause(&error),
            fix: crate::error::CHECK_THE_SERVER,
        })?;
    let headers = response.headers();
    let says = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let lists = |list: &str, item: &str| {
        list.split(',')
            .map(str::trim)
            .any(|listed| listed == "*" || listed == item)
    };
    let origin_ok = {
        let allowed = says(header::ACCESS_CONTROL_ALLOW_ORIGIN);
        allowed == "*" || allowed == origin.to_ascii_lowercase()
    };
    // A browser needs no listed method for GET and HEAD, which CORS calls simple.
    let methods = says(header::ACCESS_CONTROL_ALLOW_METHODS);
    let simple = matches!(method, "GET" | "HEAD") && methods.is_empty();
    let method_ok = simple || lists(&methods, &method.to_ascii_lowercase());
    let headers_ok =
        asks.is_none_or(|asks| lists(&says(header::ACCESS_CONTROL_ALLOW_HEADERS), asks));
    let status = response.status();
    let missing = [
        (!status.is_success()).then(|| format!("answered {}", status.as_u16())),
        (!origin_ok).then(|| "no Access-Control-Allow-Origin for this origin".to_owned()),
        (!method_ok).then(|| format!("{method} not in Access-Control-Allow-Methods")),
        (!headers_ok).then(|| "If-None-Match not in Access-Control-Allow-Headers".to_owned()),
    ];
    let missing: Vec<String> = missing.into_iter().flatten().collect();
    if !missing.is_empty() {
        refused.push(format!("{method}: {}", missing.join(", ")));
    }
    Ok(missing.is_empty())
}

/// The URL of the object `name` below the store's prefix, as the page addresses it.
fn object_url(location: &S3Location, name: &str) -> Result<String, StoreError> {
    let endpoint = url::Url::parse(&location.endpoint)
        .map_err(|e| StoreError::Misconfigured(format!("the endpoint is not a URL: {e}")))?;
    let key = match location.prefix.is_empty() {
        true => name.to_owned(),
        false => format!("{}/{name}", location.prefix),
    };
    let base = endpoint.as_str().trim_end_matches('/');
    Ok(match location.path_style {
        true => format!("{base}/{}/{key}", location.bucket),
        false => {
            let host = endpoint.host_str().unwrap_or_default();
            let port = endpoint.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}.{host}{port}/{key}",
                endpoint.scheme(),
                location.bucket
            )
        }
    })
}

fn origin_of(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "the endpoint".into(),
        |u| u.origin().ascii_serialization(),
    )
}

/// The CORS configuration that lets pages from `origin` use the bucket, as the S3 API's
/// `PutBucketCors` takes it in JSON (`aws s3api put-bucket-cors --cors-configuration`).
pub fn rule(origin: &str) -> String {
    let methods = METHODS.map(|m| format!("\"{m}\"")).join(",");
    format!(
        "{{\"CORSRules\":[{{\"AllowedOrigins\":[\"{origin}\"],\"AllowedMethods\":[{methods}],\
         \"AllowedHeaders\":[\"*\"],\"ExposeHeaders\":[\"ETag\"],\"MaxAgeSeconds\":3600}}]}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::Provider;

    fn location(path_style: bool, prefix: &str) -> S3Location {
        S3Location {
            provider: Provider::Generic,
            bucket: "notes".into(),
            prefix: prefix.into(),
            endpoint: "https://s3.example.com:9000".into(),
            region: "us-east-1".into(),
            path_style,
        }
    }

    #[test]
    fn the_page_addresses_objects_as_the_store_does() {
        assert_eq!(
            object_url(&location(true, "me"), "ferry/v1/repo").unwrap(),
            "https://s3.example.com:9000/notes/me/ferry/v1/repo"
        );
        assert_eq!(
            object_url(&location(false, ""), "ferry/v1/repo").unwrap(),
            "https://notes.s3.example.com:9000/ferry/v1/repo"
        );
    }

    #[test]
    fn the_rule_names_the_origin_and_what_the_page_sends() {
        let rule = rule("https://relay.example");
        assert!(
            rule.contains("\"AllowedOrigins\":[\"https://relay.example\"]"),
            "{rule}"
        );
        assert!(rule.contains("\"PUT\""), "{rule}");
        // Valid JSON, as the AWS CLI reads it.
        let parsed: serde_json::Value = serde_json::from_str(&rule).unwrap();
        assert_eq!(parsed["CORSRules"][0]["ExposeHeaders"][0], "ETag");
    }
}
