//! Hostile signed requests (RFC 9421 headers, RFC 9530 digests, any body):
//! the checker must refuse them without panicking, and a random signature
//! must never verify. Then the signing rules as properties: a meaningful
//! header added to a signed request is refused, and a rewritten `Signature`
//! header keeps the same replay key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nara_server::identity::machine::{SignedRequest, Signatures};
use nara_store::identity::MachineClient;

fuzz_target!(|data: &[u8]| {
    signing_rules(data);
    // Split the input into the three header values and the body.
    let mut parts = data.splitn(4, |b| *b == 0);
    let (Some(input), Some(signature), Some(digest)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let body = parts.next().unwrap_or(&[]);
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in [("signature-input", input), ("signature", signature), ("content-digest", digest)] {
        if let Ok(v) = axum::http::HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    }
    let method = axum::http::Method::POST;
    let req = SignedRequest {
        method: &method,
        target_uri: "http://127.0.0.1:8080/api/v1/machine/whoami?x=1".into(),
        headers: &headers,
        body,
    };
    let client = MachineClient {
        key_id: "KR/GOV/X/s/1".into(),
        agency_id: "KR/GOV/X".into(),
        subsystem: "s".into(),
        public_key: "A3gRMM5bUQ2Qb95ST9JAVKPYFx2fTnmFXA8aXSy7Mps".into(),
        created_at: 0,
        revoked_at: None,
    };
    if let Ok(sigs) = Signatures::parse(&headers) {
        if let Ok(ids) = sigs.key_ids() {
            for (label, _) in ids {
                assert!(sigs.check(&req, &label, &client, 1_800_000_000).is_err());
            }
        }
    }
});

const NAMES: &[&str] = &[
    "x-road-client", "x-road-id", "x-road-userid", "x-road-issue", "nara-subject",
    "nara-purpose", "nara-consent", "nara-legal-basis", "content-type", "accept", "x-other",
];

/// Fields from the input: one byte picks a name, the text up to the next 0 is its value.
fn signing_rules(data: &[u8]) {
    let Some((&rewrite, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let mut fields: Vec<(&str, &str)> = text
        .split('\0')
        .filter_map(|part| {
            let b = *part.as_bytes().first()?;
            Some((NAMES[b as usize % NAMES.len()], part.get(1..)?))
        })
        .collect();
    let unsigned = if rewrite & 0x10 != 0 { fields.pop() } else { None };
    if let Err(e) = nara_server::identity::machine::check_signing_rules(&fields, unsigned, rewrite) {
        panic!("{e}");
    }
}
