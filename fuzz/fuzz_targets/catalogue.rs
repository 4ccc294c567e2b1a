//! The deployment catalogue, as the trigger loads it: any text. No input may panic, and an
//! accepted catalogue answers its lookups.
#![no_main]

use bluegreen::trigger::catalogue::Catalogue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(catalogue) = Catalogue::parse(text, "fuzz.json") {
        for entry in catalogue.entries() {
            let _ = entry.request(&format!("{}:v1", entry.repository));
            let _ = catalogue.following(&entry.repository, "v1");
        }
        let _ = catalogue.names();
    }
});
