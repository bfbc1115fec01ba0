//! C2SP `tlog-tiles`: the paths `tile/<L>/<N>[.p/<W>]` and
//! `tile/entries/<N>[.p/<W>]`, entry bundles, and proofs computed from tiles.
//!
//! A level-`L` tile holds the hashes of consecutive subtrees of `256^L`
//! leaves; 256 of them make a full tile. Level 0 holds leaf hashes.

use std::collections::HashMap;

use crate::merkle::{Hash, SubtreeHashes, root_of};

/// Hashes per full tile.
pub const WIDTH: u64 = 256;
/// Tree levels per tile level.
pub const HEIGHT: u32 = 8;
/// The largest entry an entry bundle can carry (a uint16 length).
pub const MAX_ENTRY: usize = u16::MAX as usize;

/// What a tile path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TileKind {
    Hashes { level: u8 },
    Entries,
}

/// A parsed tile path. `width` is `Some` for partial tiles only (1–255).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TilePath {
    pub kind: TileKind,
    pub index: u64,
    pub width: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tile path: {0}")]
pub struct TilePathError(&'static str);

/// `1234067` → `x001/x234/067`.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

impl TilePath {
    /// Parses the part of a path after `tile/`, accepting only the spec's
    /// canonical form (no leading zeroes, no superfluous `x000` groups).
    pub fn parse(path: &str) -> Result<TilePath, TilePathError> {
        if path.len() > 64 {
            return Err(TilePathError("too long"));
        }
        let (head, rest) = path
            .split_once('/')
            .ok_or(TilePathError("expected <L>/<N> or entries/<N>"))?;
        let kind = if head == "entries" {
            TileKind::Entries
        } else {
            let canonical = !head.is_empty()
                && head.bytes().all(|b| b.is_ascii_digit())
                && (head == "0" || !head.starts_with('0'));
            let level: u8 = head
                .parse()
                .ok()
                .filter(|l| canonical && *l <= 63)
                .ok_or(TilePathError("the level must be 0 to 63"))?;
            TileKind::Hashes { level }
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((index, w)) => {
                let canonical =
                    !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) && !w.starts_with('0');
                let w: u16 = w
                    .parse()
                    .ok()
                    .filter(|w| canonical && (1..=255).contains(w))
                    .ok_or(TilePathError("a partial width must be 1 to 255"))?;
                (index, Some(w))
            }
            None => (rest, None),
        };
        let groups: Vec<&str> = index_part.split('/').collect();
        if groups.len() > 7 {
            return Err(TilePathError("the index is too large"));
        }
        let mut index: u64 = 0;
        for (i, g) in groups.iter().enumerate() {
            let digits = if i + 1 < groups.len() {
                g.strip_prefix('x')
                    .ok_or(TilePathError("all but the last index element start with x"))?
            } else {
                g
            };
            if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(TilePathError("index elements are three digits"));
            }
            let d: u64 = digits
                .parse()
                .map_err(|_| TilePathError("index elements are three digits"))?;
            index = index
                .checked_mul(1000)
                .and_then(|v| v.checked_add(d))
                .ok_or(TilePathError("the index is too large"))?;
        }
        if encode_index(index) != index_part {
            return Err(TilePathError("the index is not in canonical form"));
        }
        Ok(TilePath { kind, index, width })
    }

    /// The path after `tile/`.
    pub fn to_path(&self) -> String {
        let head = match self.kind {
            TileKind::Hashes { level } => level.to_string(),
            TileKind::Entries => "entries".to_owned(),
        };
        let width = self.width.map(|w| format!(".p/{w}")).unwrap_or_default();
        format!("{head}/{}{width}", encode_index(self.index))
    }
}

/// How many hashes tile `index` at `level` has in a tree of `size` leaves
/// (0 when the tile does not exist yet, 256 when full).
pub fn tile_width(level: u8, index: u64, size: u64) -> u64 {
    let shift = u32::from(level) * HEIGHT;
    let available = if shift >= 64 { 0 } else { size >> shift };
    available
        .saturating_sub(index.saturating_mul(WIDTH))
        .min(WIDTH)
}

/// Entries laid end to end, each behind its big-endian uint16 length.
pub fn encode_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&e[..usize::from(len)]);
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed entry bundle")]
pub struct BundleError;

pub fn decode_bundle(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 2 {
            return Err(BundleError);
        }
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        let entry = bytes.get(2..2 + len).ok_or(BundleError)?;
        out.push(entry.to_vec());
        bytes = &bytes[2 + len..];
    }
    Ok(out)
}

/// Splits a hash tile's bytes into hashes.
pub fn hashes_of(tile: &[u8]) -> Option<Vec<Hash>> {
    if !tile.len().is_multiple_of(32) {
        return None;
    }
    Some(
        tile.chunks_exact(32)
            .filter_map(|c| c.try_into().ok())
            .collect(),
    )
}

/// Subtree hashes read from the tiles of a tree of `size` leaves, fetched by
/// `fetch(level, index, width)` (from storage or over HTTP) and cached.
pub struct TileHashes<F> {
    size: u64,
    fetch: F,
    cache: HashMap<(u8, u64), Vec<Hash>>,
}

impl<F, E> TileHashes<F>
where
    F: FnMut(u8, u64, u64) -> Result<Vec<Hash>, E>,
{
    pub fn new(size: u64, fetch: F) -> Self {
        TileHashes {
            size,
            fetch,
            cache: HashMap::new(),
        }
    }

    fn tile(&mut self, level: u8, index: u64) -> Result<&Vec<Hash>, E> {
        let width = tile_width(level, index, self.size);
        if !self.cache.contains_key(&(level, index)) {
            let hashes = (self.fetch)(level, index, width)?;
            self.cache.insert((level, index), hashes);
        }
        Ok(&self.cache[&(level, index)])
    }
}

/// A tile's contents were missing or the wrong size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError<E> {
    #[error("tile {level}/{index} has {got} hashes where {want} were needed")]
    Short {
        level: u8,
        index: u64,
        got: usize,
        want: usize,
    },
    #[error(transparent)]
    Fetch(E),
}

impl<F, E> SubtreeHashes for TileHashes<F>
where
    F: FnMut(u8, u64, u64) -> Result<Vec<Hash>, E>,
{
    type Error = TileError<E>;

    fn subtree(&mut self, start: u64, height: u32) -> Result<Hash, Self::Error> {
        let level = (height / HEIGHT) as u8;
        let span = 1u64 << (height % HEIGHT);
        let first = start >> (u32::from(level) * HEIGHT);
        let (index, offset) = (first / WIDTH, (first % WIDTH) as usize);
        let hashes = self.tile(level, index).map_err(TileError::Fetch)?;
        let want = offset + span as usize;
        let got = hashes.len();
        if got < want {
            return Err(TileError::Short {
                level,
                index,
                got,
                want,
            });
        }
        Ok(root_of(&hashes[offset..want]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::{consistency_proof, inclusion_proof, leaf_hash, tree_root};
    use proptest::prelude::*;

    #[test]
    fn paths_per_the_spec() {
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(5), "005");
        for (path, want) in [
            (
                "0/x001/x234/067",
                TilePath {
                    kind: TileKind::Hashes { level: 0 },
                    index: 1234067,
                    width: None,
                },
            ),
            (
                "1/000.p/17",
                TilePath {
                    kind: TileKind::Hashes { level: 1 },
                    index: 0,
                    width: Some(17),
                },
            ),
            (
                "entries/x001/000",
                TilePath {
                    kind: TileKind::Entries,
                    index: 1000,
                    width: None,
                },
            ),
        ] {
            let parsed = TilePath::parse(path).unwrap();
            assert_eq!(parsed, want);
            assert_eq!(parsed.to_path(), path);
        }
        for bad in [
            "",
            "0",
            "0/",
            "00/000",
            "64/000",
            "0/0",
            "0/x000/001",
            "0/001.p/0",
            "0/001.p/256",
            "0/001.p/01",
            "0/1234",
            "0/x1/000",
            "0/001/",
            "a/000",
            "0/x999/x999/x999/x999/x999/x999/x999/999",
            "entries/000.p/",
            "0/../000",
            "-1/000",
        ] {
            assert!(TilePath::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn widths_per_the_spec() {
        // "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0 tile of
        // width 112, one full level 1 tile, one partial level 1 tile of width 17, and one partial level 2
        // tile of width 1" (c2sp.org/tlog-tiles).
        assert_eq!(tile_width(0, 272, 70_000), 256);
        assert_eq!(tile_width(0, 273, 70_000), 112);
        assert_eq!(tile_width(1, 0, 70_000), 256);
        assert_eq!(tile_width(1, 1, 70_000), 17);
        assert_eq!(tile_width(2, 0, 70_000), 1);
        assert_eq!(tile_width(2, 1, 70_000), 0);
    }

    #[test]
    fn bundles_round_trip() {
        let entries: Vec<&[u8]> = vec![b"", b"one", &[0u8; 300]];
        let bundle = encode_bundle(entries.iter().copied());
        assert_eq!(
            decode_bundle(&bundle).unwrap(),
            entries.iter().map(|e| e.to_vec()).collect::<Vec<_>>()
        );
        assert!(decode_bundle(&[0, 5, 1]).is_err());
        assert!(decode_bundle(&[0]).is_err());
    }

    /// Builds every tile of a tree from its leaves, as a log would store them.
    fn tiles(leaves: &[Hash]) -> HashMap<(u8, u64), Vec<Hash>> {
        let mut out = HashMap::new();
        let mut level_hashes = leaves.to_vec();
        let mut level = 0u8;
        while !level_hashes.is_empty() {
            for (i, chunk) in level_hashes.chunks(WIDTH as usize).enumerate() {
                out.insert((level, i as u64), chunk.to_vec());
            }
            level_hashes = level_hashes
                .chunks_exact(WIDTH as usize)
                .map(root_of)
                .collect();
            level += 1;
        }
        out
    }

    proptest! {
        // Each case hashes a whole tree twice; a few dozen cases cover one, two and three tile levels.
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn proofs_from_tiles_match_proofs_from_leaves(size in prop_oneof![1u64..600, 65_000u64..70_000], seed in any::<u64>()) {
            let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
            let stored = tiles(&leaves);
            let mut from_tiles = TileHashes::new(size, |l, i, w| -> Result<Vec<Hash>, ()> {
                stored.get(&(l, i)).map(|t| t[..w as usize].to_vec()).ok_or(())
            });
            let mut from_leaves: &[Hash] = &leaves;
            prop_assert_eq!(tree_root(&mut from_tiles, size).unwrap(), root_of(&leaves));
            let index = seed % size;
            prop_assert_eq!(inclusion_proof(&mut from_tiles, index, size).unwrap(), inclusion_proof(&mut from_leaves, index, size).unwrap());
            let first = seed % size + 1;
            prop_assert_eq!(consistency_proof(&mut from_tiles, first, size).unwrap(), consistency_proof(&mut from_leaves, first, size).unwrap());
        }

    }

    proptest! {
        #[test]
        fn parsing_never_panics(path in any::<String>()) {
            let _ = TilePath::parse(&path);
        }
    }
}
