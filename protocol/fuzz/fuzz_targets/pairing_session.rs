//! A pairing session fed a real peer's frames, then arbitrary ones (split at 0xff bytes, a
//! stand-in for frame boundaries): every frame is taken or refused, never a panic.
#![no_main]

use ferry_protocol::pairing::{PairingCode, Role, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let code = PairingCode::from_parts(1, [2, 3]);
    let (Ok(mut offer), Ok(join)) = (
        Session::new(Role::Offer, &code),
        Session::new(Role::Join, &code),
    ) else {
        return;
    };
    for frame in join.frames().iter().map(Vec::as_slice).chain(data.split(|b| *b == 0xff)) {
        if offer.receive(frame).is_err() {
            return;
        }
    }
});
