//! Function URL events as the webhook reads them (after authentication): any JSON. No input
//! may panic, and a refused request is a 4xx.
#![no_main]

use bluegreen::trigger::webhook::read_event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(Err(answer)) = read_event(value) {
        assert!((400..500).contains(&answer.status), "{answer:?}");
    }
});
