//! Any bytes given to `open`, as every kind and as a relay hint: an error, never a panic.
#![no_main]

use ferry_protocol::{Kind, SyncKey, TopicId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = SyncKey::from_bytes([7; 32]).keys();
    for kind in [Kind::KeyCheck, Kind::Segment, Kind::Head, Kind::Snapshot, Kind::BlobChunk] {
        let _ = keys.data.open(kind, "log/x/y", data);
    }
    let _ = keys.relay.open_hint(&TopicId([1; 32]), data);
    let _ = ferry_protocol::Header::parse(data);
});
