//! Any text read as a pairing code: an error, or a code that reads back the same.
#![no_main]

use ferry_protocol::pairing::PairingCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok((code, _)) = PairingCode::parse(&text) {
        assert_eq!(PairingCode::parse(&code.to_string()).expect("own code").0, code);
    }
});
