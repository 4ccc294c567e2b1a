//! EventBridge's `ECR Image Action` events, read against the sample catalogue: any JSON. No
//! input may panic.
#![no_main]

use bluegreen::trigger::catalogue::Catalogue;
use bluegreen::trigger::ecr::{PushPlan, read_push};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    Catalogue::parse(
        include_str!("../../events/trigger/catalogue.json"),
        "catalogue.json",
    )
    .expect("the sample catalogue is valid")
});

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(PushPlan::Deploy { entries, image, .. }) = read_push(&CATALOGUE, value) {
        assert!(!entries.is_empty(), "a deploy plan without deployments");
        for entry in entries {
            let _ = entry.request(&image);
        }
    }
});
