//! X-Road style member identifiers: `INSTANCE/CLASS/CODE`, e.g. `KR/GOV/MOIS`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;

/// The identifier of a member (an agency) of the exchange: instance, member class
/// and member code. Each part is 1–64 of ASCII letters, digits, `-`, `_`, `.`;
/// X-Road forbids `/`, `:`, `;`, `%` and `\` in identifiers, which this excludes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(String);

impl MemberId {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() != 3 {
            return Err(Invalid::one(
                "id",
                "must have the form INSTANCE/CLASS/CODE, e.g. KR/GOV/MOIS",
            ));
        }
        for (name, part) in ["instance", "class", "code"].iter().zip(&parts) {
            let ok = !part.is_empty()
                && part.len() <= 64
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                return Err(Invalid::one(
                    "id",
                    format!(
                        "the {name} part must be 1 to 64 ASCII letters, digits, '-', '_' or '.'"
                    ),
                ));
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The member code, the last part (`MOIS` in `KR/GOV/MOIS`).
    pub fn code(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MemberId {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for MemberId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for MemberId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(&e.errors[0].detail))
    }
}

impl utoipa::PartialSchema for MemberId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(
                r"^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$",
            ))
            .examples([serde_json::json!("KR/GOV/MOIS")])
            .description(Some("X-Road member identifier INSTANCE/CLASS/CODE"))
            .into()
    }
}

impl utoipa::ToSchema for MemberId {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_ids() {
        let id = MemberId::parse("KR/GOV/MOIS").unwrap();
        assert_eq!(id.code(), "MOIS");
        assert_eq!(id.to_string(), "KR/GOV/MOIS");
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in [
            "",
            "KR",
            "KR/GOV",
            "KR/GOV/MOIS/X",
            "KR//MOIS",
            "KR/GOV/MO IS",
            "KR/GOV/MO%IS",
            "KR/GOV/'; drop table--",
        ] {
            assert!(MemberId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parsing_never_panics(s in any::<String>()) {
            let _ = MemberId::parse(&s);
        }

        #[test]
        fn valid_ids_round_trip(parts in proptest::collection::vec("[A-Za-z0-9._-]{1,64}", 3)) {
            let text = parts.join("/");
            let id = MemberId::parse(&text).unwrap();
            prop_assert_eq!(id.to_string(), text);
            prop_assert_eq!(id.code(), parts[2].as_str());
        }

        #[test]
        fn ids_with_forbidden_characters_are_refused(prefix in "[A-Z]{1,5}", bad in "[/:;%\\\\ ]", suffix in "[A-Z]{0,5}") {
            let text = format!("KR/GOV/{prefix}{bad}{suffix}");
            prop_assert!(MemberId::parse(&text).is_err());
        }
    }
}
