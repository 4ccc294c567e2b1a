//! Webhook requests with any method, path, content type (of the characters HTTP allows) and
//! body (the fuzzer's bytes, split at the first three NULs), on the sample start request. No
//! input may panic, and a refused request is a 4xx.
#![no_main]

use bluegreen::trigger::webhook::read_event;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::sync::LazyLock;

static TEMPLATE: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(include_str!("../../events/trigger/webhook-start.json"))
        .expect("the sample request is JSON")
});

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let method = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    // HTTP carries only visible ASCII, spaces and tabs in a header value: Lambda never hands
    // the function anything else there.
    let content_type: String = String::from_utf8_lossy(parts.next().unwrap_or_default())
        .chars()
        .filter(|c| *c == '\t' || (' '..='~').contains(c))
        .collect();
    let body = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut event = TEMPLATE.clone();
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["method"] = json!(method);
    event["headers"]["content-type"] = json!(content_type);
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(data.first().is_some_and(|b| b % 2 == 1));
    match read_event(event) {
        Ok(Err(answer)) => assert!((400..500).contains(&answer.status), "{answer:?}"),
        Ok(Ok(_)) => {}
        Err(e) => panic!("a request with a method and path is a Function URL request: {e}"),
    }
});
