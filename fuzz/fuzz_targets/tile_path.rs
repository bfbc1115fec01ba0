//! Fuzzes the C2SP tlog-tiles path parser: never a panic, and only canonical
//! paths parse (a parsed path prints back to exactly its input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nara_ledger::tile::{TilePath, decode_bundle, encode_bundle};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(path) = TilePath::parse(text) {
            assert_eq!(path.to_path(), text);
        }
    }
    if let Ok(entries) = decode_bundle(data) {
        assert_eq!(encode_bundle(entries.iter().map(Vec::as_slice)), data);
    }
});
