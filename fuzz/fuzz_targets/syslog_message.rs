//! Any datagram or TCP frame an agency system (or anyone who reaches the
//! port) sends as syslog: never a panic; an event, if any, keeps its kind
//! namespaced, its text free of control characters and its time bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let sender = std::net::IpAddr::from([10, 0, 0, 1]);
    if let Ok(e) = nara_server::secops::syslog::event(data, sender, NOW) {
        assert!(e.kind.starts_with("system."));
        assert!(!e.detail.chars().any(char::is_control));
        assert!(!e.username.chars().any(char::is_control));
        assert!(e.at <= NOW + 5 * 60_000);
    }
});
