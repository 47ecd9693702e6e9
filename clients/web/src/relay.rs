//! The relay's wire (SPEC §8) for the page's WebSocket: the requests it sends, and the events
//! it receives read into plain objects. The page opens the socket; the bytes are built here.

use ferry_protocol::TopicId;
use ferry_protocol::relay::wire::{Event, Request};
use wasm_bindgen::prelude::*;

fn topic(text: &str) -> Result<TopicId, JsError> {
    text.parse()
        .map_err(|e: ferry_protocol::Error| JsError::new(&e.to_string()))
}

/// The request that subscribes to `topic` (hex).
#[wasm_bindgen(js_name = relaySubscribe)]
pub fn subscribe(topic_hex: &str) -> Result<String, JsError> {
    let topic = topic(topic_hex)?;
    Ok(Request::Subscribe {
        topic,
        reference: None,
    }
    .to_json())
}

/// The request that publishes `data` on `topic` (hex).
#[wasm_bindgen(js_name = relayPublish)]
pub fn publish(topic_hex: &str, data: &[u8]) -> Result<String, JsError> {
    let topic = topic(topic_hex)?;
    Ok(Request::Publish {
        topic,
        data: data.to_vec(),
        reference: None,
    }
    .to_json())
}

/// An event the relay sent, as `{ kind: "message", topic, data }` or `{ kind: "error", code,
/// message }`; nothing for what the page has no use for (acknowledgements, unknown events).
/// Fails on what is not an event.
#[wasm_bindgen(js_name = relayEvent)]
pub fn event(text: &str) -> Result<JsValue, JsError> {
    let event = Event::parse(text).map_err(|e| JsError::new(&e.to_string()))?;
    let object = js_sys::Object::new();
    let set = |key: &str, value: JsValue| {
        // Setting a property on a plain object does not fail.
        let _ = js_sys::Reflect::set(&object, &key.into(), &value);
    };
    match event {
        Event::Message { topic, data } => {
            set("kind", "message".into());
            set("topic", topic.to_string().into());
            set("data", js_sys::Uint8Array::from(data.as_slice()).into());
        }
        Event::Error { code, message, .. } => {
            set("kind", "error".into());
            set("code", code.as_str().into());
            set("message", message.into());
        }
        Event::Ok { .. } | Event::Unknown => return Ok(JsValue::NULL),
    }
    Ok(object.into())
}
