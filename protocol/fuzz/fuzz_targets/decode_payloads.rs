//! Any bytes given to each payload decoder (and the held repository's questions and replies): an error, or a value that encodes back to them.
#![no_main]

use ferry_protocol::generation::{Previous, Rotation};
use ferry_protocol::held;
use ferry_protocol::objects::Payload;
use ferry_protocol::{BlobChunk, Head, KeyCheck, RelayHint, Segment, Snapshot};
use libfuzzer_sys::fuzz_target;

fn check<T: Payload>(data: &[u8]) {
    if let Ok(value) = T::decode(data) {
        // postcard's encoding is canonical except for over-long varints; a value that decoded
        // must at least decode again from its own encoding.
        assert!(T::decode(&value.encode()).is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    check::<Segment>(data);
    check::<Head>(data);
    check::<Snapshot>(data);
    check::<BlobChunk>(data);
    check::<RelayHint>(data);
    check::<KeyCheck>(data);
    check::<Rotation>(data);
    check::<Previous>(data);
    if let Ok(question) = held::Question::decode(data) {
        assert!(held::Question::decode(&question.encode()).is_ok());
    }
    if let Ok(reply) = held::Reply::decode(data) {
        assert!(held::Reply::decode(&reply.encode()).is_ok());
    }
});
