//! Everything a person types into sign-up and sign-in, and every redirect
//! URI an agency registers: parsers never panic, and normalisation is stable.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nara_core::identity::{check_new_password, normalize_national_id, normalize_username};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = normalize_username(s) {
        assert_eq!(normalize_username(&n).as_deref(), Ok(n.as_str()));
        assert!(n.is_ascii() && n.len() <= 64);
    }
    if let Ok(d) = normalize_national_id(s) {
        assert_eq!(d.len(), 13);
    }
    let _ = check_new_password(s, "minji");
    let _ = nara_server::identity::oidc::valid_redirect_uri(s);
    let _ = nara_server::identity::machine::decode_key(s);
});
