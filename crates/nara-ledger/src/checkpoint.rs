//! C2SP `tlog-checkpoint`: the body a log signs — its origin, tree size and
//! base64 root hash, one per line, then optional extension lines.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::Hash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique, schema-less URL, e.g. `gov.example/ledger`.
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed checkpoint: {0}")]
pub struct CheckpointError(&'static str);

impl Checkpoint {
    /// The note text: `origin\nsize\nroot\n` and any extension lines.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Parses a checkpoint body (the text of an opened note).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError("it must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(CheckpointError("no origin line"))?;
        let size = lines.next().ok_or(CheckpointError("no tree size line"))?;
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if !canonical {
            return Err(CheckpointError(
                "the tree size must be a decimal number without leading zeroes",
            ));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| CheckpointError("the tree size is too large"))?;
        let root = lines.next().ok_or(CheckpointError("no root hash line"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(CheckpointError("the root hash must be 32 bytes of base64"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(CheckpointError("extension lines must not be empty"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let c = Checkpoint {
            origin: "gov.example/ledger".into(),
            size: 42,
            root: [9; 32],
            extensions: vec!["nara-time 1700000000".into()],
        };
        assert_eq!(Checkpoint::parse(&c.body()).unwrap(), c);
        for bad in [
            "",
            "o\n",
            "o\n1\n",
            "o\n01\nAAAA\n",
            "o\n-1\n",
            "\n1\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
            "o\n1\nnot-base64\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in any::<String>()) {
            let _ = Checkpoint::parse(&text);
        }
    }
}
