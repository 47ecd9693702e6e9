//! Any bytes read as a repository header or a generation record, then verified or opened: an
//! error, never a panic.
#![no_main]

use ferry_protocol::generation::Next;
use ferry_protocol::{DeviceTag, RepoHeader, SyncKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = RepoHeader::from_bytes(data) {
        let _ = header.verify(&SyncKey::from_bytes([7; 32]).keys());
        let _ = RepoHeader::from_bytes(&header.to_bytes()).expect("a read header reads again");
    }
    if let Ok(next) = Next::from_bytes(DeviceTag([1; 16]), data) {
        let _ = next.open(&SyncKey::from_bytes([7; 32]).keys());
        let _ = Next::from_bytes(next.creator, &next.to_bytes()).expect("a read record reads again");
    }
});
