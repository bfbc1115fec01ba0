//! Fuzzes the signed-note and checkpoint parsers: never a panic, and a note
//! that opens with the trusted key must carry a valid signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nara_ledger::note::{self, Signer, Verifier};
use nara_ledger::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let signer = Signer::new("fuzz.example/ledger", &[1; 32]).unwrap();
    let trusted = [signer.verifier()];
    if let Ok(body) = note::open(text, &trusted) {
        // Only a genuinely signed body opens: Ed25519 is deterministic, so the
        // trusted key's own signature line for that body is in the note.
        assert!(text.starts_with(body));
        assert!(text.contains(&signer.signature_line(body).unwrap()));
    }
    if let Ok(cp) = Checkpoint::parse(text) {
        assert_eq!(Checkpoint::parse(&cp.body()).unwrap(), cp);
    }
    let _ = Verifier::from_vkey(text);
    let _ = Signer::from_skey(text);
    // The signed form of any checkpoint-shaped text opens again.
    if text.ends_with('\n') && !text.contains("\n\n") && !text.chars().any(|c| c.is_control() && c != '\n') {
        let signed = signer.sign(text).unwrap();
        assert_eq!(note::open(&signed, &trusted).unwrap(), text);
    }
});
