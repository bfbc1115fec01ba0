//! Any rule file an analyst loads: bad YAML, unknown modifiers, absurd
//! regular expressions — refused with a reason or loaded, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = nara_server::secops::detection::Detector::new(&[("fuzzed.yml", text)]);
});
