//! The ledger's entry format, version 1: canonical bytes describing one state
//! change — its kind, time, actor, subjects and the digest of the new state.
//! Entries carry identifiers and digests, never personal data in clear.
//! Documented in `docs/ledger.md`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

use crate::Hash;

pub const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    /// What happened, dotted lower-case ASCII, e.g. `catalogue.system.created`.
    pub kind: String,
    /// When, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Who: a role or account identifier, never a name.
    pub actor: String,
    /// What it is about: identifiers such as `system:42` or `agency:KR/GOV/MOIS`.
    pub subjects: Vec<String>,
    /// SHA-256 of the canonical JSON of the new state.
    #[serde(serialize_with = "as_base64")]
    pub digest: Hash,
}

fn as_base64<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&B64.encode(h))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ledger entry: {0}")]
pub struct EntryError(&'static str);

/// The SHA-256 digest of some state's bytes.
pub fn digest(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// A citizen named in a public entry: `citizen:` and the hex SHA-256 of
/// the domain label, the actor it stands for (`account:ID`) and a salt of
/// that entry's own. Equal actors give unrelated commitments in different
/// entries, so nobody can follow a citizen through the log; whoever holds
/// the salt (the citizen, an auditor) opens it by recomputing.
pub fn actor_commitment(actor: &str, salt: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"nara actor commitment v1\0");
    h.update(actor.as_bytes());
    h.update(b"\0");
    h.update(salt);
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("citizen:{hex}")
}

/// A kind is 1–64 bytes of `a-z`, `0-9`, `.` and `_`.
fn check_kind(kind: &[u8]) -> Result<(), EntryError> {
    let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'_';
    if kind.is_empty() || kind.len() > 64 || !kind.iter().all(allowed) {
        return Err(EntryError(
            "the kind must be 1 to 64 of a-z, 0-9, '.' and '_'",
        ));
    }
    Ok(())
}

impl Entry {
    /// The canonical bytes: version, then each field length-prefixed.
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        let mut out = vec![VERSION];
        let kind = self.kind.as_bytes();
        check_kind(kind)?;
        out.push(kind.len() as u8);
        out.extend_from_slice(kind);
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        let actor = self.actor.as_bytes();
        let actor_len = u8::try_from(actor.len())
            .map_err(|_| EntryError("the actor is longer than 255 bytes"))?;
        out.push(actor_len);
        out.extend_from_slice(actor);
        let count =
            u8::try_from(self.subjects.len()).map_err(|_| EntryError("more than 255 subjects"))?;
        out.push(count);
        for s in &self.subjects {
            let len = u16::try_from(s.len())
                .map_err(|_| EntryError("a subject is longer than 65,535 bytes"))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&self.digest);
        if out.len() > crate::tile::MAX_ENTRY {
            return Err(EntryError(
                "the entry is larger than an entry bundle allows",
            ));
        }
        Ok(out)
    }

    /// Checks that `bytes` are a canonical version-1 entry, without building
    /// one (a store checks every appended entry; this keeps that cheap).
    pub fn check(bytes: &[u8]) -> Result<(), EntryError> {
        let mut r = Reader(bytes);
        if r.take(1)? != [VERSION] {
            return Err(EntryError("unknown version"));
        }
        let n = usize::from(r.take(1)?[0]);
        let kind = r.take(n)?;
        check_kind(kind)?;
        r.take(8)?;
        let n = usize::from(r.take(1)?[0]);
        std::str::from_utf8(r.take(n)?).map_err(|_| EntryError("text is not UTF-8"))?;
        let count = r.take(1)?[0];
        for _ in 0..count {
            let len = r.take(2)?;
            let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
            std::str::from_utf8(r.take(n)?).map_err(|_| EntryError("text is not UTF-8"))?;
        }
        r.take(32)?;
        if !r.0.is_empty() {
            return Err(EntryError("trailing bytes"));
        }
        if bytes.len() > crate::tile::MAX_ENTRY {
            return Err(EntryError(
                "the entry is larger than an entry bundle allows",
            ));
        }
        Ok(())
    }

    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
        let mut r = Reader(bytes);
        if r.take(1)? != [VERSION] {
            return Err(EntryError("unknown version"));
        }
        let n = usize::from(r.take(1)?[0]);
        let kind = r.text(n)?;
        let time_ms =
            i64::from_be_bytes(r.take(8)?.try_into().map_err(|_| EntryError("truncated"))?);
        let n = usize::from(r.take(1)?[0]);
        let actor = r.text(n)?;
        let count = r.take(1)?[0];
        let mut subjects = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = r.take(2)?;
            let n = usize::from(u16::from_be_bytes([len[0], len[1]]));
            subjects.push(r.text(n)?);
        }
        let digest: Hash = r
            .take(32)?
            .try_into()
            .map_err(|_| EntryError("truncated"))?;
        if !r.0.is_empty() {
            return Err(EntryError("trailing bytes"));
        }
        let entry = Entry {
            kind,
            time_ms,
            actor,
            subjects,
            digest,
        };
        // Only canonical encodings are entries.
        if entry.encode()? != bytes {
            return Err(EntryError("not canonical"));
        }
        Ok(entry)
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryError> {
        if self.0.len() < n {
            return Err(EntryError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn text(&mut self, n: usize) -> Result<String, EntryError> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| EntryError("text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let e = Entry {
            kind: "catalogue.system.created".into(),
            time_ms: 1_800_000_000_000,
            actor: "operator".into(),
            subjects: vec!["system:42".into(), "agency:KR/GOV/MOIS".into()],
            digest: digest(b"{}"),
        };
        let bytes = e.encode().unwrap();
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        assert!(Entry::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Entry::decode(&longer).is_err());
        assert!(
            Entry {
                kind: "Bad Kind".into(),
                ..e
            }
            .encode()
            .is_err()
        );
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            // The cheap check and the full decode agree on every input.
            prop_assert_eq!(Entry::check(&bytes).is_ok(), Entry::decode(&bytes).is_ok());
        }

        #[test]
        fn check_accepts_what_encode_makes(kind in "[a-z][a-z0-9._]{0,63}", actor in ".{0,60}", subjects in proptest::collection::vec(".{0,40}", 0..5), time_ms in any::<i64>()) {
            let e = Entry { kind, time_ms, actor, subjects, digest: [7; 32] };
            let bytes = e.encode().unwrap();
            prop_assert!(Entry::check(&bytes).is_ok());
            prop_assert_eq!(Entry::decode(&bytes).unwrap(), e);
        }
    }
}
