//! nara's public ledger as pure code, with no I/O: RFC 9162 Merkle tree
//! hashing, inclusion and consistency proofs ([`merkle`]), C2SP
//! `tlog-checkpoint` bodies ([`checkpoint`]) signed as C2SP `signed-note`s
//! with Ed25519 ([`note`]), and C2SP `tlog-tiles` paths, tiles and entry
//! bundles ([`tile`]).
//!
//! Everything here is what an auditor needs too: the server builds proofs
//! from its stored tiles with the same code the CLI verifier runs over tiles
//! fetched by HTTP.

pub mod checkpoint;
pub mod entry;
pub mod merkle;
pub mod note;
pub mod tile;

pub use checkpoint::Checkpoint;
pub use entry::Entry;
pub use merkle::{Hash, leaf_hash, node_hash};

pub mod audit;
