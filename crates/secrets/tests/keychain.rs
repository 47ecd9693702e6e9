//! The OS keychain, for real: a Secret Service (gnome-keyring) on a private D-Bus session.
//! `scripts/test.sh` runs these under `dbus-run-session` with an unlocked keyring; plain
//! `cargo test` skips them (they are ignored).

use ferry_secrets::{Secret, Secrets};

#[test]
#[ignore = "needs a Secret Service: scripts/test.sh runs it under dbus-run-session with gnome-keyring"]
fn secrets_round_trip_in_the_keychain_per_home() {
    let home_a = Secrets::keychain("/test/home-a");
    let home_b = Secrets::keychain("/test/home-b");
    for home in [&home_a, &home_b] {
        for secret in Secret::ALL {
            home.delete(secret).unwrap();
        }
    }
    assert_eq!(home_a.get(Secret::SyncKey).unwrap(), None);
    home_a.set(Secret::SyncKey, "code-of-a").unwrap();
    home_b.set(Secret::SyncKey, "code-of-b").unwrap();
    home_a.set(Secret::WebDavPassword, "dav-a").unwrap();
    home_a.set(Secret::SyncKey, "code-of-a-again").unwrap();
    let get = |secrets: &Secrets, secret| secrets.get(secret).unwrap().map(|v| v.to_string());
    assert_eq!(
        get(&home_a, Secret::SyncKey).as_deref(),
        Some("code-of-a-again")
    );
    assert_eq!(get(&home_b, Secret::SyncKey).as_deref(), Some("code-of-b"));
    assert_eq!(get(&home_b, Secret::WebDavPassword), None);
    home_a.delete(Secret::SyncKey).unwrap();
    assert_eq!(get(&home_a, Secret::SyncKey), None);
    assert_eq!(
        get(&home_a, Secret::WebDavPassword).as_deref(),
        Some("dav-a")
    );
    for home in [&home_a, &home_b] {
        for secret in Secret::ALL {
            home.delete(secret).unwrap();
        }
    }
}
