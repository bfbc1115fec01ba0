//! Published service definitions, parsed once. A published version never
//! changes, so each `(code, version)` is parsed the first time a request
//! needs it and kept: the portal, the cases, the statistics and the API read
//! typed values, not TOML. A stored definition that no longer parses (it
//! parsed when it was published; only a newer checker can refuse it) is an
//! error in the log, named, every time it is asked for, never skipped in silence.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use nara_core::Lang;
use nara_core::service_def::{self, Definition};
use nara_store::services::PublishedDefinition;

/// Parsed definitions by code and version.
#[derive(Default)]
pub struct Definitions(RwLock<HashMap<(String, i64), Arc<Definition>>>);

impl Definitions {
    /// The parsed definition of a published version; `None` (and an error
    /// in the log) if its stored source no longer parses.
    pub fn of(&self, p: &PublishedDefinition) -> Option<Arc<Definition>> {
        let key = (p.code.clone(), p.version);
        if let Some(d) = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            return Some(d.clone());
        }
        match service_def::check(&p.source) {
            Ok(d) => {
                let d = Arc::new(d);
                self.0
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(key, d.clone());
                Some(d)
            }
            Err(problems) => {
                tracing::error!(
                    code = %p.code,
                    version = p.version,
                    problems = ?problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "a published service definition no longer parses"
                );
                None
            }
        }
    }

    /// The title of service `code` among `published`, in `lang`; the code
    /// itself if it is not there or does not parse.
    pub fn title(&self, published: &[PublishedDefinition], code: &str, lang: Lang) -> String {
        published
            .iter()
            .find(|d| d.code == code)
            .and_then(|d| self.of(d))
            .map_or_else(|| code.to_owned(), |d| d.title.get(lang))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(source: &str, version: i64) -> PublishedDefinition {
        PublishedDefinition {
            code: "resident-registration-certificate".into(),
            version,
            agency_id: "KR/GOV/MOIS".into(),
            source: source.into(),
            published_by: "test".into(),
            published_at: 0,
        }
    }

    #[test]
    fn each_version_is_parsed_once_and_a_broken_one_is_not_skipped_silently() {
        let (_, source) = service_def::DEMO[0];
        let defs = Definitions::default();
        let first = defs.of(&published(source, 1)).expect("parses");
        let again = defs.of(&published(source, 1)).expect("kept");
        assert!(Arc::ptr_eq(&first, &again), "parsed once, then shared");
        let broken = published("code = 'x'\nnot toml at all [", 2);
        assert!(defs.of(&broken).is_none());
        // Its title falls back to the code (the error is in the log).
        assert_eq!(
            defs.title(&[broken], "resident-registration-certificate", Lang::En),
            "resident-registration-certificate"
        );
    }
}
