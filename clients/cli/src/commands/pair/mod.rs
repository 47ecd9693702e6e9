//! `ferry pair` and `ferry join` with a code: the two ends of pairing, moving the frames of a
//! [`Session`] through the relay, over the LAN, or both, whichever answers first.
//!
//! ```text
//! ferry pair (offer)                                   ferry join (join)
//! code + QR shown ── person reads it ──▶ code typed
//! Channel: relay topic H(nameplate), republished every 2 s ┐ both when both are on;
//!          LAN meeting place by mDNS, one TCP connection   ┘ frames from either count
//! ◀──────────────── confirmation both ways ─────────────────▶
//! Reply (id, name, keys) ◀──── attest it (`devices vouch`, here or in the agent)
//! Bundle (key, storage, credentials, relay) ────▶ setup::install, then Outcome ──▶ "joined"
//!                                                  first sync
//! ```
//!
//! The relay is the one given, configured, or carried by the code; the LAN is used wherever
//! mDNS discovery is on (`lan.enabled`, `lan.discovery`), so that two devices on one network
//! pair with no relay at all, or with one that cannot be reached. Whatever ends an attempt early
//! (a wrong code, a crowd, expiry, a damaged frame) is told to the other side with an abort
//! frame, and nothing is written on the joining device.

mod channel;
mod join;
mod offer;

pub(crate) use join::join;
pub(crate) use offer::offer;

/// A device name from the other side, fit to show and keep: one line, at most 64 characters.
fn printable(name: &str) -> String {
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect::<String>()
        .trim()
        .to_owned();
    if name.is_empty() {
        "new device".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn names_from_the_other_side_are_made_printable() {
        assert_eq!(printable("desktop"), "desktop");
        assert_eq!(printable(" evil\u{1b}[2Jname\n"), "evil[2Jname");
        assert_eq!(printable("\n\t"), "new device");
        assert_eq!(printable(&"x".repeat(100)).len(), 64);
    }
}
