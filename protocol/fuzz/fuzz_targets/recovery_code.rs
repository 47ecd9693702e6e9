//! Any text read as a recovery code: an error, or a key whose own code reads back to it.
#![no_main]

use ferry_protocol::SyncKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = SyncKey::from_recovery_code(&text) {
        let again = SyncKey::from_recovery_code(key.recovery_code().expose()).expect("own code");
        assert_eq!(again.expose_bytes(), key.expose_bytes());
    }
});
