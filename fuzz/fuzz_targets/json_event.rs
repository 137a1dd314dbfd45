//! The structured-mode JSON event parser; what parses survives `to_json` → `from_json` unchanged.
#![no_main]

use knit_channels::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = Event::from_json(data) else {
        return;
    };
    let json = event.to_json();
    match Event::from_json(&json) {
        Ok(again) => assert_eq!(
            event,
            again,
            "round trip changed the event; JSON written: {}",
            String::from_utf8_lossy(&json)
        ),
        Err(e) => panic!(
            "to_json wrote JSON from_json refuses ({e}): {}",
            String::from_utf8_lossy(&json)
        ),
    }
});
