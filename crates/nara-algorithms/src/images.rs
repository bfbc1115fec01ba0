//! Matching submitted images against hash lists an authority supplies, by
//! PDQ — Meta's open perceptual hash, computed by the `pdqhash` crate (bit
//! for bit Meta's reference) — so that known abuse material is found without
//! anyone looking at it: a match is the list entry and the Hamming distance,
//! and it waits for the reviewing official. No real abuse material is used
//! anywhere: the evaluation hashes ordinary generated pictures.
//!
//! Hash lists are text in the form authorities exchange PDQ hashes
//! (ThreatExchange, StopNCII): one 64-hex-digit hash a line, optionally
//! followed by a comma or whitespace and more fields (quality, an id);
//! `#` comments and blank lines are skipped. Matching compares against every
//! hash (four XOR-and-popcounts each), which at a million hashes is a few
//! milliseconds.
//!
//! A copy turned or mirrored has a different PDQ hash, so an image nara
//! hashes is hashed in all eight orientations (PDQ's "dihedral" hashes: as
//! given, turned 90°, 180° and 270°, and each of those mirrored) and matched
//! in any of them, in one pass over the list. A system that sends a hash
//! alone may send the seven others too (`pdq_turned`).

use std::sync::{LazyLock, RwLock};

use nara_core::algorithms::{Factor, OutOfRange, Output};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Evaluation, Model, round, sha256_hex};

pub const CODE: &str = "image-hash-matching";
const VERSION: &str = "1.1.0";
/// Meta's recommended match threshold for PDQ (Hamming distance out of 256).
pub const MATCH_DISTANCE: u32 = 31;
/// Below this quality a PDQ hash says too little to match on (Meta's advice).
pub const MIN_QUALITY: u8 = 50;
/// The largest image hashed (pixels): a bound before decoding.
pub const MAX_PIXELS: u64 = 40_000_000;

/// A PDQ hash: 256 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pdq(pub [u64; 4]);

impl Pdq {
    pub fn from_bytes(bytes: &[u8; 32]) -> Pdq {
        let mut words = [0u64; 4];
        for (i, w) in words.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *w = u64::from_be_bytes(b);
        }
        Pdq(words)
    }

    /// From 64 hexadecimal digits (either case).
    pub fn parse(hex_digits: &str) -> Option<Pdq> {
        let bytes = hex::decode(hex_digits).ok()?;
        let bytes: [u8; 32] = bytes.try_into().ok()?;
        Some(Pdq::from_bytes(&bytes))
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|w| format!("{w:016x}")).collect()
    }

    pub fn distance(&self, other: &Pdq) -> u32 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }
}

/// Why an image could not be hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRefused {
    /// Not a PNG or JPEG, or does not decode.
    Unreadable(String),
    /// More pixels than [`MAX_PIXELS`], judged from the header.
    TooLarge(u64),
    /// Smaller than PDQ can hash.
    TooSmall,
}

impl std::fmt::Display for ImageRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageRefused::Unreadable(why) => write!(f, "not a readable PNG or JPEG image: {why}"),
            ImageRefused::TooLarge(p) => {
                write!(
                    f,
                    "{p} pixels; images of up to {MAX_PIXELS} pixels are hashed"
                )
            }
            ImageRefused::TooSmall => f.write_str("too small to hash (PDQ needs at least 5×5)"),
        }
    }
}

/// An image's PDQ hash and quality (0–100), from its encoded bytes (PNG or
/// JPEG). The size is read from the header and bounded before decoding.
pub fn hash_image(bytes: &[u8]) -> Result<(Pdq, u8), ImageRefused> {
    let (width, height, rgb) = decoded(bytes)?;
    hash_rgb(width, height, rgb)
}

/// An image's PDQ hashes in its eight [`ORIENTATIONS`] (the first is
/// [`hash_image`]'s) and its quality, from its encoded bytes.
pub fn hash_image_turned(bytes: &[u8]) -> Result<([Pdq; 8], u8), ImageRefused> {
    let (width, height, rgb) = decoded(bytes)?;
    hash_rgb_turned(width, height, rgb)
}

/// An encoded PNG or JPEG as RGB pixels, its size bounded from the header
/// before decoding.
fn decoded(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), ImageRefused> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageRefused::Unreadable(e.to_string()))?;
    if !matches!(
        reader.format(),
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)
    ) {
        return Err(ImageRefused::Unreadable(
            "only PNG and JPEG are hashed".into(),
        ));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| ImageRefused::Unreadable(e.to_string()))?;
    let pixels = u64::from(w) * u64::from(h);
    if pixels > MAX_PIXELS {
        return Err(ImageRefused::TooLarge(pixels));
    }
    let decoded = image::load_from_memory(bytes)
        .map_err(|e| ImageRefused::Unreadable(e.to_string()))?
        .to_rgb8();
    Ok((decoded.width(), decoded.height(), decoded.into_raw()))
}

/// The PDQ hash of raw RGB pixels.
pub fn hash_rgb(width: u32, height: u32, rgb: Vec<u8>) -> Result<(Pdq, u8), ImageRefused> {
    // pdqhash speaks an older `image`: hand it the pixels, not a decoder.
    let buffer = pdqhash::image::RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| ImageRefused::Unreadable("pixel buffer of the wrong size".into()))?;
    let (bytes, quality) = pdqhash::generate_pdq(&pdqhash::image::DynamicImage::ImageRgb8(buffer))
        .ok_or(ImageRefused::TooSmall)?;
    Ok((
        Pdq::from_bytes(&bytes),
        (quality * 100.0).round().clamp(0.0, 100.0) as u8,
    ))
}

/// The eight orientations of an image's hashes, in order: (mirrored left
/// to right first, then turned clockwise by degrees).
pub const ORIENTATIONS: [(bool, u16); 8] = [
    (false, 0),
    (false, 90),
    (false, 180),
    (false, 270),
    (true, 0),
    (true, 90),
    (true, 180),
    (true, 270),
];

/// The PDQ hashes of raw RGB pixels in the eight [`ORIENTATIONS`], and the
/// quality. Each is PDQ of the picture as `pdqhash::generate_pdq` sees it
/// (at most 512 pixels a side) turned: the first is exactly [`hash_rgb`]'s,
/// and shrinking once, before turning, keeps the seven others cheap.
pub fn hash_rgb_turned(
    width: u32,
    height: u32,
    rgb: Vec<u8>,
) -> Result<([Pdq; 8], u8), ImageRefused> {
    use pdqhash::image::DynamicImage;
    const SIDE: u32 = 512;
    if width < 5 || height < 5 {
        return Err(ImageRefused::TooSmall);
    }
    let buffer = pdqhash::image::RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| ImageRefused::Unreadable("pixel buffer of the wrong size".into()))?;
    let mut base = DynamicImage::ImageRgb8(buffer);
    if width > SIDE || height > SIDE {
        base = base.thumbnail_exact(SIDE.min(width), SIDE.min(height));
    }
    let hash = |(mirrored, degrees): (bool, u16)| {
        // Copied only to turn or mirror it: the picture as given is hashed
        // where it lies.
        let mirror = mirrored.then(|| base.fliph());
        let seen = mirror.as_ref().unwrap_or(&base);
        let turned = match degrees {
            90 => Some(seen.rotate90()),
            180 => Some(seen.rotate180()),
            270 => Some(seen.rotate270()),
            _ => None,
        };
        let (bytes, quality) = pdqhash::generate_pdq_full_size(turned.as_ref().unwrap_or(seen));
        (Pdq::from_bytes(&bytes), quality)
    };
    // Eight hashes of the same picture, half on another core: the answer
    // waits for them (`benches/algorithms.rs`).
    let (first, second) = std::thread::scope(|scope| {
        let other = scope.spawn(|| {
            ORIENTATIONS[4..]
                .iter()
                .map(|o| hash(*o))
                .collect::<Vec<_>>()
        });
        let first: Vec<_> = ORIENTATIONS[..4].iter().map(|o| hash(*o)).collect();
        (first, other.join())
    });
    let second = second.map_err(|_| ImageRefused::Unreadable("hashing failed".into()))?;
    let mut hashes = [Pdq([0; 4]); 8];
    for (slot, (hash, _)) in hashes.iter_mut().zip(first.iter().chain(&second)) {
        *slot = *hash;
    }
    let quality = first[0].1;
    Ok((hashes, (quality * 100.0).round().clamp(0.0, 100.0) as u8))
}

/// A hash list as an authority supplies it.
#[derive(Debug, Clone)]
pub struct HashList {
    pub name: String,
    /// SHA-256 of the file as supplied: which list a match was made against.
    pub sha256: String,
    pub hashes: Vec<Pdq>,
}

/// A line of a hash list that is not a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError {
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for ListError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

/// Parses a hash list; the first bad line is named. A header line (the first
/// line after any comments that starts with a letter beyond `f`, e.g.
/// `pdq,quality`) is skipped.
pub fn parse_list(name: &str, text: &str) -> Result<HashList, ListError> {
    let mut hashes = Vec::new();
    let mut first = true;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let header_allowed = std::mem::replace(&mut first, false);
        let field = line.split([',', '\t', ' ', ';']).next().unwrap_or("");
        if header_allowed
            && field
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() && !c.is_ascii_hexdigit())
        {
            continue;
        }
        let hash = Pdq::parse(field).ok_or_else(|| ListError {
            line: n + 1,
            why: format!(
                "{:?} is not a PDQ hash (64 hexadecimal digits)",
                field.chars().take(80).collect::<String>()
            ),
        })?;
        hashes.push(hash);
    }
    Ok(HashList {
        name: name.to_owned(),
        sha256: sha256_hex(text.as_bytes()),
        hashes,
    })
}

/// The nearest hash of a list: its index and distance.
pub fn nearest(list: &[Pdq], hash: &Pdq) -> Option<(usize, u32)> {
    nearest_any(list, std::slice::from_ref(hash)).map(|(i, d, _)| (i, d))
}

/// The hash of a list nearest to any of `hashes` (one image's orientations),
/// in one pass over the list: its index, the distance and which of
/// `hashes` came nearest. A long list is split between two cores.
pub fn nearest_any(list: &[Pdq], hashes: &[Pdq]) -> Option<(usize, u32, usize)> {
    const SPLIT: usize = 100_000;
    if list.len() < SPLIT || hashes.len() < 2 {
        return nearest_in(list, hashes);
    }
    let (head, tail) = list.split_at(list.len() / 2);
    let (a, b) = std::thread::scope(|scope| {
        let b = scope.spawn(|| nearest_in(tail, hashes));
        (nearest_in(head, hashes), b.join().ok().flatten())
    });
    let b = b.map(|(i, d, o)| (i + head.len(), d, o));
    // The earlier hash wins a tie, as in one pass.
    match (a, b) {
        (Some(a), Some(b)) if b.1 < a.1 => Some(b),
        (None, b) => b,
        (a, _) => a,
    }
}

fn nearest_in(list: &[Pdq], hashes: &[Pdq]) -> Option<(usize, u32, usize)> {
    let mut best: Option<(usize, u32, usize)> = None;
    let mut bound = u32::MAX;
    for (i, h) in list.iter().enumerate() {
        for (o, q) in hashes.iter().enumerate() {
            let d = h.distance(q);
            if d < bound {
                bound = d;
                best = Some((i, d, o));
                if d == 0 {
                    return best;
                }
            }
        }
    }
    best
}

/// The matcher with the lists this node loaded.
pub struct Matcher {
    lists: RwLock<Vec<HashList>>,
}

static MODEL: LazyLock<Matcher> = LazyLock::new(|| Matcher {
    lists: RwLock::new(Vec::new()),
});

pub fn model() -> &'static dyn Model {
    &*MODEL
}

/// Replaces the loaded hash lists (the node reads them at start).
pub fn load_lists(lists: Vec<HashList>) {
    if let Ok(mut l) = MODEL.lists.write() {
        *l = lists;
    }
}

/// The loaded lists: names, digests and sizes.
pub fn loaded() -> Vec<(String, String, usize)> {
    MODEL
        .lists
        .read()
        .map(|l| {
            l.iter()
                .map(|h| (h.name.clone(), h.sha256.clone(), h.hashes.len()))
                .collect()
        })
        .unwrap_or_default()
}

impl Model for Matcher {
    fn code(&self) -> &'static str {
        CODE
    }
    fn version(&self) -> &'static str {
        VERSION
    }
    fn artefact_sha256(&self) -> String {
        sha256_hex(
            format!("pdqhash 0.1.1 (Meta PDQ), eight orientations, Hamming distance <= {MATCH_DISTANCE}, quality >= {MIN_QUALITY}")
                .as_bytes(),
        )
    }
    fn outcomes(&self) -> &'static [&'static str] {
        &["match_found", "no_match", "not_a_match"]
    }
    fn example(&self) -> serde_json::Value {
        serde_json::json!({"pdq": "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22", "quality": 100})
    }
    fn slow(&self) -> bool {
        true
    }
    fn decide(&self, input: &serde_json::Value) -> Result<Output, OutOfRange> {
        let hash = input
            .get("pdq")
            .and_then(serde_json::Value::as_str)
            .and_then(Pdq::parse)
            .ok_or_else(|| OutOfRange::new("pdq", "must be a PDQ hash: 64 hexadecimal digits"))?;
        let quality = input
            .get("quality")
            .and_then(serde_json::Value::as_u64)
            .filter(|q| *q <= 100)
            .ok_or_else(|| OutOfRange::new("quality", "must be the hash's quality, 0 to 100"))?;
        let turned = match input.get("pdq_turned") {
            None => Vec::new(),
            Some(v) => v
                .as_array()
                .filter(|a| a.len() == ORIENTATIONS.len() - 1)
                .and_then(|a| {
                    a.iter()
                        .map(|h| h.as_str().and_then(Pdq::parse))
                        .collect::<Option<Vec<Pdq>>>()
                })
                .ok_or_else(|| {
                    OutOfRange::new(
                        "pdq_turned",
                        "must be seven PDQ hashes (64 hexadecimal digits each): the image turned 90°, 180° and 270°, then mirrored and turned 0°, 90°, 180° and 270°",
                    )
                })?,
        };
        let hashes: Vec<Pdq> = std::iter::once(hash).chain(turned).collect();
        if quality < u64::from(MIN_QUALITY) {
            return Err(OutOfRange::new(
                "quality",
                format!(
                    "{quality} is below {MIN_QUALITY}: the image is too featureless to match on"
                ),
            ));
        }
        let lists = self
            .lists
            .read()
            .map_err(|_| OutOfRange::new("lists", "the hash lists are unavailable"))?;
        if lists.iter().all(|l| l.hashes.is_empty()) {
            return Err(OutOfRange::new(
                "lists",
                "no hash list is loaded on this node",
            ));
        }
        let best = lists
            .iter()
            .filter_map(|l| nearest_any(&l.hashes, &hashes).map(|(i, d, o)| (l, i, d, o)))
            .min_by_key(|(_, _, d, _)| *d);
        let Some((list, index, distance, orientation)) = best else {
            return Err(OutOfRange::new(
                "lists",
                "no hash list is loaded on this node",
            ));
        };
        let flagged = distance <= MATCH_DISTANCE;
        let factor = if flagged {
            Factor {
                key: "image_match".into(),
                args: vec![
                    list.name.clone(),
                    (index + 1).to_string(),
                    distance.to_string(),
                ],
                weight: f64::from(distance),
            }
        } else {
            Factor {
                key: "image_no_match".into(),
                args: vec![
                    lists.len().to_string(),
                    lists
                        .iter()
                        .map(|l| l.hashes.len())
                        .sum::<usize>()
                        .to_string(),
                    distance.to_string(),
                ],
                weight: f64::from(distance),
            }
        };
        let mut factors = vec![factor];
        // How the submitted picture differs from the listed one, if at all:
        // its hash turned back by `degrees` matched, so it is the listed
        // image turned the rest of the way round; mirrored and turned, the
        // change undoes itself.
        if let Some((mirrored, degrees)) = ORIENTATIONS
            .get(orientation)
            .filter(|_| flagged && orientation > 0)
        {
            let (key, degrees) = if *mirrored {
                ("image_mirrored", *degrees)
            } else {
                ("image_turned", (360 - degrees) % 360)
            };
            factors.push(Factor {
                key: key.into(),
                args: vec![degrees.to_string()],
                weight: 0.0,
            });
        }
        factors.push(Factor {
            key: "image_list".into(),
            args: vec![list.name.clone(), list.sha256.chars().take(16).collect()],
            weight: 0.0,
        });
        Ok(Output {
            score: f64::from(distance),
            threshold: f64::from(MATCH_DISTANCE),
            outcome: if flagged { "match_found" } else { "no_match" }.into(),
            flagged,
            factors,
        })
    }
}

/// An ordinary generated picture (a stand-in: shapes on a gradient), RGB.
pub fn generated_picture(seed: u64, width: u32, height: u32) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (a, b): ([f32; 3], [f32; 3]) = (
        std::array::from_fn(|_| rng.random_range(0.0..255.0)),
        std::array::from_fn(|_| rng.random_range(0.0..255.0)),
    );
    let mut px = vec![0u8; (width * height * 3) as usize];
    for y in 0..height {
        for x in 0..width {
            let t = (x + y) as f32 / (width + height) as f32;
            let i = ((y * width + x) * 3) as usize;
            for c in 0..3 {
                px[i + c] = (a[c] * (1.0 - t) + b[c] * t) as u8;
            }
        }
    }
    for _ in 0..rng.random_range(6..14) {
        let color: [u8; 3] = std::array::from_fn(|_| rng.random());
        let (cx, cy) = (rng.random_range(0..width), rng.random_range(0..height));
        let r = rng.random_range(width / 16..width / 4 + 2);
        let circle = rng.random_bool(0.5);
        for y in cy.saturating_sub(r)..(cy + r).min(height) {
            for x in cx.saturating_sub(r)..(cx + r).min(width) {
                let (dx, dy) = (x.abs_diff(cx), y.abs_diff(cy));
                if !circle || dx * dx + dy * dy <= r * r {
                    let i = ((y * width + x) * 3) as usize;
                    px[i..i + 3].copy_from_slice(&color);
                }
            }
        }
    }
    px
}

/// Raw RGB pixels encoded as a JPEG (the evaluation's re-encoding).
pub fn jpeg(width: u32, height: u32, rgb: &[u8], quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    let _ = encoder.encode(rgb, width, height, image::ExtendedColorType::Rgb8);
    out
}

/// A generated picture changed one way (the evaluation's changes), hashed
/// in its eight orientations as nara hashes an image it is given.
fn transformed(kind: &str, width: u32, height: u32, rgb: &[u8]) -> Option<[Pdq; 8]> {
    let img = image::RgbImage::from_raw(width, height, rgb.to_vec())?;
    let hashed = |img: image::RgbImage| {
        hash_rgb_turned(img.width(), img.height(), img.into_raw())
            .ok()
            .map(|(hashes, _)| hashes)
    };
    match kind {
        "jpeg_q70" => hash_image_turned(&jpeg(width, height, rgb, 70))
            .ok()
            .map(|(hashes, _)| hashes),
        "resize_half" => hashed(image::imageops::resize(
            &img,
            width / 2,
            height / 2,
            image::imageops::FilterType::Triangle,
        )),
        "crop_1pct" | "crop_2pct" | "crop_5pct" => {
            let p = match kind {
                "crop_1pct" => 100,
                "crop_2pct" => 50,
                _ => 20,
            };
            let (dx, dy) = (width / p, height / p);
            hashed(
                image::imageops::crop_imm(&img, dx, dy, width - 2 * dx, height - 2 * dy).to_image(),
            )
        }
        "turn_90" => hashed(image::imageops::rotate90(&img)),
        "turn_180" => hashed(image::imageops::rotate180(&img)),
        "mirror" => hashed(image::imageops::flip_horizontal(&img)),
        "mirror_turn_jpeg" => {
            let changed = image::imageops::rotate270(&image::imageops::flip_horizontal(&img));
            hash_image_turned(&jpeg(
                changed.width(),
                changed.height(),
                changed.as_raw(),
                70,
            ))
            .ok()
            .map(|(hashes, _)| hashes)
        }
        _ => hashed(img),
    }
}

/// The changes the evaluation makes to each picture.
const CHANGES: [&str; 9] = [
    "jpeg_q70",
    "resize_half",
    "crop_1pct",
    "crop_2pct",
    "crop_5pct",
    "turn_90",
    "turn_180",
    "mirror",
    "mirror_turn_jpeg",
];

/// Hashes 120 generated pictures into a list (among 10,000 random hashes),
/// changes each — JPEG re-encoding at quality 70, halving, cropping 1%, 2%
/// and 5% a side, turning, mirroring — and reports how many still match at
/// distance ≤ 31 in any orientation (and, for a turned copy, with its hash
/// as given alone); and how many of 120 other pictures match anything in
/// any orientation (false matches).
pub fn evaluate() -> Evaluation {
    const PICTURES: u64 = 120;
    let (w, h) = (320, 240);
    let mut rng = ChaCha8Rng::seed_from_u64(0x00dc_0de5);
    let mut list: Vec<Pdq> = (0..10_000)
        .map(|_| Pdq(std::array::from_fn(|_| rng.random())))
        .collect();
    let originals: Vec<Vec<u8>> = (0..PICTURES).map(|s| generated_picture(s, w, h)).collect();
    for px in &originals {
        if let Ok((hash, _)) = hash_rgb(w, h, px.clone()) {
            list.push(hash);
        }
    }
    let matches =
        |hashes: &[Pdq]| nearest_any(&list, hashes).is_some_and(|(_, d, _)| d <= MATCH_DISTANCE);
    let rate = |n: usize| round(n as f64 / PICTURES as f64, 3);
    let mut figures = Vec::new();
    for kind in CHANGES {
        let hashed: Vec<[Pdq; 8]> = originals
            .iter()
            .filter_map(|px| transformed(kind, w, h, px))
            .collect();
        let matched = hashed.iter().filter(|hashes| matches(&hashes[..])).count();
        figures.push((Some(kind.to_owned()), "match_rate".into(), rate(matched)));
        if kind == "turn_90" {
            let alone = hashed.iter().filter(|hashes| matches(&hashes[..1])).count();
            figures.push((
                Some(kind.to_owned()),
                "match_rate_as_given_only".into(),
                rate(alone),
            ));
        }
    }
    let false_matches = (PICTURES..2 * PICTURES)
        .filter(|s| {
            let px = generated_picture(*s, w, h);
            hash_rgb_turned(w, h, px).is_ok_and(|(hashes, _)| matches(&hashes))
        })
        .count();
    figures.push((None, "false_match_rate".into(), rate(false_matches)));
    Evaluation {
        model: CODE,
        version: VERSION,
        setting: "120 generated pictures (shapes on gradients, 320×240) hashed into a list among 10,000 random hashes, each changed nine ways (re-encoded, halved, cropped, turned, mirrored) and matched in its eight orientations; 120 other pictures for false matches".into(),
        figures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_survive_re_encoding_and_lists_parse() {
        let px = generated_picture(1, 320, 240);
        let (a, quality) = hash_rgb(320, 240, px.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert!(quality >= MIN_QUALITY, "{quality}");
        let (b, _) = hash_image(&jpeg(320, 240, &px, 70)).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.distance(&b) <= MATCH_DISTANCE, "{}", a.distance(&b));
        assert_eq!(Pdq::parse(&a.hex()), Some(a));
        let text = format!(
            "# a comment\npdq,quality\n{},{quality}\n\n{}\tid-2\n",
            a.hex(),
            b.hex()
        );
        let list = parse_list("test", &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.hashes, vec![a, b]);
        let bad = parse_list("bad", &format!("{}\nnot-a-hash\n", a.hex()));
        assert_eq!(bad.err().map(|e| e.line), Some(2));
    }

    #[test]
    fn a_turned_or_mirrored_copy_matches_in_one_of_its_orientations() {
        let (w, h) = (320, 240);
        let px = generated_picture(7, w, h);
        let (hashes, quality) = hash_rgb_turned(w, h, px.clone()).unwrap_or_else(|e| panic!("{e}"));
        let (alone, q) = hash_rgb(w, h, px.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (hashes[0], quality),
            (alone, q),
            "as given, the hash is hash_rgb's"
        );
        let original = image::RgbImage::from_raw(w, h, px).unwrap_or_else(|| panic!("pixels"));
        let list = [Pdq([1, 2, 3, 4]), alone];
        for (changed, orientation) in [
            (image::imageops::rotate90(&original), 3),
            (image::imageops::rotate180(&original), 2),
            (image::imageops::flip_horizontal(&original), 4),
        ] {
            let (turned, _) =
                hash_rgb_turned(changed.width(), changed.height(), changed.into_raw())
                    .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                turned[0].distance(&alone) > MATCH_DISTANCE,
                "the turned copy's own hash differs"
            );
            let (index, distance, nearest_orientation) =
                nearest_any(&list, &turned).unwrap_or_else(|| panic!("a list"));
            assert_eq!(index, 1);
            assert!(distance <= MATCH_DISTANCE, "{distance}");
            // Turning back the other way (or mirroring again) finds it.
            assert_eq!(nearest_orientation, orientation);
        }
    }

    #[test]
    fn a_systems_orientations_are_seven_hashes_or_refused() {
        let lists = vec![HashList {
            name: "test".into(),
            sha256: "0".repeat(64),
            hashes: vec![Pdq([u64::MAX, 0, u64::MAX, 0])],
        }];
        load_lists(lists);
        let zero = "0".repeat(64);
        let seven: Vec<String> = (0..7)
            .map(|i| {
                if i == 3 {
                    Pdq([u64::MAX, 0, u64::MAX, 0]).hex()
                } else {
                    zero.clone()
                }
            })
            .collect();
        let out = model()
            .decide(&serde_json::json!({"pdq": zero, "quality": 90, "pdq_turned": seven}))
            .unwrap_or_else(|e| panic!("{}", e.detail));
        assert!(out.flagged);
        assert!(
            out.factors
                .iter()
                .any(|f| f.key == "image_mirrored" && f.args == ["0"]),
            "{:?}",
            out.factors
        );
        for bad in [
            serde_json::json!(["00"]),
            serde_json::json!(seven[..6]),
            serde_json::json!("x"),
        ] {
            let refused =
                model().decide(&serde_json::json!({"pdq": zero, "quality": 90, "pdq_turned": bad}));
            assert_eq!(
                refused.err().map(|e| e.field),
                Some("pdq_turned".to_owned())
            );
        }
        load_lists(Vec::new());
    }

    #[test]
    fn refuses_what_it_cannot_hash() {
        assert!(matches!(
            hash_image(b"GIF89a...."),
            Err(ImageRefused::Unreadable(_))
        ));
        assert!(
            model()
                .decide(&serde_json::json!({"pdq": "abc", "quality": 90}))
                .is_err()
        );
        let low = model().decide(&serde_json::json!({"pdq": "0".repeat(64), "quality": 10}));
        assert_eq!(low.err().map(|e| e.field), Some("quality".to_owned()));
    }
}
