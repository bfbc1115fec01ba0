//! UI strings in English, Spanish and Korean, from `locales/*.toml`, compiled
//! into the binary. Nested tables flatten to dotted keys (`nav.home`). A test
//! checks that every language has every key, and that every key a template
//! uses exists.

use std::collections::HashMap;
use std::sync::LazyLock;

use nara_core::Lang;

const SOURCES: [(Lang, &str); 3] = [
    (Lang::En, include_str!("../../locales/en.toml")),
    (Lang::Es, include_str!("../../locales/es.toml")),
    (Lang::Ko, include_str!("../../locales/ko.toml")),
];

/// A language's strings by key. Pages look up dozens of keys each (a row's
/// labels among them): the lookups were a sixth of a catalogue page's
/// cost, SipHash half of that, so a fast hash (the keys are this crate's
/// own, not a client's).
type Strings = HashMap<String, String, foldhash::fast::RandomState>;

fn flatten(prefix: &str, table: &toml::Table, out: &mut Strings) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// Parses one locale file; a malformed file is a build defect the tests catch.
pub fn parse(source: &str) -> Result<Strings, toml::de::Error> {
    let table: toml::Table = toml::from_str(source)?;
    let mut out = Strings::default();
    flatten("", &table, &mut out);
    Ok(out)
}

/// Each language's strings, in the order of [`SOURCES`].
static CATALOG: LazyLock<[Strings; 3]> =
    LazyLock::new(|| SOURCES.map(|(_, source)| parse(source).unwrap_or_default()));

/// A language's place in [`SOURCES`] and [`CATALOG`].
fn place(lang: Lang) -> usize {
    match lang {
        Lang::En => 0,
        Lang::Es => 1,
        Lang::Ko => 2,
    }
}

/// The translator for one language; cheap to copy into every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tr(pub Lang);

impl Tr {
    /// The string for `key`, falling back to English, then to the key itself.
    pub fn s(&self, key: &str) -> &'static str {
        let catalog = &*CATALOG;
        catalog[place(self.0)]
            .get(key)
            .or_else(|| catalog[place(Lang::En)].get(key))
            .map(String::as_str)
            .unwrap_or_else(|| {
                tracing::warn!(key, "missing translation");
                "?"
            })
    }

    /// The string for `key` with `{n}` replaced by a number.
    pub fn n(&self, key: &str, n: impl std::fmt::Display) -> String {
        self.s(key).replace("{n}", &n.to_string())
    }

    /// The label of a domain value, e.g. `audience.citizen`.
    pub fn of(&self, group: &str, value: impl std::fmt::Display) -> &'static str {
        // A page asks this for each of its rows' values: the key is written
        // into one buffer per thread, not a string allocated each time.
        thread_local!(static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) });
        KEY.with_borrow_mut(|key| {
            use std::fmt::Write;
            key.clear();
            let _ = write!(key, "{group}.{value}");
            self.s(key)
        })
    }
}

/// The best language for an `Accept-Language` header, by quality value.
pub fn negotiate(accept_language: &str) -> Option<Lang> {
    let mut choices: Vec<(f32, Lang)> = accept_language
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let tag = parts.next()?.trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map(|q| q.trim().parse::<f32>().unwrap_or(0.0))
                .unwrap_or(1.0);
            Some((q, Lang::from_tag(tag)?))
        })
        .filter(|(q, _)| *q > 0.0)
        .collect();
    choices.sort_by(|a, b| b.0.total_cmp(&a.0));
    choices.first().map(|(_, l)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_language_reads_its_own_strings() {
        for lang in Lang::ALL {
            assert_eq!(SOURCES[place(lang)].0, lang);
        }
        assert_eq!(Tr(Lang::Ko).s("search"), CATALOG[2]["search"]);
        assert_ne!(Tr(Lang::Ko).s("search"), Tr(Lang::En).s("search"));
        assert_eq!(
            Tr(Lang::Es).of("audience", "citizen"),
            CATALOG[1]["audience.citizen"]
        );
    }

    #[test]
    fn every_language_has_every_key() {
        let en = parse(SOURCES[0].1).unwrap();
        for (lang, source) in &SOURCES[1..] {
            let other = parse(source).unwrap();
            for key in en.keys() {
                assert!(other.contains_key(key), "{lang:?} lacks {key}");
            }
            for key in other.keys() {
                assert!(
                    en.contains_key(key),
                    "{lang:?} has {key}, which English lacks"
                );
            }
        }
    }

    #[test]
    fn every_key_used_in_templates_exists() {
        let en = parse(SOURCES[0].1).unwrap();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates");
        let re_start = ".s(\"";
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split(re_start).skip(1) {
                let key = piece.split('"').next().unwrap();
                assert!(
                    en.contains_key(key),
                    "{} uses missing key {key}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn negotiates_by_quality() {
        assert_eq!(negotiate("fr-FR, es;q=0.8, ko;q=0.9"), Some(Lang::Ko));
        assert_eq!(negotiate("es-419"), Some(Lang::Es));
        assert_eq!(negotiate("fr, de"), None);
        assert_eq!(negotiate("ko;q=0, en;q=0.1"), Some(Lang::En));
        assert_eq!(negotiate(""), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn negotiation_never_panics(header in any::<String>()) {
            let _ = super::negotiate(&header);
        }
    }
}
