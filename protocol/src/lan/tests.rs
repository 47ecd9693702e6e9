//! Frames and instance names: round trips, refusals, and names recognised only with the key.

use super::*;
use crate::keys::SyncKey;

fn lan(seed: u8) -> LanKey {
    SyncKey::from_bytes([seed; 32]).keys().lan
}

fn identity(seed: u8) -> Identity {
    Identity::from_secret_bytes(&[seed; Identity::SECRET_LEN])
}

#[test]
fn a_hello_holds_only_for_its_connection_its_end_and_its_words() {
    let handshake = [3u8; 32];
    let hello = Frame::hello(
        &identity(1),
        (DeviceId([7; 16]), 47_291, false),
        &handshake,
        End::Dialer,
    );
    assert!(hello.hello_holds(&handshake, End::Dialer));
    // Sent back by the other end, or replayed on another connection.
    assert!(!hello.hello_holds(&handshake, End::Listener));
    assert!(!hello.hello_holds(&[4; 32], End::Dialer));
    // Any word changed: the device, the port, or the key (to another device's).
    let Frame::Hello {
        device,
        port,
        caller,
        key,
        signature,
    } = hello.clone()
    else {
        unreachable!()
    };
    let changed = [
        Frame::Hello {
            device: DeviceId([8; 16]),
            port,
            caller,
            key,
            signature,
        },
        Frame::Hello {
            device,
            port: port + 1,
            caller,
            key,
            signature,
        },
        Frame::Hello {
            device,
            port,
            caller: true,
            key,
            signature,
        },
        Frame::Hello {
            device,
            port,
            caller,
            key: identity(2).public().sign,
            signature,
        },
    ];
    for frame in changed {
        assert!(!frame.hello_holds(&handshake, End::Dialer), "{frame:?}");
    }
    assert!(!Frame::Ping.hello_holds(&handshake, End::Dialer));
    assert!(hello.encode().unwrap().len() <= MAX_HELLO);
}

#[test]
fn a_hello_cut_short_or_with_a_caller_byte_other_than_0_or_1_is_refused() {
    let hello = Frame::hello(
        &identity(1),
        (DeviceId([7; 16]), 47_291, false),
        &[3; 32],
        End::Dialer,
    )
    .encode()
    .unwrap();
    let mut odd = hello.clone();
    odd[19] = 2;
    assert_eq!(
        Frame::decode(&odd),
        Err(FrameError::Malformed(
            "a hello is neither a caller's nor not"
        ))
    );
    for len in [20, 60, hello.len() - 1] {
        assert!(
            matches!(Frame::decode(&hello[..len]), Err(FrameError::Malformed(_))),
            "{len}"
        );
    }
    let mut longer = hello.clone();
    longer.push(0);
    assert_eq!(
        Frame::decode(&longer),
        Err(FrameError::Malformed("bytes after the frame"))
    );
}

#[test]
fn a_hello_of_an_older_version_says_so() {
    let mut old = vec![1u8];
    old.extend_from_slice(&[7; 16]);
    old.extend_from_slice(&47_291u16.to_be_bytes());
    assert_eq!(
        Frame::decode(&old),
        Err(FrameError::Malformed(
            "a hello without a signature, from an older version of Ferry"
        ))
    );
}

#[test]
fn frames_round_trip() {
    let frames = [
        Frame::hello(
            &identity(1),
            (DeviceId([7; 16]), 47_291, false),
            &[3; 32],
            End::Dialer,
        ),
        Frame::hello(
            &identity(1),
            (DeviceId([7; 16]), 1, true),
            &[3; 32],
            End::Listener,
        ),
        Frame::Heads(vec![
            (DeviceTag([1; 16]), 3),
            (DeviceTag([2; 16]), u64::MAX),
        ]),
        Frame::Heads(Vec::new()),
        Frame::Segment {
            device: DeviceTag([9; 16]),
            seq: 42,
            sealed: vec![5; 300],
        },
        Frame::Ping,
        Frame::Want {
            blob: BlobId([4; 32]),
        },
        Frame::Chunk {
            blob: BlobId([4; 32]),
            chunk: 7,
            sealed: vec![6; 90],
        },
        Frame::Ask {
            call: 3,
            more: true,
            part: vec![1; 20],
        },
        Frame::Answer {
            call: u32::MAX,
            more: false,
            part: Vec::new(),
        },
        Frame::Unanswered {
            call: 9,
            why: Unanswered::Busy,
        },
    ];
    for frame in frames {
        let bytes = frame.encode().unwrap();
        assert_eq!(Frame::decode(&bytes).unwrap(), frame);
        // A segment or chunk cut short is still one (its sealed bytes then fail to open).
        let shortest = match frame {
            Frame::Segment { .. } => 26,
            Frame::Chunk { .. } => 38,
            Frame::Ask { .. } | Frame::Answer { .. } => 6,
            _ => bytes.len(),
        };
        for cut in 0..shortest {
            assert!(
                Frame::decode(&bytes[..cut]).is_err(),
                "{frame:?} cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        if !matches!(
            frame,
            Frame::Segment { .. } | Frame::Chunk { .. } | Frame::Ask { .. } | Frame::Answer { .. }
        ) {
            assert_eq!(
                Frame::decode(&longer),
                Err(FrameError::Malformed("bytes after the frame"))
            );
        }
    }
}

#[test]
fn refuses_what_is_not_a_frame() {
    assert_eq!(Frame::decode(&[]), Err(FrameError::Malformed("empty")));
    assert_eq!(
        Frame::decode(&[10]),
        Err(FrameError::Malformed("unknown kind"))
    );
    let mut too_many = vec![HEADS];
    too_many.extend_from_slice(&(MAX_HEADS as u16 + 1).to_be_bytes());
    assert!(matches!(
        Frame::decode(&too_many),
        Err(FrameError::TooLarge(_))
    ));
    let mut no_segment = vec![SEGMENT];
    no_segment.extend_from_slice(&[0; 24]);
    assert!(matches!(
        Frame::decode(&no_segment),
        Err(FrameError::Malformed(_))
    ));
    let huge = Frame::Segment {
        device: DeviceTag([0; 16]),
        seq: 1,
        sealed: vec![0; MAX_FRAME],
    };
    assert!(matches!(huge.encode(), Err(FrameError::TooLarge(_))));
    let big_part = Frame::Ask {
        call: 1,
        more: false,
        part: vec![0; MAX_PART + 1],
    };
    assert!(matches!(big_part.encode(), Err(FrameError::TooLarge(_))));
    let mut big_part = vec![ANSWER, 0, 0, 0, 1, 0];
    big_part.resize(6 + MAX_PART + 1, 0);
    assert!(matches!(
        Frame::decode(&big_part),
        Err(FrameError::TooLarge(_))
    ));
    for bad in [vec![ASK, 0, 0, 0, 1, 2], vec![UNANSWERED, 0, 0, 0, 1, 4]] {
        assert!(matches!(Frame::decode(&bad), Err(FrameError::Malformed(_))));
    }
}

#[test]
fn instance_names_are_recognised_only_with_the_key_and_near_their_period() {
    let key = lan(1);
    let name = key.instance_name(1000, [3; 8]);
    assert_eq!(name.len(), 32);
    for period in [999, 1000, 1001] {
        assert!(key.recognises(&name, period), "period {period}");
    }
    assert!(!key.recognises(&name, 998));
    assert!(!key.recognises(&name, 1002));
    assert!(!lan(2).recognises(&name, 1000));
    // Two devices of one group announce different, unlinkable names.
    assert_ne!(name, key.instance_name(1000, [4; 8]));
    assert_ne!(name[16..], key.instance_name(1000, [4; 8])[16..]);
    for junk in ["", "zz", &name[..31], &"g".repeat(32)] {
        assert!(!key.recognises(junk, 1000));
    }
    // mDNS may add a suffix to resolve a clash: the name is still recognised.
    assert!(key.recognises(&format!("{name} (2)"), 1000));
}
