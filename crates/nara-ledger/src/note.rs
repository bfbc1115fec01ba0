//! C2SP `signed-note` with Ed25519: a text ending in a newline, a blank line,
//! and signature lines `— <key name> base64(key ID || signature)`. Key IDs
//! are SHA-256(name || 0x0A || 0x01 || public key)[:4]; verifier keys are
//! published in the `vkey` format `<name>+<hex key ID>+base64(0x01 || key)`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

/// The signature type byte for Ed25519.
pub const ED25519: u8 = 0x01;
/// Notes above this size are refused before parsing.
pub const MAX_NOTE_BYTES: usize = 1 << 20;
/// The spec asks verifiers to accept at least 16 signatures; more are refused.
pub const MAX_SIGNATURES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("key names must be non-empty and contain no spaces, newlines or '+'")]
    BadKeyName,
    #[error("malformed key: {0}")]
    BadKey(&'static str),
    #[error("the note text must end with a newline")]
    TextWithoutNewline,
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("a signature by a trusted key does not verify")]
    BadSignature,
    #[error("the note carries no signature by a trusted key")]
    NoTrustedSignature,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

/// SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', ED25519])
        .chain_update(public)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A key that verifies notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key: VerifyingKey,
    id: u32,
}

impl Verifier {
    pub fn new(name: &str, key: VerifyingKey) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKeyName);
        }
        Ok(Verifier {
            name: name.to_owned(),
            id: key_id(name, key.as_bytes()),
            key,
        })
    }

    /// Parses `<name>+<hex key ID>+<base64(0x01 || key)>`.
    pub fn from_vkey(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim_end_matches('\n').splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected NAME+ID+KEY"));
        };
        let id = u32::from_str_radix(id, 16)
            .map_err(|_| NoteError::BadKey("the key ID is not hexadecimal"))?;
        let raw = B64
            .decode(key)
            .map_err(|_| NoteError::BadKey("the key is not base64"))?;
        let Some((&ED25519, public)) = raw.split_first() else {
            return Err(NoteError::BadKey("not an Ed25519 key (type 0x01)"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::BadKey("an Ed25519 key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::BadKey("not a valid Ed25519 point"))?;
        let verifier = Verifier::new(name, key)?;
        if verifier.id != id {
            return Err(NoteError::BadKey("the key ID does not match the key"));
        }
        Ok(verifier)
    }

    pub fn vkey(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }
}

/// A key that signs notes. Its `Debug` output never shows the private key.
pub struct Signer {
    name: String,
    key: SigningKey,
    id: u32,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer from a 32-byte Ed25519 seed (keep it secret).
    pub fn new(name: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::BadKeyName);
        }
        let key = SigningKey::from_bytes(seed);
        Ok(Signer {
            name: name.to_owned(),
            id: key_id(name, key.verifying_key().as_bytes()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`.
    pub fn from_skey(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(NoteError::BadKey("expected PRIVATE+KEY+…"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey("expected PRIVATE+KEY+NAME+ID+KEY"));
        };
        let raw = B64
            .decode(key)
            .map_err(|_| NoteError::BadKey("the key is not base64"))?;
        let Some((&ED25519, seed)) = raw.split_first() else {
            return Err(NoteError::BadKey("not an Ed25519 key (type 0x01)"));
        };
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| NoteError::BadKey("an Ed25519 seed is 32 bytes"))?;
        let signer = Signer::new(name, &seed)?;
        if format!("{:08x}", signer.id) != id.to_ascii_lowercase() {
            return Err(NoteError::BadKey("the key ID does not match the key"));
        }
        Ok(signer)
    }

    pub fn skey(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            B64.encode(raw)
        )
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            id: self.id,
        }
    }

    /// The signature line for `text` (which must end with a newline).
    pub fn signature_line(&self, text: &str) -> Result<String, NoteError> {
        if !text.ends_with('\n') {
            return Err(NoteError::TextWithoutNewline);
        }
        let signature = self.key.sign(text.as_bytes());
        let mut raw = self.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&signature.to_bytes());
        Ok(format!("— {} {}\n", self.name, B64.encode(raw)))
    }

    /// The signed note: the text, a blank line, this key's signature line.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        Ok(format!("{text}\n{}", self.signature_line(text)?))
    }
}

/// Verifies a signed note against trusted keys and returns its text. Unknown
/// keys' signatures are ignored; a bad signature by a trusted key rejects the
/// note; at least one trusted signature must verify.
pub fn open<'a>(note: &'a str, trusted: &[Verifier]) -> Result<&'a str, NoteError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(NoteError::Malformed("too large"));
    }
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(
            "control characters other than newline",
        ));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    if signatures.is_empty() || !signatures.ends_with('\n') {
        return Err(NoteError::Malformed(
            "signature lines must end with a newline",
        ));
    }
    let mut verified = false;
    for (i, line) in signatures.lines().enumerate() {
        if i >= MAX_SIGNATURES {
            return Err(NoteError::Malformed("too many signatures"));
        }
        let rest = line.strip_prefix("— ").ok_or(NoteError::Malformed(
            "a signature line must start with an em dash",
        ))?;
        let (name, sig) = rest.split_once(' ').ok_or(NoteError::Malformed(
            "a signature line needs a key name and a signature",
        ))?;
        let raw = B64
            .decode(sig)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if raw.len() < 5 {
            return Err(NoteError::Malformed("a signature is too short"));
        }
        let id = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let Some(key) = trusted.iter().find(|k| k.name == name && k.id == id) else {
            continue;
        };
        let signature = Signature::from_slice(&raw[4..]).map_err(|_| NoteError::BadSignature)?;
        key.key
            .verify(text.as_bytes(), &signature)
            .map_err(|_| NoteError::BadSignature)?;
        verified = true;
    }
    if verified {
        Ok(text)
    } else {
        Err(NoteError::NoTrustedSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer() -> Signer {
        Signer::new("nara.example/ledger", &[7u8; 32]).unwrap()
    }

    #[test]
    fn signs_and_opens() {
        let s = signer();
        let note = s.sign("nara.example/ledger\n3\nAAAA\n").unwrap();
        assert!(note.starts_with("nara.example/ledger\n3\nAAAA\n\n— nara.example/ledger "));
        assert_eq!(
            open(&note, &[s.verifier()]).unwrap(),
            "nara.example/ledger\n3\nAAAA\n"
        );
        let vkey = s.verifier().vkey();
        assert_eq!(Verifier::from_vkey(&vkey).unwrap(), s.verifier());
        let back = Signer::from_skey(&s.skey()).unwrap();
        assert_eq!(back.verifier(), s.verifier());
        assert!(!format!("{s:?}").contains(&s.skey()[20..]));
    }

    #[test]
    fn refuses_forgeries() {
        let s = signer();
        let note = s.sign("hello\n").unwrap();
        let other = Signer::new("nara.example/ledger", &[8u8; 32]).unwrap();
        assert_eq!(
            open(&note, &[other.verifier()]),
            Err(NoteError::NoTrustedSignature)
        );
        let tampered = note.replacen("hello", "hellp", 1);
        assert_eq!(
            open(&tampered, &[s.verifier()]),
            Err(NoteError::BadSignature)
        );
        assert!(open("hello\n", &[s.verifier()]).is_err());
        assert!(open(&note[..note.len() - 1], &[s.verifier()]).is_err());
        assert!(open(&note.replace('—', "-"), &[s.verifier()]).is_err());
        assert!(open(&note.replace("hello", "he\u{7}llo"), &[s.verifier()]).is_err());
        // A second signature by an unknown key is ignored.
        let cosigned = format!("{note}{}", other.signature_line("hello\n").unwrap());
        assert_eq!(open(&cosigned, &[s.verifier()]).unwrap(), "hello\n");
    }

    #[test]
    fn vkeys_must_agree_with_their_id() {
        let vkey = signer().verifier().vkey();
        let (name, rest) = vkey.split_once('+').unwrap();
        let (_, key) = rest.split_once('+').unwrap();
        assert!(Verifier::from_vkey(&format!("{name}+00000000+{key}")).is_err());
        assert!(Verifier::from_vkey("nonsense").is_err());
        assert!(Verifier::from_vkey(&format!("{name}+zz+{key}")).is_err());
    }

    proptest! {
        #[test]
        fn opening_never_panics(note in any::<String>()) {
            let _ = open(&note, &[signer().verifier()]);
            let _ = Verifier::from_vkey(&note);
            let _ = Signer::from_skey(&note);
        }
    }
}
