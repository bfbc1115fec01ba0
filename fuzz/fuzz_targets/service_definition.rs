//! Any file given to `nara service check` or published: the checker never
//! panics, and what it accepts has a start state and an end.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nara_core::service_def::{END_STATES, START, check, parse_expr};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_expr(s);
    if let Ok(def) = check(s) {
        let states: Vec<&str> = def.workflow.states.iter().map(|s| s.get_ref().as_str()).collect();
        assert!(states.contains(&START));
        assert!(states.iter().any(|s| END_STATES.contains(s)));
    }
});
