//! Any bytes read as a LAN frame: an error, or a frame that encodes back to the same bytes.
#![no_main]

use ferry_protocol::lan::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(frame.encode().as_deref(), Ok(data));
    }
});
