//! The register entries shipped with the reference models
//! (`crates/nara-algorithms/register/*.toml`), published when a node is
//! seeded. Their figures, versions and artefact digests are the ones the
//! models and their evaluations give — a test holds them equal.

use nara_core::algorithms::RegisterEntry;

const SHIPPED: &[(&str, &str)] = &[
    (
        "voice-phishing.toml",
        include_str!("../register/voice-phishing.toml"),
    ),
    (
        "traffic-signals.toml",
        include_str!("../register/traffic-signals.toml"),
    ),
    (
        "elderly-protection-zones.toml",
        include_str!("../register/elderly-protection-zones.toml"),
    ),
    (
        "extended-hour-schools.toml",
        include_str!("../register/extended-hour-schools.toml"),
    ),
    (
        "image-hash-matching.toml",
        include_str!("../register/image-hash-matching.toml"),
    ),
    (
        "grooming-risk.toml",
        include_str!("../register/grooming-risk.toml"),
    ),
];

/// The shipped register entries, parsed.
pub fn shipped() -> Result<Vec<RegisterEntry>, String> {
    SHIPPED
        .iter()
        .map(|(file, text)| toml::from_str(text).map_err(|e| format!("{file}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_entries_are_complete_and_tell_the_truth() {
        let entries = shipped().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries.len(), crate::models().len());
        for entry in entries {
            entry
                .validate()
                .unwrap_or_else(|e| panic!("{}: {e}", entry.code));
            let model = crate::model(&entry.code).unwrap_or_else(|| panic!("{}", entry.code));
            assert_eq!(entry.model_version, model.version(), "{}", entry.code);
            assert_eq!(
                entry.artefact_sha256,
                model.artefact_sha256(),
                "{}",
                entry.code
            );
            let evaluation =
                crate::evaluate(&entry.code).unwrap_or_else(|| panic!("{}", entry.code));
            let published: Vec<(Option<String>, String, f64)> = entry
                .performance
                .iter()
                .map(|f| (f.subgroup.clone(), f.metric.clone(), f.value))
                .collect();
            assert_eq!(published, evaluation.figures, "{}", entry.code);
            // Training and evaluation data are generated; only the image
            // matcher also names the lists authorities supply at run time.
            assert!(entry.data_sources[0].generated, "{}", entry.code);
        }
    }
}
