//! The exchange between two sessions, and every way a relay can spoil it.

use super::*;
use crate::identity::Identity;
use crate::names::DeviceId;

fn code() -> PairingCode {
    PairingCode::from_parts(417, [1247, 1936])
}

fn bundle() -> Bundle {
    Bundle {
        sync_key: [42; 32],
        store: "s3://bucket/ferry?endpoint=http://127.0.0.1:9000&region=x".into(),
        credentials: Credentials::S3 {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG".into(),
        },
        relay: Some("ws://127.0.0.1:8787".into()),
        device: DeviceId([1; 16]),
        name: "laptop".into(),
    }
}

fn reply() -> Reply {
    Reply {
        device: DeviceId([2; 16]),
        name: "desktop".into(),
        keys: Identity::from_secret_bytes(&[3; 64]).public(),
    }
}

/// Moves frames between the two sessions until neither has news, the way the command line
/// does: each side answers a frame with its standing frames when told to, and sends its
/// messages once confirmed. Returns what each side received.
struct Run {
    offer: Session,
    join: Session,
    /// Frames in flight: (to the offer side?, bytes).
    wire: Vec<(bool, Vec<u8>)>,
    offer_got: Vec<Message>,
    join_got: Vec<Message>,
}

impl Run {
    fn new(join_code: &PairingCode) -> Run {
        let offer = Session::new(Role::Offer, &code()).unwrap();
        let join = Session::new(Role::Join, join_code).unwrap();
        let mut wire = Vec::new();
        wire.extend(join.frames().iter().map(|f| (true, f.clone())));
        wire.extend(offer.frames().iter().map(|f| (false, f.clone())));
        Run {
            offer,
            join,
            wire,
            offer_got: Vec::new(),
            join_got: Vec::new(),
        }
    }

    /// Delivers frames (after `spoil` has its way with each batch) until quiet.
    fn run(
        &mut self,
        mut spoil: impl FnMut(Vec<(bool, Vec<u8>)>) -> Vec<(bool, Vec<u8>)>,
    ) -> Result<(), PairingError> {
        for _ in 0..50 {
            let batch = spoil(std::mem::take(&mut self.wire));
            if batch.is_empty() {
                return Ok(());
            }
            for (to_offer, bytes) in batch {
                let (me, got) = if to_offer {
                    (&mut self.offer, &mut self.offer_got)
                } else {
                    (&mut self.join, &mut self.join_got)
                };
                let before = me.frames().len();
                let progress = me.receive(&bytes)?;
                if progress.confirmed && me.role() == Role::Join {
                    me.send(&Message::Reply(reply()))?;
                }
                match &progress.message {
                    Some(Message::Reply(_)) => me.send(&Message::Bundle(bundle()))?,
                    Some(Message::Bundle(_)) => me.send(&Message::Outcome(Outcome {
                        joined: true,
                        detail: String::new(),
                    }))?,
                    _ => {}
                }
                let fresh: Vec<Vec<u8>> = if progress.send_now {
                    me.frames().to_vec()
                } else {
                    me.frames()[before..].to_vec()
                };
                self.wire.extend(fresh.into_iter().map(|f| (!to_offer, f)));
                got.extend(progress.message);
            }
        }
        panic!("the exchange did not settle");
    }

    fn done(&self) -> bool {
        self.offer_got.len() == 2 && self.join_got.len() == 1
    }
}

#[test]
fn the_same_code_pairs() {
    let mut run = Run::new(&code());
    run.run(|batch| batch).unwrap();
    assert!(run.done(), "{:?} {:?}", run.offer_got, run.join_got);
    assert_eq!(run.join_got, [Message::Bundle(bundle())]);
    assert_eq!(run.offer_got[0], Message::Reply(reply()));
    assert!(matches!(&run.offer_got[1], Message::Outcome(o) if o.joined));
}

#[test]
fn a_word_off_fails_on_both_sides() {
    for other in [
        PairingCode::from_parts(417, [1247, 1937]),
        PairingCode::from_parts(417, [1936, 1247]),
        PairingCode::from_parts(418, [1247, 1936]),
    ] {
        let mut run = Run::new(&other);
        assert_eq!(run.run(|batch| batch), Err(PairingError::WrongCode));
        // Each side checks the other's confirmation on its own.
        let offer_confirm = run.offer.frames()[1].clone();
        let join_confirm = run.join.frames()[1].clone();
        assert_eq!(
            run.join.receive(&offer_confirm),
            Err(PairingError::WrongCode)
        );
        assert_eq!(
            run.offer.receive(&join_confirm),
            Err(PairingError::WrongCode)
        );
        assert!(run.offer_got.is_empty() && run.join_got.is_empty());
        assert!(run.offer.send(&Message::Bundle(bundle())).is_err());
    }
}

#[test]
fn duplicated_and_reordered_frames_still_pair() {
    let mut run = Run::new(&code());
    run.run(|mut batch| {
        let copy = batch.clone();
        batch.extend(copy);
        batch.reverse();
        batch
    })
    .unwrap();
    assert!(run.done());
}

#[test]
fn dropped_frames_are_made_up_by_publishing_again() {
    let mut run = Run::new(&code());
    let mut rng = ferry_test_kit::random::Rng::new(0x9e37_79b9);
    // Half the frames are lost, at random; the standing frames go out again each round, as
    // the command line republishes them.
    for _ in 0..20 {
        run.run(|batch| batch.into_iter().filter(|_| rng.below(2) == 0).collect())
            .unwrap();
        if run.done() {
            break;
        }
        let offer: Vec<_> = run
            .offer
            .frames()
            .iter()
            .map(|f| (false, f.clone()))
            .collect();
        let join: Vec<_> = run
            .join
            .frames()
            .iter()
            .map(|f| (true, f.clone()))
            .collect();
        run.wire.extend(offer);
        run.wire.extend(join);
    }
    assert!(run.done());
}

#[test]
fn any_flipped_bit_ends_the_attempt_or_changes_nothing() {
    // Flip each bit of each frame of a clean run in turn.
    let mut clean = Run::new(&code());
    let mut frames = Vec::new();
    clean
        .run(|batch| {
            frames.extend(batch.clone());
            batch
        })
        .unwrap();
    for (at, (to_offer, bytes)) in frames.iter().enumerate() {
        for bit in (0..bytes.len() * 8).step_by(bytes.len() / 8 + 1) {
            let mut run = Run::new(&code());
            let mut seen = 0;
            let result = run.run(|batch| {
                batch
                    .into_iter()
                    .map(|(to, mut b)| {
                        if seen == at && to == *to_offer {
                            b[bit / 8] ^= 1 << (bit % 8);
                        }
                        seen += 1;
                        (to, b)
                    })
                    .collect()
            });
            match result {
                // Never a different bundle or reply.
                Ok(()) => {
                    assert!(run.join_got.iter().all(|m| *m == Message::Bundle(bundle())));
                    assert!(
                        run.offer_got
                            .first()
                            .is_none_or(|m| *m == Message::Reply(reply()))
                    );
                }
                Err(
                    PairingError::WrongCode
                    | PairingError::Tampered(_)
                    | PairingError::Malformed(_)
                    | PairingError::Crowded
                    | PairingError::Version { .. }
                    | PairingError::PeerAborted(_),
                ) => {}
                Err(other) => panic!("frame {at} bit {bit}: {other}"),
            }
        }
    }
}

#[test]
fn a_third_side_is_a_crowd() {
    let mut offer = Session::new(Role::Offer, &code()).unwrap();
    let first = Session::new(Role::Join, &code()).unwrap();
    let second = Session::new(Role::Join, &code()).unwrap();
    offer.receive(&first.frames()[0]).unwrap();
    assert_eq!(
        offer.receive(&second.frames()[0]),
        Err(PairingError::Crowded)
    );
    // Another device in the same role is a crowd as well.
    let mut join = Session::new(Role::Join, &code()).unwrap();
    assert_eq!(join.receive(&first.frames()[0]), Err(PairingError::Crowded));
}

#[test]
fn reflected_and_foreign_frames_end_the_attempt() {
    let mut offer = Session::new(Role::Offer, &code()).unwrap();
    // Its own key exchange message under another side and role.
    let mut reflected = offer.frames()[0].clone();
    reflected[2] = 1;
    reflected[3] ^= 1;
    assert!(matches!(
        offer.receive(&reflected),
        Err(PairingError::Tampered(_))
    ));

    // Sealed chunks of another attempt with the same code: they do not open.
    let mut run = Run::new(&code());
    run.run(|batch| batch).unwrap();
    let old_bundle = run.offer.frames().last().unwrap().clone();
    let mut fresh = Run::new(&code());
    fresh
        .run(|mut batch| {
            batch.retain(|(to_offer, _)| *to_offer);
            batch
        })
        .unwrap();
    let mut join = Session::new(Role::Join, &code()).unwrap();
    join.receive(&run.offer.frames()[0]).unwrap();
    join.receive(&run.offer.frames()[1]).unwrap_err();
    let mut join = Session::new(Role::Join, &code()).unwrap();
    assert!(
        join.receive(&old_bundle).is_ok(),
        "held until the key is known"
    );
}

#[test]
fn aborts_carry_their_reason() {
    let offer = Session::new(Role::Offer, &code()).unwrap();
    let mut join = Session::new(Role::Join, &code()).unwrap();
    let abort = offer.abort(AbortReason::Expired);
    let error = join.receive(&abort).unwrap_err();
    assert_eq!(error, PairingError::PeerAborted(AbortReason::Expired));
    assert!(error.to_string().contains("expired"), "{error}");
}

#[test]
fn errors_never_show_the_words() {
    let words = ["orbit", "velvet"];
    for error in [
        PairingError::WrongCode,
        PairingError::Crowded,
        PairingError::Version { theirs: 9 },
        PairingError::Tampered("x"),
    ] {
        let text = error.to_string();
        assert!(words.iter().all(|w| !text.contains(w)), "{text}");
    }
}

#[test]
fn the_topic_depends_on_the_nameplate_alone() {
    assert_eq!(topic(417), topic(417));
    assert_ne!(topic(417), topic(418));
    assert_eq!(
        topic(7).to_string(),
        hex::encode(Sha256::digest(b"ferry/v1/pair-topic\x00007"))
    );
}
