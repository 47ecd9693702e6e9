//! Any bytes read as a pairing frame: an error, or a frame that encodes back to itself.
#![no_main]

use ferry_protocol::pairing::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        assert_eq!(Frame::decode(&frame.encode()), Ok(frame));
    }
});
