//! The relay's JSON frames: golden encodings, every rejection, and no panic on any text.
//!
//! The JSON strings below are the wire format. They change only with a deliberate protocol
//! version (a new endpoint path), never silently.

use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::{ErrorCode, Event, MAX_DATA, Request};
use proptest::prelude::*;

const TOPIC: &str = "204f5577815e7963c91677361c8714c0408b66dd24c9f5c888e80d4055957cb7";

fn topic() -> TopicId {
    TOPIC.parse().unwrap()
}

#[test]
fn requests_have_fixed_encodings() {
    let cases = [
        (
            Request::Subscribe {
                topic: topic(),
                reference: Some(1),
            },
            format!(r#"{{"type":"sub","topic":"{TOPIC}","ref":1}}"#),
        ),
        (
            Request::Unsubscribe {
                topic: topic(),
                reference: None,
            },
            format!(r#"{{"type":"unsub","topic":"{TOPIC}"}}"#),
        ),
        (
            Request::Publish {
                topic: topic(),
                data: b"hint".to_vec(),
                reference: None,
            },
            format!(r#"{{"type":"pub","topic":"{TOPIC}","data":"aGludA=="}}"#),
        ),
    ];
    for (request, json) in cases {
        assert_eq!(request.to_json(), json);
        assert_eq!(Request::parse(&json).unwrap(), request);
    }
}

#[test]
fn events_have_fixed_encodings() {
    let cases = [
        (
            Event::Message {
                topic: topic(),
                data: vec![0, 1, 2, 255],
            },
            format!(r#"{{"type":"msg","topic":"{TOPIC}","data":"AAEC/w=="}}"#),
        ),
        (
            Event::Ok { reference: 9 },
            r#"{"type":"ok","ref":9}"#.to_owned(),
        ),
        (
            Event::Error {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                reference: Some(3),
            },
            r#"{"type":"error","code":"rate_limited","message":"slow down","ref":3}"#.to_owned(),
        ),
        (
            Event::Error {
                code: ErrorCode::Crowded,
                message: "two already".into(),
                reference: Some(4),
            },
            r#"{"type":"error","code":"crowded","message":"two already","ref":4}"#.to_owned(),
        ),
        (
            Event::Error {
                code: ErrorCode::TooManyPairings,
                message: "four already".into(),
                reference: None,
            },
            r#"{"type":"error","code":"too_many_pairings","message":"four already"}"#.to_owned(),
        ),
    ];
    for (event, json) in cases {
        assert_eq!(event.to_json().unwrap(), json);
        assert_eq!(Event::parse(&json).unwrap(), event);
    }
    assert_eq!(Event::Unknown.to_json(), None);
}

#[test]
fn unknown_fields_are_ignored_and_unknown_events_tolerated() {
    let json = format!(r#"{{"extra":[1,{{}}],"type":"sub","topic":"{TOPIC}","later":null}}"#);
    assert_eq!(
        Request::parse(&json).unwrap(),
        Request::Subscribe {
            topic: topic(),
            reference: None
        }
    );
    assert_eq!(
        Event::parse(r#"{"type":"welcome","motd":"hi"}"#).unwrap(),
        Event::Unknown
    );
    let code = Event::parse(r#"{"type":"error","code":"new_code","message":"m"}"#).unwrap();
    assert!(matches!(code, Event::Error { code: ErrorCode::Other(c), .. } if c == "new_code"));
}

#[test]
fn every_bad_request_gets_its_code() {
    let big = "A".repeat((MAX_DATA + 3) / 3 * 4);
    let cases: Vec<(String, ErrorCode, Option<u64>)> = vec![
        ("not json".into(), ErrorCode::BadFrame, None),
        ("[1,2]".into(), ErrorCode::BadFrame, None),
        (r#"{"topic":"x"}"#.into(), ErrorCode::BadFrame, None),
        (
            r#"{"type":"sub","ref":"seven"}"#.into(),
            ErrorCode::BadFrame,
            None,
        ),
        (
            r#"{"type":"sub","ref":4}"#.into(),
            ErrorCode::BadFrame,
            Some(4),
        ),
        (
            r#"{"type":"sub","topic":"ABCD","ref":5}"#.into(),
            ErrorCode::BadFrame,
            Some(5),
        ),
        (
            format!(r#"{{"type":"sub","topic":"{}"}}"#, TOPIC.to_uppercase()),
            ErrorCode::BadFrame,
            None,
        ),
        (
            format!(r#"{{"type":"pub","topic":"{TOPIC}"}}"#),
            ErrorCode::BadFrame,
            None,
        ),
        (
            format!(r#"{{"type":"pub","topic":"{TOPIC}","data":"!!","ref":6}}"#),
            ErrorCode::BadFrame,
            Some(6),
        ),
        (
            format!(r#"{{"type":"pub","topic":"{TOPIC}","data":"{big}"}}"#),
            ErrorCode::TooLarge,
            None,
        ),
        (
            r#"{"type":"subscribe","ref":8}"#.into(),
            ErrorCode::UnknownType,
            Some(8),
        ),
    ];
    for (json, code, reference) in cases {
        let rejection = Request::parse(&json).unwrap_err();
        assert_eq!(rejection.code, code, "{json}");
        assert_eq!(rejection.reference, reference, "{json}");
        assert!(!rejection.message.is_empty());
        let event = rejection.to_event().to_json().unwrap();
        assert!(event.contains(&format!(r#""code":"{code}""#)), "{event}");
    }
}

#[test]
fn the_largest_payload_is_accepted() {
    let data = vec![7u8; MAX_DATA];
    let request = Request::Publish {
        topic: topic(),
        data: data.clone(),
        reference: None,
    };
    assert_eq!(Request::parse(&request.to_json()).unwrap(), request);
    let over = Request::Publish {
        topic: topic(),
        data: vec![7u8; MAX_DATA + 1],
        reference: None,
    };
    assert_eq!(
        Request::parse(&over.to_json()).unwrap_err().code,
        ErrorCode::TooLarge
    );
}

#[test]
fn malformed_events_are_errors() {
    for json in [
        "",
        "{}",
        r#"{"type":"ok"}"#,
        r#"{"type":"msg","topic":"00","data":""}"#,
        &format!(r#"{{"type":"msg","topic":"{TOPIC}","data":"***"}}"#),
    ] {
        assert!(Event::parse(json).is_err(), "{json}");
    }
}

proptest! {
    #[test]
    fn parsing_any_text_never_panics(text in ".{0,300}") {
        let _ = Request::parse(&text);
        let _ = Event::parse(&text);
    }

    #[test]
    fn parsing_near_valid_frames_never_panics(
        kind in prop_oneof![Just("sub"), Just("pub"), Just("msg"), Just("error"), Just("ok")],
        topic in "[0-9a-f]{60,68}",
        data in "[A-Za-z0-9+/=]{0,700}",
        reference in any::<Option<u64>>(),
    ) {
        let mut json = format!(r#"{{"type":"{kind}","topic":"{topic}","data":"{data}""#);
        if let Some(r) = reference {
            json.push_str(&format!(r#","ref":{r}"#));
        }
        json.push('}');
        let _ = Request::parse(&json);
        let _ = Event::parse(&json);
    }

    #[test]
    fn requests_round_trip(
        topic in any::<[u8; 32]>(),
        data in prop::collection::vec(any::<u8>(), 0..=MAX_DATA),
        reference in any::<Option<u64>>(),
    ) {
        let request = Request::Publish { topic: TopicId(topic), data, reference };
        prop_assert_eq!(Request::parse(&request.to_json()).unwrap(), request);
    }
}
