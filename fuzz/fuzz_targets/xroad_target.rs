//! Whatever arrives at `/r1/…`: the target parser, the client identifier
//! and the query never panic, and what they accept is what the gateway may
//! use: identifiers of the allowed characters, a path without traversal.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nara_core::exchange::{ClientId, Target, form_pairs, valid_part};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    };
    if let Ok(t) = Target::parse(path, query) {
        assert!(valid_part(&t.service.subsystem) && valid_part(&t.service.code));
        assert!(t.path.is_empty() || t.path.starts_with('/'));
        assert!(!t.path.split('/').any(|seg| seg == ".." || seg == "."));
        assert!(!t.path.contains("//"));
        let _ = t.path_and_query();
    }
    if let Ok(c) = ClientId::parse(s) {
        assert_eq!(ClientId::parse(&c.to_string()).ok(), Some(c));
    }
    let _ = form_pairs(s);
});
