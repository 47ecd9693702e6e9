//! The parsers of setting values, each saying what it expected when the text is not it:
//! booleans, counts, sizes, byte rates, durations, words of an enum and lists of them.

use std::time::Duration;

use bytesize::ByteSize;

use super::settings::{Expected, MAX_POLL, MIN_POLL};

/// A text value; empty is none.
pub(super) fn text(value: &str) -> Option<String> {
    Some(value.to_owned()).filter(|value| !value.is_empty())
}

/// A relay URL as the relay client takes it (`ws://` or `wss://`, a host, no user name or
/// password); empty for none.
pub(super) fn relay(value: &str) -> Result<Option<String>, Expected> {
    let Some(value) = text(value) else {
        return Ok(None);
    };
    match ferry_relay_client::endpoint(&value) {
        Ok(_) => Ok(Some(value)),
        Err(ferry_relay_client::ClientError::BadUrl { reason, .. }) => Err(format!(
            "a ws:// or wss:// URL with a host (wss://relay.example.org), or empty: this one \
             {reason}"
        )),
        Err(other) => Err(other.to_string()),
    }
}

/// Whether a relay URL names the machine it is read on (a loopback or unspecified address, or
/// `localhost`): such a relay is no use to another machine.
pub(crate) fn on_this_machine(relay: &str) -> bool {
    let host = url::Url::parse(relay)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| {
            let ip = match ip {
                std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
                v4 => v4,
            };
            ip.is_loopback() || ip.is_unspecified()
        })
}

pub(super) fn boolean(value: &str) -> Result<bool, Expected> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("true or false".into()),
    }
}

pub(super) fn count(value: &str) -> Result<u64, Expected> {
    value.parse().map_err(|_| "a whole number".into())
}

/// The largest size a setting takes: beyond it, a typo is likelier than intent (and the parser
/// reads through a float, which saturates instead of failing).
const MAX_SIZE: u64 = 1 << 40;

pub(super) fn size(value: &str) -> Result<u64, Expected> {
    value
        .parse::<ByteSize>()
        .ok()
        .map(|size| size.as_u64())
        .filter(|&size| size <= MAX_SIZE)
        .ok_or_else(|| "a size up to 1TiB, like 512KiB or 16MiB".into())
}

/// The slowest limit: below it, a 16 MiB image would take longer than a day.
const MIN_RATE: u64 = 1024;

/// A byte rate, like `512KiB/s` or `2MiB/s` (`/s` may be left out); `0` is no limit.
pub(super) fn rate(value: &str) -> Result<Option<u64>, Expected> {
    let expected = || "0 or a rate from 1KiB/s to 1TiB/s, like 512KiB/s or 2MiB/s".to_owned();
    let amount = value.trim().strip_suffix("/s").unwrap_or(value.trim());
    match size(amount) {
        Ok(0) => Ok(None),
        Ok(bytes) if bytes >= MIN_RATE => Ok(Some(bytes)),
        _ => Err(expected()),
    }
}

pub(super) fn poll_interval(value: &str) -> Result<Duration, Expected> {
    humantime::parse_duration(value)
        .ok()
        .filter(|interval| (MIN_POLL..=MAX_POLL).contains(interval))
        .ok_or_else(|| "a duration from 100ms to 24h, like 500ms, 30s or 5m".into())
}

/// One of an enum's words.
pub(super) fn word<T: std::str::FromStr<Err = ferry_core::UnknownWord>>(
    value: &str,
) -> Result<T, Expected> {
    value
        .parse()
        .map_err(|e: ferry_core::UnknownWord| format!("one of {}", e.expected.join(", ")))
}

/// A list of an enum's words.
pub(super) fn words<T: std::str::FromStr<Err = ferry_core::UnknownWord>>(
    value: &str,
) -> Result<Vec<T>, Expected> {
    list(value)
        .map(|item| {
            item.parse().map_err(|e: ferry_core::UnknownWord| {
                format!("a list of {}", e.expected.join(", "))
            })
        })
        .collect()
}

/// Items of a list setting: one a line (from a TOML array), else separated by commas.
pub(super) fn list(text: &str) -> impl Iterator<Item = &str> {
    let separator = if text.contains('\n') { '\n' } else { ',' };
    text.split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}
