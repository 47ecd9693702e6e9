//! Any text read as an object name or topic: an error, or the exact text it was written as.
#![no_main]

use ferry_protocol::{ObjectName, TopicId};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(name) = text.parse::<ObjectName>() {
        assert_eq!(name.to_string(), text);
    }
    if let Ok(topic) = text.parse::<TopicId>() {
        assert_eq!(topic.to_string(), text);
    }
});
