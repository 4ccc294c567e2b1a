//! The execution input, as `validate` reads it: any bytes that are JSON, parsed, checked and
//! planned. No input may panic.
#![no_main]

use bluegreen::model::DeployRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(request) = DeployRequest::parse(value) {
        let _ = request.plan();
        let _ = request.into_deployment("fuzz-execution", None);
    }
});
