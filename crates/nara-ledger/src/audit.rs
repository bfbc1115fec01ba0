//! A full audit of a log: the entries an auditor downloaded, hashed, must be
//! the leaf hashes the log serves, and must hash to the signed root.

use crate::merkle::{Hash, leaf_hash, root_of};
use crate::{Checkpoint, merkle};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("the log serves {got} entries for a checkpoint of {want}")]
    WrongCount { got: u64, want: u64 },
    #[error("entry {index} does not hash to the log's leaf hash {index}: the entry was altered")]
    EntryMismatch { index: u64 },
    #[error("the entries do not hash to the checkpoint's root hash")]
    RootMismatch,
    #[error("the log shrank from {saved} entries to {current}: history was truncated")]
    Shrunk { saved: u64, current: u64 },
    #[error(
        "the first {saved} entries no longer hash to the saved checkpoint's root: history was rewritten"
    )]
    Rewritten { saved: u64 },
}

/// Checks downloaded entries against the served level-0 hashes and the checkpoint.
pub fn check_entries(
    checkpoint: &Checkpoint,
    entries: &[Vec<u8>],
    served_leaves: &[Hash],
) -> Result<Vec<Hash>, AuditError> {
    let want = checkpoint.size;
    if entries.len() as u64 != want {
        return Err(AuditError::WrongCount {
            got: entries.len() as u64,
            want,
        });
    }
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    if let Some(index) = leaves.iter().zip(served_leaves).position(|(a, b)| a != b) {
        return Err(AuditError::EntryMismatch {
            index: index as u64,
        });
    }
    if served_leaves.len() != leaves.len() {
        return Err(AuditError::WrongCount {
            got: served_leaves.len() as u64,
            want,
        });
    }
    if root_of(&leaves) != checkpoint.root {
        return Err(AuditError::RootMismatch);
    }
    Ok(leaves)
}

/// Checks that the verified log (its leaves) extends a checkpoint saved earlier,
/// with an RFC 9162 consistency proof computed from those leaves.
pub fn check_extends(
    saved: &Checkpoint,
    current: &Checkpoint,
    leaves: &[Hash],
) -> Result<(), AuditError> {
    if saved.size > current.size {
        return Err(AuditError::Shrunk {
            saved: saved.size,
            current: current.size,
        });
    }
    if saved.size == 0 {
        return Ok(());
    }
    let mut src: &[Hash] = leaves;
    let proof = match merkle::consistency_proof(&mut src, saved.size, current.size) {
        Ok(Ok(p)) => p,
        _ => return Err(AuditError::Rewritten { saved: saved.size }),
    };
    merkle::verify_consistency(saved.size, current.size, &saved.root, &current.root, &proof)
        .map_err(|_| AuditError::Rewritten { saved: saved.size })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: usize) -> (Vec<Vec<u8>>, Vec<Hash>, Checkpoint) {
        let entries: Vec<Vec<u8>> = (0..n).map(|i| format!("entry {i}").into_bytes()).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let cp = Checkpoint {
            origin: "o".into(),
            size: n as u64,
            root: root_of(&leaves),
            extensions: vec![],
        };
        (entries, leaves, cp)
    }

    #[test]
    fn names_the_first_altered_entry() {
        let (mut entries, leaves, cp) = log(300);
        check_entries(&cp, &entries, &leaves).unwrap();
        entries[257] = b"forged".to_vec();
        entries[290] = b"forged too".to_vec();
        assert_eq!(
            check_entries(&cp, &entries, &leaves),
            Err(AuditError::EntryMismatch { index: 257 })
        );
    }

    #[test]
    fn catches_truncation_and_rewriting() {
        let (_, leaves, saved) = log(100);
        let (_, more, current) = log(150);
        check_extends(&saved, &current, &more).unwrap();
        let (_, short, shorter) = log(60);
        assert_eq!(
            check_extends(&saved, &shorter, &short),
            Err(AuditError::Shrunk {
                saved: 100,
                current: 60
            })
        );
        let mut rewritten = more.clone();
        rewritten[10] = leaf_hash(b"rewritten");
        let rewritten_cp = Checkpoint {
            root: root_of(&rewritten),
            ..current
        };
        assert_eq!(
            check_extends(&saved, &rewritten_cp, &rewritten),
            Err(AuditError::Rewritten { saved: 100 })
        );
        let _ = leaves;
    }
}
