//! What a file is, judged by its content, never by its name or the type a
//! client claims: the media type from the first bytes, and an image's
//! dimensions from its header (nothing decoded). Citizens' uploads and
//! `/verify`'s photographs both ask here. Files kept by content address
//! (citizens' uploads, images held for an official's review) are stored
//! here too.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The media type the content shows, from its first bytes.
pub fn sniff(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"%PDF-") {
        "application/pdf"
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        "application/zip"
    } else if bytes.starts_with(&[0x1F, 0x8B]) {
        "application/gzip"
    } else if bytes.starts_with(b"MZ") || bytes.starts_with(b"\x7FELF") {
        "application/x-executable"
    } else {
        "application/octet-stream"
    }
}

/// (width, height) of a PNG, from its IHDR chunk.
pub fn png_size(b: &[u8]) -> Option<(u64, u64)> {
    if b.len() < 24 || &b[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(b[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(b[20..24].try_into().ok()?);
    Some((u64::from(w), u64::from(h)))
}

/// (width, height) of a JPEG, from its first start-of-frame marker.
pub fn jpeg_size(b: &[u8]) -> Option<(u64, u64)> {
    let mut i = 2;
    while i + 9 < b.len() {
        if b[i] != 0xFF {
            return None;
        }
        let marker = b[i + 1];
        if marker == 0xFF {
            i += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([b[i + 2], b[i + 3]]));
        // SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let h = u16::from_be_bytes([b[i + 5], b[i + 6]]);
            let w = u16::from_be_bytes([b[i + 7], b[i + 8]]);
            return Some((u64::from(w), u64::from(h)));
        }
        i += 2 + len;
    }
    None
}

/// Width and height as a PNG's or JPEG's header states them (nothing decoded).
pub fn image_dimensions(bytes: &[u8], media: &str) -> Option<(u64, u64)> {
    match media {
        "image/png" => png_size(bytes),
        "image/jpeg" => jpeg_size(bytes),
        _ => None,
    }
}

/// Where the file of content address `hash` (`sha256:` and 64 hexadecimal
/// digits) lives in `folder`; none for anything else, so no address can
/// name a path outside it.
pub fn path_in(folder: &Path, hash: &str) -> Option<PathBuf> {
    let hex = hash.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| folder.join(&hex[..2]).join(hex))
}

/// Stores the bytes in `folder` under their content address, once (written
/// to a temporary file and renamed, so a reader never sees half a file);
/// the address.
pub async fn store_in(folder: &Path, bytes: &[u8]) -> std::io::Result<String> {
    let hash = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
    let Some(path) = path_in(folder, &hash) else {
        return Err(std::io::Error::other("bad hash"));
    };
    if tokio::fs::try_exists(&path).await.unwrap_or(false) {
        // Stored again: newer than any sweep under way, which leaves it.
        let touched = std::fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        if touched.is_ok() {
            return Ok(hash);
        }
    }
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let tmp = path.with_extension(format!("tmp{}", rand::random::<u32>()));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(hash)
}
