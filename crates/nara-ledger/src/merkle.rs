//! RFC 9162 (RFC 6962) Merkle trees over SHA-256: leaf and node hashing with
//! the 0x00 / 0x01 domain-separation prefixes, tree heads, and inclusion and
//! consistency proofs, generated from any source of subtree hashes and
//! verified with the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The hash of a leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0u8])
        .chain_update(data)
        .finalize()
        .into()
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([1u8])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// The Merkle tree hash of a list of leaf hashes, by RFC 9162's recursive
/// definition. Reference code: O(n), for tests and small trees.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The roots of a growing log, leaf by leaf: the perfect subtrees of the
/// leaves so far (RFC 9162's decomposition of the size into powers of two),
/// so the root at any size costs O(log n) and a whole log is read once —
/// what verifying a restored log against every checkpoint needs.
#[derive(Debug, Clone, Default)]
pub struct RootAccumulator {
    /// (height, hash) of each perfect subtree, largest (leftmost) first.
    subtrees: Vec<(u32, Hash)>,
    size: u64,
}

impl RootAccumulator {
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = (0u32, leaf);
        while let Some(&(height, left)) = self.subtrees.last() {
            if height != carry.0 {
                break;
            }
            self.subtrees.pop();
            carry = (height + 1, node_hash(&left, &carry.1));
        }
        self.subtrees.push(carry);
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree hash of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(&(_, mut acc)) = subtrees.next() else {
            return empty_root();
        };
        for (_, left) in subtrees {
            acc = node_hash(left, &acc);
        }
        acc
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not in a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("sizes {first} and {second} are not a valid pair (first must not exceed second)")]
    BadSizes { first: u64, second: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
}

/// Hashes of complete subtrees, from wherever they are kept (stored tiles,
/// tiles fetched over HTTP, a list in memory).
pub trait SubtreeHashes {
    type Error;
    /// The hash of the perfect subtree of `2^height` leaves starting at
    /// `start` (a multiple of `2^height`).
    fn subtree(&mut self, start: u64, height: u32) -> Result<Hash, Self::Error>;
}

/// Leaf hashes held in memory are a source of subtree hashes.
impl SubtreeHashes for &[Hash] {
    type Error = std::convert::Infallible;
    fn subtree(&mut self, start: u64, height: u32) -> Result<Hash, Self::Error> {
        let (a, b) = (start as usize, (start + (1 << height)) as usize);
        Ok(root_of(&self[a..b]))
    }
}

/// MTH(D[start : end]) for a range that RFC 9162's recursions produce (its
/// start is a multiple of the largest power of two not above its length).
pub fn range_hash<S: SubtreeHashes + ?Sized>(
    src: &mut S,
    start: u64,
    end: u64,
) -> Result<Hash, S::Error> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return src.subtree(start, n.trailing_zeros());
    }
    let k = split_point(n);
    let left = range_hash(src, start, start + k)?;
    let right = range_hash(src, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root hash of the tree of the first `size` leaves.
pub fn tree_root<S: SubtreeHashes + ?Sized>(src: &mut S, size: u64) -> Result<Hash, S::Error> {
    range_hash(src, 0, size)
}

/// RFC 9162 §2.1.3.1 PATH(index, D[0:size]).
pub fn inclusion_proof<S: SubtreeHashes + ?Sized>(
    src: &mut S,
    index: u64,
    size: u64,
) -> Result<Result<Vec<Hash>, ProofError>, S::Error> {
    if index >= size {
        return Ok(Err(ProofError::IndexOutOfRange { index, size }));
    }
    let mut proof = Vec::new();
    path(src, index, 0, size, &mut proof)?;
    Ok(Ok(proof))
}

fn path<S: SubtreeHashes + ?Sized>(
    src: &mut S,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path(src, m, start, start + k, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        path(src, m - k, start + k, end, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.1 PROOF(first, D[0:second]).
pub fn consistency_proof<S: SubtreeHashes + ?Sized>(
    src: &mut S,
    first: u64,
    second: u64,
) -> Result<Result<Vec<Hash>, ProofError>, S::Error> {
    if first > second || first == 0 {
        return Ok(Err(ProofError::BadSizes { first, second }));
    }
    let mut proof = Vec::new();
    subproof(src, first, 0, second, true, &mut proof)?;
    Ok(Ok(proof))
}

fn subproof<S: SubtreeHashes + ?Sized>(
    src: &mut S,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(range_hash(src, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(src, m, start, start + k, whole, out)?;
        out.push(range_hash(src, start + k, end)?);
    } else {
        subproof(src, m - k, start + k, end, false, out)?;
        out.push(range_hash(src, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is at `index` in the tree of `size`
/// leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if &r != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `first` leaves with root
/// `first_root` is a prefix of the tree of `second` leaves with `second_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first > second {
        return Err(ProofError::BadSizes { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if first == 0 {
        // Every tree extends the empty tree.
        return if proof.is_empty() {
            Ok(())
        } else {
            Err(ProofError::WrongLength)
        };
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((seed, rest)) = path.split_first() else {
        return Err(ProofError::WrongLength);
    };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if s == 0 {
            return Err(ProofError::WrongLength);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(ProofError::WrongLength);
    }
    if &fr != first_root || &sr != second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_accumulator_agrees_with_the_definition_at_every_size() {
        let leaves: Vec<Hash> = (0u32..300).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let mut acc = RootAccumulator::default();
        assert_eq!(acc.root(), empty_root());
        for (n, leaf) in leaves.iter().enumerate() {
            acc.push(*leaf);
            assert_eq!(acc.root(), root_of(&leaves[..=n]), "size {}", n + 1);
        }
        assert_eq!(acc.size(), 300);
    }

    use super::*;
    use proptest::prelude::*;

    // Test vectors from transparency-dev/merkle, testonly/constants.go
    // (LeafInputs, NodeHashes, RootHashes), the RFC 6962 reference data
    // Certificate Transparency has used since its first implementation.
    fn leaves() -> Vec<Vec<u8>> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
    }

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn published_root_hashes() {
        let hashes: Vec<Hash> = leaves().iter().map(|l| leaf_hash(l)).collect();
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(root_of(&hashes[..size]), h(want), "size {size}");
            let mut src: &[Hash] = &hashes;
            assert_eq!(tree_root(&mut src, size as u64).unwrap(), h(want));
        }
    }

    #[test]
    fn published_proofs() {
        let hashes: Vec<Hash> = leaves().iter().map(|l| leaf_hash(l)).collect();
        let mut src: &[Hash] = &hashes;
        // Node hashes of the 8-leaf tree, from the same constants.
        let proof = inclusion_proof(&mut src, 0, 8).unwrap().unwrap();
        assert_eq!(
            proof,
            vec![
                h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
            ]
        );
        let consistency = consistency_proof(&mut src, 6, 8).unwrap().unwrap();
        assert_eq!(
            consistency,
            vec![
                h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
            ]
        );
        verify_consistency(6, 8, &h(ROOTS[6]), &h(ROOTS[8]), &consistency).unwrap();
        let consistency = consistency_proof(&mut src, 2, 5).unwrap().unwrap();
        assert_eq!(
            consistency,
            vec![
                h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            ]
        );
        verify_consistency(2, 5, &h(ROOTS[2]), &h(ROOTS[5]), &consistency).unwrap();
    }

    fn tree(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&(i as u64).to_be_bytes()))
            .collect()
    }

    proptest! {
        #[test]
        fn inclusion_proofs_verify_and_bind(size in 1u64..300, seed in any::<u64>()) {
            let hashes = tree(size as usize);
            let index = seed % size;
            let mut src: &[Hash] = &hashes;
            let root = root_of(&hashes);
            let proof = inclusion_proof(&mut src, index, size).unwrap().unwrap();
            prop_assert!(verify_inclusion(&hashes[index as usize], index, size, &proof, &root).is_ok());
            // Any other leaf, index, size or a flipped bit fails.
            let other = leaf_hash(b"not in the tree");
            prop_assert!(verify_inclusion(&other, index, size, &proof, &root).is_err());
            if size > 1 {
                prop_assert!(verify_inclusion(&hashes[index as usize], (index + 1) % size, size, &proof, &root).is_err());
            }
            if let Some(first) = proof.first() {
                let mut bad = proof.clone();
                let mut flipped = *first;
                flipped[0] ^= 1;
                bad[0] = flipped;
                prop_assert!(verify_inclusion(&hashes[index as usize], index, size, &bad, &root).is_err());
            }
        }

        #[test]
        fn consistency_proofs_verify_and_bind(second in 1u64..300, seed in any::<u64>()) {
            let hashes = tree(second as usize);
            let first = seed % second + 1;
            let mut src: &[Hash] = &hashes;
            let (r1, r2) = (root_of(&hashes[..first as usize]), root_of(&hashes));
            let proof = consistency_proof(&mut src, first, second).unwrap().unwrap();
            prop_assert!(verify_consistency(first, second, &r1, &r2, &proof).is_ok());
            // A rewritten history is caught.
            let mut forked = hashes.clone();
            forked[(first - 1) as usize] = leaf_hash(b"rewritten");
            let r1_forked = root_of(&forked[..first as usize]);
            prop_assert!(verify_consistency(first, second, &r1_forked, &r2, &proof).is_err());
            if first < second {
                prop_assert!(verify_consistency(first, second, &r1, &r1, &proof).is_err());
            }
        }
    }

    #[test]
    fn verifiers_refuse_nonsense() {
        let r = empty_root();
        assert!(verify_inclusion(&r, 5, 5, &[], &r).is_err());
        assert!(verify_inclusion(&r, 0, 2, &[], &r).is_err());
        assert!(verify_consistency(5, 4, &r, &r, &[]).is_err());
        assert!(verify_consistency(3, 3, &r, &r, &[r]).is_err());
        assert!(verify_consistency(1, 9, &r, &r, &[]).is_err());
        assert!(verify_consistency(3, 9, &r, &r, &[r; 40]).is_err());
    }
}
