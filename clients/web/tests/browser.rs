//! Inside headless Chromium (`wasm-bindgen-test-runner` through chromedriver, see
//! `scripts/test.sh`): the committed protocol vectors hold in the browser's WebAssembly (keys,
//! names, sealed and signed objects, relay hints, pairing frames), and a page joins a
//! repository through [`Joining`] against a device's side of pairing.

#![cfg(target_arch = "wasm32")]

use ferry_protocol::Payload;
use ferry_protocol::pairing::{
    AbortReason, Body, Bundle, Credentials, Frame, Message, PairingCode, PairingError, Role,
    Session,
};
use ferry_protocol::{
    BlobChunk, DeviceId, DeviceKeys, Head, Identity, ObjectName, Segment, Snapshot, SyncKey,
    TopicId,
};
use ferry_web::{Device, Joining, Paired};
use serde_json::Value;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn vectors(file: &str) -> Value {
    let text = match file {
        "keys" => include_str!("../../../protocol/tests/vectors/keys.json"),
        "names" => include_str!("../../../protocol/tests/vectors/names.json"),
        "objects" => include_str!("../../../protocol/tests/vectors/objects.json"),
        "relay" => include_str!("../../../protocol/tests/vectors/relay.json"),
        "pairing" => include_str!("../../../protocol/tests/vectors/pairing.json"),
        _ => unreachable!("no vectors named {file}"),
    };
    serde_json::from_str(text).unwrap()
}

fn unhex(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().unwrap()).unwrap()
}

fn sync_key(value: &Value) -> SyncKey {
    SyncKey::from_bytes(unhex(value).try_into().unwrap())
}

/// What a JavaScript error says.
fn said(error: JsValue) -> String {
    js_sys::Error::from(error).message().into()
}

#[wasm_bindgen_test]
fn the_key_schedule_matches_its_vectors() {
    for case in vectors("keys")["cases"].as_array().unwrap() {
        let keys = sync_key(&case["sync_key"]).keys();
        assert_eq!(keys.id.to_string(), case["key_id"]);
        assert_eq!(hex::encode(keys.data.expose_bytes()), case["data"]);
        assert_eq!(hex::encode(keys.names.expose_bytes()), case["names"]);
        assert_eq!(hex::encode(keys.relay.expose_bytes()), case["relay"]);
        assert_eq!(hex::encode(keys.lan.expose_bytes()), case["lan"]);
        assert_eq!(
            keys.relay.window_topic(20_000).to_string(),
            case["window_topic_20000"]
        );
    }
}

#[wasm_bindgen_test]
fn object_names_match_their_vectors() {
    let file = vectors("names");
    let keys = sync_key(&file["sync_key"]).keys();
    let device = DeviceId([0x11; 16]);
    assert_eq!(device.to_string(), file["device_id"]);
    assert_eq!(
        keys.names.device_tag(&device).to_string(),
        file["device_tag"]
    );
    assert_eq!(
        keys.names.blob_id(b"a picture of a ferry").to_string(),
        file["blob_id"]
    );
    assert_eq!(
        hex::encode(keys.names.clip_id(b"hello from Ferry")),
        file["clip_id"]
    );
    for name in file["names"].as_array().unwrap() {
        let name = name.as_str().unwrap();
        assert_eq!(name.parse::<ObjectName>().unwrap().to_string(), name);
    }
    assert!("ferry/v1/../repo".parse::<ObjectName>().is_err());
}

fn named(case: &Value) -> (ObjectName, Vec<u8>) {
    let name = case["name"].as_str().unwrap().parse().unwrap();
    (name, unhex(&case["sealed"]))
}

#[wasm_bindgen_test]
fn sealed_and_signed_objects_open_and_verify_as_their_vectors_say() {
    let file = vectors("objects");
    let keys = sync_key(&file["sync_key"]).keys();
    let writer = Identity::from_hex(file["identity"]["secret"].as_str().unwrap())
        .unwrap()
        .public();
    assert_eq!(hex::encode(writer.sign), file["identity"]["sign_public"]);
    let stranger = Identity::from_secret_bytes(&[1; Identity::SECRET_LEN]).public();

    let (name, bytes) = named(&file["segment"]);
    let segment = keys.data.open_signed::<Segment>(&name, &bytes).unwrap();
    segment.verify(&writer).unwrap();
    assert!(segment.verify(&stranger).is_err());
    assert_eq!(
        hex::encode(segment.value.encode()),
        file["segment"]["payload"]
    );
    let (name, bytes) = named(&file["head"]);
    let head = keys.data.open_signed::<Head>(&name, &bytes).unwrap();
    head.verify(&writer).unwrap();
    assert_eq!(head.value.seq, 7);
    let (name, bytes) = named(&file["snapshot"]);
    keys.data
        .open_signed::<Snapshot>(&name, &bytes)
        .unwrap()
        .verify(&writer)
        .unwrap();
    let (name, bytes) = named(&file["blob_chunk"]);
    let chunk = keys.data.open_object::<BlobChunk>(&name, &bytes).unwrap();
    assert_eq!(
        hex::encode(&chunk.data),
        file["blob_chunk"]["fields"]["data"]
    );

    // Every flipped byte, a truncation, another name and another key are refused.
    let (name, bytes) = named(&file["segment"]);
    for at in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x01;
        assert!(
            keys.data.open_signed::<Segment>(&name, &flipped).is_err(),
            "byte {at}"
        );
    }
    assert!(
        keys.data
            .open_signed::<Segment>(&name, &bytes[..bytes.len() - 1])
            .is_err()
    );
    let (other, _) = named(&file["head"]);
    assert!(keys.data.open_signed::<Segment>(&other, &bytes).is_err());
    let foreign = SyncKey::from_bytes([9; 32]).keys();
    assert!(foreign.data.open_signed::<Segment>(&name, &bytes).is_err());
}

#[wasm_bindgen_test]
fn relay_hints_open_and_verify_as_their_vectors_say() {
    let file = vectors("relay");
    let keys = sync_key(&file["sync_key"]).keys();
    let topic = keys.relay.window_topic(file["window"].as_u64().unwrap());
    assert_eq!(topic.to_string(), file["topic"]);
    let signer = DeviceKeys::from_hex(file["signer_keys"].as_str().unwrap()).unwrap();
    let hint = keys
        .relay
        .open_hint(&topic, &unhex(&file["hint"]["sealed"]))
        .unwrap();
    hint.verify(&signer).unwrap();
    assert_eq!(hint.value.seq, 7);
    let elsewhere = TopicId([0; 32]);
    assert!(
        keys.relay
            .open_hint(&elsewhere, &unhex(&file["hint"]["sealed"]))
            .is_err()
    );
}

#[wasm_bindgen_test]
fn pairing_frames_of_the_vectors_decode_and_encode_again_unchanged() {
    let file = vectors("pairing");
    let (code, _) = PairingCode::parse(file["code"].as_str().unwrap()).unwrap();
    assert_eq!(
        ferry_protocol::pairing::topic(code.nameplate()).to_string(),
        file["topic"]
    );
    let frames = &file["frames"];
    let mut all: Vec<Vec<u8>> = ["offer_pake", "join_pake", "offer_confirm", "join_confirm"]
        .iter()
        .map(|name| unhex(&frames[name]))
        .collect();
    for list in ["reply", "bundle", "outcome"] {
        all.extend(frames[list].as_array().unwrap().iter().map(unhex));
    }
    for bytes in all {
        assert_eq!(Frame::decode(&bytes).unwrap().encode(), bytes);
        assert!(Frame::decode(&bytes[..3]).is_err());
    }
}

/// Code 417 with the first two words of the list, as `ferry pair` writes it.
fn typed_417() -> String {
    PairingCode::from_parts(417, [0, 1]).to_string()
}

/// The settings a device hands over, for a store at `store`.
fn bundle(store: &str) -> Bundle {
    Bundle {
        sync_key: [0x5a; 32],
        store: store.into(),
        credentials: Credentials::S3 {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        },
        relay: Some("wss://relay.example.org".into()),
        device: DeviceId([0x11; 16]),
        name: "laptop".into(),
    }
}

/// What the page's side returned for each frame it took.
type PageSteps = Vec<Result<Option<Paired>, JsValue>>;

/// What the device's side made of the page's frames: messages, or why it ended.
type DeviceSteps = Vec<Result<Message, PairingError>>;

/// Moves every frame each side has not sent yet to the other, until neither has more; the
/// frames in which the page said why it ended are kept in `ended` too.
fn exchange(
    device: &mut Session,
    page: &mut Joining,
    sent: &mut (usize, usize),
    ended: &mut Vec<Frame>,
) -> (PageSteps, DeviceSteps) {
    let (mut to_device, mut from_page) = (Vec::new(), Vec::new());
    loop {
        let device_frames = device.frames()[sent.0..].to_vec();
        let mut page_frames: Vec<Vec<u8>> = page
            .outgoing()
            .iter()
            .skip(sent.1)
            .map(|frame| js_sys::Uint8Array::from(frame).to_vec())
            .collect();
        if device_frames.is_empty() && page_frames.is_empty() {
            return (from_page, to_device);
        }
        sent.0 += device_frames.len();
        sent.1 += page_frames.len();
        for frame in device_frames {
            from_page.push(page.receive(&frame).map_err(JsValue::from));
            // Why the page ended, when it did: published once, as the page does.
            if let Some(last) = page.last_frame() {
                ended.push(Frame::decode(&last).unwrap());
                page_frames.push(last);
            }
        }
        for frame in page_frames {
            match device.receive(&frame) {
                Ok(progress) => to_device.extend(progress.message.map(Ok)),
                Err(error) => to_device.push(Err(error)),
            }
        }
    }
}

#[wasm_bindgen_test]
fn a_page_joins_with_the_code_and_keeps_what_it_was_given() {
    let code = PairingCode::generate().unwrap();
    let mut device = Session::new(Role::Offer, &code).unwrap();
    let mut page = Joining::new(&code.to_string(), " phone (browser) ").unwrap();
    assert_eq!(
        page.topic(),
        ferry_protocol::pairing::topic(code.nameplate()).to_string()
    );
    assert!(page.send_now(), "the first frame goes out at once");
    assert!(!page.send_now());

    let (mut sent, mut ended) = ((0, 0), Vec::new());
    let (_, told) = exchange(&mut device, &mut page, &mut sent, &mut ended);
    let Some(Ok(Message::Reply(reply))) = told.into_iter().next() else {
        panic!("the page did not say who it is");
    };
    assert_eq!(reply.name, "phone (browser)");
    device
        .send(&Message::Bundle(bundle(
            "s3://bucket/ferry?endpoint=http://127.0.0.1:9000",
        )))
        .unwrap();
    let (got, _) = exchange(&mut device, &mut page, &mut sent, &mut ended);
    let paired = got
        .into_iter()
        .find_map(|step| step.unwrap())
        .expect("the settings did not arrive");
    assert_eq!(paired.by(), "laptop");
    assert_eq!(
        paired.store(),
        "s3://bucket/ferry?endpoint=http://127.0.0.1:9000"
    );
    assert_eq!(paired.relay().as_deref(), Some("wss://relay.example.org"));
    assert_eq!(paired.device(), reply.device.to_string());
    assert_eq!(
        paired.key_id(),
        SyncKey::from_bytes([0x5a; 32]).keys().id.to_string()
    );
    // The identity it kept is the one the device put in the roster.
    assert_eq!(paired.identity().public(), reply.keys);

    page.finish(true, "").unwrap();
    let (_, told) = exchange(&mut device, &mut page, &mut sent, &mut ended);
    assert!(matches!(&told[..], [Ok(Message::Outcome(outcome))] if outcome.joined));

    // What the page stores reads back the same; damaged or foreign bytes are refused.
    let kept = paired.export().to_vec();
    let again = Paired::import(&kept).map_err(JsValue::from).unwrap();
    assert_eq!(again.export().to_vec(), kept);
    assert_eq!(again.identity().public(), reply.keys);
    assert!(matches!(again.credentials(), Credentials::S3 { .. }));
    let longer = [&kept[..], &[0]].concat();
    for broken in [&kept[..kept.len() / 2], &[], &[2, 0, 0][..], &longer[..]] {
        let error = Paired::import(broken).map_err(JsValue::from).err().unwrap();
        assert!(said(error).contains("Forget this browser"));
    }

    // The page as a device of that repository: what it keeps of what it read reads back, and
    // damaged bytes, or bytes of another layout, are left out (it then reads everything
    // again) without a panic; noise on the relay is not news; nothing is made before it has
    // read back what it wrote before.
    let device = Device::new(&again).map_err(JsValue::from).unwrap();
    let state = device.export();
    assert!(device.restore(&state));
    let longer = [&state[..], &[0]].concat();
    let mut flipped = state.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    for broken in [
        &state[..state.len() / 2],
        &[],
        &[1, 0][..],
        &longer[..],
        &flipped[..],
    ] {
        assert!(!device.restore(broken), "{broken:?}");
    }
    assert!(device.restore(&state));
    let topic = device.listen_topics()[0].clone();
    for noise in [&[][..], &[0; 64][..], &state[..]] {
        assert!(!device.news(&topic, noise));
    }
    assert!(!device.news("not a topic", &[1, 2, 3]));
    let refused = device.copy_text("too early").map_err(JsValue::from).err();
    assert!(said(refused.unwrap()).contains("has not yet read back"));
}

#[wasm_bindgen_test]
fn a_wrong_code_ends_both_sides_and_the_page_says_so() {
    let code = PairingCode::from_parts(417, [1, 2]);
    let mut device = Session::new(Role::Offer, &code).unwrap();
    // The same number (so the same meeting place), other words.
    let typed = PairingCode::from_parts(417, [3, 4]).to_string();
    let mut page = Joining::new(&typed, "phone").unwrap();
    let (mut sent, mut ended) = ((0, 0), Vec::new());
    let (got, told) = exchange(&mut device, &mut page, &mut sent, &mut ended);
    let page_error = got
        .into_iter()
        .find_map(Result::err)
        .expect("the page went on");
    assert!(said(page_error).contains("wrong code"));
    assert!(
        told.iter()
            .any(|t| matches!(t, Err(PairingError::WrongCode)))
    );
    // The page said why it ended, as the device's side would.
    assert!(
        matches!(&ended[..], [frame] if frame.body == Body::Abort(AbortReason::WrongCode)),
        "{ended:?}"
    );
    assert!(!page.confirmed());
    assert!(Joining::new("not a code", "phone").is_err());
    assert_eq!(
        ferry_web::check_code(" 417-ABANDON-ability ").ok(),
        Some(typed_417())
    );
    for bad in ["hello", "802-xxxx-yyyy", "", "417-able"] {
        let said = said(
            ferry_web::check_code(bad)
                .map_err(JsValue::from)
                .unwrap_err(),
        );
        assert!(!said.is_empty(), "{bad}");
    }
}

#[wasm_bindgen_test]
fn a_folder_repository_is_refused_at_once_and_the_device_is_told_why() {
    // A folder of the other device's, or one it holds for the LAN (as `ferry pair` sends it).
    for store in [
        "file:///home/me/.local/share/ferry/repository",
        "lan://2f8457ae1e5aa48eeceb0280226d1448",
    ] {
        a_folder_is_refused(store);
    }
}

fn a_folder_is_refused(store: &str) {
    let code = PairingCode::generate().unwrap();
    let mut device = Session::new(Role::Offer, &code).unwrap();
    let mut page = Joining::new(&code.to_string(), "phone").unwrap();
    let (mut sent, mut ended) = ((0, 0), Vec::new());
    exchange(&mut device, &mut page, &mut sent, &mut ended);
    assert!(page.confirmed());
    device.send(&Message::Bundle(bundle(store))).unwrap();
    let (got, told) = exchange(&mut device, &mut page, &mut sent, &mut ended);
    let error = got
        .into_iter()
        .find_map(Result::err)
        .expect("the folder was taken");
    let error = said(error);
    assert!(error.contains("ferry store move"), "{error}");
    let Some(Ok(Message::Outcome(outcome))) = told.into_iter().next() else {
        panic!("the device was not told");
    };
    assert!(!outcome.joined);
    assert!(outcome.detail.contains("a browser cannot read it"));
}

#[wasm_bindgen_test]
fn identities_and_device_ids_are_generated_in_the_browser() {
    let a = Identity::generate().unwrap().public();
    let b = Identity::generate().unwrap().public();
    assert_ne!(a, b);
    assert_ne!(DeviceId::generate().unwrap(), DeviceId::generate().unwrap());
}

#[wasm_bindgen_test]
fn relay_requests_and_events_are_the_wire_of_spec_section_8() {
    use ferry_protocol::relay::wire::{Event, Request};
    let topic = TopicId([7; 32]);
    let subscribe = ferry_web::relay_subscribe(&topic.to_string()).unwrap();
    assert_eq!(
        Request::parse(&subscribe).unwrap(),
        Request::Subscribe {
            topic,
            reference: None
        }
    );
    let publish = ferry_web::relay_publish(&topic.to_string(), b"frame").unwrap();
    assert_eq!(
        Request::parse(&publish).unwrap(),
        Request::Publish {
            topic,
            data: b"frame".to_vec(),
            reference: None
        }
    );
    assert!(ferry_web::relay_subscribe("not a topic").is_err());

    let message = Event::Message {
        topic,
        data: vec![1, 2, 3],
    };
    let read = ferry_web::relay_event(&message.to_json().unwrap()).unwrap();
    let field = |name: &str| js_sys::Reflect::get(&read, &name.into()).unwrap();
    assert_eq!(field("kind"), "message");
    assert_eq!(field("topic"), topic.to_string().as_str());
    assert_eq!(
        js_sys::Uint8Array::from(field("data")).to_vec(),
        vec![1, 2, 3]
    );
    let crowded = r#"{"type":"error","code":"crowded","message":"two devices already"}"#;
    let read = ferry_web::relay_event(crowded).unwrap();
    assert_eq!(
        js_sys::Reflect::get(&read, &"code".into()).unwrap(),
        "crowded"
    );
    assert!(
        ferry_web::relay_event(r#"{"type":"ok","ref":1}"#)
            .unwrap()
            .is_null()
    );
    assert!(ferry_web::relay_event("{not json").is_err());
}
