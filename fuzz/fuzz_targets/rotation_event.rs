//! What rotate-secret is invoked with: Secrets Manager's rotation events and the rotation
//! workflow's actions, any JSON. No input may panic.
#![no_main]

use bluegreen::rotation::RotateInput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = RotateInput::parse(value);
});
